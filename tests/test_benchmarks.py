"""Smoke test of the full-size speed script on a tiny config (keeps the GPU script runnable)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_llada8b_speed_script_runs_on_a_tiny_config(tmp_path):
    out = tmp_path / "speed.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "llada8b_speed.py"), "--tiny", "--device", "cpu",
         "--dtype", "float32", "--prompt", "32", "--gen", "16", "--block", "8", "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["nfe"] == 16 and 1 <= result["threshold_nfe"] <= 16
    assert result["tokens_per_s"] > 0 and result["forward_ms"] > 0
