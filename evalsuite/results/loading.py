"""Load runs into a pandas DataFrame in one call.

``load_runs(paths)`` returns one row per run × task × metric (metric keys as lm-eval writes
them, ``"acc,none"``, split into ``metric`` and ``filter``). Columns:

======================  ==========================================================
run_id, run_dir          identity and location of the run
created_utc              when the run was written
model, resolved_id,      model preset, concrete hub id or path, revision, dtype,
revision, dtype, backend backend (llada / hf / vllm)
device, limit            where it ran and the per-task document limit
task, alias, is_group    lm-eval task or group name
task_version, n_shot     task version and number of few-shot examples
n_samples                documents evaluated (summed over leaves for a group)
metric, filter, key      ``acc``, ``none``, ``acc,none``
value, stderr            aggregated value and its standard error (NaN when unknown)
ci95_low, ci95_high      value ± 1.96 stderr
higher_is_better         from lm-eval (NaN when unknown)
wall_time_s, nfe,        run totals: wall time, forward passes, generated tokens
generated_tokens,        (up to the cut), generated tokens per second and per forward
tokens_per_s,            pass of generation
tokens_per_nfe
git_revision, git_dirty  harness checkout state when the run was made
schema_version, source   schema the record was written in (after migration: current)
======================  ==========================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from evalsuite.results.store import Run, read_runs

if TYPE_CHECKING:
    import pandas as pd

COLUMNS: tuple[str, ...] = (
    "run_id",
    "run_dir",
    "created_utc",
    "model",
    "resolved_id",
    "revision",
    "dtype",
    "backend",
    "device",
    "limit",
    "task",
    "alias",
    "is_group",
    "task_version",
    "n_shot",
    "n_samples",
    "metric",
    "filter",
    "key",
    "value",
    "stderr",
    "ci95_low",
    "ci95_high",
    "higher_is_better",
    "wall_time_s",
    "nfe",
    "generated_tokens",
    "tokens_per_s",
    "tokens_per_nfe",
    "git_revision",
    "git_dirty",
    "schema_version",
    "source",
)


def runs_to_rows(runs: Iterable[Run]) -> list[dict[str, object]]:
    """The rows :func:`load_runs` puts in its DataFrame (pure)."""
    nan = math.nan
    rows: list[dict[str, object]] = []
    for run in runs:
        r = run.record
        git = r.environment.get("git") if isinstance(r.environment.get("git"), dict) else {}
        for task in sorted(r.tasks.values(), key=lambda t: t.name):
            for key, mv in sorted(task.metrics.items()):
                metric, _, filt = key.partition(",")
                ci = mv.ci95()
                rows.append(
                    {
                        "run_id": r.run_id,
                        "run_dir": str(run.path),
                        "created_utc": r.created_utc,
                        "model": r.model.preset,
                        "resolved_id": r.model.resolved_id,
                        "revision": r.model.revision,
                        "dtype": r.model.dtype,
                        "backend": r.model.backend,
                        "device": r.device,
                        "limit": r.limit,
                        "task": task.name,
                        "alias": task.alias,
                        "is_group": task.is_group,
                        "task_version": task.version,
                        "n_shot": task.n_shot,
                        "n_samples": task.n_samples,
                        "metric": metric,
                        "filter": filt,
                        "key": key,
                        "value": mv.value,
                        "stderr": nan if mv.stderr is None else mv.stderr,
                        "ci95_low": nan if ci is None else ci[0],
                        "ci95_high": nan if ci is None else ci[1],
                        "higher_is_better": task.higher_is_better.get(metric, nan),
                        "wall_time_s": r.speed.wall_time_s,
                        "nfe": r.speed.nfe,
                        "generated_tokens": r.speed.generated_tokens,
                        "tokens_per_s": r.speed.tokens_per_s,
                        "tokens_per_nfe": r.speed.tokens_per_nfe,
                        "git_revision": git.get("revision"),
                        "git_dirty": git.get("dirty"),
                        "schema_version": r.schema_version,
                        "source": r.source_format,
                    }
                )
    return rows


def load_runs(
    paths: Path | str | Iterable[Path | str],
    *,
    on_error: Literal["raise", "skip"] = "raise",
) -> pd.DataFrame:
    """Load run directories (or directories of runs) into one DataFrame (columns above).

    Only run records are read (not per-sample files). ``on_error="skip"`` drops unreadable
    runs instead of raising ResultsError; the skipped ones are listed in
    ``df.attrs["skipped"]`` as ``(path, message)`` pairs.
    """
    import pandas as pd

    if isinstance(paths, (str, Path)):
        paths = [paths]
    runs, skipped = read_runs(paths, samples=False, on_error=on_error)
    df = pd.DataFrame(runs_to_rows(runs), columns=list(COLUMNS))
    df.attrs["skipped"] = [(str(s.path), s.message) for s in skipped]
    return df
