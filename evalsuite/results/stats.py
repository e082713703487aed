"""Paired significance tests on the samples two runs share (pure functions).

Both tests compare per-document scores of the same documents under two runs:

* :func:`mcnemar_exact` for pass/fail metrics (every score 0 or 1): under the null hypothesis
  the discordant pairs split 50/50, so the two-sided p-value is an exact binomial tail.
* :func:`paired_bootstrap` for any metric: resample documents with replacement (seeded numpy
  ``Generator``) and read the two-sided p-value off the bootstrap distribution of the mean
  difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

_CHUNK = 500
"""Bootstrap rows drawn at once (bounds memory at 500 x n indices)."""

TestName = Literal["auto", "mcnemar", "bootstrap"]
"""``auto`` picks McNemar when every score is 0/1 and the bootstrap otherwise."""


@dataclass(frozen=True)
class PairedResult:
    """Outcome of a paired test of ``candidate - baseline`` on ``n`` shared documents.

    ``delta`` is the mean difference (candidate minus baseline) in the metric's own units;
    ``p_value`` is two-sided. For McNemar, ``b`` counts documents only the baseline got right and
    ``c`` those only the candidate got right.
    """

    test: Literal["mcnemar", "bootstrap", "none"]
    n: int
    baseline_mean: float
    candidate_mean: float
    delta: float
    p_value: float
    b: int | None = None
    c: int | None = None


def is_binary(values: Sequence[float]) -> bool:
    """True when every value is exactly 0 or 1 (a pass/fail metric)."""
    return all(v in (0.0, 1.0) for v in values)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs.

    ``p = min(1, 2 * P(X <= min(b, c)))`` with ``X ~ Binomial(b + c, 1/2)``; 1.0 when there are
    no discordant pairs.
    """
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def paired_bootstrap(
    baseline: Sequence[float], candidate: Sequence[float], *, iters: int = 10_000, seed: int = 0
) -> float:
    """Two-sided paired-bootstrap p-value for ``mean(candidate - baseline) != 0``.

    Resamples documents ``iters`` times; p = 2 * min(share of resampled mean differences <= 0,
    share >= 0), capped at 1. Identical score vectors give 1.0.
    """
    diff = np.asarray(candidate, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    if diff.size == 0:
        return 1.0
    if np.all(diff == 0):
        return 1.0
    rng = np.random.default_rng(seed)
    chunks = []
    for start in range(0, iters, _CHUNK):
        rows = min(_CHUNK, iters - start)
        idx = rng.integers(0, diff.size, size=(rows, diff.size))  # [rows, n]
        chunks.append(diff[idx].mean(axis=1))  # [rows]
    means = np.concatenate(chunks)  # [iters]
    low = float(np.mean(means <= 0.0))
    high = float(np.mean(means >= 0.0))
    return min(1.0, 2.0 * min(low, high))


def paired_test(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    test: TestName = "auto",
    iters: int = 10_000,
    seed: int = 0,
) -> PairedResult:
    """Run the chosen paired test on aligned score vectors (same documents, same order)."""
    if len(baseline) != len(candidate):
        raise ValueError("paired scores must have the same length")
    n = len(baseline)
    if n == 0:
        return PairedResult("none", 0, math.nan, math.nan, math.nan, 1.0)
    base_mean = float(np.mean(baseline))
    cand_mean = float(np.mean(candidate))
    delta = cand_mean - base_mean
    chosen = test
    if test == "auto":
        chosen = "mcnemar" if is_binary(baseline) and is_binary(candidate) else "bootstrap"
    if chosen == "mcnemar":
        if not (is_binary(baseline) and is_binary(candidate)):
            raise ValueError("McNemar's test needs pass/fail (0/1) scores; use the bootstrap")
        b = sum(1 for x, y in zip(baseline, candidate, strict=True) if x == 1.0 and y == 0.0)
        c = sum(1 for x, y in zip(baseline, candidate, strict=True) if x == 0.0 and y == 1.0)
        return PairedResult("mcnemar", n, base_mean, cand_mean, delta, mcnemar_exact(b, c), b, c)
    p = paired_bootstrap(baseline, candidate, iters=iters, seed=seed)
    return PairedResult("bootstrap", n, base_mean, cand_mean, delta, p)
