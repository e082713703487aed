"""Run-level reliability: writable destinations, the run record's ``reliability`` section,
the exit on non-finite logits, and what a failed write of the run directory tells the user.

The pieces that act per request live in :mod:`evalsuite.models.request_cache` (resume) and
:mod:`evalsuite.models.faults` (NaN/inf, out of memory, over-long prompts).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evalsuite.errors import ConfigError, EvalsuiteError, ResultsError
from evalsuite.results.schema import CacheCounts, NonFinite, Reliability, Truncation

EXIT_NUMERICAL = 3


class NumericalFaultError(EvalsuiteError):
    """Requests met NaN/inf logits; the run was written with them flagged, and fails."""

    exit_code = EXIT_NUMERICAL


def check_writable(directory: Path, flag: str) -> None:
    """Create ``directory`` if needed and prove a file can be written there (fail fast)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{flag} {directory} is not writable ({exc.strerror or exc}); pass a writable "
            f"directory with {flag}, or fix its permissions / free space") from None


def nonfinite_counts(stats: Mapping[Any, Mapping[str, Any]]) -> NonFinite:
    """Requests with NaN/inf logits, per task, from the per-request statistics."""
    by_task: dict[str, int] = {}
    for (task, _doc), s in stats.items():
        if s.get("nonfinite"):
            by_task[str(task)] = by_task.get(str(task), 0) + int(s["nonfinite"])
    return NonFinite(sum(by_task.values()), by_task)


def reliability_of(cache: Any, halvings: int, window: int | None,
                   truncated: Mapping[str, Mapping[str, int]],
                   stats: Mapping[Any, Mapping[str, Any]]) -> Reliability:
    """The run record's ``reliability``: cache use (``cache``: a
    :class:`~evalsuite.models.request_cache.RequestCache` or None), NaN/inf, OOM retries and
    prompt truncation."""
    counts = (CacheCounts(enabled=True, path=str(cache.path), **cache.stats.as_dict())
              if cache is not None else CacheCounts(enabled=False))
    return Reliability(cache=counts, nonfinite=nonfinite_counts(stats), oom_halvings=halvings,
                       truncation=Truncation(window=window, by_task=dict(truncated)))


def raise_if_nonfinite(record: Reliability, run_dir: Path) -> None:
    """Fail the run (exit 3) when any request met NaN/inf logits: never a silent score."""
    bad = record.nonfinite
    if bad.requests:
        where = ", ".join(f"{t}: {n}" for t, n in sorted(bad.by_task.items()))
        raise NumericalFaultError(
            f"{bad.requests} request(s) met NaN or infinite logits ({where}); the run was "
            f"written to {run_dir} with those samples flagged \"nonfinite\", and their scores "
            "must not be trusted. Float16 overflows easily: re-run with --dtype bfloat16 or "
            "float32, or check the checkpoint")


def write_failure(exc: OSError, output: Path, record: Reliability) -> EvalsuiteError:
    """The error to raise when the run directory cannot be written (read-only, disk full)."""
    cache = record.cache
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if cache.enabled:
        kept = (f"the {cache.requests} answered requests are kept in the request cache "
                f"{cache.path}; re-running the same command recomputes none of them")
    else:
        kept = "the run used --no-cache, so its answers are lost; keep the cache on next time"
    fix = ("free space on that filesystem" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
           else "make it writable")
    return ResultsError(
        f"cannot write the run directory under {output} ({reason}); {fix} or pass another "
        f"--output. {kept[0].upper() + kept[1:]}.")
