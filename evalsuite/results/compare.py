"""Comparing runs: primary metric, pairing samples, and settings that differ (pure).

Shared by the report and the gate so both pair documents and pick metrics the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evalsuite.results.schema import TaskRecord
from evalsuite.results.store import Run

METRIC_PREFERENCE: tuple[str, ...] = ("acc", "exact_match", "pass@1", "acc_norm", "f1", "mc2")
FILTER_PREFERENCE: tuple[str, ...] = ("none", "strict-match", "flexible-extract")


def primary_metric(task: TaskRecord) -> str | None:
    """The metric key a table shows for ``task`` (``"acc,none"``, ``"exact_match,strict-match"``).

    Preference: metric name in :data:`METRIC_PREFERENCE` order, then filter in
    :data:`FILTER_PREFERENCE` order, then alphabetical. ``None`` when the task has no metric.
    """
    if not task.metrics:
        return None

    def rank(key: str) -> tuple[int, int, str]:
        name, _, filt = key.partition(",")
        m = METRIC_PREFERENCE.index(name) if name in METRIC_PREFERENCE else len(METRIC_PREFERENCE)
        f = FILTER_PREFERENCE.index(filt) if filt in FILTER_PREFERENCE else len(FILTER_PREFERENCE)
        return (m, f, key)

    return min(task.metrics, key=rank)


def higher_is_better(task: TaskRecord, metric_key: str) -> bool:
    """Direction of ``metric_key`` for ``task`` (lm-eval's flag; true when unknown)."""
    return bool(task.higher_is_better.get(metric_key.partition(",")[0], True))


@dataclass(frozen=True)
class Paired:
    """Per-document scores of one metric on the documents both runs evaluated.

    ``keys`` are ``(task, doc_id)``; documents whose content hash differs between the runs are
    left out (and counted in ``mismatched``).
    """

    keys: tuple[tuple[str, int], ...]
    baseline: tuple[float, ...]
    candidate: tuple[float, ...]
    mismatched: int


def pair_scores(baseline: Run, candidate: Run, unit: str, metric_key: str) -> Paired:
    """Align the two runs' per-sample ``metric_key`` scores for ``unit`` (task or group)."""
    base = {(s.task, s.doc_id): s for s in baseline.samples_of(unit) if metric_key in s.scores}
    cand = {(s.task, s.doc_id): s for s in candidate.samples_of(unit) if metric_key in s.scores}
    keys: list[tuple[str, int]] = []
    mismatched = 0
    for key in sorted(base.keys() & cand.keys()):
        b, c = base[key], cand[key]
        if b.doc_hash and c.doc_hash and b.doc_hash != c.doc_hash:
            mismatched += 1
            continue
        keys.append(key)
    return Paired(
        keys=tuple(keys),
        baseline=tuple(base[k].scores[metric_key] for k in keys),
        candidate=tuple(cand[k].scores[metric_key] for k in keys),
        mismatched=mismatched,
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


#: Recorded settings that cannot change a score, so two runs stay comparable across them:
#: exact early exit saves forward passes and returns the same answers (tests/test_early_exit.py).
RESULT_NEUTRAL_SETTINGS = frozenset({"early_exit"})


def task_settings(run: Run, unit: str) -> dict[str, str]:
    """What must match for two runs' scores on ``unit`` to be comparable, flattened.

    For every leaf task: version, number of shots, output type, sampler/estimator settings and
    lm-eval generation kwargs. Keys look like ``"llada_gsm8k.settings.steps"``.
    """
    out: dict[str, str] = {}
    record = run.record
    group = record.tasks.get(unit)
    if group is not None and group.is_group:
        out[f"{unit}.version"] = _text(group.version)
    for leaf in record.leaves_of(unit):
        task = record.tasks.get(leaf)
        if task is None:
            continue
        out[f"{leaf}.version"] = _text(task.version)
        out[f"{leaf}.n_shot"] = _text(task.n_shot)
        out[f"{leaf}.output_type"] = _text(task.output_type)
        for k, v in sorted(task.settings.items()):
            if k not in RESULT_NEUTRAL_SETTINGS:
                out[f"{leaf}.settings.{k}"] = _text(v)
        for k, v in sorted(task.generation_kwargs.items()):
            out[f"{leaf}.generation_kwargs.{k}"] = _text(v)
    return out


def differing(left: Mapping[str, str], right: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """``(key, left value, right value)`` for keys whose values differ ("—" when absent)."""
    keys = sorted(set(left) | set(right))
    return [(k, left.get(k, "—"), right.get(k, "—")) for k in keys if left.get(k) != right.get(k)]


def run_settings(run: Run) -> dict[str, str]:
    """Every recorded setting of a run, flattened: model, device, limit, seeds, versions, tasks."""
    r = run.record
    out: dict[str, str] = {
        "model.preset": r.model.preset,
        "model.resolved_id": r.model.resolved_id,
        "model.revision": _text(r.model.revision),
        "model.dtype": _text(r.model.dtype),
        "model.backend": r.model.backend,
        "model.chat_template": _text(r.model.chat_template),
        "device": _text(r.device),
        "limit": _text(r.limit),
    }
    for k, v in sorted(r.seeds.as_dict().items()):
        out[f"seeds.{k}"] = _text(v)
    packages = r.environment.get("packages")
    if isinstance(packages, Mapping):
        for k, v in sorted(packages.items()):
            out[f"packages.{k}"] = _text(v)
    git = r.environment.get("git")
    if isinstance(git, Mapping):
        out["harness.git_revision"] = _text(git.get("revision"))
        out["harness.git_dirty"] = _text(git.get("dirty"))
    for unit in r.units():
        for k, v in task_settings(run, unit.name).items():
            out[f"task.{k}"] = v
    return out


def settings_table(runs: Sequence[Run]) -> list[tuple[str, list[str]]]:
    """Rows ``(key, value per run)`` for every setting whose value is not the same in all runs."""
    flat = [run_settings(r) for r in runs]
    keys = sorted(set().union(*flat)) if flat else []
    rows = []
    for key in keys:
        values = [f.get(key, "—") for f in flat]
        if len(set(values)) > 1:
            rows.append((key, values))
    return rows
