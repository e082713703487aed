"""``evalsuite gate`` as a real subprocess: exit codes, Markdown, JUnit, bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from results_builder import GEN_TASK, MC_TASK, flags, make_run

REPO = Path(__file__).resolve().parents[1]


def gate(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalsuite", "gate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_pass_regression_and_outputs(tmp_path: Path) -> None:
    base = make_run(tmp_path, {GEN_TASK: flags(40, 30), MC_TASK: flags(40, 20)})
    same = make_run(tmp_path, {GEN_TASK: flags(40, 30), MC_TASK: flags(40, 21)})
    worse = make_run(tmp_path, {GEN_TASK: flags(40, 10), MC_TASK: flags(40, 20)})

    ok = gate("--baseline", str(base), "--candidate", str(same), "--no-identity")
    assert ok.returncode == 0, ok.stderr
    assert "evalsuite gate: ✅ pass" in ok.stdout and "identity mode: off" in ok.stdout
    # The repository's gate-policy.json turns identity mode on: one MC answer changed.
    changed = gate("--baseline", str(base), "--candidate", str(same))
    assert changed.returncode == 1, changed.stderr
    assert "❌ outputs changed" in changed.stdout and "identity mode: on" in changed.stdout
    assert f"{MC_TASK}: identity mode: 1 of 40 samples differ" in changed.stderr

    md, junit = tmp_path / "gate.md", tmp_path / "junit.xml"
    bad = gate(
        "--baseline",
        str(base),
        "--candidate",
        str(worse),
        "--markdown",
        str(md),
        "--junit",
        str(junit),
    )
    assert bad.returncode == 1, bad.stderr
    assert md.read_text() == bad.stdout and "❌ regression" in md.read_text()
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("errors") == "0"
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == [GEN_TASK]


def test_policy_file_and_setting_changes(tmp_path: Path) -> None:
    base = make_run(tmp_path, {GEN_TASK: flags(40, 30)})
    cand = make_run(tmp_path, {GEN_TASK: flags(40, 24)}, settings={GEN_TASK: {"steps": 8}})
    refused = gate("--baseline", str(base), "--candidate", str(cand))
    assert refused.returncode == 2 and "--allow-setting-changes" in refused.stderr
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": {"allowed_drop": 0.5}}))
    allowed = gate(
        "--baseline",
        str(base),
        "--candidate",
        str(cand),
        "--policy",
        str(policy),
        "--allow-setting-changes",
    )
    assert allowed.returncode == 0, allowed.stdout
    policy.write_text('{"default": {"allowed_drop": ')
    broken = gate("--baseline", str(base), "--candidate", str(cand), "--policy", str(policy))
    assert broken.returncode == 2 and f"{policy}: not valid JSON" in broken.stderr


def test_unusable_inputs_exit_2_naming_the_file(tmp_path: Path) -> None:
    base = make_run(tmp_path, {MC_TASK: flags(10, 5)})
    truncated = make_run(tmp_path, {MC_TASK: flags(10, 5)})
    (truncated / "run.json").write_text((truncated / "run.json").read_text()[:100])
    junit = tmp_path / "j.xml"
    res = gate("--baseline", str(base), "--candidate", str(truncated), "--junit", str(junit))
    assert res.returncode == 2
    assert f"{truncated / 'run.json'}: not valid JSON" in res.stderr
    assert "unusable input" in res.stdout and "<error" in junit.read_text()

    no_samples = make_run(tmp_path, {MC_TASK: flags(10, 5)})
    (no_samples / "samples.jsonl").unlink()
    res = gate("--baseline", str(base), "--candidate", str(no_samples))
    assert res.returncode == 2 and "no per-sample records" in res.stderr

    other = make_run(tmp_path, {GEN_TASK: flags(10, 5)})
    res = gate("--baseline", str(base), "--candidate", str(other))
    assert res.returncode == 2 and "no task in common" in res.stdout

    res = gate("--baseline", str(base), "--candidate", str(tmp_path / "nope"))
    assert res.returncode == 2 and "no such run directory" in res.stderr
