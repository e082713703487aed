"""Smoke test of the full-size speed script on a tiny config (keeps the GPU script runnable)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert [row["batch"] for row in result["batch_sweep"]] == []
    assert result["likelihood_requests_per_s"] > 0


def test_llada8b_speed_batch_sweep_reports_throughput_and_peak_fraction(tmp_path):
    out = tmp_path / "speed.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "llada8b_speed.py"), "--tiny", "--device", "cpu",
         "--dtype", "float32", "--prompt", "16", "--gen", "8", "--block", "8", "--batches", "1,2",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sweep = json.loads(out.read_text())["batch_sweep"]
    assert [row["batch"] for row in sweep] == [1, 2]
    assert all(row["nfe"] == 8 and row["tokens_per_s"] > 0 for row in sweep)
    assert all(row["fraction_of_bf16_peak"] is None for row in sweep)  # float32 on a CPU


@pytest.mark.slow
def test_make_bench_quick_writes_bench_json_with_identical_exact_outputs(tmp_path):
    """`benchmarks/run.py --quick`: every exact mode asserted equal to the reference mode."""
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
                           "--json", str(out)], capture_output=True, text=True, timeout=1200,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bench = json.loads(out.read_text())
    cases = {c["case"]: c for c in bench["generation"]["cases"]}
    assert len(cases) == 2
    synthetic = next(c for name, c in cases.items() if "synthetic EOS" in name)
    modes = {m["mode"]: m for m in synthetic["modes"]}
    assert modes["evalsuite exact, early exit on"]["identical_to_reference"] is True
    assert modes["evalsuite exact, early exit off"]["nfe_per_request"] == \
        modes["reference (one request, full logits, no early exit)"]["nfe_per_request"]
    assert 0 < synthetic["early_exit_nfe_saved"] < 1
    assert modes["evalsuite exact, early exit on"]["nfe_per_request"] < \
        modes["evalsuite exact, early exit off"]["nfe_per_request"]
    for mode in modes.values():
        if "approximate" in mode["mode"]:
            assert 0 <= mode["token_agreement"] <= 1 and mode["nfe_vs_exact"] > 0
    assert "generation" in bench["targets"] and "likelihood" in bench


def test_dream_bench_quick_matches_dreams_reference(tmp_path):
    """benchmarks/dream_bench.py --quick: evalsuite's per_row sampler asserted token for token
    equal to Dream's reference loop (one request at a time), ratios reported."""
    out = tmp_path / "dream.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dream_bench.py"), "--quick",
                           "--json", str(out)], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bench = json.loads(out.read_text())
    net = bench["network"]
    assert abs(net["head_share"] - net["dream7b_head_share"]) < 0.01  # Dream-7B's head share
    modes = {m["mode"].split(" (")[0]: m for m in bench["generation"]["modes"]}
    assert modes["evalsuite per_row, early exit off"]["identical_to_reference"] is True
    assert modes["evalsuite per_row, early exit on"]["identical_to_reference"] is True
    assert 0 <= modes["evalsuite batch_mean"]["answer_agreement"] <= 1
    like = bench["likelihood"]
    assert like["evalsuite"]["exact_requests"] >= like["requests"] // 2  # one-token answers
    assert like["speedup"] > 0 and like["reference"]["mean_stderr"] > 0
