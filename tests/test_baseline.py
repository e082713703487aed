"""The committed baseline still gates cleanly against a fresh `make eval MODEL=llada-tiny` (as
CI's workflow does).

Fails when a change alters the embedded default's settings or outputs without refreshing
results/baselines/llada-tiny (the pull-request workflow would then fail for everyone).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_make_eval_passes_the_gate_against_the_committed_baseline(tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.run(["make", "-s", "eval", "MODEL=llada-tiny", f"OUTPUT={out}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    gate = subprocess.run(
        [sys.executable, "-m", "evalsuite", "gate", "--baseline",
         str(ROOT / "results" / "baselines" / "llada-tiny"), "--candidate", str(run_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert gate.returncode == 0, gate.stdout[-3000:] + gate.stderr[-2000:]
