"""SIGKILL a real ``evalsuite run`` at several points; the rerun recomputes only what is missing
and its per-sample results equal those of an uninterrupted run."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .helpers import DATA, FAST, cached_counts, evalsuite_run, record, run_dirs, samples

#: gsm8k (generation, 3 documents = 3 batches at batch size 1) then piqa (likelihood,
#: 5 documents = 10 requests = 2 batches of 8 and 2).
ARGS = ["--model", "llada-tiny", "--tasks", "gsm8k,piqa", "--limit", "5", "--data-dir", str(DATA),
        "--batch-size", "1", *FAST]
TOTAL = {"generate_until": 5, "loglikelihood": 10}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    done = evalsuite_run([*ARGS, "--output", str(out / "runs"), "--no-cache"])
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = run_dirs(out / "runs")
    assert record(run)["reliability"]["cache"]["enabled"] is False
    return run


@pytest.mark.slow
@pytest.mark.parametrize("point, cached_before", [
    ("generate_until:2", {"generate_until": 2}),
    ("loglikelihood:1", {"generate_until": 5, "loglikelihood": 8}),
    ("write_run:1", TOTAL),
])
def test_killed_run_resumes_with_identical_samples(tmp_path, uninterrupted, point, cached_before):
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    killed = evalsuite_run([*ARGS, "--output", str(runs), "--cache-dir", str(cache)],
                           env={"EVALSUITE_KILL_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert run_dirs(runs) == []  # nothing half-written is visible as a run
    assert cached_counts(cache) == cached_before  # every batch finished before the kill is kept

    resumed = evalsuite_run([*ARGS, "--output", str(runs), "--cache-dir", str(cache)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (run,) = run_dirs(runs)
    assert samples(run) == samples(uninterrupted)
    rec = record(run)
    hits = sum(cached_before.values())
    cache_info = rec["reliability"]["cache"]
    assert cache_info["from_cache"] == hits
    assert cache_info["computed"] == sum(TOTAL.values()) - hits
    assert rec["tasks"]["llada_gsm8k"]["metrics"] == record(uninterrupted)["tasks"]["llada_gsm8k"]["metrics"]
    assert rec["tasks"]["llada_piqa"]["metrics"] == record(uninterrupted)["tasks"]["llada_piqa"]["metrics"]


@pytest.mark.slow
def test_a_changed_setting_never_reuses_an_entry(tmp_path):
    cache = tmp_path / "cache"
    base = ["--model", "llada-tiny", "--tasks", "piqa", "--limit", "2", "--data-dir", str(DATA),
            "--cache-dir", str(cache), "--output", str(tmp_path / "runs")]
    first = evalsuite_run([*base, "--mc-num", "8"])
    assert first.returncode == 0, first.stderr[-3000:]
    for changed in (["--mc-num", "16"], ["--mc-num", "8", "--cfg-scale", "0"],
                    ["--mc-num", "8", "--seed", "7"]):
        again = evalsuite_run([*base, *changed])
        assert again.returncode == 0, again.stderr[-3000:]
        latest = max(run_dirs(tmp_path / "runs"), key=lambda p: p.stat().st_mtime_ns)
        assert record(latest)["reliability"]["cache"]["from_cache"] == 0, changed
    same = evalsuite_run([*base, "--mc-num", "8"])
    latest = max(run_dirs(tmp_path / "runs"), key=lambda p: p.stat().st_mtime_ns)
    assert same.returncode == 0
    assert record(latest)["reliability"]["cache"]["from_cache"] == 4
