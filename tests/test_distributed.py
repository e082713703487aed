"""Data parallel: 2 CPU processes (gloo) under `accelerate launch` / `torchrun` give the
1-process results, through lm-eval directly and through the real `evalsuite run` command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HELPER = Path(__file__).parent / "helpers" / "dp_eval.py"
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: The README's data-parallel command, on the tiniest model and task.
RUN = ["-m", "evalsuite", "run", "--model", "llada-tiny", "--tasks", "llada_sum_choice",
       "--limit", "8"]


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


def _samples(run_dir: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return {row["doc_id"]: row for row in rows}


def _one_run(output: Path) -> Path:
    runs = [d for d in output.iterdir() if (d / "run.json").is_file()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow
def test_the_readme_command_under_accelerate_and_torchrun(tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2 -m evalsuite run ...` and `torchrun
    --nproc_per_node 2 -m evalsuite run ...` exit 0 on every rank (rank 1 used to die reading
    run.json from "." after rank 0 wrote the run), rank 0 alone writes and prints, the
    per-sample outputs are those of one process, and the record states the world size, each
    rank's requests and the request-cache hits summed over the ranks."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"}
    env.pop("EVALSUITE_CACHE_DIR", None)
    cache = tmp_path / "cache"

    def run(launcher: list[str], output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*launcher, *RUN, "--output", str(output), *extra], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return proc

    single = run([sys.executable], tmp_path / "one", "--no-cache")
    accelerate = run([str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
                      "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                      "--main_process_port", str(_free_port())], tmp_path / "acc",
                     "--cache-dir", str(cache))
    torchrun = run([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port",
                    str(_free_port())], tmp_path / "tr", "--cache-dir", str(cache))
    for proc in (single, accelerate, torchrun):
        assert proc.stdout.count("run written to") == 1, proc.stdout
        assert proc.stderr.count("evalsuite: llada-tiny (llada, float32) on llada_sum_choice") == 1
    assert not (tmp_path / "run.json").exists()

    one = _samples(_one_run(tmp_path / "one"))
    assert sorted(one) == list(range(8))
    for output in ("acc", "tr"):
        two = _samples(_one_run(tmp_path / output))
        assert sorted(two) == sorted(one)
        for doc, row in one.items():
            assert two[doc]["prompt"] == row["prompt"] and two[doc]["scores"] == row["scores"]
            assert two[doc]["loglikelihoods"] == pytest.approx(row["loglikelihoods"], abs=1e-4)

    records = {name: json.loads((_one_run(tmp_path / name) / "run.json").read_text())
               for name in ("one", "acc", "tr")}
    single_dp = records["one"]["data_parallel"]
    assert single_dp["world_size"] == 1 and single_dp["cache_hits"] == 0
    requests = single_dp["requests"]
    assert requests == 16  # 8 documents x 2 choices
    first = records["acc"]["data_parallel"]
    second = records["tr"]["data_parallel"]
    for dp in (first, second):
        assert dp["world_size"] == 2 and [r["rank"] for r in dp["ranks"]] == [0, 1]
        assert all(r["requests"] > 0 for r in dp["ranks"])
        assert sum(r["requests"] for r in dp["ranks"]) == dp["requests"] == requests
    # the first launch filled the cache, the second found every request of both ranks there
    assert first["cache_hits"] == 0
    assert second["cache_hits"] == requests == sum(r["cache_hits"] for r in second["ranks"])
    cache_record = records["tr"]["reliability"]["cache"]
    assert (cache_record["requests"], cache_record["from_cache"]) == (requests, requests)


def test_the_data_parallel_record_sums_over_the_ranks():
    from evalsuite.runner import RankShare, _summed_cache, data_parallel_record

    cache0 = {"requests": 5, "from_cache": 2, "computed": 3, "written": 3,
              "by_kind": {"loglikelihood": {"requests": 5, "from_cache": 2}}}
    cache1 = {"requests": 4, "from_cache": 4, "computed": 0, "written": 0,
              "by_kind": {"loglikelihood": {"requests": 3, "from_cache": 3},
                          "generate_until": {"requests": 1, "from_cache": 1}}}
    shares = [RankShare(1, {"loglikelihood": 3, "generate_until": 1}, cache1),
              RankShare(0, {"loglikelihood": 5}, cache0)]
    record = data_parallel_record(2, shares)
    assert record.world_size == 2 and [r.rank for r in record.ranks] == [0, 1]
    assert [r.requests for r in record.ranks] == [5, 4]
    assert (record.requests, record.cache_hits) == (9, 6)
    summed = _summed_cache(shares)
    assert (summed["requests"], summed["from_cache"], summed["computed"]) == (9, 6, 3)
    assert summed["by_kind"]["loglikelihood"] == {"requests": 8, "from_cache": 5}
    # lm-eval's own ARM classes: evalsuite counts nothing, the record says so
    assert data_parallel_record(1, []) is None
    without_cache = data_parallel_record(1, [RankShare(0, {"generate_until": 2}, None)])
    assert (without_cache.requests, without_cache.cache_hits) == (2, 0)


@pytest.mark.slow
def test_a_rank_that_fails_does_not_leave_the_others_waiting(tmp_path):
    """Rank 1 fails after joining the group while rank 0 enters lm-eval's collectives: both
    exit, non-zero, instead of rank 1 waiting in the exit barrier and rank 0 in a collective
    forever (seen when two ranks raced to create a new request cache)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(_free_port()),
         str(Path(__file__).parent / "helpers" / "dp_fail.py"), str(tmp_path / "runs")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "rank 1 failed after joining the process group" in proc.stderr
    assert not list(tmp_path.glob("runs/*/run.json"))
