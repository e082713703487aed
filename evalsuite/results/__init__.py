"""Results store: versioned run records, per-sample records, atomic writes, pandas loading.

Public API::

    write_run_from_lm_eval(root, lm_eval_output, facts, request_stats) -> Path
    read_run(path) -> Run            read_runs(paths) -> (runs, skipped)
    load_runs(paths) -> pandas.DataFrame
    collect_environment() -> dict
"""

from evalsuite.results.loading import load_runs
from evalsuite.results.provenance import collect_environment
from evalsuite.results.convert import RunFacts, Totals
from evalsuite.results.schema import (
    SCHEMA_VERSION,
    MetricValue,
    ModelInfo,
    RunRecord,
    SampleRecord,
    Speed,
    TaskRecord,
)
from evalsuite.results.store import (
    Run,
    Skipped,
    find_runs,
    read_run,
    read_runs,
    write_run,
    write_run_from_lm_eval,
)

__all__ = [
    "SCHEMA_VERSION",
    "MetricValue",
    "ModelInfo",
    "Run",
    "RunFacts",
    "RunRecord",
    "SampleRecord",
    "Skipped",
    "Speed",
    "TaskRecord",
    "Totals",
    "collect_environment",
    "find_runs",
    "load_runs",
    "read_run",
    "read_runs",
    "write_run",
    "write_run_from_lm_eval",
]
