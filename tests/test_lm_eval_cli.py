"""Plain `lm_eval --model llada` works once the package is installed (make install)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES


@pytest.mark.slow
def test_lm_eval_cli_runs_the_llada_model(tmp_path):
    lm_eval = Path(sys.executable).parent / "lm_eval"
    proc = subprocess.run(
        [str(lm_eval), "--model", "llada",
         "--model_args", "pretrained=llada-tiny,mc_num=8,gen_length=8,steps=8,block_length=8", "--device", "cpu",
         "--tasks", "tiny_qa_mc", "--include_path", str(FIXTURES / "lm_eval_tasks"),
         "--limit", "3", "--output_path", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tiny_qa_mc" in proc.stdout and "acc" in proc.stdout
    assert list((tmp_path / "out").rglob("results_*.json"))
