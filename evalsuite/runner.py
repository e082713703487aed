"""Run tasks through lm-eval's real ``simple_evaluate`` and store the result.

:func:`plan` resolves and validates everything (model preset, task names, settings, data
directory) without loading weights; :func:`evaluate` runs the plan task by task, so that a
failure in one task keeps the tasks already computed: they are written to the results store
before the error is raised.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalsuite.config import SamplerConfig, split_settings
from evalsuite.errors import ConfigError
from evalsuite.presets import Backend, Family, ModelPreset, resolve_model
from evalsuite.tasks.code_exec import ALLOW_ENV as CODE_EXEC_ENV
from evalsuite.tasks.data import DATA_DIR_ENV

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
    """Offline data in the layout of shared/data (sets EVALSUITE_DATA_DIR)."""
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
    """Confirm running model-written code (HumanEval), in the sandbox."""
    include_path: tuple[Path, ...] = ()
    """Extra task directories."""
    cache_dir: Path | None = None
    """Request cache directory (resume after a kill); None: no cache. The CLI passes
    results/cache unless told ``--no-cache``."""


@dataclass(frozen=True)
class Plan:
    """A validated run: what will be loaded and evaluated."""

    spec: RunSpec
    preset: ModelPreset
    task_names: tuple[str, ...]


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
    sampler, estimator = split_settings(dict(spec.overrides))
    if sampler:
        from evalsuite.models.requests import fill_lengths

        SamplerConfig(**fill_lengths(sampler, sampler.get("gen_length", 256)))
    if "mc_num" in estimator and int(estimator["mc_num"]) <= 0:
        raise ConfigError(f"mc_num must be a positive integer, got {estimator['mc_num']}")
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
    if unsafe and not (spec.allow_code_execution or os.environ.get(CODE_EXEC_ENV) == "1"):
        from evalsuite.tasks.code_exec import CodeExecutionNotAllowedError

        raise CodeExecutionNotAllowedError(
            f"task(s) {', '.join(unsafe)} execute model-written code; to run them, pass "
            f"--allow-code-execution (or set {CODE_EXEC_ENV}=1); programs run in the sandbox "
            "of evalsuite.tasks.code_exec"
        )
    return Plan(spec, preset, tuple(names))


def build_lm(p: Plan) -> Any:
    """The lm-eval ``LM`` for the plan: our ``llada`` adapter or lm-eval's own hf/vllm."""
    spec, preset = p.spec, p.preset
    if preset.backend == "llada":
        from evalsuite.models.adapter import LLaDAEvalModel

        return LLaDAEvalModel(
            pretrained=spec.model, dtype=preset.dtype, device=spec.device,
            batch_size=spec.batch_size, family=preset.family, seed=spec.seed,
            revision=preset.revision,
            request_cache=None if spec.cache_dir is None else str(spec.cache_dir),
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


def _preload_tasks(names: tuple[str, ...], tm: Any, limit: int | None = None) -> None:
    """Build every task once (prompts, data) before any weight loads, so that missing or
    unreachable data fails in seconds, not after a 16 GB checkpoint has loaded. lm-eval
    rebuilds them later from the datasets cache."""
    from evalsuite.tasks.preflight import build_and_check

    build_and_check(names, tm, limit)


def _merge(into: dict[str, Any], out: Mapping[str, Any]) -> None:
    """Merge one ``simple_evaluate`` output into the accumulated one."""
    for key, value in out.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key].update(value)
        elif key not in into:
            into[key] = value


def _device_name(lm: Any) -> str:
    import torch

    device = str(getattr(lm, "device", None) or getattr(lm, "_device", "cpu"))
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name()})"
    return device


def evaluate(spec: RunSpec) -> Path:
    """Evaluate and write a run directory; returns its path.

    Tasks run one after another in one process with one model. If a task fails, the tasks
    already finished are written as a run (with the failure recorded) before re-raising.
    """
    p = plan(spec)
    if spec.data_dir is not None:
        os.environ[DATA_DIR_ENV] = str(Path(spec.data_dir).resolve())
    if spec.allow_code_execution:
        os.environ[CODE_EXEC_ENV] = "1"
    import evalsuite.lm_eval_plugin  # noqa: F401
    from lm_eval import simple_evaluate

    from evalsuite.results.provenance import collect_environment
    from evalsuite.results.store import write_run_from_lm_eval

    logging.getLogger("lm_eval.api.task").addFilter(_DropCustomDatasetNotice())
    started = time.time()
    from evalsuite.tasks.registry import task_manager

    tm = task_manager(extra_dirs=spec.include_path)
    _preload_tasks(p.task_names, tm, spec.limit)
    from evalsuite.reliability import check_writable

    check_writable(Path(spec.output), "--output")  # before any weight loads
    if spec.cache_dir is not None:
        check_writable(Path(spec.cache_dir), "--cache-dir")
    lm = build_lm(p)
    combined: dict[str, Any] = {}
    failure: BaseException | None = None
    for name in p.task_names:
        try:
            out = simple_evaluate(
                model=lm, tasks=[name], task_manager=tm, limit=spec.limit,
                num_fewshot=spec.num_fewshot, log_samples=True,
                apply_chat_template=p.preset.chat_template,
                fewshot_as_multiturn=p.preset.chat_template and spec.num_fewshot != 0,
                confirm_run_unsafe_code=spec.allow_code_execution, **SEEDS,
            )
        except (Exception, KeyboardInterrupt) as exc:  # keep the finished tasks
            failure = exc
            break
        if out is not None:
            _merge(combined, out)
    stats, settings = _gather_stats(lm)
    if getattr(lm, "rank", 0) != 0:
        if failure:
            raise failure
        return Path()
    if not combined.get("results"):
        if failure:
            raise failure
        raise ConfigError("no task produced results")
    meta = {
        "model": {
            "preset": p.preset.name, "backend": p.preset.backend,
            "resolved_id": _display_id(p.preset.hub_id), "revision": p.preset.revision,
            "dtype": p.preset.dtype, "family": p.preset.family,
            "chat_template": p.preset.chat_template,
            "special_tokens": lm.tokens.as_dict() if hasattr(lm, "tokens") else {},
        },
        "checkpoint": _checkpoint_fingerprint(lm),
        "settings": settings,
        "seeds": {**SEEDS, "request_seed_base": spec.seed},
        "device": _device_name(lm),
        "limit": spec.limit,
        "wall_time_s": time.time() - started,
        "argv": list(sys.argv),
        "environment": collect_environment(),
        "totals": _totals(stats),
        "requested_tasks": list(p.task_names),
        "failed": None if failure is None else f"{type(failure).__name__}: {failure}",
        "overrides": dict(spec.overrides),
        "world_size": getattr(lm, "world_size", 1),
    }
    from evalsuite.reliability import reliability_record, write_failure

    meta["reliability"] = reliability_record(lm, stats)
    try:
        run_dir = write_run_from_lm_eval(Path(spec.output), combined, meta, stats)
    except OSError as exc:
        raise write_failure(exc, Path(spec.output), meta["reliability"]) from None
    if failure:
        failure.add_note(f"the tasks finished before the failure were saved in {run_dir}")
        raise failure
    from evalsuite.reliability import raise_if_nonfinite

    raise_if_nonfinite(meta["reliability"], run_dir)
    return run_dir


def _display_id(hub_id: str) -> str:
    """Hub ids as given; paths inside the installed package as ``evalsuite/...`` (portable)."""
    path = Path(hub_id)
    package = Path(__file__).resolve().parent
    if path.is_absolute() and path.resolve().is_relative_to(package):
        return str(Path("evalsuite") / path.resolve().relative_to(package))
    return hub_id


def _checkpoint_fingerprint(lm: Any) -> dict[str, str] | None:
    ckpt = getattr(getattr(lm, "model", None), "checkpoint_dir", None)
    if ckpt is None:
        return None
    from evalsuite.models.checkpoint import fingerprint

    return {"dir": _display_id(str(ckpt)), **fingerprint(Path(ckpt))}


def _gather_stats(lm: Any) -> tuple[dict[tuple[str, int], dict], dict[str, dict]]:
    stats = {k: dict(v) for k, v in getattr(lm, "request_stats", {}).items()}
    settings = dict(getattr(lm, "settings_used", {}))
    if getattr(lm, "world_size", 1) > 1:
        gathered = lm.gather_object((stats, settings), dst=0)
        if gathered:
            stats, settings = {}, {}
            for part_stats, part_settings in gathered:
                stats.update(part_stats)
                settings.update(part_settings)
    return stats, settings


def _totals(stats: Mapping[Any, Mapping[str, float]]) -> dict[str, float]:
    """Run totals; ``generation_s`` sums the seconds of documents that generated tokens."""
    return {
        "nfe": int(sum(s.get("nfe", 0) for s in stats.values())),
        "generated_tokens": int(sum(s.get("generated_tokens", 0) for s in stats.values())),
        "generation_s": sum(s.get("seconds", 0.0) for s in stats.values()
                            if s.get("generated_tokens", 0) > 0),
    }


