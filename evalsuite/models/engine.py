"""The diffusion engine: one object that turns typed requests into typed results.

It owns everything the lm-eval adapter used to do by hand: the settings of each request
(through :func:`evalsuite.settings.resolve`, with provenance), the seed of each request
(run seed, request content, settings and repeat index), batching, timing and forward-pass
counting. Weights load lazily, on the first request that needs them, after the settings of
every request in the call have been resolved, so invalid settings fail before anything loads.
The lm-eval ``LM`` (:mod:`evalsuite.models.adapter`) is a thin layer over it.

Reliability (:mod:`evalsuite.models.request_cache`, :mod:`evalsuite.models.faults`): with a
request cache, answered requests are looked up first and the computed ones stored as they
finish (a likelihood batch at a time; a generated row as soon as it is final), so a killed run
resumes; a CUDA out-of-memory error halves the batch and retries; prompts longer than the
window are cut from the left and counted; NaN/inf logits are flagged per request.
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

from evalsuite.settings.config import EstimatorConfig, SamplerConfig
from evalsuite.errors import ConfigError
from evalsuite.models import request_cache as rcache
from evalsuite.models.faults import HalvingState, fit_to_window, halving_levels, map_halving
from evalsuite.models.requests import (
    GenerationRequest,
    LikelihoodRequest,
    RollingRequest,
    request_seed,
    split_context,
    tokens_to_cut,
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
    """Tokens of the answer: up to the cut (first stop string, EOS or EoT), not the
    ``gen_length`` answer slots (0 for likelihood requests)."""
    nonfinite: bool = False
    """Some logits computed for the request were NaN or infinite: its answer is not
    trustworthy."""


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
    seed: int
    """Seed of the first window (the window at offset ``s`` uses ``request_seed(run seed,
    text, s[, repeat])``)."""
    stats: RequestStats


@dataclass(frozen=True)
class TaskSettings:
    """The settings that applied to a task's requests, and where each came from."""

    config: SamplerConfig | EstimatorConfig
    provenance: Provenance
    architecture: str | None = None
    """The model family whose knobs are recorded (None: read from the config)."""

    def record(self) -> dict[str, Any]:
        return settings_record(self.config, self.architecture)


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
        request_cache: rcache.RequestCache | None = None,
        planned: Mapping[str, TaskSettings] | None = None,
        architecture: str = "llada",
    ) -> None:
        from evalsuite.families import family_named

        self.architecture = family_named(architecture)
        """The model family (:mod:`evalsuite.families`): its settings, estimator and sampler."""
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
        self.request_cache = request_cache
        self.halving = HalvingState()
        self.truncated: dict[str, dict[str, int]] = {}
        """Per task: requests whose prompt was cut to the window, and tokens cut."""
        self._identity: dict[str, Any] | None = None
        self.planned = dict(planned or {})
        self.chat_templated = False
        """Whether lm-eval rendered the prompts with the chat template (set by the adapter)."""
        """Per task: the settings the runner's plan decided, with the provenance it knows
        (the task YAML apart from ``--gen_kwargs``). A request whose resolved settings equal
        the plan's records the plan's provenance; the decision itself is made here."""

    # ----- loading -----------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> Any:
        """The :class:`~evalsuite.models.loader.DiffusionLM` (loaded on first access)."""
        if self._model is None:
            self._model = self._loader()
            loaded = getattr(self._model, "family", None)
            if loaded is not None and loaded.name != self.architecture.name:
                raise ConfigError(
                    f"{self._model.checkpoint_dir}: config.json is a {loaded.name} model but the "
                    f"settings were resolved for {self.architecture.name}; pass a local "
                    "checkpoint directory so its architecture is read before loading")
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

    @property
    def window(self) -> int:
        """Tokens a request may span: ``min(max_length, the checkpoint's max_sequence_length)``."""
        limit = getattr(getattr(self.model.network, "config", None), "max_sequence_length", None)
        return self.max_length if limit is None else min(self.max_length, int(limit))

    def identity(self) -> dict[str, Any]:
        """What of the model can change an answer (part of every request-cache key)."""
        if self._identity is None:
            model = self.model
            self._identity = rcache.model_identity(
                model.checkpoint_dir, model.dtype, self.device, window=self.window,
                reference_padding=bool(getattr(model.network, "reference_padding", False)))
        return self._identity

    def _note_truncation(self, task: str | None, dropped: int) -> None:
        if dropped > 0:
            entry = self.truncated.setdefault(task or "", {"requests": 0, "tokens": 0})
            entry["requests"] += 1
            entry["tokens"] += dropped

    def _lookup(self, kind: str, requests: Sequence[Mapping[str, Any]],
                settings: Sequence[Mapping[str, Any]], repeats: Sequence[int]) -> rcache.Lookup:
        return rcache.Lookup.build(self.request_cache, kind, self.identity, requests, settings,
                                   self.seed, repeats)

    def _cached(self, kind: str, requests: Sequence[Any], payloads: Sequence[Mapping[str, Any]],
                out: list[Any], make: Callable[[int, Any], Any],
                progress: Callable[[int, int], None] | None,
                ) -> tuple[rcache.Lookup, dict[Any, list[int]]]:
        """Fill ``out`` with the answers found in the request cache (built by ``make``) and
        group the indices of the missing requests by their settings."""
        arch = self.architecture.name
        lookup = self._lookup(kind, payloads, [settings_record(r.config, arch) for r in requests],
                              [r.repeat for r in requests])
        for i, answer in lookup.hits.items():
            out[i] = make(i, answer)
        if lookup.hits and progress:
            progress(len(lookup.hits), 0)
        groups: dict[Any, list[int]] = defaultdict(list)
        for i in lookup.missing:
            groups[requests[i].config].append(i)
        return lookup, groups

    # ----- settings ----------------------------------------------------------------------
    def settings(self, task: TaskInfo, gen_kwargs: Mapping[str, Any] | None = None
                 ) -> SamplerConfig | EstimatorConfig:
        """Resolve (cached) and remember the settings of a request of ``task``."""
        kwargs = {k: v for k, v in (gen_kwargs or {}).items() if k != "until"}
        key = (task, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        if key not in self._resolved:
            self._resolved[key] = resolve(task, self.family, kwargs, self.overrides,
                                          use_paper_table=self.use_task_settings,
                                          architecture=self.architecture.name)
        config, provenance = self._resolved[key]
        for name, value in provenance.ignored_gen_kwargs.items():
            if (task.name, name) not in self._warned:
                self._warned.add((task.name, name))
                _log.warning("task %s: generation kwarg %s=%r is not supported by the diffusion "
                             "sampler and is ignored (recorded in the run)", task.name, name, value)
        if task.name:
            plan = self.planned.get(task.name)
            if plan is not None and plan.config == config:
                provenance = plan.provenance
            self.task_settings.setdefault(task.name, TaskSettings(config, provenance,
                                                                  self.architecture.name))
        return config

    # ----- helpers -------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of a context. A family whose official evaluation prepends the BOS token
        (Dream's ``add_bos_token=true``; its tokenizer adds none itself) gets it here, unless
        the chat template was applied (Dream's wrapper adds it to plain prompts only) or the
        text already starts with it."""
        tok = self.tokenizer
        bos = getattr(tok, "bos_token", None)
        add_special = not (bos and text.startswith(bos))
        ids = list(tok(text, add_special_tokens=add_special)["input_ids"])
        bos_id = getattr(tok, "bos_token_id", None)
        if (self.architecture.add_bos_token and not self.chat_templated
                and isinstance(bos_id, int) and (not ids or ids[0] != bos_id)):
            ids = [bos_id, *ids]
        return ids

    def _split_encode(self, req: LikelihoodRequest) -> tuple[list[int], list[int]]:
        context, continuation = split_context(req.context, req.continuation)
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
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
        record = settings_record(req.config, self.architecture.name)
        settings = tuple(sorted((k, v) for k, v in record.items()
                                if k not in SEED_NEUTRAL_SETTINGS))
        return request_seed(self.seed, req.context, settings, *self._seed_parts(req.repeat))

    # ----- loglikelihood -------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[LikelihoodRequest],
                      progress: Callable[[int, int], None] | None = None) -> list[LikelihoodOutput]:
        estimate = self.architecture.resolve("estimate")
        if not requests:
            return []
        out: list[LikelihoodOutput | None] = [None] * len(requests)
        lookup, groups = self._cached(
            "loglikelihood", requests,
            [{"context": r.context, "continuation": r.continuation} for r in requests],
            out, lambda i, answer: LikelihoodOutput(
                float(answer.value[0]), bool(answer.value[1]), self.likelihood_seed(requests[i]),
                RequestStats(answer.nfe, answer.seconds, 0, answer.nonfinite)), progress)
        if not groups:
            return [o for o in out if o is not None]
        model = self.model
        encoded = {i: self._split_encode(requests[i]) for i in lookup.missing}
        chunk_size = self.batch_size * 8
        for config, members in groups.items():
            t0 = [time.perf_counter()]

            def run(chunk: Sequence[int], level: int,
                    config: EstimatorConfig = config) -> list[Any]:
                pairs = [(torch.tensor(encoded[i][0]), torch.tensor(encoded[i][1])) for i in chunk]
                gens = [torch.Generator().manual_seed(self.likelihood_seed(requests[i]))
                        for i in chunk]
                return estimate(model.network, pairs, config=config, tokens=model.tokens,
                                generators=gens, max_rows=max(1, self.max_rows >> level))

            def done(chunk: Sequence[int], results: Sequence[Any]) -> None:
                seconds = (time.perf_counter() - t0[0]) / len(chunk)
                stored = []
                for i, res in zip(chunk, results):
                    out[i] = LikelihoodOutput(res.value, bool(res.greedy),
                                              self.likelihood_seed(requests[i]),
                                              RequestStats(res.nfe, seconds, 0, res.nonfinite))
                    stored.append((i, rcache.CachedAnswer([res.value, bool(res.greedy)], res.nfe,
                                                          seconds, 0, res.nonfinite)))
                lookup.store(stored)
                if progress:
                    progress(len(chunk), sum(r.nfe for r in results))
                t0[0] = time.perf_counter()

            map_halving(members, chunk_size, run, done, self.halving,
                        halving_levels(chunk_size, self.max_rows))
        return [o for o in out if o is not None]

    # ----- loglikelihood_rolling -------------------------------------------------------------
    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Callable[[int, int], None] | None = None) -> list[RollingOutput]:
        from evalsuite.diffusion.likelihood import estimate_loglikelihood

        if not requests:
            return []
        if not self.architecture.rolling:
            raise ConfigError(f"loglikelihood_rolling (perplexity tasks) is not part of the "
                              f"{self.architecture.name} protocol; choose a likelihood or "
                              "generation task")
        out: list[RollingOutput | None] = [None] * len(requests)
        # answered requests come from the request cache (resume), like the other two kinds
        lookup, _groups = self._cached(
            "loglikelihood_rolling", requests, [{"text": r.text} for r in requests], out,
            lambda i, answer: RollingOutput(float(answer.value), self.rolling_seed(requests[i], 0),
                                            RequestStats(answer.nfe, answer.seconds, 0,
                                                         answer.nonfinite)), progress)
        if not lookup.missing:
            return [o for o in out if o is not None]
        model = self.model
        bos = self.tokenizer.bos_token_id
        prefix = [bos] if bos is not None else []
        window = self.max_length - len(prefix)
        for i in lookup.missing:
            req = requests[i]
            t0 = time.perf_counter()
            ids = self.encode(req.text)
            config = req.config.replace(cfg_scale=0.0)  # no prompt to guide against
            pairs, gens = [], []
            for start in range(0, len(ids), window):
                pairs.append((torch.tensor(prefix, dtype=torch.long),
                              torch.tensor(ids[start:start + window])))
                gens.append(torch.Generator().manual_seed(self.rolling_seed(req, start)))
            results = estimate_loglikelihood(model.network, pairs, config=config,
                                             mask_id=model.tokens.mask_id, generators=gens,
                                             max_rows=self.max_rows)
            nfe = sum(r.nfe for r in results)
            bad = any(r.nonfinite for r in results)
            value, seconds = sum(r.value for r in results), time.perf_counter() - t0
            out[i] = RollingOutput(value, self.rolling_seed(req, 0),
                                   RequestStats(nfe, seconds, 0, bad))
            lookup.store([(i, rcache.CachedAnswer(value, nfe, seconds, 0, bad))])
            if progress:
                progress(1, nfe)
        return [o for o in out if o is not None]

    def rolling_seed(self, req: RollingRequest, start: int) -> int:
        """Seed of the window of ``req`` that starts at token ``start``."""
        return request_seed(self.seed, req.text, start, *self._seed_parts(req.repeat))

    # ----- generation ------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest],
                 progress: Callable[[int, int], None] | None = None) -> list[GenerationOutput]:
        from evalsuite.diffusion.stopping import length_buckets

        out: list[GenerationOutput | None] = [None] * len(requests)
        if not requests:
            return []
        for config in {r.config for r in requests}:
            if self.max_length - config.gen_length <= 0:
                raise ConfigError(
                    f"gen_length {config.gen_length} leaves no room for the prompt within "
                    f"max_length {self.max_length}; shorten --gen-length or raise max_length")
        # early_exit is in the key although it changes no text: the stored forward passes
        # (and exits) differ, and a cached answer carries the NFE it was computed with
        lookup, by_config = self._cached(
            "generate_until", requests,
            [{"context": r.context, "until": list(r.until)} for r in requests],
            out, lambda i, answer: GenerationOutput(
                str(answer.value), self.generation_seed(requests[i]),
                RequestStats(answer.nfe, answer.seconds, answer.generated_tokens,
                             answer.nonfinite)), progress)
        if not by_config:
            return [o for o in out if o is not None]
        window = self.window  # loads the weights now that every setting is valid
        for config, members in by_config.items():
            encoded: dict[int, list[int]] = {}
            for i in members:
                fitted = fit_to_window(self.encode(requests[i].context), config.gen_length, window,
                                       f"task {requests[i].task} doc {requests[i].doc_id}")
                self._note_truncation(requests[i].task, fitted.dropped)
                encoded[i] = fitted.prompt
            # length buckets stream through batch_size slots: a row that finishes, or exits
            # early, hands its slot to the next request of the bucket; each finished row is
            # stored in the request cache at once
            for bucket in length_buckets([len(encoded[i]) for i in members], self.batch_size):
                chunk = [members[j] for j in bucket]
                seeds = {i: self.generation_seed(requests[i]) for i in chunk}
                last = [time.perf_counter()]

                def finished(i: int, text: str, n_tokens: int, nfe: int, bad: bool,
                             seeds: dict[int, int] = seeds, last: list[float] = last) -> None:
                    now = time.perf_counter()
                    seconds, last[0] = now - last[0], now  # sums to the bucket's wall time
                    stats = RequestStats(nfe, seconds, n_tokens, bad)
                    out[i] = GenerationOutput(text, seeds[i], stats)
                    lookup.store([(i, rcache.CachedAnswer(text, nfe, seconds, n_tokens, bad))])
                    if progress:
                        progress(1, nfe)

                def run(_items: Sequence[Any], level: int, chunk: list[int] = chunk,
                        encoded: dict[int, list[int]] = encoded, config: SamplerConfig = config,
                        seeds: dict[int, int] = seeds, finished: Any = finished) -> list[None]:
                    todo = [i for i in chunk if out[i] is None]  # a retry skips finished rows
                    if todo:
                        self._generate_batch(
                            [encoded[i] for i in todo], [requests[i] for i in todo],
                            [seeds[i] for i in todo], config,
                            slots=max(1, self.batch_size >> level),
                            on_finish=lambda j, text, n, nfe, bad: finished(todo[j], text, n,
                                                                             nfe, bad))
                    return [None]

                # the whole bucket is one item: an out-of-memory error halves the slots
                map_halving([chunk], 1, run, lambda _items, _res: None, self.halving,
                            halving_levels(self.batch_size))
        return [o for o in out if o is not None]

    def _generate_batch(self, prompts: list[list[int]], reqs: list[GenerationRequest],
                        seeds: list[int], config: SamplerConfig, slots: int | None = None,
                        on_finish: Callable[[int, str, int, int, bool], None] | None = None,
                        ) -> tuple[list[str], list[int], list[bool]]:
        """Texts, per-request forward passes (a CFG pair counts 2) and NaN/inf flags for one
        length bucket, ``slots`` (default ``batch_size``) rows at a time; ``on_finish(row,
        text, generated_tokens, nfe, nonfinite)`` hears of each row as soon as it is final
        (``generated_tokens``: the answer's tokens up to the cut, see
        :func:`~evalsuite.models.requests.tokens_to_cut`)."""
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
        per_pass = 2 if config.cfg_scale > 0 else 1
        texts: list[str | None] = [None] * len(prompts)

        def cut_of(row: int, generated: list[int], exited: bool) -> tuple[str, int]:
            """The answer text and the number of generated tokens it is made of."""
            cut = stops | {tokens.mask_id} if exited else stops  # exited: the committed prefix
            end = next((j for j, t in enumerate(generated) if t in cut), len(generated))
            text = truncate_stop(decode(generated[:end]), reqs[row].until)
            return text, tokens_to_cut(generated[:end], text, decode)

        def text_of(row: int, generated: list[int], exited: bool) -> str:
            return cut_of(row, generated, exited)[0]

        def row_done(row: int, row_tokens: torch.Tensor, nfe: int, bad: bool, exited: bool) -> None:
            texts[row], n_tokens = cut_of(row, row_tokens[width:].tolist(), exited)
            if on_finish is not None:
                on_finish(row, texts[row], n_tokens, nfe * per_pass, bad)

        sample = self.architecture.resolve("sample")
        result = sample(
            model.network, ids.to(self.device),
            mask.to(self.device) if len(prompts) > 1 else None, config=config,
            mask_id=tokens.mask_id, eos_id=tokens.eos_id, eot_id=tokens.eot_id, generator=gens,
            stop=rules, batch_size=slots or self.batch_size, on_finish=row_done,
            logit_shift=self.architecture.logit_shift,
        )
        final = [t if t is not None else text_of(row, generated, exited)
                 for row, (t, generated, exited)
                 in enumerate(zip(texts, result.generated.tolist(), result.exited))]
        return final, [n * per_pass for n in result.row_nfe], list(result.nonfinite)
