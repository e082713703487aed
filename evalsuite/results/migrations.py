"""Migrations of run records from older layouts to the current schema.

A reader turns whatever it finds into a *document*
``{"schema_version": n, "run": {...}, "samples": [...]}`` and :func:`upgrade` applies the
functions in :data:`MIGRATIONS` (``n -> n + 1``) until the document is at
:data:`~evalsuite.results.schema.SCHEMA_VERSION`. Version 0 is lm-eval's own output directory
(``results_*.json`` plus ``samples_<task>_*.jsonl``, as written by
``lm_eval --output_path --log_samples``). A future v2 adds ``MIGRATIONS[1]`` and bumps
``SCHEMA_VERSION``; v0 and v1 directories then load through the chain.

This module depends on :mod:`.schema` and :mod:`.convert`; neither depends on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from evalsuite.errors import ResultsError
from evalsuite.results.convert import convert_lm_eval, meta_from_lm_eval_config
from evalsuite.results.schema import SCHEMA_VERSION, run_to_dict, sample_to_dict

Document = dict[str, Any]
"""``{"schema_version": n, "run": <run dict or legacy payload>, "samples": [<sample dicts>]}``."""

Migration = Callable[[Document], Document]


def _migrate_v0_to_v1(doc: Document) -> Document:
    """lm-eval's own output (``results_*.json`` + ``samples_*.jsonl``) -> schema v1.

    The legacy payload is ``{"lm_eval": <results json>, "samples": {task: [lm-eval samples]},
    "run_id": str, "created_utc": str}``. Fields lm-eval does not record (preset, NFE,
    per-sample seconds, sampler settings) become ``None``/empty.
    """
    legacy = doc["run"]
    output = dict(legacy["lm_eval"])
    output["samples"] = legacy["samples"]
    meta = meta_from_lm_eval_config(output)
    record, samples = convert_lm_eval(
        output,
        meta,
        {},
        run_id=legacy["run_id"],
        created_utc=legacy["created_utc"],
        source_format="lm-eval",
    )
    return {
        "schema_version": 1,
        "run": run_to_dict(record),
        "samples": [sample_to_dict(s) for s in samples],
    }


MIGRATIONS: dict[int, Migration] = {0: _migrate_v0_to_v1}
"""``MIGRATIONS[n]`` turns a version-``n`` document into a version-``n + 1`` document."""


def upgrade(
    doc: Document,
    *,
    migrations: Mapping[int, Migration] = MIGRATIONS,
    target: int = SCHEMA_VERSION,
) -> Document:
    """Apply migrations until ``doc`` is at ``target``; unknown versions raise ResultsError."""
    version = doc.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ResultsError(f"schema_version must be an integer, found {version!r}")
    if version > target:
        raise ResultsError(
            f"unknown schema_version {version}: this evalsuite reads versions 0..{target}; "
            "upgrade evalsuite to read it"
        )
    while version < target:
        step = migrations.get(version)
        if step is None:
            raise ResultsError(f"unknown schema_version {version}: no migration to {version + 1}")
        doc = step(doc)
        if doc.get("schema_version") != version + 1:
            raise ResultsError(
                f"migration from schema_version {version} did not produce {version + 1}"
            )
        version += 1
    return doc
