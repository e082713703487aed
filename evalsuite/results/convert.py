"""Pure conversion of lm-eval's ``simple_evaluate`` output into schema records.

lm-eval (0.4.13) returns ``results`` (``{task: {"metric,filter": value,
"metric_stderr,filter": stderr, "alias": ...}}``), ``group_subtasks``, ``configs``,
``versions``, ``n-shot``, ``higher_is_better``, ``n-samples`` and, with ``log_samples=True``,
``samples``: per task one entry per (document, filter) with ``doc_id``, ``target``,
``arguments``, ``resps``, ``filtered_resps``, ``filter``, ``metrics`` (names) and one key per
metric holding that document's score. Entries of one document under different filters are
merged into one :class:`SampleRecord`.

:func:`convert_lm_eval` is the one builder of a :class:`RunRecord`: from lm-eval's output, the
per-request statistics and the typed :class:`RunFacts` of the run (made by the runner from its
plan and the model's ``get_model_info()``, or by :func:`facts_from_lm_eval_config` from a plain
``lm_eval`` output, which carries the same ``get_model_info()`` under ``config``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from evalsuite.errors import ResultsError
from evalsuite.results.schema import (
    SCHEMA_VERSION,
    Checkpoint,
    DataParallel,
    FamilyDecision,
    LmEvalOptions,
    MetricValue,
    ModelInfo,
    Reliability,
    RunRecord,
    SampleRecord,
    SandboxRecord,
    Seeds,
    SettingsProvenance,
    Speed,
    TaskRecord,
    typed_from_dict,
)

RequestStats = Mapping[tuple[str, int], Mapping[str, Any]]
"""``(task_name, doc_id) -> {"nfe": int, "seconds": float, "generated_tokens": int,
"generation_requests": int, "nonfinite": int, "seeds": [[request idx, seed], ...]}`` (every
key optional)."""

REQUEST_SEED_RULE = "sha256(run seed, request content, settings, repeat index when > 0)"
"""How the engine derives a request's seed (:func:`evalsuite.models.requests.request_seed`)."""

MODEL_INFO_KEY = "evalsuite"
"""Key of our facts in the ``llada`` model's ``get_model_info()`` (lm-eval puts that dict
into ``results["config"]``)."""


@dataclass(frozen=True)
class Totals:
    """Run totals over the per-request statistics."""

    nfe: int | None = None
    generated_tokens: int | None = None
    generation_s: float | None = None
    generation_nfe: int | None = None

    @classmethod
    def of(cls, stats: RequestStats) -> "Totals":
        """Sums; the ``generation_*`` ones over documents with generation requests."""
        gen = [s for s in stats.values() if s.get("generation_requests")]
        return cls(
            nfe=int(sum(s.get("nfe", 0) for s in stats.values())),
            generated_tokens=int(sum(s.get("generated_tokens", 0) for s in stats.values())),
            generation_s=sum(s.get("seconds", 0.0) for s in gen),
            generation_nfe=int(sum(s.get("nfe", 0) for s in gen)),
        )


@dataclass(frozen=True)
class RunFacts:
    """What a run knows besides lm-eval's output and the per-request statistics: the input
    of :func:`convert_lm_eval`. Fields mirror :class:`RunRecord`'s."""

    model: ModelInfo
    seeds: Seeds = field(default_factory=Seeds)
    device: str | None = None
    limit: float | None = None
    wall_time_s: float | None = None
    argv: tuple[str, ...] = ()
    environment: Mapping[str, Any] = field(default_factory=dict)
    totals: Totals | None = None
    """None: summed from the request statistics."""
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Task -> the settings its requests ran with (knob name -> value)."""
    provenance: Mapping[str, SettingsProvenance] = field(default_factory=dict)
    """Task -> where each of its settings came from."""
    status: Literal["complete", "failed"] = "complete"
    failure: str | None = None
    requested_tasks: tuple[str, ...] = ()
    overrides: Mapping[str, Any] = field(default_factory=dict)
    family: FamilyDecision | None = None
    checkpoint: Checkpoint | None = None
    lm_eval_options: LmEvalOptions | None = None
    world_size: int = 1
    data_parallel: DataParallel | None = None
    sandbox: SandboxRecord | None = None
    reliability: Reliability | None = None
    tokens_counted_to_cut: bool = True
    """The statistics count answer tokens up to the cut (evalsuite's engine does)."""


@dataclass(frozen=True)
class ModelFacts:
    """What the ``llada`` model reports of itself (``get_model_info()[MODEL_INFO_KEY]``)."""

    device: str | None = None
    checkpoint: Checkpoint | None = None
    special_tokens: Mapping[str, Any] = field(default_factory=dict)
    family: FamilyDecision | None = None
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    provenance: Mapping[str, SettingsProvenance] = field(default_factory=dict)
    reliability: Reliability | None = None
    world_size: int = 1
    seed: int | None = None
    """The run seed the request seeds derive from."""
    architecture: str | None = None
    """The network family that ran (``llada``, ``dream``)."""


def model_facts(info: Mapping[str, Any] | None) -> ModelFacts | None:
    """Parse a ``get_model_info()`` dict (ours under :data:`MODEL_INFO_KEY`; None for another
    model's)."""
    ours = (info or {}).get(MODEL_INFO_KEY)
    if not isinstance(ours, Mapping):
        return None
    facts = typed_from_dict(ModelFacts, ours, "get_model_info()")
    return dataclasses.replace(facts, provenance={
        t: typed_from_dict(SettingsProvenance, p, f"get_model_info().provenance.{t}")
        for t, p in (ours.get("provenance") or {}).items()})


def utc_now_iso() -> str:
    """Current UTC time, ISO 8601 with a ``Z`` suffix, second precision."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON so tuples become lists and odd objects become strings."""
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def _number(value: Any) -> float | None:
    """A finite float from a metric value, or ``None`` ("N/A", NaN, lists, ...)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(float(value)):
        return float(value)
    return None


def _parse_metrics(entry: Mapping[str, Any]) -> dict[str, MetricValue]:
    """``{"acc,none": 0.5, "acc_stderr,none": 0.1}`` -> ``{"acc,none": MetricValue(0.5, 0.1)}``."""
    out: dict[str, MetricValue] = {}
    for key, raw in entry.items():
        if "," not in key:
            continue
        name, filt = key.split(",", 1)
        if name.endswith("_stderr"):
            continue
        value = _number(raw)
        if value is None:
            continue
        out[key] = MetricValue(value, _number(entry.get(f"{name}_stderr,{filt}")))
    return out


def _output_type(config: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]) -> str | None:
    declared = config.get("output_type")
    if isinstance(declared, str):
        return declared
    if entries:
        args = entries[0].get("arguments") or []
        if args and len(args[0]) == 2 and isinstance(args[0][1], str):
            return "multiple_choice" if len(args) > 1 else "loglikelihood"
        return "generate_until"
    return None


def _choice_line(index: int, continuation: str, resp: Any) -> str:
    ll = resp[0] if isinstance(resp, (list, tuple)) and resp else resp
    ll_text = f"{ll:.4f}" if isinstance(ll, (int, float)) else str(ll)
    return f"[{index}] {json.dumps(continuation, ensure_ascii=False)}  log-likelihood {ll_text}"


def _loglikelihoods(resps: Sequence[Any]) -> tuple[float, ...] | None:
    """Full-precision log-likelihood of each request (``resps`` of a likelihood task).

    lm-eval gives per request a list of responses, each ``(loglikelihood, is_greedy)`` (a bare
    number for ``loglikelihood_rolling``); ``None`` when any value is not a finite number.
    """
    out: list[float] = []
    for per_request in resps:
        first = per_request[0] if isinstance(per_request, (list, tuple)) and per_request else None
        ll = first[0] if isinstance(first, (list, tuple)) and first else first
        if isinstance(ll, bool) or not isinstance(ll, (int, float)) or not math.isfinite(ll):
            return None
        out.append(float(ll))
    return tuple(out)


def _request_seeds(stats: Mapping[str, Any]) -> tuple[int, ...] | None:
    pairs = stats.get("seeds")
    if not pairs:
        return None
    return tuple(int(seed) for _idx, seed in sorted(pairs, key=lambda p: p[0]))


def _convert_sample(
    task: str,
    entries: Sequence[Mapping[str, Any]],
    output_type: str | None,
    stats: Mapping[str, Any] | None,
) -> SampleRecord:
    """Merge one document's per-filter entries into a :class:`SampleRecord`."""
    first = entries[0]
    args = first.get("arguments") or []
    prompt = str(args[0][0]) if args and args[0] else ""
    resps = first.get("resps") or []
    likelihood = output_type in ("multiple_choice", "loglikelihood")
    continuations = [str(a[1]) if len(a) > 1 else "" for a in args]
    if likelihood:
        output = "\n".join(
            _choice_line(i, continuations[i], r[0] if r else None) for i, r in enumerate(resps)
        )
    else:
        texts = [str(x) for per_request in resps for x in per_request]
        output = (
            texts[0]
            if len(texts) == 1
            else "\n".join(f"--- output {i + 1} ---\n{t}" for i, t in enumerate(texts))
        )
    extracted: dict[str, str] = {}
    scores: dict[str, float] = {}
    for entry in entries:
        filt = str(entry.get("filter", "none"))
        filtered = entry.get("filtered_resps") or []
        if likelihood and filtered:
            lls = [f[0] if isinstance(f, (list, tuple)) else f for f in filtered]
            if all(isinstance(x, (int, float)) for x in lls) and len(lls) > 1:
                best = max(range(len(lls)), key=lambda i: lls[i])
                extracted[filt] = f"[{best}] {continuations[best]}"
            else:
                extracted[filt] = json.dumps(_jsonable(filtered), ensure_ascii=False)
        else:
            flat = [str(x) for x in filtered]
            extracted[filt] = flat[0] if len(flat) == 1 else json.dumps(flat, ensure_ascii=False)
        for name in entry.get("metrics") or []:
            value = _number(entry.get(name))
            if value is not None:
                scores[f"{name},{filt}"] = value
    target = first.get("target")
    if (
        likelihood
        and isinstance(target, int)
        and not isinstance(target, bool)
        and 0 <= target < len(continuations)
    ):
        target_text = f"[{target}] {continuations[target]}"
    elif isinstance(target, str):
        target_text = target
    else:
        target_text = json.dumps(_jsonable(target), ensure_ascii=False)
    stats = stats or {}
    doc_id = first.get("doc_id")
    if isinstance(doc_id, bool) or not isinstance(doc_id, int):
        raise ResultsError(f"samples of {task}: doc_id must be an integer, found {doc_id!r}")
    return SampleRecord(
        task=task,
        doc_id=doc_id,
        prompt=prompt,
        output=output,
        extracted=extracted,
        target=target_text,
        scores=scores,
        nfe=stats.get("nfe"),
        seconds=stats.get("seconds"),
        generated_tokens=stats.get("generated_tokens"),
        doc_hash=first.get("doc_hash"),
        prompt_hash=first.get("prompt_hash"),
        nonfinite=int(stats.get("nonfinite") or 0),
        loglikelihoods=(
            _loglikelihoods(resps)
            if output_type in ("multiple_choice", "loglikelihood", "loglikelihood_rolling")
            else None
        ),
        seeds=_request_seeds(stats),
    )


def convert_samples(
    task: str,
    entries: Sequence[Mapping[str, Any]],
    output_type: str | None,
    request_stats: RequestStats,
) -> list[SampleRecord]:
    """All samples of one task, one record per document, in ``doc_id`` order."""
    by_doc: dict[int, list[Mapping[str, Any]]] = {}
    for entry in entries:
        by_doc.setdefault(entry.get("doc_id"), []).append(entry)  # type: ignore[arg-type]
    return [
        _convert_sample(task, group, output_type, request_stats.get((task, doc_id)))
        for doc_id, group in sorted(by_doc.items(), key=lambda kv: (str(type(kv[0])), kv[0]))
    ]


def convert_lm_eval(
    output: Mapping[str, Any],
    facts: RunFacts,
    request_stats: RequestStats,
    *,
    run_id: str,
    created_utc: str,
    source_format: str = "evalsuite",
) -> tuple[RunRecord, list[SampleRecord]]:
    """Build the run record and sample records of one lm-eval evaluation (pure).

    ``facts``: what the run knows (:class:`RunFacts`). Raises ResultsError when ``output``
    lacks ``results`` or ``samples`` (the run must be made with ``log_samples=True``).
    """
    if not isinstance(output.get("results"), Mapping) or not output["results"]:
        raise ResultsError("lm-eval output has no 'results'; nothing was evaluated")
    samples_in = output.get("samples")
    if not isinstance(samples_in, Mapping) or not samples_in:
        raise ResultsError(
            "lm-eval output has no 'samples'; run simple_evaluate with log_samples=True"
        )
    results: Mapping[str, Any] = output["results"]
    group_subtasks: Mapping[str, Any] = output.get("group_subtasks") or {}
    configs: Mapping[str, Any] = output.get("configs") or {}
    versions: Mapping[str, Any] = output.get("versions") or {}
    n_shot: Mapping[str, Any] = output.get("n-shot") or {}
    hib: Mapping[str, Any] = output.get("higher_is_better") or {}
    n_samples: Mapping[str, Any] = output.get("n-samples") or {}
    settings: Mapping[str, Any] = facts.settings

    samples: list[SampleRecord] = []
    tasks: dict[str, TaskRecord] = {}
    for name, entries in sorted(samples_in.items()):
        config = configs.get(name) or {}
        otype = _output_type(config, entries)
        task_samples = convert_samples(name, entries, otype, request_stats)
        samples.extend(task_samples)
        counts = n_samples.get(name) or {}
        version = versions.get(name)
        tasks[name] = TaskRecord(
            name=name,
            alias=str((results.get(name) or {}).get("alias", name)).strip(" -"),
            version=None if version is None else str(version),
            n_shot=n_shot.get(name) if isinstance(n_shot.get(name), int) else None,
            output_type=otype,
            n_samples=len(task_samples),
            n_original=counts.get("original") if isinstance(counts.get("original"), int) else None,
            higher_is_better={k: bool(v) for k, v in (hib.get(name) or {}).items()},
            metrics=_parse_metrics(results.get(name) or {}),
            settings=_jsonable(dict(settings.get(name) or {})),
            generation_kwargs=_jsonable(dict(config.get("generation_kwargs") or {})),
            provenance=facts.provenance.get(name),
        )
    for group, children in sorted(group_subtasks.items()):
        if not children:
            continue
        version = versions.get(group)
        tasks[group] = TaskRecord(
            name=group,
            alias=str((results.get(group) or {}).get("alias", group)).strip(" -"),
            version=None if version is None else str(version),
            n_shot=n_shot.get(group) if isinstance(n_shot.get(group), int) else None,
            output_type=None,
            n_samples=0,
            n_original=None,
            higher_is_better={k: bool(v) for k, v in (hib.get(group) or {}).items()},
            metrics=_parse_metrics(results.get(group) or {}),
            settings={},
            generation_kwargs={},
            subtasks=tuple(str(c) for c in children),
        )
    for name, task in list(tasks.items()):
        if task.is_group:
            leaves = [t for t in _leaves(tasks, name) if t in tasks and not tasks[t].is_group]
            tasks[name] = dataclasses.replace(
                task, n_samples=sum(tasks[t].n_samples for t in leaves)
            )

    totals = facts.totals or Totals.of(request_stats)
    record = RunRecord(
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
        created_utc=created_utc,
        source_format=source_format,
        model=dataclasses.replace(facts.model,
                                  special_tokens=_jsonable(dict(facts.model.special_tokens))),
        tasks=tasks,
        seeds=facts.seeds,
        device=facts.device,
        limit=facts.limit,
        argv=tuple(str(a) for a in facts.argv),
        environment=_jsonable(dict(facts.environment)),
        speed=Speed(
            wall_time_s=facts.wall_time_s,
            nfe=totals.nfe,
            generated_tokens=totals.generated_tokens,
            generation_s=totals.generation_s,
            generation_nfe=totals.generation_nfe,
            tokens_counted_to_cut=facts.tokens_counted_to_cut,
        ),
        status=facts.status,
        failure=facts.failure,
        requested_tasks=tuple(facts.requested_tasks),
        overrides=_jsonable(dict(facts.overrides)),
        family=facts.family,
        checkpoint=facts.checkpoint,
        lm_eval_options=(None if facts.lm_eval_options is None else dataclasses.replace(
            facts.lm_eval_options, gen_kwargs=_jsonable(dict(facts.lm_eval_options.gen_kwargs)))),
        world_size=facts.world_size,
        data_parallel=facts.data_parallel,
        sandbox=(None if facts.sandbox is None else dataclasses.replace(
            facts.sandbox, isolation=_jsonable(dict(facts.sandbox.isolation)))),
        reliability=facts.reliability,
    )
    return record, samples


def _leaves(tasks: Mapping[str, TaskRecord], name: str) -> list[str]:
    task = tasks.get(name)
    if task is None or not task.is_group:
        return [name]
    return [leaf for child in task.subtasks for leaf in _leaves(tasks, child)]


def facts_from_lm_eval_config(output: Mapping[str, Any]) -> RunFacts:
    """The facts of a plain lm-eval output (schema v0): what lm-eval records, and, for our
    ``llada`` model, what its ``get_model_info()`` put into ``config`` (settings and their
    provenance per task, device, checkpoint, family, reliability)."""
    config = output.get("config") or {}
    model_args = config.get("model_args")
    pretrained = None
    if isinstance(model_args, Mapping):
        pretrained = model_args.get("pretrained")
    elif isinstance(model_args, str):
        for part in model_args.split(","):
            key, _, value = part.partition("=")
            if key.strip() == "pretrained":
                pretrained = value.strip()
    wall = output.get("total_evaluation_time_seconds")
    try:
        wall_s = float(wall) if wall is not None else None
    except (TypeError, ValueError):
        wall_s = None
    ours = model_facts(config)
    name = str(pretrained or config.get("model") or "unknown")
    seeds = {k: config.get(k) for k in ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed")
             if isinstance(config.get(k), int)}
    return RunFacts(
        model=ModelInfo(
            preset=name, backend=str(config.get("model") or "unknown"), resolved_id=name,
            revision=None, dtype=None,
            family=ours.family.family if ours and ours.family else None, chat_template=None,
            special_tokens=dict(ours.special_tokens) if ours else {},
            architecture=ours.architecture if ours else None),
        seeds=Seeds(random_seed=seeds.get("random_seed"), numpy_random_seed=seeds.get("numpy_seed"),
                    torch_random_seed=seeds.get("torch_seed"),
                    fewshot_random_seed=seeds.get("fewshot_seed"),
                    request_seed_base=ours.seed if ours else None,
                    request_seed_rule=REQUEST_SEED_RULE if ours else None),
        device=(ours.device if ours and ours.device else config.get("device")),
        limit=config.get("limit"),
        wall_time_s=wall_s,
        environment={k: output.get(k) for k in ("lm_eval_version", "transformers_version",
                                                "git_hash", "upper_git_hash") if k in output},
        totals=Totals(),
        settings=dict(ours.settings) if ours else {},
        provenance=dict(ours.provenance) if ours else {},
        family=ours.family if ours else None,
        checkpoint=ours.checkpoint if ours else None,
        world_size=ours.world_size if ours else 1,
        reliability=ours.reliability if ours else None,
        tokens_counted_to_cut=False,
    )


def epoch_to_iso(epoch: Any) -> str | None:
    """lm-eval's ``date`` (epoch seconds) as ISO UTC, or ``None``."""
    try:
        return _dt.datetime.fromtimestamp(float(epoch), _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError, OverflowError, OSError):
        return None
