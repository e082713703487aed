"""Paired significance tests on the samples two runs share (pure functions).

Both tests compare per-document scores of the same documents under two runs:

* :func:`mcnemar_exact` for pass/fail metrics (every score 0 or 1): under the null hypothesis
  the discordant pairs split 50/50, so the two-sided p-value is an exact binomial tail. The tail
  is summed in log space, so it holds at any number of discordant pairs (a full MMLU comparison
  has thousands; a plain ``comb(n, i) / 2**n`` overflows a float at 1,024).
* :func:`paired_bootstrap` for any metric: resample documents with replacement (seeded numpy
  ``Generator``) and read the two-sided p-value off the bootstrap distribution of the mean
  difference; :func:`paired_bootstrap_ci` gives the percentile interval from the same draws.

The bootstrap is vectorised. When the per-document differences take few distinct values (any
pass/fail metric: -1, 0, 1) a resample is summarised exactly by how often each value is drawn,
a multinomial count vector, so 10,000 resamples of 14,042 MMLU documents cost 10,000 x 3
numbers instead of 1.4 x 10^8 indices. Otherwise documents are resampled by index in chunks of
bounded size. Both paths draw from the same distribution (resampling ``n`` documents with
replacement) and are deterministic for a given seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import gammaln, logsumexp

_MAX_DISTINCT = 64
"""At most this many distinct differences: resample by multinomial counts (exact, fast)."""

_CHUNK_ELEMENTS = 4_000_000
"""Index path: at most this many resampled indices in memory at once (32 MB of int64)."""

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


def binomial_log_cdf_half(k: int, n: int) -> float:
    """``log P(X <= k)`` for ``X ~ Binomial(n, 1/2)``, exact up to float rounding at any ``n``.

    Each term ``log C(n, i) - n log 2`` comes from log-gamma values and the terms are added with
    log-sum-exp, so nothing overflows or underflows before the final result.
    """
    if n < 0:
        raise ValueError("n must be non-negative")
    if k < 0:
        return -math.inf
    if k >= n:
        return 0.0
    i = np.arange(k + 1, dtype=np.float64)  # [k + 1]
    log_terms = gammaln(n + 1.0) - gammaln(i + 1.0) - gammaln(n - i + 1.0) - n * math.log(2.0)
    return min(0.0, float(logsumexp(log_terms)))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs.

    ``p = min(1, 2 * P(X <= min(b, c)))`` with ``X ~ Binomial(b + c, 1/2)``; 1.0 when there are
    no discordant pairs. Valid at any size (the tail is computed in log space); a p-value below
    the smallest float (about 1e-308, e.g. 0 against 2,000 discordant pairs) is returned as 0.0.
    """
    if isinstance(b, bool) or isinstance(c, bool) or int(b) != b or int(c) != c:
        raise ValueError("discordant counts must be integers")
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = int(b) + int(c)
    if n == 0:
        return 1.0
    log_tail = binomial_log_cdf_half(min(int(b), int(c)), n)
    return math.exp(min(0.0, math.log(2.0) + log_tail))


def bootstrap_mean_diffs(
    baseline: Sequence[float], candidate: Sequence[float], *, iters: int, seed: int
) -> np.ndarray:
    """``iters`` resampled means of ``candidate - baseline`` (documents drawn with replacement).

    Deterministic for a given ``seed``. See the module docstring for the two resampling paths.
    """
    diff = np.asarray(candidate, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    if diff.ndim != 1:
        raise ValueError("paired scores must be flat sequences")
    if iters < 1:
        raise ValueError("iters must be at least 1")
    n = diff.size
    if n == 0:
        raise ValueError("the bootstrap needs at least one paired document")
    rng = np.random.default_rng(seed)
    values, counts = np.unique(diff, return_counts=True)
    if values.size <= _MAX_DISTINCT:
        draws = rng.multinomial(n, counts / n, size=iters)  # [iters, distinct]
        return (draws @ values) / n  # [iters]
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // n)
    chunks = []
    for start in range(0, iters, rows_per_chunk):
        rows = min(rows_per_chunk, iters - start)
        idx = rng.integers(0, n, size=(rows, n))  # [rows, n]
        chunks.append(diff[idx].mean(axis=1))  # [rows]
    return np.concatenate(chunks)  # [iters]


def paired_bootstrap(
    baseline: Sequence[float], candidate: Sequence[float], *, iters: int = 10_000, seed: int = 0
) -> float:
    """Two-sided paired-bootstrap p-value for ``mean(candidate - baseline) != 0``.

    Resamples documents ``iters`` times; p = 2 * min(share of resampled mean differences <= 0,
    share >= 0), capped at 1. Identical score vectors (or no documents) give 1.0.
    """
    diff = np.asarray(candidate, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    if diff.size == 0 or np.all(diff == 0):
        return 1.0
    means = bootstrap_mean_diffs(baseline, candidate, iters=iters, seed=seed)
    low = float(np.mean(means <= 0.0))
    high = float(np.mean(means >= 0.0))
    return min(1.0, 2.0 * min(low, high))


def paired_bootstrap_ci(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    level: float = 0.95,
    iters: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval for ``mean(candidate - baseline)`` at ``level``.

    Uses the same draws as :func:`paired_bootstrap` for the same ``iters`` and ``seed``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    means = bootstrap_mean_diffs(baseline, candidate, iters=iters, seed=seed)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


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
