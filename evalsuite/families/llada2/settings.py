"""LLaDA2 generation and likelihood settings, validated before any weight loads.

A family-local dataclass for now: to be folded into :mod:`evalsuite.settings` (the knob
registry) when the families' settings tables are unified. Names are the official
``LLaDA2MoeModelLM.generate`` argument names; defaults are its defaults.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from evalsuite.errors import ConfigError


@dataclass(frozen=True)
class LLaDA2Settings:
    """Block-diffusion sampling of LLaDA2 (official ``generate``; golden/llada2/README.md)."""

    gen_length: int = 2048
    """Tokens generated after the prompt (a multiple of ``block_length``)."""
    block_length: int = 32
    """Tokens per block; blocks are counted from position 0, prompt included."""
    steps: int = 32
    """Denoising steps PER BLOCK (capped at ``gen_length // minimal_topk``, as officially)."""
    threshold: float = 0.95
    """A step commits every masked position of the block whose confidence is ABOVE this (when
    at least the schedule's count are), else the schedule's count of the most confident ones.
    1.0 gives the pure schedule (a probability never exceeds 1; the official code's 2.0 in
    some scripts means the same)."""
    minimal_topk: int = 1
    """Caps ``steps`` at ``gen_length // minimal_topk`` (official meaning)."""
    eos_early_stop: bool = False
    """Official: return as soon as the answer up to its first EOS is committed. Here rows always
    stop then (exact: committed tokens never change and later blocks cannot reach back), so
    this flag changes nothing in the tokens; it is accepted for the official setting names."""
    temperature: float = 0.0
    """0: argmax (the hub code samples with ``torch.multinomial`` even at 0; evalsuite takes
    the argmax on purpose, as dllm later fixed it). > 0: sample ``softmax(logits / T)`` from
    each request's own generator."""
    top_k: int | None = None
    """Keep the k most likely tokens before the softmax (official ``top_k``; None/0: off)."""
    top_p: float | None = None
    """Nucleus filter before the softmax (official ``top_p``; None/1: off)."""
    cache: bool = True
    """Exact block-level KV cache: the prompt and every finished block are computed once;
    ``False`` runs the official full recompute of ``x[:, :block_end]`` at every step."""

    def __post_init__(self) -> None:
        validate(self)

    @property
    def effective_steps(self) -> int:
        return min(self.steps, self.gen_length // self.minimal_topk)

    def replace(self, **changes: Any) -> "LLaDA2Settings":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_kwargs(cls, settings: dict[str, Any]) -> "LLaDA2Settings":
        """Build from keyword settings; an unknown name is a :class:`ConfigError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(f"unknown LLaDA2 setting(s) {', '.join(unknown)}; LLaDA2 takes "
                              f"{', '.join(sorted(known))}")
        return cls(**settings)


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"LLaDA2 {name} must be a positive integer, got {value!r}")


def validate(s: LLaDA2Settings) -> None:
    """:class:`ConfigError` naming the setting and the fix."""
    for name in ("gen_length", "block_length", "steps", "minimal_topk"):
        _positive_int(name, getattr(s, name))
    if s.gen_length % s.block_length:
        lower = s.gen_length // s.block_length * s.block_length
        raise ConfigError(
            f"LLaDA2 gen_length={s.gen_length} is not a multiple of block_length="
            f"{s.block_length}; use gen_length {lower or s.block_length} or "
            f"{lower + s.block_length}, or another block_length")
    if not isinstance(s.threshold, (int, float)) or isinstance(s.threshold, bool) \
            or not 0 < s.threshold <= 1 or math.isnan(s.threshold):
        raise ConfigError(
            f"LLaDA2 threshold={s.threshold!r} must be in (0, 1]: a step commits the positions "
            "whose confidence is above it; use 1.0 for the pure schedule (what the official "
            "threshold 2.0 does)")
    if s.temperature < 0 or math.isnan(s.temperature):
        raise ConfigError(f"LLaDA2 temperature must be >= 0, got {s.temperature}")
    if s.top_k is not None and (not isinstance(s.top_k, int) or s.top_k < 0):
        raise ConfigError(f"LLaDA2 top_k must be a non-negative integer, got {s.top_k!r}")
    if s.top_p is not None and not 0 < s.top_p <= 1:
        raise ConfigError(f"LLaDA2 top_p must be in (0, 1], got {s.top_p!r}")
    if not isinstance(s.cache, bool) or not isinstance(s.eos_early_stop, bool):
        raise ConfigError("LLaDA2 cache and eos_early_stop must be true or false")
