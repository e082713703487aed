"""Versioned records of one evaluation run (schema v1) and the migrations from older layouts.

A run directory holds two files:

``run.json``
    One :class:`RunRecord`: model, per-task versions, metric values with standard errors,
    every sampler/estimator setting, seeds, provenance, speed. ``schema_version`` says how to
    read it; ``integrity`` holds the sha256 of the record itself and of the samples file, so a
    truncated or hand-edited file is detected instead of silently read.
``samples.jsonl``
    One :class:`SampleRecord` per evaluated document (all filters of that document merged).

Old layouts keep loading through :mod:`evalsuite.results.migrations` (``upgrade`` and
``MIGRATIONS``, kept in their own module so that this one imports nothing of the converters).

All ``from_dict`` functions validate and raise :class:`~evalsuite.errors.ResultsError` naming
the offending field; the caller adds the file name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evalsuite.errors import ResultsError

SCHEMA_VERSION = 1
"""The version this code writes. Readers accept every version from 0 up to this one."""

RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"

OutputType = Literal["generate_until", "loglikelihood", "multiple_choice", "loglikelihood_rolling"]


def _get(d: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    """Return ``d[key]`` checked against ``types`` (list ``type(None)`` to allow null).

    Booleans are not accepted where numbers are expected (JSON ``true`` is not a count).
    """
    if not isinstance(d, Mapping):
        raise ResultsError(f"{where}: expected an object, found {type(d).__name__}")
    if key not in d:
        raise ResultsError(f"{where}: missing field {key!r}")
    value = d[key]
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        names = "/".join("null" if t is type(None) else t.__name__ for t in allowed)
        raise ResultsError(f"{where}.{key}: expected {names}, found {type(value).__name__}")
    return value


_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))


@dataclass(frozen=True)
class MetricValue:
    """One aggregated metric: ``value`` and its standard error (``None`` when lm-eval gave none)."""

    value: float
    stderr: float | None

    def ci95(self) -> tuple[float, float] | None:
        """Normal-approximation 95% interval ``value ± 1.96 stderr``; ``None`` without stderr."""
        if self.stderr is None:
            return None
        return (self.value - 1.96 * self.stderr, self.value + 1.96 * self.stderr)


@dataclass(frozen=True)
class ModelInfo:
    """The model as resolved by the runner (preset name, concrete id, revision, dtype)."""

    preset: str
    backend: str
    resolved_id: str
    revision: str | None
    dtype: str | None
    family: str | None
    chat_template: bool | None
    special_tokens: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskRecord:
    """One lm-eval task (a leaf that has samples) or an aggregating group.

    ``metrics`` is keyed like lm-eval's results: ``"metric,filter"`` (``"acc,none"``,
    ``"exact_match,strict-match"``). ``settings`` are the sampler/estimator settings applied to
    this task's requests (gen_length, steps, mc_num, cfg_scale, ...); ``generation_kwargs`` are
    lm-eval's. ``subtasks`` is non-empty only for groups.
    """

    name: str
    alias: str
    version: str | None
    n_shot: int | None
    output_type: str | None
    n_samples: int
    n_original: int | None
    higher_is_better: Mapping[str, bool]
    metrics: Mapping[str, MetricValue]
    settings: Mapping[str, Any]
    generation_kwargs: Mapping[str, Any]
    subtasks: tuple[str, ...] = ()

    @property
    def is_group(self) -> bool:
        return bool(self.subtasks)


@dataclass(frozen=True)
class Speed:
    """Totals over the whole run. ``nfe`` counts network forward passes (a CFG pair counts 2)."""

    wall_time_s: float | None
    nfe: int | None
    generated_tokens: int | None
    generation_s: float | None = None
    """Seconds spent in generation requests (optional: absent in older v1 records)."""

    @property
    def tokens_per_s(self) -> float | None:
        """Generated tokens per second of generation (of wall time when that is unknown)."""
        seconds = self.generation_s or self.wall_time_s
        if not seconds or not self.generated_tokens:
            return None
        return self.generated_tokens / seconds


@dataclass(frozen=True)
class RunRecord:
    """Everything about one run except its per-sample records (see the module docstring)."""

    schema_version: int
    run_id: str
    created_utc: str
    model: ModelInfo
    tasks: Mapping[str, TaskRecord]
    seeds: Mapping[str, Any]
    device: str | None
    limit: float | None
    argv: tuple[str, ...]
    environment: Mapping[str, Any]
    speed: Speed
    source_format: str = "evalsuite"
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Other runner facts (requested tasks, a failure message, CLI overrides, world size)."""

    def leaf_tasks(self) -> list[TaskRecord]:
        """Tasks that have samples (not groups), by name."""
        return [t for _, t in sorted(self.tasks.items()) if not t.is_group]

    def units(self) -> list[TaskRecord]:
        """What a report shows as one column: top-level entries with metrics.

        Top-level groups that aggregate (have metrics) and tasks outside any group; a group
        without an aggregate metric is replaced by its children, recursively.
        """
        children = {c for t in self.tasks.values() for c in t.subtasks}
        out: list[TaskRecord] = []

        def visit(name: str) -> None:
            task = self.tasks.get(name)
            if task is None:
                return
            if task.is_group and not task.metrics:
                for child in task.subtasks:
                    visit(child)
            elif task not in out:
                out.append(task)

        for name in sorted(self.tasks):
            if name not in children:
                visit(name)
        return out

    def leaves_of(self, name: str) -> list[str]:
        """Leaf task names under ``name`` (itself when it is a leaf), recursively."""
        task = self.tasks.get(name)
        if task is None or not task.is_group:
            return [name]
        out: list[str] = []
        for child in task.subtasks:
            out.extend(self.leaves_of(child))
        return out


@dataclass(frozen=True)
class SampleRecord:
    """One evaluated document.

    ``prompt`` is the rendered context sent to the model; ``output`` the raw model output (the
    generated text, or one line per choice with its log-likelihood); ``extracted`` the answer
    after each lm-eval filter; ``scores`` the per-sample metric values keyed ``"metric,filter"``;
    ``nfe``/``seconds``/``generated_tokens`` are summed over this document's requests (``None``
    when the runner did not measure them). ``loglikelihoods`` holds the full-precision
    log-likelihood of every request of a likelihood task, in request order (``None`` for
    generation tasks and for records written before the field existed, whose values survive only
    as the 4-decimal text in ``output``); the gate's identity mode compares them.
    """

    task: str
    doc_id: int
    prompt: str
    output: str
    extracted: Mapping[str, str]
    target: str
    scores: Mapping[str, float]
    nfe: int | None
    seconds: float | None
    generated_tokens: int | None
    doc_hash: str | None = None
    prompt_hash: str | None = None
    nonfinite: int = 0
    """Requests of this document whose logits held NaN/inf: its scores are not trustworthy."""
    loglikelihoods: tuple[float, ...] | None = None


# ---------------------------------------------------------------- (de)serialisation


def metric_to_dict(m: MetricValue) -> dict[str, Any]:
    return {"value": m.value, "stderr": m.stderr}


def task_to_dict(t: TaskRecord) -> dict[str, Any]:
    return {
        "name": t.name,
        "alias": t.alias,
        "version": t.version,
        "n_shot": t.n_shot,
        "output_type": t.output_type,
        "n_samples": t.n_samples,
        "n_original": t.n_original,
        "higher_is_better": dict(t.higher_is_better),
        "metrics": {k: metric_to_dict(v) for k, v in t.metrics.items()},
        "settings": dict(t.settings),
        "generation_kwargs": dict(t.generation_kwargs),
        "subtasks": list(t.subtasks),
    }


def run_to_dict(r: RunRecord) -> dict[str, Any]:
    """Plain JSON-ready dict of a run record (``integrity`` is added by the store)."""
    m = r.model
    return {
        "schema_version": r.schema_version,
        "run_id": r.run_id,
        "created_utc": r.created_utc,
        "source_format": r.source_format,
        "model": {
            "preset": m.preset,
            "backend": m.backend,
            "resolved_id": m.resolved_id,
            "revision": m.revision,
            "dtype": m.dtype,
            "family": m.family,
            "chat_template": m.chat_template,
            "special_tokens": dict(m.special_tokens),
        },
        "tasks": {k: task_to_dict(v) for k, v in sorted(r.tasks.items())},
        "seeds": dict(r.seeds),
        "device": r.device,
        "limit": r.limit,
        "argv": list(r.argv),
        "environment": dict(r.environment),
        "speed": {
            "wall_time_s": r.speed.wall_time_s,
            "nfe": r.speed.nfe,
            "generated_tokens": r.speed.generated_tokens,
            "generation_s": r.speed.generation_s,
            "tokens_per_s": r.speed.tokens_per_s,
        },
        "extra": dict(r.extra),
    }


def sample_to_dict(s: SampleRecord) -> dict[str, Any]:
    out = {
        "task": s.task,
        "doc_id": s.doc_id,
        "prompt": s.prompt,
        "output": s.output,
        "extracted": dict(s.extracted),
        "target": s.target,
        "scores": dict(s.scores),
        "nfe": s.nfe,
        "seconds": s.seconds,
        "generated_tokens": s.generated_tokens,
        "doc_hash": s.doc_hash,
        "prompt_hash": s.prompt_hash,
        **({"nonfinite": s.nonfinite} if s.nonfinite else {}),
    }
    if s.loglikelihoods is not None:  # optional: absent in older v1 files and generation tasks
        out["loglikelihoods"] = list(s.loglikelihoods)
    return out


def _metric_from_dict(d: Any, where: str) -> MetricValue:
    value = _get(d, "value", _NUM, where)
    stderr = _get(d, "stderr", _OPT_NUM, where)
    return MetricValue(float(value), None if stderr is None else float(stderr))


def _task_from_dict(d: Any, where: str) -> TaskRecord:
    metrics = _get(d, "metrics", dict, where)
    hib = _get(d, "higher_is_better", dict, where)
    for k, v in hib.items():
        if not isinstance(v, bool):
            raise ResultsError(f"{where}.higher_is_better.{k}: expected true/false")
    version = _get(d, "version", (str, int, float, type(None)), where)
    return TaskRecord(
        name=_get(d, "name", str, where),
        alias=_get(d, "alias", str, where),
        version=None if version is None else str(version),
        n_shot=_get(d, "n_shot", (int, type(None)), where),
        output_type=_get(d, "output_type", _OPT_STR, where),
        n_samples=_get(d, "n_samples", int, where),
        n_original=_get(d, "n_original", (int, type(None)), where),
        higher_is_better=dict(hib),
        metrics={k: _metric_from_dict(v, f"{where}.metrics.{k}") for k, v in metrics.items()},
        settings=dict(_get(d, "settings", dict, where)),
        generation_kwargs=dict(_get(d, "generation_kwargs", dict, where)),
        subtasks=tuple(_get(d, "subtasks", list, where)),
    )


def run_from_dict(d: Any) -> RunRecord:
    """Validate a schema-v1 run dict and build the record (``ResultsError`` names the field)."""
    w = "run"
    version = _get(d, "schema_version", int, w)
    if version != SCHEMA_VERSION:
        raise ResultsError(f"run.schema_version is {version}, expected {SCHEMA_VERSION}")
    m = _get(d, "model", dict, w)
    wm = "run.model"
    tasks = _get(d, "tasks", dict, w)
    if not tasks:
        raise ResultsError("run.tasks: the run has no tasks")
    speed = _get(d, "speed", dict, w)
    ws = "run.speed"
    return RunRecord(
        schema_version=version,
        run_id=_get(d, "run_id", str, w),
        created_utc=_get(d, "created_utc", str, w),
        source_format=_get(d, "source_format", str, w),
        model=ModelInfo(
            preset=_get(m, "preset", str, wm),
            backend=_get(m, "backend", str, wm),
            resolved_id=_get(m, "resolved_id", str, wm),
            revision=_get(m, "revision", _OPT_STR, wm),
            dtype=_get(m, "dtype", _OPT_STR, wm),
            family=_get(m, "family", _OPT_STR, wm),
            chat_template=_get(m, "chat_template", (bool, type(None)), wm),
            special_tokens=dict(_get(m, "special_tokens", dict, wm)),
        ),
        tasks={k: _task_from_dict(v, f"run.tasks.{k}") for k, v in tasks.items()},
        seeds=dict(_get(d, "seeds", dict, w)),
        device=_get(d, "device", _OPT_STR, w),
        limit=_get(d, "limit", _OPT_NUM, w),
        argv=tuple(str(a) for a in _get(d, "argv", list, w)),
        environment=dict(_get(d, "environment", dict, w)),
        speed=Speed(
            wall_time_s=_get(speed, "wall_time_s", _OPT_NUM, ws),
            nfe=_get(speed, "nfe", (int, type(None)), ws),
            generated_tokens=_get(speed, "generated_tokens", (int, type(None)), ws),
            generation_s=_get(speed, "generation_s", _OPT_NUM, ws) if "generation_s" in speed else None,
        ),
        extra=dict(_get(d, "extra", dict, w)) if "extra" in d else {},
    )


def sample_from_dict(d: Any, where: str = "sample") -> SampleRecord:
    """Validate one schema-v1 sample dict."""
    scores = _get(d, "scores", dict, where)
    for k, v in scores.items():
        if isinstance(v, bool) or not isinstance(v, _NUM):
            raise ResultsError(f"{where}.scores.{k}: expected a number")
    extracted = _get(d, "extracted", dict, where)
    lls = None
    if d.get("loglikelihoods") is not None:
        raw = _get(d, "loglikelihoods", list, where)
        for i, v in enumerate(raw):
            if isinstance(v, bool) or not isinstance(v, _NUM):
                raise ResultsError(f"{where}.loglikelihoods[{i}]: expected a number")
        lls = tuple(float(v) for v in raw)
    return SampleRecord(
        task=_get(d, "task", str, where),
        doc_id=_get(d, "doc_id", int, where),
        prompt=_get(d, "prompt", str, where),
        output=_get(d, "output", str, where),
        extracted={str(k): str(v) for k, v in extracted.items()},
        target=_get(d, "target", str, where),
        scores={k: float(v) for k, v in scores.items()},
        nfe=_get(d, "nfe", (int, type(None)), where),
        seconds=_get(d, "seconds", _OPT_NUM, where),
        generated_tokens=_get(d, "generated_tokens", (int, type(None)), where),
        doc_hash=_get(d, "doc_hash", _OPT_STR, where),
        prompt_hash=_get(d, "prompt_hash", _OPT_STR, where),
        nonfinite=int(d.get("nonfinite") or 0),
        loglikelihoods=lls,
    )


# ---------------------------------------------------------------- loaded runs


@dataclass(frozen=True)
class Run:
    """A loaded run: where it came from, its record and (unless skipped) its samples."""

    path: Path
    record: RunRecord
    samples: tuple[SampleRecord, ...]

    @property
    def label(self) -> str:
        """Short human label: ``preset @ run_id``."""
        return f"{self.record.model.preset} @ {self.record.run_id}"

    def samples_of(self, task: str) -> list[SampleRecord]:
        """Samples of ``task``; for a group, of all its leaf tasks."""
        leaves = set(self.record.leaves_of(task))
        return [s for s in self.samples if s.task in leaves]

