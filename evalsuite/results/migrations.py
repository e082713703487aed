"""Migrations of run records from older layouts to the current schema.

A reader turns whatever it finds into a *document*
``{"schema_version": n, "run": {...}, "samples": [...]}`` and :func:`upgrade` applies the
functions in :data:`MIGRATIONS` (``n -> n + 1``) until the document is at
:data:`~evalsuite.results.schema.SCHEMA_VERSION`. Version 0 is lm-eval's own output directory
(``results_*.json`` plus ``samples_<task>_*.jsonl``, as written by
``lm_eval --output_path --log_samples``); it is converted straight to the current version by
the one builder (:func:`~evalsuite.results.convert.convert_lm_eval`). Version 1 kept the
runner's facts in an untyped ``extra`` object; ``MIGRATIONS[1]`` moves them into the typed
fields of version 2. A migration may produce any later version; the chain continues from it.

This module depends on :mod:`.schema` and :mod:`.convert`; neither depends on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from evalsuite.errors import ResultsError
from evalsuite.results.convert import convert_lm_eval, facts_from_lm_eval_config
from evalsuite.results.schema import SCHEMA_VERSION, run_to_dict, sample_to_dict

Document = dict[str, Any]
"""``{"schema_version": n, "run": <run dict or legacy payload>, "samples": [<sample dicts>]}``."""

Migration = Callable[[Document], Document]


def _migrate_v0(doc: Document) -> Document:
    """lm-eval's own output (``results_*.json`` + ``samples_*.jsonl``) -> the current schema.

    The legacy payload is ``{"lm_eval": <results json>, "samples": {task: [lm-eval samples]},
    "run_id": str, "created_utc": str}``. Fields lm-eval does not record (preset, NFE,
    per-sample seconds) become ``None``/empty; the settings of our ``llada`` model come from
    its ``get_model_info()`` in lm-eval's ``config``.
    """
    legacy = doc["run"]
    output = dict(legacy["lm_eval"])
    output["samples"] = legacy["samples"]
    record, samples = convert_lm_eval(
        output,
        facts_from_lm_eval_config(output),
        {},
        run_id=legacy["run_id"],
        created_utc=legacy["created_utc"],
        source_format="lm-eval",
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "run": run_to_dict(record),
        "samples": [sample_to_dict(s) for s in samples],
    }


#: v1 ``seeds`` keys -> v2 :class:`~evalsuite.results.schema.Seeds` fields (lm-eval's own
#: output named three of them differently).
_V1_SEEDS = {"random_seed": "random_seed", "numpy_random_seed": "numpy_random_seed",
             "torch_random_seed": "torch_random_seed", "fewshot_random_seed": "fewshot_random_seed",
             "numpy_seed": "numpy_random_seed", "torch_seed": "torch_random_seed",
             "fewshot_seed": "fewshot_random_seed", "request_seed_base": "request_seed_base",
             "request_seed": "request_seed_rule", "seed": "request_seed_base"}


def _migrate_v1_to_v2(doc: Document) -> Document:
    """Schema v1 -> v2: the runner's facts move out of ``extra`` into typed fields.

    ``extra.failed`` -> ``status``/``failure``; ``requested_tasks``, ``overrides``,
    ``world_size``, ``family``, ``checkpoint``, ``lm_eval_options``, ``reliability`` -> fields
    of the same name; ``sandbox`` -> ``{tasks, isolation}``; ``settings_provenance[task]`` ->
    ``tasks[task].provenance``; ``seeds`` -> the typed seeds (unknown keys stay in ``extra``);
    an estimator's ``settings.batch_size`` -> ``mc_batch_size``. ``speed.generated_tokens`` of
    v1 counted every answer slot (``tokens_counted_to_cut`` false). ``model.architecture`` is
    ``llada`` for the native backend (the only diffusion family v1 writers ran). Keys of
    ``extra`` that v2 does not know stay there.
    """
    run = dict(doc["run"])
    model = dict(run.get("model") or {})
    if model.get("backend") == "llada" and model.get("architecture") is None:
        model["architecture"] = "llada"
    if model:
        run["model"] = model
    extra = dict(run.pop("extra", None) or {})
    failed = extra.pop("failed", None)
    run["status"] = "failed" if failed else "complete"
    run["failure"] = None if failed is None else str(failed)
    run["requested_tasks"] = list(extra.pop("requested_tasks", None) or [])
    run["overrides"] = dict(extra.pop("overrides", None) or {})
    run["world_size"] = int(extra.pop("world_size", None) or 1)
    for key in ("family", "checkpoint", "lm_eval_options", "reliability"):
        run[key] = extra.pop(key, None)
    sandbox = extra.pop("sandbox", None)
    run["sandbox"] = (None if not isinstance(sandbox, Mapping) else
                      {"tasks": list(sandbox.get("tasks") or []),
                       "isolation": {k: v for k, v in sandbox.items() if k != "tasks"}})
    provenance = extra.pop("settings_provenance", None) or {}
    tasks = {}
    for name, task in (run.get("tasks") or {}).items():
        task = dict(task)
        settings = dict(task.get("settings") or {})
        if "mc_num" in settings and "batch_size" in settings:
            settings["mc_batch_size"] = settings.pop("batch_size")
        task["settings"] = settings
        task["provenance"] = provenance.get(name)
        tasks[name] = task
    run["tasks"] = tasks
    seeds: dict[str, Any] = {}
    unknown_seeds: dict[str, Any] = {}
    for key, value in dict(run.get("seeds") or {}).items():
        if key in _V1_SEEDS:
            seeds[_V1_SEEDS[key]] = value
        else:
            unknown_seeds[key] = value
    run["seeds"] = seeds
    if unknown_seeds:
        extra["seeds"] = unknown_seeds
    speed = dict(run.get("speed") or {})
    speed.setdefault("generation_nfe", None)
    speed["tokens_counted_to_cut"] = False
    speed.pop("tokens_per_nfe", None)
    run["speed"] = speed
    run["extra"] = extra
    run["schema_version"] = 2
    return {"schema_version": 2, "run": run, "samples": doc["samples"]}


MIGRATIONS: dict[int, Migration] = {0: _migrate_v0, 1: _migrate_v1_to_v2}
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
        produced = doc.get("schema_version")
        if not isinstance(produced, int) or not version < produced <= target:
            raise ResultsError(
                f"migration from schema_version {version} produced {produced!r}, not a later "
                f"version up to {target}"
            )
        version = produced
    return doc
