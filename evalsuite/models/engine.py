"""The diffusion engine: one object that turns typed requests into typed results.

It owns everything the lm-eval adapter used to do by hand: the settings of each request
(through :func:`evalsuite.settings.resolve`, with provenance), the seed of each request
(run seed, request content, settings and repeat index), batching, timing and forward-pass
counting. Weights load lazily, on the first request that needs them, after the settings of
every request in the call have been resolved, so invalid settings fail before anything loads.
The lm-eval ``LM`` (:mod:`evalsuite.models.adapter`) is a thin layer over it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from evalsuite.config import EstimatorConfig, SamplerConfig
from evalsuite.errors import ConfigError
from evalsuite.models.requests import (
    GenerationRequest,
    LikelihoodRequest,
    RollingRequest,
    request_seed,
    split_context,
    truncate_stop,
)
from evalsuite.settings import Overrides, Provenance, TaskInfo, resolve, settings_record

_log = logging.getLogger(__name__)

#: Sampler settings that cannot change a sampled token, left out of the request seed.
SEED_NEUTRAL_SETTINGS = frozenset({"early_exit"})


@dataclass(frozen=True)
class RequestStats:
    """Cost of one request."""

    nfe: int
    """Network forward passes (a CFG pair counts 2)."""
    seconds: float
    """Wall time attributed to the request (its share of its batch)."""
    generated_tokens: int = 0


@dataclass(frozen=True)
class LikelihoodOutput:
    """Result of one loglikelihood request."""

    value: float
    greedy: bool
    seed: int
    stats: RequestStats


@dataclass(frozen=True)
class GenerationOutput:
    """Result of one generation request."""

    text: str
    seed: int
    stats: RequestStats


@dataclass(frozen=True)
class RollingOutput:
    """Result of one loglikelihood_rolling request (sum over windows)."""

    value: float
    stats: RequestStats


@dataclass(frozen=True)
class TaskSettings:
    """The settings that applied to a task's requests, and where each came from."""

    config: SamplerConfig | EstimatorConfig
    provenance: Provenance

    def record(self) -> dict[str, Any]:
        return settings_record(self.config)


class DiffusionEngine:
    """Settings, seeds, batching, timing and NFE counting over a lazily loaded model."""

    def __init__(
        self,
        loader: Callable[[], Any],
        *,
        family: str,
        seed: int,
        overrides: Overrides,
        batch_size: int = 1,
        max_length: int = 4096,
        max_rows: int = 32,
        use_task_settings: bool = True,
        device: torch.device | None = None,
        tokenizer_loader: Callable[[], Any] | None = None,
    ) -> None:
        self._loader = loader
        self._tokenizer_loader = tokenizer_loader
        self._model: Any | None = None
        self._tokenizer: Any | None = None
        self.family = family
        self.seed = int(seed)
        self.overrides = overrides
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.max_rows = int(max_rows)
        self.use_task_settings = bool(use_task_settings)
        self.device = device or torch.device("cpu")
        self.task_settings: dict[str, TaskSettings] = {}
        self._resolved: dict[tuple, tuple[Any, Provenance]] = {}
        self._warned: set[tuple[str | None, str]] = set()

    # ----- loading -----------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> Any:
        """The :class:`~evalsuite.models.loader.DiffusionLM` (loaded on first access)."""
        if self._model is None:
            self._model = self._loader()
            if self._model.tokenizer is None:
                raise ConfigError(
                    f"{self._model.checkpoint_dir}: no tokenizer files; lm-eval needs text in "
                    "and out (use evalsuite.generate / evalsuite.loglikelihood for token-level "
                    "work)")
            self._tokenizer = self._model.tokenizer
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The tokenizer; read without the weights when a tokenizer loader was given."""
        if self._tokenizer is None:
            if self._tokenizer_loader is not None:
                self._tokenizer = self._tokenizer_loader()
            if self._tokenizer is None:
                return self.model.tokenizer
        return self._tokenizer

    # ----- settings ----------------------------------------------------------------------
    def settings(self, task: TaskInfo, gen_kwargs: Mapping[str, Any] | None = None
                 ) -> SamplerConfig | EstimatorConfig:
        """Resolve (cached) and remember the settings of a request of ``task``."""
        kwargs = {k: v for k, v in (gen_kwargs or {}).items() if k != "until"}
        key = (task, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        if key not in self._resolved:
            self._resolved[key] = resolve(task, self.family, kwargs, self.overrides,
                                          use_paper_table=self.use_task_settings)
        config, provenance = self._resolved[key]
        for name, value in provenance.ignored_gen_kwargs.items():
            if (task.name, name) not in self._warned:
                self._warned.add((task.name, name))
                _log.warning("task %s: generation kwarg %s=%r is not supported by the diffusion "
                             "sampler and is ignored (recorded in the run)", task.name, name, value)
        if task.name:
            self.task_settings.setdefault(task.name, TaskSettings(config, provenance))
        return config

    # ----- helpers -------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        tok = self.tokenizer
        bos = getattr(tok, "bos_token", None)
        add_special = not (bos and text.startswith(bos))
        return list(tok(text, add_special_tokens=add_special)["input_ids"])

    def _split_encode(self, req: LikelihoodRequest) -> tuple[list[int], list[int]]:
        context, continuation = split_context(req.context, req.continuation)
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        cont = whole[len(ctx):]
        if not cont:
            raise ConfigError(f"task {req.task} doc {req.doc_id}: the continuation "
                              f"{req.continuation!r} has no tokens")
        overflow = len(ctx) + len(cont) - self.max_length
        if overflow > 0:
            ctx = ctx[overflow:]
        return ctx, cont

    @staticmethod
    def _seed_parts(repeat: int) -> tuple[int, ...]:
        """The repeat index joins the seed from the second repeat on, so that repeat 0 keeps
        the seeds of earlier versions (and of runs without repeats)."""
        return (repeat,) if repeat else ()

    def likelihood_seed(self, req: LikelihoodRequest) -> int:
        # under the auto design the choices of one question (one context) share their random
        # numbers (common random numbers): their difference, which decides accuracy, varies less
        crn = req.config.estimator == "auto"
        continuation = "" if crn else req.continuation
        return request_seed(self.seed, req.context, continuation, *self._seed_parts(req.repeat))

    def generation_seed(self, req: GenerationRequest) -> int:
        # early_exit changes no draw (an exited row keeps the tokens it would have had), so it
        # stays out of the seed: on and off sample the same noise
        settings = tuple(sorted((k, v) for k, v in req.config.as_dict().items()
                                if k not in SEED_NEUTRAL_SETTINGS))
        return request_seed(self.seed, req.context, settings, *self._seed_parts(req.repeat))

    # ----- loglikelihood -------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[LikelihoodRequest],
                      progress: Callable[[int, int], None] | None = None) -> list[LikelihoodOutput]:
        from evalsuite.diffusion.likelihood import estimate_loglikelihood

        groups: dict[EstimatorConfig, list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            groups[req.config].append(i)
        out: list[LikelihoodOutput | None] = [None] * len(requests)
        if not requests:
            return []
        model = self.model
        chunk_size = self.batch_size * 8
        for config, members in groups.items():
            for start in range(0, len(members), chunk_size):
                chunk = members[start:start + chunk_size]
                t0 = time.perf_counter()
                pairs, gens, seeds = [], [], []
                for i in chunk:
                    ctx, cont = self._split_encode(requests[i])
                    pairs.append((torch.tensor(ctx), torch.tensor(cont)))
                    seeds.append(self.likelihood_seed(requests[i]))
                    gens.append(torch.Generator().manual_seed(seeds[-1]))
                results = estimate_loglikelihood(model.network, pairs, config=config,
                                                 mask_id=model.tokens.mask_id, generators=gens,
                                                 max_rows=self.max_rows)
                seconds = (time.perf_counter() - t0) / len(chunk)
                for i, seed, res in zip(chunk, seeds, results):
                    out[i] = LikelihoodOutput(res.value, bool(res.greedy), seed,
                                              RequestStats(res.nfe, seconds))
                if progress:
                    progress(len(chunk), sum(r.nfe for r in results))
        return [o for o in out if o is not None]

    # ----- loglikelihood_rolling -------------------------------------------------------------
    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Callable[[int, int], None] | None = None) -> list[RollingOutput]:
        from evalsuite.diffusion.likelihood import estimate_loglikelihood

        outputs: list[RollingOutput] = []
        if not requests:
            return outputs
        model = self.model
        bos = self.tokenizer.bos_token_id
        prefix = [bos] if bos is not None else []
        window = self.max_length - len(prefix)
        for req in requests:
            t0 = time.perf_counter()
            ids = self.encode(req.text)
            config = req.config.replace(cfg_scale=0.0)  # no prompt to guide against
            pairs, gens = [], []
            for start in range(0, len(ids), window):
                pairs.append((torch.tensor(prefix, dtype=torch.long),
                              torch.tensor(ids[start:start + window])))
                gens.append(torch.Generator().manual_seed(request_seed(
                    self.seed, req.text, start, *self._seed_parts(req.repeat))))
            results = estimate_loglikelihood(model.network, pairs, config=config,
                                             mask_id=model.tokens.mask_id, generators=gens,
                                             max_rows=self.max_rows)
            nfe = sum(r.nfe for r in results)
            outputs.append(RollingOutput(sum(r.value for r in results),
                                         RequestStats(nfe, time.perf_counter() - t0)))
            if progress:
                progress(1, nfe)
        return outputs

    # ----- generation ------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest],
                 progress: Callable[[int, int], None] | None = None) -> list[GenerationOutput]:
        from evalsuite.diffusion.stopping import length_buckets

        out: list[GenerationOutput | None] = [None] * len(requests)
        if not requests:
            return []
        by_config: dict[SamplerConfig, list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            by_config[req.config].append(i)
        for config in by_config:
            if self.max_length - config.gen_length <= 0:
                raise ConfigError(f"gen_length {config.gen_length} leaves no room for the prompt "
                                  f"within max_length {self.max_length}")
        self.model  # noqa: B018 - load the weights now that every setting is valid
        for config, members in by_config.items():
            limit = self.max_length - config.gen_length
            encoded = {i: self.encode(requests[i].context) for i in members}
            # length buckets stream through batch_size slots: a row that finishes, or exits
            # early, hands its slot to the next request of the bucket
            for bucket in length_buckets([len(encoded[i]) for i in members], self.batch_size):
                chunk = [members[j] for j in bucket]
                t0 = time.perf_counter()
                seeds = [self.generation_seed(requests[i]) for i in chunk]
                texts, nfes = self._generate_batch([encoded[i][-limit:] for i in chunk],
                                                   [requests[i] for i in chunk], seeds, config)
                seconds = (time.perf_counter() - t0) / len(chunk)
                for i, seed, text, nfe in zip(chunk, seeds, texts, nfes):
                    out[i] = GenerationOutput(text, seed, RequestStats(nfe, seconds, config.gen_length))
                if progress:
                    progress(len(chunk), sum(nfes))
        return [o for o in out if o is not None]

    def _generate_batch(self, prompts: list[list[int]], reqs: list[GenerationRequest],
                        seeds: list[int], config: SamplerConfig) -> tuple[list[str], list[int]]:
        """Texts and per-request forward passes (a CFG pair counts 2) for one length bucket,
        ``batch_size`` rows at a time."""
        from evalsuite.diffusion.sampler import diffusion_generate
        from evalsuite.diffusion.stopping import StopRule

        model = self.model
        tokens = model.tokens
        width = max(len(p) for p in prompts)
        pad = tokens.pad_id if tokens.pad_id is not None else tokens.eos_id or 0
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[row, width - len(p):] = 1
        gens = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        stops = {t for t in (tokens.eos_id, tokens.eot_id) if t is not None}
        decode = functools.partial(self.tokenizer.decode, skip_special_tokens=True)
        # per request: stop at its first `until` string (decided on decoded text), EOS or EoT
        rules = [StopRule(stop_ids=frozenset(stops), until=r.until, decode=decode) for r in reqs]
        result = diffusion_generate(
            model.network, ids.to(self.device),
            mask.to(self.device) if len(prompts) > 1 else None, config=config,
            mask_id=tokens.mask_id, eos_id=tokens.eos_id, eot_id=tokens.eot_id, generator=gens,
            stop=rules, batch_size=self.batch_size,
        )
        texts = []
        for row, req, exited in zip(result.generated.tolist(), reqs, result.exited):
            cut = stops | {tokens.mask_id} if exited else stops  # exited: the committed prefix
            end = next((j for j, t in enumerate(row) if t in cut), len(row))
            texts.append(truncate_stop(decode(row[:end]), req.until))
        per_pass = 2 if config.cfg_scale > 0 else 1
        return texts, [n * per_pass for n in result.row_nfe]
