"""Typed records for lm-eval requests and the pure decisions made on them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

from evalsuite.settings.config import EstimatorConfig, SamplerConfig


@dataclass(frozen=True)
class LikelihoodRequest:
    """One lm-eval ``loglikelihood`` request, split the way lm-eval splits it."""

    task: str | None
    doc_id: int | None
    context: str
    continuation: str
    config: EstimatorConfig = EstimatorConfig()
    repeat: int = 0
    """Position among identical requests (lm-eval ``repeats``); 0 for the first."""


@dataclass(frozen=True)
class RollingRequest:
    """One lm-eval ``loglikelihood_rolling`` request."""

    task: str | None
    doc_id: int | None
    text: str
    config: EstimatorConfig = EstimatorConfig()
    repeat: int = 0


@dataclass(frozen=True)
class GenerationRequest:
    """One lm-eval ``generate_until`` request with the settings that apply to it."""

    task: str | None
    doc_id: int | None
    context: str
    until: tuple[str, ...]
    config: SamplerConfig
    """Resolved sampler settings; hashable, so requests group by them."""
    repeat: int = 0
    """Position among identical requests (lm-eval ``repeats: k`` sends the same Instance k
    times); it joins the seed, so repeats sample independently at temperature > 0."""


def repeat_indices(keys: Iterable[Hashable]) -> list[int]:
    """For each key, how many equal keys came before it (0, 1, ... per distinct key)."""
    seen: dict[Hashable, int] = {}
    out: list[int] = []
    for key in keys:
        out.append(seen.get(key, 0))
        seen[key] = out[-1] + 1
    return out


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


def tokens_to_cut(ids: Sequence[int], text: str, decode: Callable[[Sequence[int]], str]) -> int:
    """How many of ``ids`` the answer ``text`` is made of: the fewest leading tokens whose
    decoded text covers ``text`` (``ids`` already end at the first EOS / EoT, ``text`` is their
    decoding cut at the earliest stop string). The honest count of generated tokens: the answer
    slots after the cut (EOS padding, text after a stop string) are not tokens of the answer."""
    if len(decode(ids)) <= len(text):
        return len(ids)
    low, high = 0, len(ids)  # decode(ids[:high]) covers text, decode(ids[:low]) may not
    while low < high:
        mid = (low + high) // 2
        if len(decode(ids[:mid])) >= len(text):
            high = mid
        else:
            low = mid + 1
    return low


def truncate_stop(text: str, until: tuple[str, ...]) -> str:
    """Cut ``text`` at the earliest stop sequence (applied after decoding)."""
    cut = len(text)
    for stop in until:
        if stop:
            pos = text.find(stop)
            if pos != -1:
                cut = min(cut, pos)
    return text[:cut]
