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
CACHE_CHOICES: tuple[str, ...] = ("none", "prefix", "dual")


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
    blocks = cfg.gen_length // cfg.block_length
    if cfg.steps % blocks != 0:
        raise ConfigError(
            f"steps {cfg.steps} is not divisible by the number of blocks {blocks} "
            f"(gen_length {cfg.gen_length} / block_length {cfg.block_length})"
        )


@dataclass(frozen=True)
class EstimatorConfig:
    """Settings of the Monte Carlo likelihood estimator (LLaDA paper Eq. 6, Algorithm 3)."""

    mc_num: int = 128
    """Monte Carlo samples (masked copies of the sequence) per request."""
    batch_size: int = 16
    """Rows drawn as one stratified group; ``mc_num`` must be a multiple of it."""
    cfg_scale: float = 0.0
    """Unsupervised classifier-free guidance scale w for the likelihood."""

    def __post_init__(self) -> None:
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
ESTIMATOR_KEYS = frozenset({"mc_num", "cfg_scale"})


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


