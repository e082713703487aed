"""Typed records for lm-eval requests and the pure decisions made on them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from evalsuite.config import ESTIMATOR_KEYS, SAMPLER_KEYS

@dataclass(frozen=True)
class LikelihoodRequest:
    """One lm-eval ``loglikelihood`` request, split the way lm-eval splits it."""

    task: str | None
    doc_id: int | None
    context: str
    continuation: str


@dataclass(frozen=True)
class GenerationRequest:
    """One lm-eval ``generate_until`` request with the settings that apply to it."""

    task: str | None
    doc_id: int | None
    context: str
    until: tuple[str, ...]
    settings: tuple[tuple[str, Any], ...]
    """Sorted (key, value) pairs of diffusion settings; hashable so requests group by them."""


def split_context(context: str, continuation: str) -> tuple[str, str]:
    """Move trailing whitespace of the context to the continuation (lm-eval's convention)."""
    n = len(context) - len(context.rstrip())
    if n:
        return context[:-n], context[-n:] + continuation
    return context, continuation


def request_seed(base_seed: int, *parts: object) -> int:
    """A 63-bit seed derived from the run seed and the request content.

    Content-derived seeds make a request's random draws independent of batching, ordering and
    the number of processes.
    """
    text = "\x1f".join([str(base_seed), *map(repr, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def merge_settings(
    task_settings: dict[str, Any], gen_kwargs: dict[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    """Settings for one request: overrides > task YAML generation_kwargs > per-task table.

    ``max_gen_toks`` (lm-eval's length) becomes ``gen_length`` only when nothing else sets it.
    Keys that are not diffusion settings are dropped from ``gen_kwargs`` (``until`` is
    handled separately; ``do_sample``/``temperature`` map to temperature).
    """
    merged = dict(task_settings)
    known = SAMPLER_KEYS | ESTIMATOR_KEYS
    for key, value in gen_kwargs.items():
        if key in known:
            merged[key] = value
    if "gen_length" not in merged and "max_gen_toks" in gen_kwargs:
        merged["gen_length"] = int(gen_kwargs["max_gen_toks"])
    if gen_kwargs.get("do_sample") is False:
        merged["temperature"] = 0.0
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return merged


def fill_lengths(settings: dict[str, Any], default_length: int) -> dict[str, Any]:
    """Pure diffusion unless told otherwise: steps and block_length default to gen_length."""
    out = dict(settings)
    out.setdefault("gen_length", default_length)
    out.setdefault("steps", out["gen_length"])
    out.setdefault("block_length", out["gen_length"])
    return out


def truncate_stop(text: str, until: tuple[str, ...]) -> str:
    """Cut ``text`` at the earliest stop sequence (applied after decoding)."""
    cut = len(text)
    for stop in until:
        if stop:
            pos = text.find(stop)
            if pos != -1:
                cut = min(cut, pos)
    return text[:cut]
