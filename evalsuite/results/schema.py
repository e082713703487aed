"""Versioned records of one evaluation run (schema v2).

A run directory holds two files:

``run.json``
    One :class:`RunRecord`: model, per-task versions, metric values with standard errors,
    every sampler/estimator setting with its provenance, seeds, status and failure,
    reliability counts, sandbox isolation, family decision, lm-eval options, world size and
    speed, each a typed field documented here. ``schema_version`` says how to read it;
    ``integrity`` holds the sha256 of the record itself and of the samples file, so a
    truncated or hand-edited file is detected instead of silently read.
``samples.jsonl``
    One :class:`SampleRecord` per evaluated document (all filters of that document merged).

Old layouts keep loading through :mod:`evalsuite.results.migrations` (v0: lm-eval's own
output; v1: the untyped ``extra`` of the first evalsuite records). That module imports this
one, never the reverse.

All ``from_dict`` functions validate and raise :class:`~evalsuite.errors.ResultsError` naming
the offending field; the caller adds the file name.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evalsuite.errors import ResultsError

SCHEMA_VERSION = 2
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
    architecture: str | None = None
    """The network family that ran (:mod:`evalsuite.families`: ``llada``, ``dream``), read
    from ``config.json`` or the preset; None for lm-eval's hf/vllm models and for records
    written before the field existed. The task settings recorded are this family's knobs."""


@dataclass(frozen=True)
class SettingsProvenance:
    """Where each setting of a task came from (:class:`evalsuite.settings.Provenance`)."""

    sources: Mapping[str, str] = field(default_factory=dict)
    """Knob name -> ``cli``, ``model_args``, ``gen_kwargs``, ``yaml``, ``paper_table``,
    ``derived`` or ``default``."""
    ignored_gen_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Generation kwargs the diffusion sampler could not honour (``top_p``, ...)."""
    notes: tuple[str, ...] = ()
    """Derivations in words (``block_length 8 kept: divides gen_length 64``)."""


@dataclass(frozen=True)
class Checkpoint:
    """The weights a run used: directory (portable form) and content fingerprint."""

    dir: str
    sha256: str
    method: str | None = None
    """``content`` (every byte hashed) or ``config+headers`` (large checkpoints)."""


@dataclass(frozen=True)
class FamilyDecision:
    """Which protocol family (base / instruct) applied, and why (``preset``, ``flag``, ...)."""

    family: str | None
    reason: str | None = None


@dataclass(frozen=True)
class LmEvalOptions:
    """The options passed to lm-eval's ``simple_evaluate``."""

    num_fewshot: int | None = None
    system_instruction: str | None = None
    apply_chat_template: bool | None = None
    fewshot_as_multiturn: bool | None = None
    gen_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """lm-eval ``--gen_kwargs`` added to every generation task."""
    predict_only: bool = False


@dataclass(frozen=True)
class Seeds:
    """Seeds of the run: lm-eval's four and the base of the per-request seeds."""

    random_seed: int | None = None
    numpy_random_seed: int | None = None
    torch_random_seed: int | None = None
    fewshot_random_seed: int | None = None
    request_seed_base: int | None = None
    """The run seed every request seed derives from (the samples record each request's)."""
    request_seed_rule: str | None = None
    """How a request seed is derived, in words."""

    def as_dict(self) -> dict[str, Any]:
        """The seeds that are known, by name."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class SandboxRecord:
    """The isolation in force for model-written code (present when a task executed any)."""

    tasks: tuple[str, ...]
    """Tasks that executed model-written code."""
    isolation: Mapping[str, Any] = field(default_factory=dict)
    """:func:`evalsuite.sandbox.isolation_report`: mechanisms, limits, verdict, kernel."""


@dataclass(frozen=True)
class CacheCounts:
    """Use of the request cache over the run (summed over ranks)."""

    enabled: bool
    path: str | None = None
    requests: int = 0
    """Requests looked up."""
    from_cache: int = 0
    """Requests answered from the cache (not computed)."""
    computed: int = 0
    written: int = 0
    by_kind: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Per request kind: ``{"requests": n, "from_cache": k}``."""


@dataclass(frozen=True)
class NonFinite:
    """Requests whose logits held NaN/inf (their scores are not trustworthy)."""

    requests: int = 0
    by_task: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Truncation:
    """Prompts cut to the window (from the left)."""

    rule: str = "left"
    window: int | None = None
    """Tokens a request may span (None: the weights never loaded, or an lm-eval backend)."""
    by_task: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Per task: ``{"requests": n, "tokens": cut}``."""


@dataclass(frozen=True)
class RankRequests:
    """One process's share of a data-parallel run."""

    rank: int
    requests: int
    """Requests this process answered (lm-eval gives each rank a slice of the documents)."""
    requests_by_type: Mapping[str, int] = field(default_factory=dict)
    """The same per lm-eval request type (``loglikelihood``, ``generate_until``, ...)."""
    cache_hits: int = 0
    """Requests this process answered from its request cache."""


@dataclass(frozen=True)
class DataParallel:
    """How a run's requests were spread over processes (``accelerate launch``/``torchrun``)."""

    world_size: int = 1
    ranks: tuple[RankRequests, ...] = ()
    requests: int = 0
    """Requests answered, summed over the ranks."""
    cache_hits: int = 0
    """Requests answered from the request cache, summed over the ranks."""


@dataclass(frozen=True)
class Reliability:
    """What the run did to stay trustworthy: cache use, NaN/inf, OOM retries, truncation."""

    cache: CacheCounts = field(default_factory=lambda: CacheCounts(enabled=False))
    nonfinite: NonFinite = field(default_factory=NonFinite)
    oom_halvings: int = 0
    """Times a batch was halved after running out of memory."""
    truncation: Truncation = field(default_factory=Truncation)


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
    provenance: SettingsProvenance | None = None
    """Where each of ``settings`` came from (None: not a diffusion task, or not recorded)."""

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
    generation_nfe: int | None = None
    """Forward passes of generation requests (None in records before schema v2)."""
    tokens_counted_to_cut: bool = False
    """Whether ``generated_tokens`` counts answer tokens up to the cut (stop string, EOS,
    EoT), as from schema v2; records before it counted every ``gen_length`` answer slot."""

    @property
    def tokens_per_s(self) -> float | None:
        """Generated tokens per second of generation (of wall time when that is unknown)."""
        seconds = self.generation_s or self.wall_time_s
        if not seconds or not self.generated_tokens:
            return None
        return self.generated_tokens / seconds

    @property
    def tokens_per_nfe(self) -> float | None:
        """Generated tokens per forward pass of generation: the hardware-independent
        efficiency of a diffusion sampler (1 for one token per pass; more with parallel
        decoding). None when unknown."""
        if not self.generation_nfe or self.generated_tokens is None:
            return None
        return self.generated_tokens / self.generation_nfe


@dataclass(frozen=True)
class RunRecord:
    """Everything about one run except its per-sample records (see the module docstring)."""

    schema_version: int
    run_id: str
    created_utc: str
    model: ModelInfo
    tasks: Mapping[str, TaskRecord]
    seeds: Seeds
    device: str | None
    limit: float | None
    argv: tuple[str, ...]
    environment: Mapping[str, Any]
    """Interpreter, platform, package versions, harness git state
    (:func:`evalsuite.results.provenance.collect_environment`)."""
    speed: Speed
    source_format: str = "evalsuite"
    """``evalsuite`` (written by a run) or ``lm-eval`` (lm-eval's own output, migrated)."""
    status: Literal["complete", "failed"] = "complete"
    """``failed``: a task raised; the tasks finished before it are in the record."""
    failure: str | None = None
    """``ExceptionType: message`` of the failure."""
    requested_tasks: tuple[str, ...] = ()
    """Task names the run was asked for, in order (resolved: ``llada_gsm8k``)."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Diffusion settings given on the command line (``--gen-length 64``)."""
    family: FamilyDecision | None = None
    checkpoint: Checkpoint | None = None
    lm_eval_options: LmEvalOptions | None = None
    world_size: int = 1
    """Processes that evaluated (data parallel)."""
    data_parallel: DataParallel | None = None
    """Requests and cache hits per process; None for lm-eval's own backends (hf, vllm)."""
    sandbox: SandboxRecord | None = None
    reliability: Reliability | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Facts of a newer writer that this version does not know (nothing it writes itself)."""

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
    seeds: tuple[int, ...] | None = None
    """The seed of each request of this document, in request order (lm-eval's ``idx``; a
    rolling request's is its first window's); None when not recorded."""


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
        "provenance": to_plain(t.provenance),
    }


def to_plain(value: Any) -> Any:
    """A typed fact as JSON-ready data (dataclasses as objects, tuples as lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def typed_from_dict(cls: type, d: Any, where: str) -> Any:
    """Build the frozen dataclass ``cls`` from plain data, checking every field against its
    annotation (nested dataclasses, ``X | None``, mappings, tuples, int/float/str/bool);
    a field with a default may be absent. Raises ResultsError naming the field."""
    if not isinstance(d, Mapping):
        raise ResultsError(f"{where}: expected an object, found {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ResultsError(f"{where}: missing field {f.name!r}")
            continue
        kwargs[f.name] = _typed(hints[f.name], d[f.name], f"{where}.{f.name}")
    return cls(**kwargs)


def _typed(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None and len(members) < len(typing.get_args(hint)):
            return None
        hint = members[0]
        origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return typed_from_dict(hint, value, where)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ResultsError(f"{where}: expected one of {typing.get_args(hint)}, found {value!r}")
        return value
    if origin in (Mapping, dict) or hint is dict:
        if not isinstance(value, Mapping):
            raise ResultsError(f"{where}: expected an object, found {type(value).__name__}")
        return dict(value)
    if origin is tuple:
        if not isinstance(value, list):
            raise ResultsError(f"{where}: expected a list, found {type(value).__name__}")
        return tuple(value)
    allowed = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}.get(hint)
    if allowed is not None and (not isinstance(value, allowed)
                                or (isinstance(value, bool) and hint is not bool)):
        raise ResultsError(f"{where}: expected {hint.__name__}, found {type(value).__name__}")
    return value


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
            "architecture": m.architecture,
        },
        "tasks": {k: task_to_dict(v) for k, v in sorted(r.tasks.items())},
        "seeds": to_plain(r.seeds),
        "device": r.device,
        "limit": r.limit,
        "argv": list(r.argv),
        "environment": dict(r.environment),
        "speed": {
            "wall_time_s": r.speed.wall_time_s,
            "nfe": r.speed.nfe,
            "generated_tokens": r.speed.generated_tokens,
            "generation_s": r.speed.generation_s,
            "generation_nfe": r.speed.generation_nfe,
            "tokens_counted_to_cut": r.speed.tokens_counted_to_cut,
            "tokens_per_s": r.speed.tokens_per_s,
            "tokens_per_nfe": r.speed.tokens_per_nfe,
        },
        "status": r.status,
        "failure": r.failure,
        "requested_tasks": list(r.requested_tasks),
        "overrides": to_plain(r.overrides),
        "family": to_plain(r.family),
        "checkpoint": to_plain(r.checkpoint),
        "lm_eval_options": to_plain(r.lm_eval_options),
        "world_size": r.world_size,
        "data_parallel": to_plain(r.data_parallel),
        "sandbox": to_plain(r.sandbox),
        "reliability": to_plain(r.reliability),
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
    if s.seeds is not None:
        out["seeds"] = list(s.seeds)
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
        provenance=_typed(SettingsProvenance | None, d.get("provenance"), f"{where}.provenance"),
    )


def run_from_dict(d: Any) -> RunRecord:
    """Validate a current-schema run dict and build the record (``ResultsError`` names the
    field); older versions go through :func:`evalsuite.results.migrations.upgrade` first."""
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
            architecture=(_get(m, "architecture", _OPT_STR, wm) if "architecture" in m
                          else None),
        ),
        tasks={k: _task_from_dict(v, f"run.tasks.{k}") for k, v in tasks.items()},
        seeds=typed_from_dict(Seeds, _get(d, "seeds", dict, w), "run.seeds"),
        device=_get(d, "device", _OPT_STR, w),
        limit=_get(d, "limit", _OPT_NUM, w),
        argv=tuple(str(a) for a in _get(d, "argv", list, w)),
        environment=dict(_get(d, "environment", dict, w)),
        speed=Speed(
            wall_time_s=_get(speed, "wall_time_s", _OPT_NUM, ws),
            nfe=_get(speed, "nfe", (int, type(None)), ws),
            generated_tokens=_get(speed, "generated_tokens", (int, type(None)), ws),
            generation_s=_get(speed, "generation_s", _OPT_NUM, ws) if "generation_s" in speed else None,
            generation_nfe=_get(speed, "generation_nfe", (int, type(None)), ws),
            tokens_counted_to_cut=_get(speed, "tokens_counted_to_cut", bool, ws),
        ),
        status=_typed(Literal["complete", "failed"], _get(d, "status", str, w), "run.status"),
        failure=_get(d, "failure", _OPT_STR, w),
        requested_tasks=tuple(str(t) for t in _get(d, "requested_tasks", list, w)),
        overrides=dict(_get(d, "overrides", dict, w)),
        family=_typed(FamilyDecision | None, _get(d, "family", (dict, type(None)), w), "run.family"),
        checkpoint=_typed(Checkpoint | None, _get(d, "checkpoint", (dict, type(None)), w),
                          "run.checkpoint"),
        lm_eval_options=_typed(LmEvalOptions | None,
                               _get(d, "lm_eval_options", (dict, type(None)), w),
                               "run.lm_eval_options"),
        world_size=_get(d, "world_size", int, w),
        data_parallel=_typed(DataParallel | None, d.get("data_parallel"), "run.data_parallel"),
        sandbox=_typed(SandboxRecord | None, _get(d, "sandbox", (dict, type(None)), w),
                       "run.sandbox"),
        reliability=_typed(Reliability | None, _get(d, "reliability", (dict, type(None)), w),
                           "run.reliability"),
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
        seeds=(None if d.get("seeds") is None
               else tuple(int(x) for x in _get(d, "seeds", list, where))),
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
