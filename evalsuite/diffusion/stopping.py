"""Exact early exit: when is a row's returned answer fixed while it is still being sampled?

Committed tokens are never remasked. The caller turns a generated row into its answer by
cutting at the first stop token (EOS / EoT), decoding, and truncating the text at the earliest
stop string. Once every position up to that cut is committed, the remaining sampling steps of
the row can only change positions after the cut, so the answer cannot change: the row may
stop. :class:`StopRule` describes the caller's cut and decides, from the contiguous committed
prefix of a row, whether the cut is already determined.

Stop strings are decided on text, conservatively, because one can be split across tokens and
decoding is not always prefix-stable at the end of the text (an incomplete UTF-8 sequence, a
space that a clean-up step removes before punctuation). The rule accepts a stop string only
when it lies inside the text decoded *without the last committed token*, that text agrees with
the full decode, and ``tail_chars`` more characters follow it. This assumes, as byte-level BPE
and SentencePiece decoders guarantee, that appending tokens changes at most the last few
characters of the decoded text.

Also here: :func:`length_buckets`, which groups requests of similar prompt lengths so that a
batch pads little.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Decode = Callable[[Sequence[int]], str]


@dataclass(frozen=True)
class StopRule:
    """Where the caller cuts a generated row: stop token ids and stop strings."""

    stop_ids: frozenset[int] = frozenset()
    """Token ids (EOS, EoT) at whose first occurrence the caller cuts the row."""
    until: tuple[str, ...] = ()
    """Stop strings: the decoded text is truncated at the earliest occurrence of any."""
    decode: Decode | None = None
    """Token ids -> text exactly as the caller decodes (needed when ``until`` is given)."""
    tail_chars: int = 4
    """Characters that must follow a stop string before it is trusted (decoder safety)."""

    def __post_init__(self) -> None:
        if any(self.until) and self.decode is None:
            raise ValueError("StopRule with stop strings needs the decode function of the caller")

    @property
    def active(self) -> bool:
        """Whether this rule can ever end a row early."""
        return bool(self.stop_ids) or any(self.until)

    def decided(self, prefix: Sequence[int]) -> bool:
        """True when the answer cut from any row starting with ``prefix`` is already fixed.

        ``prefix`` is the contiguous run of committed tokens at the start of the answer.
        """
        if any(t in self.stop_ids for t in prefix):
            return True  # the first stop token lies inside the committed prefix
        stops = [s for s in self.until if s]
        if not stops or self.decode is None or len(prefix) < 2:
            return False
        return stop_string_decided(prefix, stops, self.decode, self.tail_chars)


def earliest_stop(text: str, stops: Sequence[str]) -> int:
    """Index of the earliest occurrence of any stop string in ``text``, or -1."""
    found = [pos for pos in (text.find(s) for s in stops if s) if pos != -1]
    return min(found) if found else -1


def stop_string_decided(prefix: Sequence[int], stops: Sequence[str], decode: Decode,
                        tail_chars: int) -> bool:
    """Whether the truncation at the earliest stop string is fixed by ``prefix`` (see module).

    The earliest stop position ``pos`` in the final text equals the one seen now when the text
    up to ``pos + max(len(stop))`` can no longer change: any stop occurrence starting before
    ``pos`` would then already be visible.
    """
    text = decode(prefix)
    shorter = decode(prefix[:-1])
    stable = _common_prefix_length(text, shorter) - tail_chars
    pos = earliest_stop(text[:max(stable, 0)], stops)
    if pos == -1:
        return False
    return pos + max(len(s) for s in stops) <= stable


def _common_prefix_length(a: str, b: str) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def length_buckets(lengths: Sequence[int], batch_size: int,
                   max_padding: float = 0.25) -> list[list[int]]:
    """Group request indices by prompt length, longest first, for low-padding batches.

    A bucket is padded to its longest prompt. A new bucket starts when a prompt is shorter than
    ``(1 - max_padding)`` times the bucket's longest and the bucket already fills a batch, so
    buckets stay full enough to keep every batch slot busy. Within a bucket the order is
    longest first (stable in the index for equal lengths).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    buckets: list[list[int]] = []
    for i in order:
        if buckets:
            current = buckets[-1]
            longest = lengths[current[0]]
            if lengths[i] >= (1 - max_padding) * longest or len(current) < batch_size:
                current.append(i)
                continue
        buckets.append([i])
    return buckets
