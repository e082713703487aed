"""Data parallel: 2 CPU processes (gloo) under `accelerate launch` give the 1-process results."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HELPER = Path(__file__).parent / "helpers" / "dp_eval.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single, double = tmp_path / "one.json", tmp_path / "two.json"
    subprocess.run([sys.executable, str(HELPER), str(single)], check=True, env=env,
                   capture_output=True, timeout=600)
    launcher = Path(sys.executable).parent / "accelerate"
    proc = subprocess.run(
        [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(_free_port()), str(HELPER), str(double)],
        env={**env, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = json.loads(single.read_text()), json.loads(double.read_text())
    assert (one["world_size"], two["world_size"]) == (1, 2)
    # generations are identical; log-likelihoods equal up to float summation order (the
    # ranks pack different rows together, so padded widths differ)
    assert two["samples"]["tiny_qa_gen"] == one["samples"]["tiny_qa_gen"]
    assert len(two["samples"]["tiny_qa_gen"]) == 6
    mc1, mc2 = one["samples"]["tiny_qa_mc"], two["samples"]["tiny_qa_mc"]
    assert set(mc1) == set(mc2) and len(mc1) == 6
    for doc, values in mc1.items():
        assert values == pytest.approx(mc2[doc], abs=1e-4)


def test_the_process_group_is_destroyed_before_exit():
    """The adapter leaves the gloo group it joined at exit (a group left to the interpreter's
    teardown can abort a finished rank). An exit hook registered before the group exists runs
    after the adapter's (exit hooks run last-in, first-out) and sees no group."""
    script = (
        "import atexit, torch.distributed as dist\n"
        "atexit.register(lambda: print('group at exit:', dist.is_initialized(), flush=True))\n"
        "from evalsuite.models.adapter import _init_distributed\n"
        "rank, device = _init_distributed('cpu')\n"
        "print('rank', rank, device, dist.get_world_size(), flush=True)\n"
    )
    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rank 0 cpu 1" in proc.stdout and "group at exit: False" in proc.stdout, proc.stdout
