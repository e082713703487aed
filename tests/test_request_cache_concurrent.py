"""The processes of a data-parallel run open one new request cache at the same moment: every
one of them must get it. (Switching a new SQLite file to WAL can answer "database is locked" at
once, without waiting; one rank then failed and, before the runner left the process group on
failure, the other waited forever.) A stress test: the race is rare per attempt."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from evalsuite.models.request_cache import RequestCache

PROCESSES, ATTEMPTS = 4, 60


def _open(directory: Path, barrier: object, errors: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    try:
        RequestCache(directory).close()
        errors.put("")  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - reported to the test
        errors.put(f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]


@pytest.mark.slow
def test_processes_opening_a_new_cache_at_once_all_get_it(tmp_path):
    ctx = mp.get_context("fork")
    failures: list[str] = []
    for attempt in range(ATTEMPTS):
        directory = tmp_path / str(attempt)
        barrier, errors = ctx.Barrier(PROCESSES), ctx.Queue()
        workers = [ctx.Process(target=_open, args=(directory, barrier, errors))
                   for _ in range(PROCESSES)]
        for worker in workers:
            worker.start()
        failures += [e for e in (errors.get(timeout=120) for _ in workers) if e]
        for worker in workers:
            worker.join()
    assert not failures, failures[:3]
