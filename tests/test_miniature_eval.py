"""The embedded default (`make eval` with no MODEL): both trained tiny models through the real
harness, a study run and a pipeline run each, and the HTML comparison report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDY = {"llada_poem_forward_heldout", "llada_poem_backward_heldout", "llada_arith", "llada_sum_choice"}


@pytest.mark.slow
def test_embedded_default_writes_both_runs_and_the_report(tmp_path):
    out, report = tmp_path / "runs", tmp_path / "miniature.html"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "scripts/miniature_eval.py", "--output", str(out),
                           "--report", str(report)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"report: {report}" in proc.stdout
    records = [json.loads((d / "run.json").read_text()) for d in sorted(out.iterdir())]
    assert {(r["model"]["preset"], r["model"]["backend"]) for r in records} == {
        ("llada-tiny", "llada"), ("arm-tiny", "hf")}
    study = [r for r in records if STUDY <= set(r["tasks"])]
    assert len(records) == 4 and {r["model"]["preset"] for r in study} == {"llada-tiny", "arm-tiny"}
    for record in study:
        assert record["tasks"]["llada_poem_backward_heldout"]["n_samples"] == 94
    html = report.read_text()
    assert "llada-tiny" in html and "arm-tiny" in html and "llada_poem_backward_heldout" in html
