"""Numerical and resource faults: non-finite logits, CUDA out-of-memory, over-long prompts.

- **Non-finite logits** (NaN or inf, e.g. float16 overflow) are detected per request where
  the logits are computed (``LikelihoodResult.nonfinite``, ``GenerationResult.nonfinite``),
  counted per document and per task, flagged in the sample records (``"nonfinite"``) and the
  run record, and make ``evalsuite run`` exit with code 3 after the run is written
  (:mod:`evalsuite.reliability`): never a silent score.
- **CUDA out of memory** during a batch: :func:`map_halving` halves the batch and retries the
  same requests. Per-request random draws come from per-request generators and packing does
  not change a row's logits, so the results equal those of a run that never hit the error.
- **Prompt longer than the model's window** (``min(max_length, max_sequence_length)``):
  :func:`fit_to_window` truncates the prompt *from the left* (the oldest few-shot text goes
  first, the question and the answer are kept); the number of requests and tokens cut is
  recorded per task. A continuation (or ``gen_length``) that alone does not fit is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from evalsuite.errors import ConfigError, EvalsuiteError

TRUNCATION_RULE = "left"
"""Over-long prompts lose their first tokens; recorded per task as ``truncation``."""

T = TypeVar("T")
R = TypeVar("R")


class OutOfMemoryFault(EvalsuiteError):
    """Out of memory even at the smallest batch."""


def nonfinite_rows(logits: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: whether row b of ``logits [B, ...]`` holds a NaN or an infinity."""
    return ~torch.isfinite(logits).reshape(logits.shape[0], -1).all(dim=1)


def is_oom(exc: BaseException) -> bool:
    """True for CUDA (or other accelerator) out-of-memory errors."""
    return isinstance(exc, torch.OutOfMemoryError)


@dataclass
class HalvingState:
    """How many times batches were halved in this process (recorded in the run record)."""

    halvings: int = 0
    level: int = 0
    """Current halving level: batches are ``max(1, size >> level)``."""


def map_halving(
    items: Sequence[T],
    size: int,
    run: Callable[[Sequence[T], int], Sequence[R]],
    done: Callable[[Sequence[T], Sequence[R]], None],
    state: HalvingState,
    max_level: int,
) -> None:
    """Run ``items`` in consecutive batches of ``size >> level``; on OOM halve and retry.

    ``run(batch, level)`` computes one batch (``level`` also scales any inner batch, such as
    rows per forward pass); ``done(batch, results)`` is called after each successful batch
    (record, cache). At ``max_level`` an OOM raises :class:`OutOfMemoryFault`.
    """
    start = 0
    while start < len(items):
        width = max(1, size >> state.level)
        batch = items[start:start + width]
        try:
            results = run(batch, state.level)
        except Exception as exc:
            if not is_oom(exc):
                raise
            _release_memory()
            if state.level >= max_level:
                raise OutOfMemoryFault(
                    f"out of memory even with a batch of {len(batch)} ({exc}); use a smaller "
                    "--dtype (bfloat16), a shorter --gen-length or a device with more memory; "
                    "requests finished so far are in the request cache") from None
            state.level += 1
            state.halvings += 1
            continue
        done(batch, results)
        start += len(batch)


def _release_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def halving_levels(*sizes: int) -> int:
    """Levels until every size is 1: ``ceil(log2(max(sizes)))``."""
    return max(0, max(sizes) - 1).bit_length()


@dataclass(frozen=True)
class Fitted:
    """A prompt cut to the window: the tokens kept and how many were dropped from the left."""

    prompt: list[int]
    dropped: int


def fit_to_window(prompt: Sequence[int], reserved: int, window: int, where: str) -> Fitted:
    """Keep the last ``window - reserved`` prompt tokens (``reserved``: answer or gen_length).

    Raises :class:`ConfigError` when ``reserved`` alone does not fit.
    """
    room = window - reserved
    if room < 0 or (room == 0 and len(prompt) > 0):
        raise ConfigError(
            f"{where}: the answer needs {reserved} tokens but the model's window is {window} "
            "(min of max_length and the checkpoint's max_sequence_length); shorten the "
            "continuation / --gen-length or raise max_length if the checkpoint allows it")
    dropped = max(0, len(prompt) - room)
    return Fitted(list(prompt[dropped:]), dropped)
