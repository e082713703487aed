"""Sampler and estimator settings: frozen, validated, one docstring per field.

Validation happens in ``__post_init__`` so that an invalid setting is rejected with a message
naming the values before any weight loads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from evalsuite.errors import ConfigError

Remasking = Literal["low_confidence", "random"]
REMASKING_CHOICES: tuple[str, ...] = ("low_confidence", "random")
Decoding = Literal["schedule", "threshold"]
DECODING_CHOICES: tuple[str, ...] = ("schedule", "threshold")
Cache = Literal["none", "prefix", "dual"]
Estimator = Literal["auto", "stratified", "reference"]
ESTIMATOR_CHOICES: tuple[str, ...] = ("auto", "stratified", "reference")
CACHE_CHOICES: tuple[str, ...] = ("none", "prefix", "dual")
Alg = Literal["origin", "maskgit_plus", "topk_margin", "entropy"]
ALG_CHOICES: tuple[str, ...] = ("origin", "maskgit_plus", "topk_margin", "entropy")
BatchSchedule = Literal["per_row", "batch_mean"]
BATCH_SCHEDULE_CHOICES: tuple[str, ...] = ("per_row", "batch_mean")
NllType = Literal["mc", "ar_ftb"]
NLL_TYPE_CHOICES: tuple[str, ...] = ("mc", "ar_ftb")


@dataclass(frozen=True)
class SamplerConfig:
    """Settings of diffusion sampling (LLaDA paper, Algorithms 4-5; REFERENCE.md "Generation")."""

    gen_length: int = 128
    """Number of tokens generated after the prompt (the answer region, filled with mask ids)."""
    steps: int = 128
    """Total sampling steps (one forward pass each) over all blocks."""
    block_length: int = 128
    """Tokens per semi-autoregressive block; ``gen_length`` means pure diffusion (one block)."""
    temperature: float = 0.0
    """Gumbel-noise temperature; 0 is greedy (plain argmax)."""
    cfg_scale: float = 0.0
    """Unsupervised classifier-free guidance scale w; 0 disables the unconditional pass."""
    remasking: Remasking = "low_confidence"
    """Which masked positions to commit: highest softmax confidence, or uniformly random."""
    logits_eos_inf: bool = False
    """Set the EOS logit to -inf so EOS is never predicted."""
    confidence_eos_eot_inf: bool = False
    """Give EOS/EoT predictions the lowest confidence so they are committed last."""
    decoding: Decoding = "schedule"
    """``schedule``: the paper's linear schedule (``steps`` passes). ``threshold``: Fast-dLLM's
    confidence-aware parallel decoding: each pass commits every masked position of the block
    whose confidence is at least ``threshold`` (at least one), so the number of passes adapts
    to the model's confidence; ``steps`` is then unused. Training-free and approximate: not
    the setting of the published numbers."""
    threshold: float = 0.9
    """Confidence needed to commit a token in one pass under ``decoding="threshold"``."""
    cache: Cache = "none"
    """Fast-dLLM's approximate KV cache, refreshed at the first pass of every block:
    ``prefix`` caches the positions left of the block, ``dual`` those left and right of it,
    so later passes compute only the block (and the suffix, for ``prefix``). Approximate:
    not the setting of the published numbers."""
    early_exit: bool = True
    """Exact early exit (``--early-exit on|off``): stop sampling a row once every answer
    position up to the caller's cut (first stop string, EOS or EoT) is committed, and give its
    batch slot to a waiting request. Committed tokens are never remasked, so the returned
    answer is the same as with ``off``; only forward passes are saved."""
    alg: Alg | None = None
    """Dream's sampler (``diffusion_generate``): its timestep schedule (``linspace(1, 1e-3,
    steps + 1)``, ``int(n_masked * (1 - s / t))`` tokens per step, all on the last) and its
    commit rule: ``origin`` (each mask transfers with probability ``1 - s / t``, random),
    ``maskgit_plus`` (top probability), ``topk_margin`` (top-1 minus top-2 probability) or
    ``entropy`` (negative entropy). Unset: LLaDA's linear block schedule and ``remasking``.
    Dream models only."""
    alg_temp: float = 0.0
    """Dream: 0 commits the most confident positions; above 0 draws them from
    ``softmax(confidence / alg_temp)`` (random)."""
    top_p: float | None = None
    """Dream: nucleus filter (0, 1] applied to the logits before the token choice and the
    confidence, also at temperature 0 (as Dream does). Unset: no filter."""
    top_k: int | None = None
    """Dream: keep the ``top_k`` largest logits before the token choice and the confidence.
    Unset: no filter."""
    batch_schedule: BatchSchedule = "per_row"
    """Dream: how many tokens a row commits per step. ``per_row`` (default): from the row's
    own masked count, so a row's output never depends on its batch-mates (each row is its
    official batch-of-one run). ``batch_mean``: Dream's official batched code, which uses the
    MEAN masked count of the batch, so a row can depend on the rows it was batched with; it
    reproduces the official code's padded batches token for token and turns early exit off."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "early_exit", parse_on_off(self.early_exit, "early_exit"))
        validate_sampler(self)

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length

    @property
    def steps_per_block(self) -> int:
        return self.steps // self.num_blocks

    def replace(self, **changes: Any) -> "SamplerConfig":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Text accepted for a boolean setting (model_args, gen_kwargs, ``--flag on|off``).
ON_OFF_TEXT: dict[str, bool] = {"on": True, "true": True, "1": True, "yes": True,
                                "off": False, "false": False, "0": False, "no": False}


def parse_on_off(value: Any, name: str) -> bool:
    """A boolean setting given as a bool or as on/off, true/false, 1/0 text."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ON_OFF_TEXT:
        return ON_OFF_TEXT[text]
    raise ConfigError(f"{name} must be on or off, got {value!r}")


def validate_sampler(cfg: SamplerConfig) -> None:
    """Raise :class:`ConfigError` naming the values when the settings cannot be sampled."""
    for name in ("gen_length", "steps", "block_length"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if cfg.temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {cfg.temperature}")
    if cfg.cfg_scale < 0:
        raise ConfigError(f"cfg_scale must be >= 0, got {cfg.cfg_scale}")
    if cfg.remasking not in REMASKING_CHOICES:
        raise ConfigError(
            f"remasking must be one of {', '.join(REMASKING_CHOICES)}, got {cfg.remasking!r}"
        )
    if cfg.decoding not in DECODING_CHOICES:
        raise ConfigError(
            f"decoding must be one of {', '.join(DECODING_CHOICES)}, got {cfg.decoding!r}"
        )
    if cfg.cache not in CACHE_CHOICES:
        raise ConfigError(f"cache must be one of {', '.join(CACHE_CHOICES)}, got {cfg.cache!r}")
    if not 0.0 < cfg.threshold <= 1.0:
        raise ConfigError(f"threshold must be in (0, 1], got {cfg.threshold}")
    if cfg.decoding == "threshold" and cfg.remasking != "low_confidence":
        raise ConfigError("decoding='threshold' needs remasking='low_confidence' (it thresholds "
                          "the model's confidence)")
    if cfg.block_length > cfg.gen_length:
        raise ConfigError(
            f"block_length {cfg.block_length} is larger than gen_length {cfg.gen_length}; "
            f"use block_length <= gen_length (block_length = gen_length is pure diffusion)"
        )
    if cfg.gen_length % cfg.block_length != 0:
        raise ConfigError(
            f"gen_length {cfg.gen_length} is not a multiple of block_length {cfg.block_length}"
        )
    validate_dream_sampler(cfg)
    blocks = cfg.gen_length // cfg.block_length
    if cfg.steps % blocks != 0:
        raise ConfigError(
            f"steps {cfg.steps} is not divisible by the number of blocks {blocks} "
            f"(gen_length {cfg.gen_length} / block_length {cfg.block_length})"
        )


#: SamplerConfig fields of Dream's sampler only, and their values when unused (LLaDA).
DREAM_SAMPLER_FIELDS: tuple[str, ...] = ("alg", "alg_temp", "top_p", "top_k", "batch_schedule")
DREAM_FIELD_DEFAULTS: dict[str, Any] = {"alg": None, "alg_temp": 0.0, "top_p": None,
                                        "top_k": None, "batch_schedule": "per_row"}


def validate_dream_sampler(cfg: SamplerConfig) -> None:
    """The Dream settings (``alg`` and the settings that go with it)."""
    if cfg.alg is not None and cfg.alg not in ALG_CHOICES:
        raise ConfigError(f"alg must be one of {', '.join(ALG_CHOICES)}, got {cfg.alg!r}")
    if not isinstance(cfg.alg_temp, (int, float)) or cfg.alg_temp < 0:
        raise ConfigError(f"alg_temp must be >= 0 (0: most confident first), got {cfg.alg_temp!r}")
    if cfg.top_p is not None and not 0.0 < cfg.top_p <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1] (or unset), got {cfg.top_p!r}")
    if cfg.top_k is not None and (not isinstance(cfg.top_k, int) or isinstance(cfg.top_k, bool)
                                  or cfg.top_k < 1):
        raise ConfigError(f"top_k must be a positive integer (or unset), got {cfg.top_k!r}")
    if cfg.batch_schedule not in BATCH_SCHEDULE_CHOICES:
        raise ConfigError(f"batch_schedule must be one of {', '.join(BATCH_SCHEDULE_CHOICES)}, "
                          f"got {cfg.batch_schedule!r}")
    if cfg.alg is None:
        for name in DREAM_SAMPLER_FIELDS[1:]:
            if getattr(cfg, name) != DREAM_FIELD_DEFAULTS[name]:
                raise ConfigError(f"{name}={getattr(cfg, name)!r} is a setting of Dream's sampler "
                                  "and needs alg (origin, maskgit_plus, topk_margin, entropy); "
                                  "LLaDA's sampler has no such setting")
        return
    if cfg.block_length != cfg.gen_length:
        raise ConfigError(f"alg={cfg.alg!r} (Dream's sampler) has no blocks: block_length "
                          f"{cfg.block_length} must equal gen_length {cfg.gen_length}")
    for name, plain in (("decoding", "schedule"), ("cache", "none"),
                        ("remasking", "low_confidence")):
        if getattr(cfg, name) != plain:
            raise ConfigError(f"{name}={getattr(cfg, name)!r} is a LLaDA setting; Dream's "
                              f"sampler (alg={cfg.alg!r}) needs {name}={plain!r}")
    if cfg.logits_eos_inf or cfg.confidence_eos_eot_inf:
        raise ConfigError("logits_eos_inf / confidence_eos_eot_inf are LLaDA settings; Dream's "
                          f"sampler (alg={cfg.alg!r}) has no such rule")


@dataclass(frozen=True)
class EstimatorConfig:
    """Settings of the Monte Carlo likelihood estimator (LLaDA paper Eq. 6, Algorithm 3)."""

    mc_num: int = 128
    """Monte Carlo samples (masked copies of the sequence) per request."""
    batch_size: int = 16
    """Rows drawn as one stratified group; ``mc_num`` must be a multiple of it."""
    cfg_scale: float = 0.0
    """Unsupervised classifier-free guidance scale w for the likelihood."""
    estimator: Estimator = "auto"
    """Design of the Monte Carlo rows (:mod:`evalsuite.diffusion.designs`). ``auto``: exact
    enumeration when ``2^L - 1 <= mc_num``, else strata by mask count with small strata
    enumerated, Neyman allocation and common random numbers across the choices of a question.
    ``stratified``: the previous evalsuite design (groups of ``batch_size`` with exactly
    stratified counts). ``reference``: the official algorithm exactly (round-spread counts),
    for reproducing published numbers."""
    target_se: float | None = None
    """Adaptive stopping: spend rows in rounds until the standard error is at most this (in
    nats), ``mc_num`` rows at most. None: always ``mc_num`` rows."""
    nll_type: NllType = "mc"
    """Dream's likelihood: ``mc`` (its Monte Carlo estimator; under ``auto`` its exact
    expectation by enumeration when ``2^n - 1 <= mc_num``, else count strata) or ``ar_ftb``
    (Dream's deterministic left-to-right unmasking, one pass per answer token plus EOS).
    Dream models only."""

    def __post_init__(self) -> None:
        if self.nll_type not in NLL_TYPE_CHOICES:
            raise ConfigError(
                f"nll_type must be one of {', '.join(NLL_TYPE_CHOICES)}, got {self.nll_type!r}")
        if self.estimator not in ESTIMATOR_CHOICES:
            raise ConfigError(
                f"estimator must be one of {', '.join(ESTIMATOR_CHOICES)}, got {self.estimator!r}"
            )
        if self.target_se is not None and not (isinstance(self.target_se, (int, float))
                                               and self.target_se > 0):
            raise ConfigError(f"target_se must be a positive number (nats) or unset, "
                              f"got {self.target_se!r}")
        for name in ("mc_num", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.mc_num % self.batch_size != 0:
            raise ConfigError(
                f"mc_num {self.mc_num} is not a multiple of the estimator batch_size "
                f"{self.batch_size}"
            )
        if self.cfg_scale < 0:
            raise ConfigError(f"cfg_scale must be >= 0, got {self.cfg_scale}")

    def replace(self, **changes: Any) -> "EstimatorConfig":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SAMPLER_KEYS = frozenset(f.name for f in dataclasses.fields(SamplerConfig))
ESTIMATOR_KEYS = frozenset({"mc_num", "cfg_scale", "estimator", "target_se", "nll_type"})


def split_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a flat settings dict into sampler and estimator parts.

    ``cfg_scale`` applies to both; ``mc_batch_size`` maps to the estimator's ``batch_size``.
    Unknown keys raise :class:`ConfigError`.
    """
    sampler: dict[str, Any] = {}
    estimator: dict[str, Any] = {}
    for key, value in settings.items():
        if key == "mc_batch_size":
            estimator["batch_size"] = value
            continue
        known = False
        if key in SAMPLER_KEYS:
            sampler[key] = value
            known = True
        if key in ESTIMATOR_KEYS:
            estimator[key] = value
            known = True
        if not known:
            raise ConfigError(
                f"unknown diffusion setting {key!r}; known settings: "
                f"{', '.join(sorted(SAMPLER_KEYS | ESTIMATOR_KEYS | {'mc_batch_size'}))}"
            )
    return sampler, estimator


