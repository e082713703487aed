"""Run tasks through lm-eval's real ``simple_evaluate`` and store the result.

:func:`plan` resolves and validates everything (model preset, task names, settings, data
directory) without loading weights; :func:`evaluate` runs the plan task by task, so that a
failure in one task keeps the tasks already computed: they are written to the results store
before the error is raised.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalsuite.errors import ConfigError
from evalsuite.presets import Backend, Family, ModelPreset, resolve_model
from evalsuite.results.convert import (
    REQUEST_SEED_RULE,
    ModelFacts,
    RunFacts,
    Totals,
    model_facts,
)
from evalsuite.results.schema import (
    DataParallel,
    FamilyDecision,
    LmEvalOptions,
    ModelInfo,
    RankRequests,
    Reliability,
    SandboxRecord,
    Seeds,
    SettingsProvenance,
    to_plain,
    typed_from_dict,
)
from evalsuite.settings import Overrides, Provenance, TaskInfo, parse_knobs, resolve
from evalsuite.settings.resolve import validate_overrides
from evalsuite.sandbox import ALLOW_ENV as CODE_EXEC_ENV
from evalsuite.tasks.data import DATA_DIR_META

SEEDS = {"random_seed": 0, "numpy_random_seed": 1234, "torch_random_seed": 1234,
         "fewshot_random_seed": 1234}


@dataclass(frozen=True)
class RunSpec:
    """One evaluation run, as the CLI or a caller asks for it."""

    model: str
    """Preset name, local checkpoint directory or hub id."""
    tasks: tuple[str, ...]
    """Short (``gsm8k``) or full (``llada_gsm8k``) task names."""
    limit: int | None = None
    """Documents per task (None: all)."""
    device: str | None = None
    """torch device; default CUDA when available."""
    batch_size: int = 1
    """Requests per forward batch."""
    output: Path = Path("results/runs")
    """Results store root; a new run directory is created under it."""
    data_dir: Path | None = None
    """Offline data in the layout of shared/data; travels to the loaders as task metadata
    (the CLI reads ``$EVALSUITE_DATA_DIR`` into it; library code reads no environment)."""
    seed: int = 1234
    """Base seed of the per-request generators."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Diffusion settings that win over the task's (gen_length, steps, mc_num, ...)."""
    backend: Backend | None = None
    family: Family | None = None
    dtype: str | None = None
    revision: str | None = None
    num_fewshot: int | None = None
    allow_code_execution: bool = False
    """Confirm running model-written code (HumanEval), in the sandbox (the CLI sets it from
    ``--allow-code-execution`` or ``$EVALSUITE_ALLOW_CODE_EXECUTION=1``)."""
    include_path: tuple[Path, ...] = ()
    """Extra task directories."""
    cache_dir: Path | None = None
    """Request cache directory (resume after a kill); None: no cache. The CLI passes
    results/cache unless told ``--no-cache``."""
    gen_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """lm-eval ``--gen_kwargs``: added to every generation task's ``generation_kwargs``."""
    system_instruction: str | None = None
    apply_chat_template: bool | None = None
    """None: the model family decides (instruct models use the chat template)."""
    fewshot_as_multiturn: bool | None = None
    """None: with the chat template, unless 0-shot."""
    predict_only: bool = False
    """Generate and store outputs without scoring them (lm-eval's ``--predict_only``)."""
    wandb_args: str | None = None
    """lm-eval's ``--wandb_args`` (``project=...,name=...``); needs the wandb package."""


@dataclass(frozen=True)
class PlannedTask:
    """The settings one leaf task will run with, decided before any weight loads."""

    name: str
    output_type: str
    config: Any
    provenance: Provenance


@dataclass(frozen=True)
class Plan:
    """A validated run: what will be loaded and evaluated."""

    spec: RunSpec
    preset: ModelPreset
    task_names: tuple[str, ...]
    tasks: tuple[PlannedTask, ...] = ()
    """Leaf tasks with their resolved settings (diffusion backend only)."""
    task_manager: Any = None
    unsafe_tasks: tuple[str, ...] = ()
    """Tasks that execute model-written code (in the sandbox)."""
    architecture: str = "llada"
    """The model family (:mod:`evalsuite.families`) read from ``config.json`` before loading:
    its knobs are resolved, recorded and keyed."""

    @property
    def code_execution(self) -> bool:
        """The opt-in to executing model-written code (the CLI folds the environment variable
        into :attr:`RunSpec.allow_code_execution`)."""
        return self.spec.allow_code_execution

    @property
    def apply_chat_template(self) -> bool:
        flag = self.spec.apply_chat_template
        return self.preset.chat_template if flag is None else bool(flag)

    @property
    def fewshot_as_multiturn(self) -> bool:
        flag = self.spec.fewshot_as_multiturn
        return (self.apply_chat_template and self.spec.num_fewshot != 0) if flag is None else bool(flag)


def plan(spec: RunSpec) -> Plan:
    """Validate the spec and resolve names; raises before any weight loads."""
    from evalsuite.tasks.registry import resolve_tasks, unsafe_task_names

    preset = resolve_model(spec.model, backend=spec.backend, family=spec.family,
                           dtype=spec.dtype, revision=spec.revision)
    if not spec.tasks:
        raise ConfigError("no tasks given; pass --tasks, e.g. --tasks gsm8k,mmlu")
    if spec.limit is not None and spec.limit <= 0:
        raise ConfigError(f"--limit must be a positive integer, got {spec.limit}")
    if spec.batch_size <= 0:
        raise ConfigError(f"--batch-size must be a positive integer, got {spec.batch_size}")
    overrides = parse_knobs(dict(spec.overrides), "cli")
    from evalsuite.families import FAMILIES, architecture_of_preset, check_settings

    architecture = architecture_of_preset(preset) if preset.backend == "llada" else FAMILIES[0]
    if preset.backend == "llada":
        check_settings(architecture, overrides, where="cli")
    validate_overrides(Overrides(overrides, "cli"), architecture.name)
    if spec.device and str(spec.device).startswith("cuda"):
        import importlib.util

        if importlib.util.find_spec("torch") is not None:
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(f"--device {spec.device}: CUDA is not available on this machine; "
                                  "pass --device cpu or omit --device")
    if spec.num_fewshot is not None and spec.num_fewshot < 0:
        raise ConfigError(f"--num-fewshot must be >= 0, got {spec.num_fewshot}")
    if preset.backend != "llada" and spec.overrides:
        raise ConfigError(
            f"diffusion settings ({', '.join(sorted(spec.overrides))}) apply to LLaDA-family "
            f"models only; {preset.name} runs on lm-eval's {preset.backend} backend"
        )
    if spec.data_dir is not None and not Path(spec.data_dir).is_dir():
        raise ConfigError(
            f"data directory {spec.data_dir} does not exist; pass a directory in the layout of "
            "shared/data (gsm8k/test.jsonl, mmlu/test/*.csv, ...) or omit --data-dir"
        )
    for extra in spec.include_path:
        if not Path(extra).is_dir():
            raise ConfigError(f"--include-path {extra} is not a directory")
    from evalsuite.tasks.preflight import check_task_files

    check_task_files(spec.include_path)
    names = resolve_tasks(list(spec.tasks), preset.family, spec.include_path)
    unsafe = unsafe_task_names(names, spec.include_path)
    if unsafe and not spec.allow_code_execution:
        from evalsuite.sandbox import CodeExecutionNotAllowedError

        raise CodeExecutionNotAllowedError(
            f"task(s) {', '.join(unsafe)} execute model-written code; to run them, pass "
            f"--allow-code-execution (or set {CODE_EXEC_ENV}=1); programs run in the sandbox "
            "of evalsuite.sandbox"
        )
    if spec.wandb_args is not None:
        _require_wandb()
    tm = _task_manager(spec)
    tasks = (_plan_settings(names, preset, spec, overrides, tm, architecture.name)
             if preset.backend == "llada" else ())
    return Plan(spec, preset, tuple(names), tasks, tm, tuple(unsafe), architecture.name)


def _require_wandb() -> None:
    import importlib.util

    from evalsuite.errors import MissingDependencyError

    if importlib.util.find_spec("wandb") is None:
        raise MissingDependencyError(
            "--wandb-args needs the wandb package; install it with `pip install wandb` "
            "(or drop --wandb-args)")


def _task_manager(spec: RunSpec) -> Any:
    """Our TaskManager; the data directory travels in the task metadata (run config)."""
    from evalsuite.tasks.registry import task_manager

    metadata = {DATA_DIR_META: str(Path(spec.data_dir).resolve())} if spec.data_dir else None
    return task_manager(metadata=metadata, extra_dirs=spec.include_path)


def _leaf_tasks(task_dict: Mapping[Any, Any]) -> list[Any]:
    out: list[Any] = []
    for value in task_dict.values():
        if isinstance(value, Mapping):
            out.extend(_leaf_tasks(value))
        else:
            out.append(value)
    return out


def _plan_settings(names: list[str], preset: ModelPreset, spec: RunSpec,
                   overrides: Mapping[str, Any], tm: Any,
                   architecture_name: str = "llada") -> tuple[PlannedTask, ...]:
    """Build every task (prompts, data: missing data fails in seconds, not after a 16 GB
    checkpoint has loaded), check the documents the run will use (:mod:`evalsuite.tasks.
    preflight`: no documents, empty answers) and resolve the settings of each leaf task."""
    _quiet_lm_eval()
    from evalsuite.tasks.preflight import build_task, check_documents

    planned: list[PlannedTask] = []
    over = Overrides(overrides, "cli")
    import warnings

    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            task_dict = build_task(name, tm, spec.data_dir)
        for task in _leaf_tasks(task_dict):
            task_name = task.config.task
            check_documents(task_name, task, spec.limit)
            output_type = task.OUTPUT_TYPE or task.config.output_type
            gen_kwargs = dict(task.config.generation_kwargs or {}) if output_type == "generate_until" else {}
            try:
                config, provenance = resolve(
                    TaskInfo(task_name, output_type), preset.family, gen_kwargs, over,
                    user_gen_kwargs=spec.gen_kwargs if output_type == "generate_until" else None,
                    architecture=architecture_name)
            except ConfigError as exc:
                raise ConfigError(f"task {task_name}: {exc}") from None
            planned.append(PlannedTask(task_name, output_type, config, provenance))
    return tuple(planned)


def build_lm(p: Plan) -> Any:
    """The lm-eval ``LM`` for the plan: our ``llada`` adapter or lm-eval's own hf/vllm."""
    spec, preset = p.spec, p.preset
    if preset.backend == "llada":
        from evalsuite.models.adapter import LLaDAEvalModel
        from evalsuite.models.engine import TaskSettings

        return LLaDAEvalModel(
            pretrained=spec.model, dtype=preset.dtype, device=spec.device,
            batch_size=spec.batch_size, family=preset.family, seed=spec.seed,
            revision=preset.revision, settings_source="cli",
            request_cache=None if spec.cache_dir is None else str(spec.cache_dir),
            planned={t.name: TaskSettings(t.config, t.provenance, p.architecture)
                     for t in p.tasks},
            **dict(spec.overrides),
        )
    import lm_eval.api.registry

    import evalsuite.lm_eval_plugin  # noqa: F401
    from evalsuite.models.arm import lm_eval_model_args
    from evalsuite.models.loader import default_device

    name, args = lm_eval_model_args(preset, device=spec.device or default_device(),
                                    batch_size=spec.batch_size)
    return lm_eval.api.registry.get_model(name).create_from_arg_obj(args)


class _DropCustomDatasetNotice(logging.Filter):
    """lm-eval warns once per task that uses ``custom_dataset`` (every task of ours does)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed" not in record.getMessage()


def _quiet_lm_eval() -> None:
    logging.getLogger("lm_eval.api.task").addFilter(_DropCustomDatasetNotice())


def _merge(into: dict[str, Any], out: Mapping[str, Any]) -> None:
    """Merge one ``simple_evaluate`` output into the accumulated one."""
    for key, value in out.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key].update(value)
        elif key not in into:
            into[key] = value


def evaluate(spec: RunSpec | Plan) -> Path | None:
    """Evaluate and write a run directory; returns its path.

    Tasks run one after another in one process with one model. If a task fails, the tasks
    already finished are written as a run (with the failure recorded) before re-raising.
    Under data parallel (``accelerate launch`` / ``torchrun``) every rank computes its share
    and rank 0 alone gathers and writes the run: the other ranks return None. A failure on
    any rank there ends the run on every rank (the failing rank leaves the process group, so
    the others fail instead of waiting for it); no partial run is written, since the ranks
    can no longer gather.
    """
    p = spec if isinstance(spec, Plan) else plan(spec)
    try:
        return _evaluate(p)
    except BaseException:
        _abandon_process_group()  # a failing rank must not leave the others waiting
        raise


def _abandon_process_group() -> None:
    """Under data parallel, leave the process group without waiting for the other ranks."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        from evalsuite.models.adapter import abandon_process_group

        abandon_process_group()


def _evaluate(p: Plan) -> Path | None:
    spec = p.spec
    import evalsuite.lm_eval_plugin  # noqa: F401
    from lm_eval import simple_evaluate

    from evalsuite.results.store import write_run_from_lm_eval
    from evalsuite.sandbox import confirmed_for_run

    _quiet_lm_eval()
    started = time.time()
    tm = p.task_manager if p.task_manager is not None else _task_manager(spec)
    tracker = _wandb_tracker(p)
    if p.preset.backend != "llada":  # llada plans built and checked every task already
        from evalsuite.tasks.preflight import build_and_check

        build_and_check(p.task_names, tm, spec.limit, spec.data_dir)
    from evalsuite.reliability import check_writable

    check_writable(Path(spec.output), "--output")  # before any weight loads
    if spec.cache_dir is not None:
        check_writable(Path(spec.cache_dir), "--cache-dir")
    lm = build_lm(p)
    combined: dict[str, Any] = {}
    failure: BaseException | None = None
    for name in p.task_names:
        try:
            with confirmed_for_run(p.code_execution):
                out = simple_evaluate(
                    model=lm, tasks=[name], task_manager=tm, limit=spec.limit,
                    num_fewshot=spec.num_fewshot, log_samples=True,
                    apply_chat_template=p.apply_chat_template,
                    fewshot_as_multiturn=p.fewshot_as_multiturn,
                    system_instruction=spec.system_instruction,
                    gen_kwargs=dict(spec.gen_kwargs) or None, predict_only=spec.predict_only,
                    confirm_run_unsafe_code=p.code_execution, **_seeds(spec),
                )
        except (Exception, KeyboardInterrupt) as exc:  # keep the finished tasks
            failure = exc
            break
        if out is not None:
            _merge(combined, out)
    if failure is not None and getattr(lm, "world_size", 1) > 1:
        # this rank left lm-eval's sequence of collectives: gathering would wait forever
        raise failure
    stats, settings, provenance, shares = _gather_stats(lm)
    if getattr(lm, "rank", 0) != 0:
        if failure:
            raise failure
        return None
    if not combined.get("results"):
        if failure:
            raise failure
        raise ConfigError("no task produced results")
    info = model_facts(lm.get_model_info()) if hasattr(lm, "get_model_info") else None
    facts = run_facts(p, info, stats, settings, provenance, failure, time.time() - started,
                      shares)
    from evalsuite.reliability import raise_if_nonfinite, write_failure

    reliability = facts.reliability or Reliability()
    try:
        run_dir = write_run_from_lm_eval(Path(spec.output), combined, facts, stats)
    except OSError as exc:
        raise write_failure(exc, Path(spec.output), reliability) from None
    if tracker is not None:
        _log_wandb(tracker, combined, facts)
    if failure:
        failure.add_note(f"the tasks finished before the failure were saved in {run_dir}")
        raise failure
    raise_if_nonfinite(reliability, run_dir)
    return run_dir


def run_facts(p: Plan, info: ModelFacts | None, stats: Mapping[Any, Mapping[str, Any]],
              settings: Mapping[str, Mapping[str, Any]],
              provenance: Mapping[str, Mapping[str, Any]], failure: BaseException | None,
              wall_time_s: float, shares: Sequence[RankShare] = ()) -> RunFacts:
    """The one builder of a run's facts: from the plan and the model's own report of itself
    (``get_model_info()``, None for lm-eval's hf/vllm); ``stats``, ``settings`` and
    ``provenance`` are the model's per-request parts gathered over ranks; ``shares`` each
    process's requests and cache counts."""
    from evalsuite.reliability import nonfinite_counts
    from evalsuite.results.provenance import collect_environment, display_id

    spec, preset = p.spec, p.preset
    reliability = info.reliability if info else None
    if reliability is not None:
        reliability = dataclasses.replace(reliability, nonfinite=nonfinite_counts(stats))
        if reliability.cache.enabled and shares:
            reliability = dataclasses.replace(
                reliability, cache=dataclasses.replace(reliability.cache, **_summed_cache(shares)))
    world_size = info.world_size if info else 1
    return RunFacts(
        model=ModelInfo(
            preset=preset.name, backend=preset.backend, resolved_id=display_id(preset.hub_id),
            revision=preset.revision, dtype=preset.dtype, family=preset.family,
            chat_template=p.apply_chat_template,
            special_tokens=dict(info.special_tokens) if info else {},
            architecture=p.architecture if preset.backend == "llada" else None),
        seeds=Seeds(**_seeds(spec), request_seed_base=spec.seed,
                    request_seed_rule=REQUEST_SEED_RULE),
        device=info.device if info else _device_name(spec),
        limit=spec.limit,
        wall_time_s=wall_time_s,
        argv=tuple(sys.argv),
        environment=collect_environment(),
        totals=Totals.of(stats),
        settings=dict(settings),
        provenance={t: typed_from_dict(SettingsProvenance, v, f"provenance of {t}")
                    for t, v in provenance.items()},
        status="complete" if failure is None else "failed",
        failure=None if failure is None else f"{type(failure).__name__}: {failure}",
        requested_tasks=tuple(p.task_names),
        overrides=dict(spec.overrides),
        family=FamilyDecision(preset.family, preset.family_reason),
        checkpoint=info.checkpoint if info else None,
        lm_eval_options=LmEvalOptions(
            num_fewshot=spec.num_fewshot, system_instruction=spec.system_instruction,
            apply_chat_template=p.apply_chat_template,
            fewshot_as_multiturn=p.fewshot_as_multiturn, gen_kwargs=dict(spec.gen_kwargs),
            predict_only=spec.predict_only),
        world_size=world_size,
        data_parallel=data_parallel_record(world_size, list(shares)),
        sandbox=_sandbox_record(p),
        reliability=reliability if reliability is not None else Reliability(),
    )


def _sandbox_record(p: Plan) -> SandboxRecord | None:
    """The isolation in force for model-written code, when the run executed any."""
    if not p.unsafe_tasks:
        return None
    from evalsuite.sandbox import isolation_report

    return SandboxRecord(tuple(p.unsafe_tasks), isolation_report())


def _device_name(spec: RunSpec) -> str:
    """The device of an lm-eval backend (hf, vllm), as the plan chose it."""
    from evalsuite.models.loader import default_device

    return str(spec.device or default_device())


def _gather_stats(lm: Any) -> tuple[dict[tuple[str, int], dict], dict[str, dict], dict[str, dict],
                                     list[RankShare]]:
    """Per-request statistics, settings and their provenance of a diffusion model, and each
    process's :class:`RankShare` (rank 0 gathers them from every process); empty for lm-eval's
    own ARM classes."""
    from evalsuite.models.adapter import LLaDAEvalModel

    if not isinstance(lm, LLaDAEvalModel):
        return {}, {}, {}, []
    stats = {k: dict(v) for k, v in lm.request_stats.items()}
    settings = lm.settings_used
    provenance = {t: s.provenance.as_dict() for t, s in lm.task_settings.items()}
    shares = [_rank_share(lm)]
    if lm.world_size > 1:
        gathered = lm.gather_object((stats, settings, provenance, shares[0]), dst=0)
        if gathered:
            stats, settings, provenance, shares = {}, {}, {}, []
            for part_stats, part_settings, part_provenance, share in gathered:
                stats.update(part_stats)
                settings.update(part_settings)
                provenance.update(part_provenance)
                shares.append(share)
    return stats, settings, provenance, shares


# ----- data parallel: what each process did (one home for these run facts) ----------------


@dataclass(frozen=True)
class RankShare:
    """One process's share of a run: the requests it answered and what its request cache
    counted (under data parallel lm-eval gives each rank a slice of the documents)."""

    rank: int
    requests: Mapping[str, int]
    """Requests answered, per lm-eval request type."""
    cache: Mapping[str, Any] | None
    """The rank's request-cache counts (:meth:`~evalsuite.models.request_cache.CacheStats.
    as_dict`), None without a cache."""


def _rank_share(lm: Any) -> RankShare:
    cache = lm.request_cache
    return RankShare(lm.rank, dict(lm.request_counts),
                     None if cache is None else cache.stats.as_dict())


def data_parallel_record(world_size: int, shares: list[RankShare]) -> DataParallel | None:
    """The run record's data-parallel facts: requests per rank and in all, request-cache hits
    summed over the ranks; None for lm-eval's own ARM classes (no shares: evalsuite does not
    count their requests)."""
    if not shares:
        return None
    ordered = sorted(shares, key=lambda s: s.rank)
    ranks = tuple(RankRequests(rank=s.rank, requests=sum(s.requests.values()),
                               requests_by_type=dict(sorted(s.requests.items())),
                               cache_hits=int((s.cache or {}).get("from_cache", 0)))
                  for s in ordered)
    return DataParallel(world_size=int(world_size), ranks=ranks,
                        requests=sum(r.requests for r in ranks),
                        cache_hits=sum(r.cache_hits for r in ranks))


def _summed_cache(shares: list[RankShare]) -> dict[str, Any]:
    """Request-cache counts summed over the ranks (each rank keeps its own counts)."""
    total: dict[str, Any] = {"requests": 0, "from_cache": 0, "computed": 0, "written": 0,
                             "by_kind": {}}
    for share in shares:
        if share.cache is None:
            continue
        for key in ("requests", "from_cache", "computed", "written"):
            total[key] += int(share.cache.get(key, 0))
        for kind, counts in share.cache.get("by_kind", {}).items():
            entry = total["by_kind"].setdefault(kind, {"requests": 0, "from_cache": 0})
            for key in entry:
                entry[key] += int(counts.get(key, 0))
    total["by_kind"] = dict(sorted(total["by_kind"].items()))
    return total


def _seeds(spec: RunSpec) -> dict[str, int]:
    """lm-eval's seeds: ``--seed`` sets all of them (the documented defaults otherwise)."""
    if spec.seed == 1234:
        return dict(SEEDS)
    return {k: spec.seed for k in SEEDS}


def _wandb_tracker(p: Plan) -> Any:
    """lm-eval's own WandbLogger for ``--wandb-args`` (None without it); the planned settings
    and their provenance go into the W&B run config."""
    if p.spec.wandb_args is None:
        return None
    _require_wandb()
    from lm_eval.loggers import WandbLogger
    from lm_eval.utils import simple_parse_args_string

    from evalsuite.settings import settings_record

    config = {
        "evalsuite_model": p.preset.as_dict(),
        "evalsuite_settings": {t.name: settings_record(t.config, p.architecture)
                               for t in p.tasks},
        "evalsuite_settings_provenance": {t.name: t.provenance.as_dict() for t in p.tasks},
    }
    return WandbLogger(init_args=simple_parse_args_string(p.spec.wandb_args), config_args=config)


def _log_wandb(tracker: Any, results: Mapping[str, Any], facts: RunFacts) -> None:
    """Results and samples through lm-eval's logger, plus forward passes, tokens and settings."""
    tracker.post_init(dict(results))
    tracker.log_eval_result()
    if results.get("samples"):
        tracker.log_eval_samples(results["samples"])
    totals = facts.totals or Totals()
    tracker.run.log({"evalsuite/nfe": totals.nfe,
                     "evalsuite/generated_tokens": totals.generated_tokens,
                     "evalsuite/generation_s": totals.generation_s,
                     "evalsuite/generation_nfe": totals.generation_nfe})
    tracker.run.config.update({"evalsuite_settings": dict(facts.settings),
                               "evalsuite_settings_provenance": to_plain(facts.provenance)},
                              allow_val_change=True)
    tracker.run.finish()
