"""lm-eval model type ``llada``: masked diffusion LMs behind lm-eval's three request types.

- ``loglikelihood``: the Eq. 6 Monte Carlo estimator, batched across requests.
- ``generate_until``: diffusion sampling, batched and left-padded, stop sequences applied
  after decoding; chat templates through lm-eval's ``apply_chat_template``.
- ``loglikelihood_rolling``: the bound over the whole text (empty prompt), per window.

Settings for a request: explicit model_args override the task YAML's ``generation_kwargs``,
which override the per-task table of :mod:`evalsuite.tasks.settings` for the model family.
The adapter knows nothing else about tasks. Data parallel: run under ``accelerate launch``;
lm-eval splits the documents by rank and gathers through :meth:`all_gather` and
:meth:`gather_object`.
"""

from __future__ import annotations

import functools
import os
import time
from collections import defaultdict
from typing import Any

import torch
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from tqdm import tqdm

from evalsuite.config import EstimatorConfig, SamplerConfig, split_settings
from evalsuite.diffusion.likelihood import estimate_loglikelihood
from evalsuite.diffusion.sampler import diffusion_generate
from evalsuite.errors import ConfigError
from evalsuite.models import request_cache as rcache
from evalsuite.models.faults import HalvingState, fit_to_window, halving_levels, map_halving
from evalsuite.models.loader import DiffusionLM, default_device, load_model
from evalsuite.models.requests import (
    GenerationRequest,
    LikelihoodRequest,
    fill_lengths,
    merge_settings,
    request_seed,
    split_context,
    truncate_stop,
)

OVERRIDE_KEYS = (
    "gen_length", "steps", "block_length", "temperature", "cfg_scale", "remasking",
    "logits_eos_inf", "confidence_eos_eot_inf", "mc_num", "decoding", "threshold",
    "cache",
)
DEFAULT_GEN_LENGTH = 256


def task_settings(task: str | None, family: str) -> dict[str, Any]:
    """Per-task diffusion settings for the family, or {} for unknown tasks."""
    return dict(_task_settings(task, family))


@functools.lru_cache(maxsize=1024)
def _task_settings(task: str | None, family: str) -> tuple[tuple[str, Any], ...]:
    if not task:
        return ()
    try:
        from evalsuite.tasks.settings import diffusion_settings
    except ImportError:  # pragma: no cover - task package absent
        return ()
    return tuple(diffusion_settings(task, family).items())


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
    return dist.get_rank(), dev


class LLaDAEvalModel(LM):
    """lm-eval ``LM`` for LLaDA-family checkpoints (``--model llada``)."""

    def __init__(
        self,
        pretrained: str = "llada-tiny",
        dtype: str | None = None,
        device: str | None = None,
        batch_size: int | str = 1,
        max_length: int = 4096,
        family: str | None = None,
        seed: int = 1234,
        mc_batch_size: int = 16,
        max_rows: int = 32,
        use_task_settings: bool = True,
        reference_padding: bool = False,
        revision: str | None = None,
        max_batch_size: int | None = None,
        request_cache: str | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        from evalsuite.presets import resolve_model

        del max_batch_size  # lm_eval's CLI passes it to every model; batches here are fixed

        unknown = set(overrides) - set(OVERRIDE_KEYS)
        if unknown:
            raise ConfigError(
                f"unknown llada model_args {', '.join(sorted(unknown))}; known: "
                + ", ".join(sorted({*OVERRIDE_KEYS, "pretrained", "dtype", "device", "batch_size",
                                    "max_length", "family", "seed", "mc_batch_size", "max_rows",
                                    "use_task_settings", "reference_padding", "revision",
                                    "request_cache"}))
            )
        self.overrides = {k: v for k, v in overrides.items() if v is not None}
        sampler_part, estimator_part = split_settings(self.overrides)
        SamplerConfig(**fill_lengths(sampler_part, DEFAULT_GEN_LENGTH))  # validate early
        if "mc_num" in estimator_part:
            self._estimator(estimator_part["mc_num"], estimator_part.get("cfg_scale", 0.0),
                            int(mc_batch_size))
        self.preset = resolve_model(pretrained, family=family, dtype=dtype, revision=revision)  # type: ignore[arg-type]
        self.family = self.preset.family
        self.batch_size = int(batch_size) if str(batch_size) != "auto" else 8
        self.max_length = int(max_length)
        self.seed = int(seed)
        self.mc_batch_size = int(mc_batch_size)
        self.max_rows = int(max_rows)
        self.use_task_settings = bool(use_task_settings)

        self._world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self._rank = 0
        self._device = torch.device(device or default_device())
        if self._world_size > 1:
            self._rank, self._device = _init_distributed(device)
        self.model: DiffusionLM = load_model(
            self.preset.hub_id, dtype=self.preset.dtype, device=self._device,
            revision=self.preset.revision,
        )
        self.model.network.reference_padding = bool(reference_padding)
        if self.model.tokenizer is None:
            raise ConfigError(
                f"{self.model.checkpoint_dir}: no tokenizer files; lm-eval needs text in and out "
                "(use evalsuite.generate / evalsuite.loglikelihood for token-level work)"
            )
        self.tokenizer = self.model.tokenizer
        self.tokens = self.model.tokens
        self.request_stats: dict[tuple[str | None, int | None], dict[str, float]] = defaultdict(
            lambda: {"nfe": 0, "seconds": 0.0, "generated_tokens": 0, "nonfinite": 0}
        )
        self.settings_used: dict[str, dict[str, Any]] = {}
        self.window = min(self.max_length, int(self.model.network.config.max_sequence_length))
        self.halving = HalvingState()
        self.truncated: dict[str, dict[str, int]] = {}
        self.request_cache = rcache.open_cache(request_cache)

    # ----- lm-eval plumbing -------------------------------------------------------------
    def set_cache_hook(self, cache_hook: Any) -> None:
        """lm-eval's ``--use_cache`` ignores model_args in its key: refused (see request_cache)."""
        rcache.refuse_lm_eval_cache(cache_hook)
        self.cache_hook = cache_hook

    @property
    def tokenizer_name(self) -> str:
        return str(self.model.checkpoint_dir).replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return getattr(self.tokenizer, "chat_template", None) or ""

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
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
    def _encode(self, text: str) -> list[int]:
        bos = getattr(self.tokenizer, "bos_token", None)
        add_special = not (bos and text.startswith(bos))
        return list(self.tokenizer(text, add_special_tokens=add_special)["input_ids"])

    def _settings(self, task: str | None, gen_kwargs: dict[str, Any]) -> dict[str, Any]:
        base = task_settings(task, self.family) if self.use_task_settings else {}
        return merge_settings(base, gen_kwargs, self.overrides)

    @staticmethod
    def _estimator(mc_num: Any, cfg_scale: Any, mc_batch_size: int) -> EstimatorConfig:
        """Estimator settings; groups of ``mc_batch_size`` rows, fewer when mc_num is smaller."""
        mc_num = int(mc_num)
        return EstimatorConfig(mc_num=mc_num, batch_size=min(mc_batch_size, max(mc_num, 1)),
                               cfg_scale=float(cfg_scale))

    def _record(self, task: str | None, doc_id: int | None, nfe: int, seconds: float,
                generated: int = 0, nonfinite: bool = False) -> None:
        stats = self.request_stats[(task, doc_id)]
        stats["nfe"] += nfe
        stats["seconds"] += seconds
        stats["generated_tokens"] += generated
        stats["nonfinite"] += int(nonfinite)

    def _identity(self) -> dict[str, Any]:
        """What of the model can change an answer (part of every request-cache key)."""
        if not hasattr(self, "_identity_cache"):
            self._identity_cache = rcache.model_identity(
                self.model.checkpoint_dir, self.model.dtype, self._device, window=self.window,
                reference_padding=bool(self.model.network.reference_padding))
        return self._identity_cache

    def _note_truncation(self, task: str | None, dropped: int) -> None:
        if dropped > 0:
            entry = self.truncated.setdefault(task or "", {"requests": 0, "tokens": 0})
            entry["requests"] += 1
            entry["tokens"] += dropped

    def _progress(self, total: int, desc: str) -> tqdm:
        return tqdm(total=total, desc=desc, disable=self._rank != 0, unit="req", dynamic_ncols=True)

    # ----- loglikelihood ------------------------------------------------------------------
    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        typed = [LikelihoodRequest(r.task_name, r.doc_id, *r.args[:2]) for r in requests]
        groups: dict[tuple[int, float], list[int]] = defaultdict(list)
        configs: dict[tuple[int, float], EstimatorConfig] = {}
        key_settings: list[dict[str, Any]] = []
        for i, req in enumerate(typed):
            settings = self._settings(req.task, {})
            config = self._estimator(settings.get("mc_num", 128), settings.get("cfg_scale", 0.0),
                                     self.mc_batch_size)
            key = (config.mc_num, config.cfg_scale)
            configs[key] = config
            groups[key].append(i)
            key_settings.append({**config.as_dict(), "estimator": "eq6-stratified"})
            if req.task:
                self.settings_used.setdefault(req.task, {**config.as_dict(), "estimator": "eq6-stratified"})
        results: list[tuple[float, bool]] = [(0.0, False)] * len(typed)
        bar = self._progress(len(typed), "loglikelihood")
        lookup = rcache.Lookup.build(
            self.request_cache, "loglikelihood", self._identity,
            [{"context": r.context, "continuation": r.continuation} for r in typed],
            key_settings, self.seed)
        for i, answer in lookup.hits.items():
            results[i] = (float(answer.value[0]), bool(answer.value[1]))
            self._record(typed[i].task, typed[i].doc_id, answer.nfe, answer.seconds,
                         nonfinite=answer.nonfinite)
        bar.update(len(lookup.hits))
        encoded = {i: self._split_encode(typed[i]) for i in lookup.missing}
        for key, all_members in groups.items():
            members = [i for i in all_members if i in encoded]

            def run(chunk: list[int], level: int, key: tuple[int, float] = key) -> list[Any]:
                pairs = [(torch.tensor(encoded[i][0]), torch.tensor(encoded[i][1])) for i in chunk]
                gens = [torch.Generator().manual_seed(lookup.seed(i, request_seed, typed[i].context,
                                                                  typed[i].continuation))
                        for i in chunk]
                return estimate_loglikelihood(
                    self.model.network, pairs, config=configs[key], mask_id=self.tokens.mask_id,
                    generators=gens, max_rows=max(1, self.max_rows >> level),
                )

            t0 = [time.perf_counter()]

            def done(chunk: list[int], out: list[Any]) -> None:
                seconds = (time.perf_counter() - t0[0]) / len(chunk)
                stored = []
                for i, res in zip(chunk, out):
                    results[i] = (res.value, bool(res.greedy))
                    self._record(typed[i].task, typed[i].doc_id, res.nfe, seconds,
                                 nonfinite=res.nonfinite)
                    stored.append((i, rcache.CachedAnswer(
                        list(results[i]), res.nfe, seconds, 0, res.nonfinite)))
                    if self.cache_hook is not None:
                        self.cache_hook.add_partial("loglikelihood", requests[i].args, results[i])
                lookup.store(stored)
                bar.update(len(chunk))
                bar.set_postfix(nfe=sum(r.nfe for r in out))
                t0[0] = time.perf_counter()

            map_halving(members, self.batch_size * 8, run, done, self.halving,
                        halving_levels(self.batch_size * 8, self.max_rows))
        bar.close()
        return results

    def _split_encode(self, req: LikelihoodRequest) -> tuple[list[int], list[int]]:
        context, continuation = split_context(req.context, req.continuation)
        whole = self._encode(context + continuation)
        ctx = self._encode(context)
        cont = whole[len(ctx):]
        where = f"task {req.task} doc {req.doc_id}"
        if not cont:
            raise ConfigError(
                f"{where}: the continuation {req.continuation!r} has no tokens (a zero-length "
                "answer has no likelihood to estimate); fix the task's doc_to_choice / "
                "doc_to_target so that every answer is non-empty")
        fitted = fit_to_window(ctx, len(cont), self.window, where)
        self._note_truncation(req.task, fitted.dropped)
        return fitted.prompt, cont

    # ----- loglikelihood_rolling ------------------------------------------------------------
    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        out: list[float] = []
        bar = self._progress(len(requests), "loglikelihood_rolling")
        for req in requests:
            t0 = time.perf_counter()
            (text,) = req.args[:1]
            ids = self._encode(text)
            settings = self._settings(req.task_name, {})
            config = self._estimator(settings.get("mc_num", 128), 0.0, self.mc_batch_size)
            prefix = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
            window = self.max_length - len(prefix)
            total, nfe, bad = 0.0, 0, False
            pairs, gens = [], []
            for start in range(0, len(ids), window):
                chunk = ids[start:start + window]
                pairs.append((torch.tensor(prefix, dtype=torch.long), torch.tensor(chunk)))
                gens.append(torch.Generator().manual_seed(request_seed(self.seed, text, start)))
            for res in estimate_loglikelihood(self.model.network, pairs, config=config,
                                              mask_id=self.tokens.mask_id, generators=gens,
                                              max_rows=self.max_rows):
                total += res.value
                nfe += res.nfe
                bad |= res.nonfinite
            out.append(total)
            self._record(req.task_name, req.doc_id, nfe, time.perf_counter() - t0, nonfinite=bad)
            bar.update(1)
        bar.close()
        return out

    # ----- generate_until -----------------------------------------------------------------
    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        typed: list[GenerationRequest] = []
        for r in requests:
            context, gen_kwargs = r.args[0], dict(r.args[1] if len(r.args) > 1 else {})
            until = gen_kwargs.get("until") or []
            until = (until,) if isinstance(until, str) else tuple(until)
            settings = fill_lengths(self._settings(r.task_name, gen_kwargs), DEFAULT_GEN_LENGTH)
            sampler, _ = split_settings({k: v for k, v in settings.items() if k != "mc_num"})
            config = SamplerConfig(**sampler)  # validates
            typed.append(GenerationRequest(r.task_name, r.doc_id, context, until,
                                           tuple(sorted(config.as_dict().items()))))
            if r.task_name:
                self.settings_used.setdefault(r.task_name, config.as_dict())
        outputs: list[str] = [""] * len(typed)
        bar = self._progress(len(typed), "generate_until")
        lookup = rcache.Lookup.build(
            self.request_cache, "generate_until", self._identity,
            [{"context": req.context, "until": list(req.until),
              "gen_kwargs": dict(r.args[1]) if len(r.args) > 1 else {}}
             for r, req in zip(requests, typed)],
            [dict(req.settings) for req in typed], self.seed)
        for i, answer in lookup.hits.items():
            outputs[i] = str(answer.value)
            self._record(typed[i].task, typed[i].doc_id, answer.nfe, answer.seconds,
                         answer.generated_tokens, answer.nonfinite)
        bar.update(len(lookup.hits))
        by_settings: dict[tuple, list[int]] = defaultdict(list)
        for i in lookup.missing:
            by_settings[typed[i].settings].append(i)
        nfe_total = 0
        t_start = time.perf_counter()
        for settings, members in by_settings.items():
            config = SamplerConfig(**dict(settings))
            encoded = {}
            for i in members:
                fitted = fit_to_window(self._encode(typed[i].context), config.gen_length,
                                       self.window, f"task {typed[i].task} doc {typed[i].doc_id}")
                self._note_truncation(typed[i].task, fitted.dropped)
                encoded[i] = fitted.prompt
            members = sorted(members, key=lambda i: -len(encoded[i]))

            def run(chunk: list[int], level: int, config: SamplerConfig = config,
                    encoded: dict[int, list[int]] = encoded) -> list[Any]:
                texts, nfe, bad = self._generate_batch(
                    [encoded[i] for i in chunk], [typed[i] for i in chunk], config,
                    [lookup.seed(i, request_seed, typed[i].context, typed[i].settings)
                     for i in chunk])
                return [(text, nfe, flag) for text, flag in zip(texts, bad)]

            t0 = [time.perf_counter()]

            def done(chunk: list[int], out: list[Any], config: SamplerConfig = config) -> None:
                nonlocal nfe_total
                seconds = (time.perf_counter() - t0[0]) / len(chunk)
                stored = []
                for i, (text, nfe, flag) in zip(chunk, out):
                    outputs[i] = text
                    self._record(typed[i].task, typed[i].doc_id, nfe, seconds, config.gen_length,
                                 flag)
                    stored.append((i, rcache.CachedAnswer(text, nfe, seconds, config.gen_length,
                                                          flag)))
                    if self.cache_hook is not None:
                        self.cache_hook.add_partial("generate_until", requests[i].args, text)
                    nfe_total += nfe
                lookup.store(stored)
                bar.update(len(chunk))
                elapsed = time.perf_counter() - t_start
                bar.set_postfix(nfe=nfe_total,
                                tok_s=f"{bar.n * config.gen_length / max(elapsed, 1e-9):.1f}")
                t0[0] = time.perf_counter()

            map_halving(members, self.batch_size, run, done, self.halving,
                        halving_levels(self.batch_size))
        bar.close()
        return outputs

    def _generate_batch(self, prompts: list[list[int]], reqs: list[GenerationRequest],
                        config: SamplerConfig, seeds: list[int]) -> tuple[list[str], int, tuple[bool, ...]]:
        width = max(len(p) for p in prompts)
        pad = self.tokens.pad_id if self.tokens.pad_id is not None else self.tokens.eos_id or 0
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[row, width - len(p):] = 1
        gens = [torch.Generator(device=self._device).manual_seed(seed) for seed in seeds]
        result = diffusion_generate(
            self.model.network, ids.to(self._device),
            mask.to(self._device) if len(prompts) > 1 else None, config=config,
            mask_id=self.tokens.mask_id, eos_id=self.tokens.eos_id, eot_id=self.tokens.eot_id,
            generator=gens,
        )
        stops = {t for t in (self.tokens.eos_id, self.tokens.eot_id) if t is not None}
        texts = []
        for row, req in zip(result.generated.tolist(), reqs):
            end = next((j for j, t in enumerate(row) if t in stops), len(row))
            text = self.tokenizer.decode(row[:end], skip_special_tokens=True)
            texts.append(truncate_stop(text, req.until))
        per_sample_nfe = result.nfe * (2 if config.cfg_scale > 0 else 1)
        bad = result.nonfinite or (False,) * len(reqs)
        return texts, per_sample_nfe, tuple(bad)
