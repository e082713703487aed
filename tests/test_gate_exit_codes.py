"""Exit codes of ``evalsuite gate`` and ``evalsuite report`` through real subprocesses.

0 pass, 1 regression or changed outputs (gate only), 2 unusable input or any unexpected error:
an exception must never surface as Python's exit status 1, which CI reads as "regressed".
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from results_builder import MC_TASK, flags, make_run

REPO = Path(__file__).resolve().parents[1]


def evalsuite(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalsuite", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_more_than_1024_discordant_pairs(tmp_path: Path) -> None:
    """The old exact McNemar raised OverflowError here and the gate exited 1."""
    base = make_run(tmp_path, {MC_TASK: flags(3000, 1500)})
    even = make_run(tmp_path, {MC_TASK: flags(3000, 1500, offset=700)})  # 700 each way
    worse = make_run(tmp_path, {MC_TASK: flags(3000, 1000, offset=900)})  # 900 vs 400
    ok = evalsuite("gate", "--baseline", str(base), "--candidate", str(even), "--no-identity")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "| 3000 | mcnemar | 1 |" in ok.stdout
    bad = evalsuite("gate", "--baseline", str(base), "--candidate", str(worse), "--no-identity")
    assert bad.returncode == 1, bad.stderr[-2000:]
    assert "❌ regression" in bad.stdout and "Traceback" not in bad.stderr
    out = tmp_path / "r.html"
    rep = evalsuite("report", str(base), str(even), str(worse), "-o", str(out))
    assert rep.returncode == 0, rep.stderr[-2000:]
    assert out.stat().st_size > 0


def test_unexpected_gate_error_exits_2_and_still_writes_junit(tmp_path: Path) -> None:
    base = make_run(tmp_path, {MC_TASK: flags(20, 10)})
    cand = make_run(tmp_path, {MC_TASK: flags(20, 10)})
    a_directory = tmp_path / "gate.md"
    a_directory.mkdir()
    junit = tmp_path / "junit.xml"
    res = evalsuite(
        "gate", "--baseline", str(base), "--candidate", str(cand),
        "--markdown", str(a_directory), "--junit", str(junit),
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "gate: unexpected error (IsADirectoryError" in res.stderr
    assert "not a regression verdict" in res.stderr
    assert "unusable input" in res.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "1"
    assert "IsADirectoryError" in ET.tostring(suite, encoding="unicode")


def test_unexpected_report_error_exits_2(tmp_path: Path) -> None:
    run = make_run(tmp_path, {MC_TASK: flags(20, 10)})
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    res = evalsuite("report", str(run), "-o", str(a_file / "report.html"))
    assert res.returncode == 2, res.stderr[-2000:]
    assert "report: unexpected error (" in res.stderr and "not a regression verdict" in res.stderr
