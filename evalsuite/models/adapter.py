"""lm-eval model type ``llada``: a thin ``LM`` over :class:`~evalsuite.models.engine.DiffusionEngine`.

- ``loglikelihood``: the Eq. 6 Monte Carlo estimator, batched across requests.
- ``generate_until``: diffusion sampling, batched and left-padded, stop sequences applied
  after decoding; chat templates through lm-eval's ``apply_chat_template``.
- ``loglikelihood_rolling``: the bound over the whole text (empty prompt), per window.

The adapter turns lm-eval ``Instance`` objects into typed requests (with their repeat index
and resolved settings) and typed results back into what lm-eval expects; the engine does the
settings (:func:`evalsuite.settings.resolve`: model_args > generation kwargs > the paper's
table), seeding, batching, timing and forward-pass counting. Every knob of the registry
(:mod:`evalsuite.settings.knobs`) is a model_arg. Weights load on the first request, after
that call's settings are validated. ``request_cache=DIR`` keeps answered requests in a
SQLite cache keyed on everything that can change them (resume after a kill); lm-eval's own
``--use_cache`` is refused (:mod:`evalsuite.models.request_cache`). Data parallel: run under
``accelerate launch``; lm-eval splits the documents by rank and gathers through
:meth:`all_gather` and :meth:`gather_object`.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Literal

import torch
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from tqdm import tqdm

from evalsuite.errors import ConfigError
from evalsuite.models import request_cache as rcache
from evalsuite.models.engine import DiffusionEngine, RequestStats, TaskSettings
from evalsuite.models.loader import DiffusionLM, default_device, load_model
from evalsuite.models.requests import (
    GenerationRequest,
    LikelihoodRequest,
    RollingRequest,
    repeat_indices,
)
from evalsuite.settings import Overrides, TaskInfo, knob_names, parse_knobs
from evalsuite.settings.resolve import validate_overrides

_log = logging.getLogger(__name__)

ADAPTER_ARGS = ("pretrained", "dtype", "device", "batch_size", "max_length", "family", "seed",
                "max_rows", "use_task_settings", "reference_padding", "revision",
                "settings_source", "request_cache")


def pick_device(device: str | None) -> torch.device:
    """The device to run on: the one given, else CUDA when available, else the CPU.

    lm-eval's CLI passes ``cuda:0`` when ``--device`` is not given; like lm-eval's own ``hf``
    model, a CUDA device on a machine without CUDA falls back to the CPU with a warning.
    """
    if device is None:
        return torch.device(default_device())
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        _log.warning("device %s requested but CUDA is not available; running on the CPU", device)
        return torch.device("cpu")
    return torch.device(device)


def _init_distributed(device: str | None) -> tuple[int, torch.device]:
    """Join the process group that ``accelerate launch`` / ``torchrun`` describe in the env.

    gloo on CPU, nccl on CUDA; each process takes the GPU of its LOCAL_RANK.
    """
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        atexit.register(_leave_process_group)
    return dist.get_rank(), dev


def _leave_process_group() -> None:
    """Leave the process group :func:`_init_distributed` created, at interpreter exit.

    First a barrier: after lm-eval's last ``gather_object`` a non-zero rank returns while rank
    0 may still be receiving, and a rank that closes its connections then can abort ("terminate
    called without an active exception", SIGABRT, seen under ``accelerate launch`` with gloo),
    failing the launch after every result was written. Then the group is destroyed while the
    interpreter is fully alive, not during its teardown. A peer that already died only makes
    the barrier fail, which is logged."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    try:
        dist.barrier()
    except Exception as exc:  # noqa: BLE001 - leaving anyway
        _log.warning("process group barrier at exit failed (%s); leaving the group anyway", exc)
    dist.destroy_process_group()


def abandon_process_group() -> None:
    """Leave the process group at once, without the exit barrier of
    :func:`_leave_process_group`, after this rank failed: the ranks no longer run the same
    collectives, so a barrier would wait forever (and the others with it); leaving makes the
    other ranks' next collective fail, and the launcher reports the failure."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


class LLaDAEvalModel(LM):
    """lm-eval ``LM`` for the native diffusion families (``--model llada``): LLaDA, Dream,
    LLaDA-MoE and LLaDA2, dispatched on the checkpoint's ``config.json``."""

    def __init__(
        self,
        pretrained: str = "llada-tiny",
        dtype: str | None = None,
        device: str | None = None,
        batch_size: int | str = 1,
        max_length: int = 4096,
        family: str | None = None,
        seed: int = 1234,
        max_rows: int = 32,
        use_task_settings: bool = True,
        reference_padding: bool = False,
        revision: str | None = None,
        max_batch_size: int | None = None,
        settings_source: Literal["cli", "model_args"] = "model_args",
        request_cache: str | None = None,
        planned: Mapping[str, TaskSettings] | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        from evalsuite.lm_eval_plugin import install_exit_code_hook_under_lm_eval_cli
        from evalsuite.presets import resolve_model

        install_exit_code_hook_under_lm_eval_cli()  # plain `lm_eval --model llada` only

        del max_batch_size  # lm_eval's CLI passes it to every model; batches here are fixed
        unknown = set(overrides) - knob_names()
        if unknown:
            raise ConfigError(
                f"unknown llada model_args {', '.join(sorted(unknown))}; known: "
                + ", ".join(sorted({*knob_names(), *ADAPTER_ARGS}))
            )
        values = parse_knobs(overrides, settings_source)
        self.overrides = values
        settings = Overrides(values, settings_source)
        from evalsuite.families import (
            FAMILIES,
            architecture_named_in,
            architecture_of,
            architecture_of_preset,
            check_settings,
        )
        from evalsuite.presets import PRESETS

        # the architecture from config.json alone (a local directory or a preset's), so that
        # settings are refused before the name is resolved or anything loads
        guessed = (architecture_of_preset(PRESETS[pretrained]) if pretrained in PRESETS else
                   architecture_of(pretrained) or architecture_named_in(pretrained) or FAMILIES[0])
        check_settings(guessed, values, where=settings_source)
        validate_overrides(settings, guessed.name)
        self.preset = resolve_model(pretrained, family=family, dtype=dtype, revision=revision)  # type: ignore[arg-type]
        self.family = self.preset.family
        self.architecture = architecture_of_preset(self.preset)
        check_settings(self.architecture, values, where=settings_source)
        self.batch_size = int(batch_size) if str(batch_size) != "auto" else 8
        self.max_length = int(max_length)
        self.seed = int(seed)

        self._world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self._rank = 0
        self._device = pick_device(device)
        if self._world_size > 1:
            self._rank, self._device = _init_distributed(device)
        preset, dev, padding = self.preset, self._device, bool(reference_padding)

        def load() -> DiffusionLM:
            model = load_model(preset.hub_id, dtype=preset.dtype, device=dev, revision=preset.revision)
            model.network.reference_padding = padding
            return model

        self.engine = DiffusionEngine(
            load, family=self.family, seed=self.seed, overrides=settings,
            batch_size=self.batch_size, max_length=self.max_length, max_rows=int(max_rows),
            use_task_settings=bool(use_task_settings), device=self._device,
            tokenizer_loader=lambda: _read_tokenizer(preset.hub_id, preset.revision),
            request_cache=rcache.open_cache(request_cache),
            planned=planned,
            architecture=self.architecture.name,
        )
        self._checkpoint: dict[str, Any] | None = None
        self.request_stats: dict[tuple[str | None, int | None], dict[str, Any]] = defaultdict(
            lambda: {"nfe": 0, "seconds": 0.0, "generated_tokens": 0, "nonfinite": 0,
                     "generation_requests": 0, "seeds": []}
        )
        """Per (task, document): forward passes, seconds, generated tokens (up to the cut),
        NaN/inf requests, generation requests, and ``[request idx, seed]`` of each request."""
        self.request_counts: dict[str, int] = defaultdict(int)
        """Requests this process answered, per lm-eval request type (its share of the run
        under data parallel)."""

    # ----- what the runner reads -------------------------------------------------------------
    @property
    def model(self) -> DiffusionLM:
        return self.engine.model

    @property
    def tokenizer(self) -> Any:
        return self.engine.tokenizer

    @property
    def tokens(self) -> Any:
        return self.engine.model.tokens

    @property
    def task_settings(self) -> dict[str, TaskSettings]:
        """Settings (and provenance) that applied, per task."""
        return self.engine.task_settings

    @property
    def settings_used(self) -> dict[str, dict[str, Any]]:
        return {task: s.record() for task, s in self.engine.task_settings.items()}

    @property
    def request_cache(self) -> rcache.RequestCache | None:
        return self.engine.request_cache

    @property
    def halving(self) -> Any:
        """Out-of-memory halvings so far (:class:`~evalsuite.models.faults.HalvingState`)."""
        return self.engine.halving

    @property
    def truncated(self) -> dict[str, dict[str, int]]:
        """Per task: requests whose prompt was cut to the window, and tokens cut."""
        return self.engine.truncated

    @property
    def window(self) -> int | None:
        """The prompt window (None before the weights loaded: nothing was cut)."""
        return self.engine.window if self.engine.loaded else None

    def reliability(self, stats: Mapping[Any, Mapping[str, Any]] | None = None) -> Any:
        """Cache use, NaN/inf (over ``stats``, default this process's), OOM halvings and
        prompt truncation (:class:`~evalsuite.results.schema.Reliability`)."""
        from evalsuite.reliability import reliability_of

        return reliability_of(self.request_cache, self.halving.halvings, self.window,
                              self.truncated, self.request_stats if stats is None else stats)

    def checkpoint(self) -> dict[str, Any]:
        """Directory (portable form) and content fingerprint of the weights (computed once)."""
        if self._checkpoint is None:
            from pathlib import Path

            from evalsuite.models.checkpoint import fingerprint
            from evalsuite.results.provenance import display_id

            ckpt = Path(self.model.checkpoint_dir)
            self._checkpoint = {"dir": display_id(str(ckpt)), **fingerprint(ckpt)}
        return self._checkpoint

    def get_model_info(self) -> dict[str, Any]:
        """lm-eval's hook: ``simple_evaluate`` puts this into ``results["config"]``, so a plain
        ``lm_eval --model llada`` output carries the settings too; ``evalsuite run`` builds its
        record from the same facts (:func:`evalsuite.results.convert.model_facts`). This
        process's view (the runner gathers the per-request parts over ranks)."""
        from evalsuite.results.convert import MODEL_INFO_KEY
        from evalsuite.results.schema import to_plain

        return {MODEL_INFO_KEY: {
            "device": device_name(self._device),
            "checkpoint": self.checkpoint(),
            "special_tokens": self.tokens.as_dict(),
            "family": {"family": self.family, "reason": self.preset.family_reason},
            "settings": self.settings_used,
            "provenance": {t: s.provenance.as_dict() for t, s in self.task_settings.items()},
            "reliability": to_plain(self.reliability()),
            "world_size": self._world_size,
            "seed": self.seed,
            "architecture": self.architecture.name,
        }}

    # ----- lm-eval plumbing -------------------------------------------------------------
    def set_cache_hook(self, cache_hook: Any) -> None:
        """lm-eval's ``--use_cache`` ignores model_args in its key: refused (see request_cache)."""
        rcache.refuse_lm_eval_cache(cache_hook)
        self.cache_hook = cache_hook

    @property
    def tokenizer_name(self) -> str:
        return str(self.preset.hub_id).replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return getattr(self.tokenizer, "chat_template", None) or ""

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        self.engine.chat_templated = True  # e.g. no BOS before a chat prompt (Dream)
        return self.tokenizer.apply_chat_template(
            chat_history, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        if self._world_size == 1:
            return tensor
        import torch.distributed as dist

        flat = tensor.reshape(-1)
        parts = [torch.zeros_like(flat) for _ in range(self._world_size)]
        dist.all_gather(parts, flat)
        return torch.cat(parts)

    def gather_object(self, obj: Any, dst: int = 0) -> Any:
        if self._world_size == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self._world_size if self._rank == dst else None
        dist.gather_object(obj, out, dst=dst)
        return out

    def barrier(self) -> None:
        if self._world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    # ----- helpers ------------------------------------------------------------------------
    def _record(self, inst: Instance, stats: RequestStats, seed: int,
                generation: bool = False) -> None:
        entry = self.request_stats[(inst.task_name, inst.doc_id)]
        entry["nfe"] += stats.nfe
        entry["seconds"] += stats.seconds
        entry["generated_tokens"] += stats.generated_tokens
        entry["nonfinite"] += int(stats.nonfinite)
        entry["generation_requests"] += int(generation)
        entry["seeds"].append([int(inst.idx or 0), int(seed)])

    def _progress(self, total: int, desc: str) -> tuple[tqdm, Any]:
        bar = tqdm(total=total, desc=desc, disable=self._rank != 0, unit="req", dynamic_ncols=True)
        totals = {"nfe": 0}

        def step(n: int, nfe: int) -> None:
            totals["nfe"] += nfe
            bar.update(n)
            bar.set_postfix(nfe=totals["nfe"])

        return bar, step

    @staticmethod
    def _repeats(requests: list[Instance]) -> list[int]:
        return repeat_indices((r.task_name, r.doc_id, r.idx, repr(r.args)) for r in requests)

    # ----- loglikelihood ------------------------------------------------------------------
    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        typed = [
            LikelihoodRequest(r.task_name, r.doc_id, *r.args[:2],
                              config=self.engine.settings(TaskInfo(r.task_name, "loglikelihood")),  # type: ignore[arg-type]
                              repeat=rep)
            for r, rep in zip(requests, self._repeats(requests))
        ]
        self.request_counts["loglikelihood"] += len(typed)
        bar, step = self._progress(len(typed), "loglikelihood")
        outputs = self.engine.loglikelihood(typed, step)
        bar.close()
        results = []
        for inst, out in zip(requests, outputs):
            self._record(inst, out.stats, out.seed)
            results.append((out.value, out.greedy))
            if self.cache_hook is not None:
                self.cache_hook.add_partial("loglikelihood", inst.args, results[-1])
        return results

    # ----- loglikelihood_rolling ------------------------------------------------------------
    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        typed = [
            RollingRequest(r.task_name, r.doc_id, r.args[0],
                           config=self.engine.settings(TaskInfo(r.task_name, "loglikelihood_rolling")),  # type: ignore[arg-type]
                           repeat=rep)
            for r, rep in zip(requests, self._repeats(requests))
        ]
        self.request_counts["loglikelihood_rolling"] += len(typed)
        bar, step = self._progress(len(typed), "loglikelihood_rolling")
        outputs = self.engine.loglikelihood_rolling(typed, step)
        bar.close()
        for inst, out in zip(requests, outputs):
            self._record(inst, out.stats, out.seed)
        return [out.value for out in outputs]

    # ----- generate_until -----------------------------------------------------------------
    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        typed: list[GenerationRequest] = []
        for r, rep in zip(requests, self._repeats(requests)):
            context, gen_kwargs = r.args[0], dict(r.args[1] if len(r.args) > 1 else {})
            until = gen_kwargs.get("until") or []
            until = (until,) if isinstance(until, str) else tuple(until)
            config = self.engine.settings(TaskInfo(r.task_name, "generate_until"), gen_kwargs)
            typed.append(GenerationRequest(r.task_name, r.doc_id, context, until, config, rep))  # type: ignore[arg-type]
        self.request_counts["generate_until"] += len(typed)
        bar, step = self._progress(len(typed), "generate_until")
        outputs = self.engine.generate(typed, step)
        bar.close()
        texts = []
        for inst, out in zip(requests, outputs):
            self._record(inst, out.stats, out.seed, generation=True)
            texts.append(out.text)
            if self.cache_hook is not None:
                self.cache_hook.add_partial("generate_until", inst.args, out.text)
        return texts


def device_name(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H100 80GB HBM3)`` or ``cpu``."""
    text = str(device)
    if text.startswith("cuda") and torch.cuda.is_available():
        return f"{text} ({torch.cuda.get_device_name(device)})"
    return text


def _read_tokenizer(hub_id: str, revision: str | None) -> Any | None:
    """The checkpoint's tokenizer without its weights (None: the loader reports it)."""
    from evalsuite.models.checkpoint import resolve_checkpoint_dir
    from evalsuite.models.loader import load_tokenizer

    return load_tokenizer(resolve_checkpoint_dir(hub_id, revision))
