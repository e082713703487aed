"""Paired tests: exact McNemar against scipy's binomial test at any size; the seeded bootstrap
at full-benchmark sizes (coverage, calibration, determinism)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from evalsuite.results.stats import (
    binomial_log_cdf_half,
    bootstrap_mean_diffs,
    mcnemar_exact,
    paired_bootstrap,
    paired_bootstrap_ci,
    paired_test,
)


@pytest.mark.parametrize(("b", "c"), [(0, 5), (3, 9), (10, 10), (1, 0), (25, 7)])
def test_mcnemar_matches_a_two_sided_binomial_test(b: int, c: int) -> None:
    expected = binomtest(min(b, c), b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected)


def test_mcnemar_without_discordant_pairs() -> None:
    assert mcnemar_exact(0, 0) == 1.0


def test_paired_test_auto_picks_by_scores() -> None:
    base = [1.0] * 12 + [0.0] * 8
    cand = [0.0] * 10 + [1.0] * 2 + [0.0] * 8
    res = paired_test(base, cand)
    assert res.test == "mcnemar" and (res.b, res.c) == (10, 0)
    assert res.delta == pytest.approx(-0.5)
    assert res.p_value == pytest.approx(2 / 2**10)
    res = paired_test([0.5, 0.2, 0.9], [0.4, 0.1, 0.8], iters=1000)
    assert res.test == "bootstrap"
    with pytest.raises(ValueError, match="pass/fail"):
        paired_test([0.5], [0.4], test="mcnemar")


def test_bootstrap_is_seeded_and_sensitive() -> None:
    base = [0.1 * (i % 10) for i in range(200)]
    shifted = [x - 0.2 for x in base]
    noisy = [x + (0.05 if i % 2 else -0.05) for i, x in enumerate(base)]
    assert paired_bootstrap(base, shifted, iters=2000, seed=1) < 0.001
    p1 = paired_bootstrap(base, noisy, iters=2000, seed=1)
    assert p1 > 0.5 and p1 == paired_bootstrap(base, noisy, iters=2000, seed=1)
    assert paired_bootstrap(base, base) == 1.0


# ---------------------------------------------------------------- McNemar at any size


@pytest.mark.parametrize(
    ("b", "c"),
    [
        (0, 0),  # no discordant pair
        (0, 1),
        (1, 1),
        (0, 30),  # all one way
        (30, 0),
        (512, 512),  # ties around the old overflow boundary
        (511, 513),
        (600, 424),  # 1,024 discordant pairs: the old code raised OverflowError here
        (0, 1100),  # all one way, p below 1e-300
        (4800, 5200),
        (49_800, 50_200),  # 10^5 discordant pairs
        (50_000, 50_000),
        (49_000, 51_000),
        (33_333, 66_667),  # p underflows to 0.0
    ],
)
def test_mcnemar_holds_at_any_size_and_matches_scipy(b: int, c: int) -> None:
    p = mcnemar_exact(b, c)
    assert 0.0 <= p <= 1.0
    if b + c == 0:
        assert p == 1.0
        return
    expected = binomtest(min(b, c), b + c, 0.5).pvalue
    assert p == pytest.approx(expected, rel=1e-7, abs=1e-300)
    assert mcnemar_exact(c, b) == p  # symmetric


def test_mcnemar_tie_gives_one_and_rejects_bad_counts() -> None:
    assert mcnemar_exact(7, 7) == 1.0
    assert mcnemar_exact(50_000, 50_000) == 1.0
    with pytest.raises(ValueError, match="non-negative"):
        mcnemar_exact(-1, 3)


def test_binomial_log_cdf_edges() -> None:
    assert binomial_log_cdf_half(-1, 10) == -math.inf
    assert binomial_log_cdf_half(10, 10) == 0.0
    assert binomial_log_cdf_half(0, 100_000) == pytest.approx(-100_000 * math.log(2.0))


def test_paired_test_on_a_full_mmlu_sized_comparison() -> None:
    rng = np.random.default_rng(7)
    base = (rng.random(14_042) < 0.65).astype(float)
    flip = rng.random(14_042) < 0.15  # about 2,100 discordant pairs
    cand = np.where(flip, 1.0 - base, base)
    res = paired_test(list(base), list(cand))
    assert res.test == "mcnemar" and res.b is not None and res.c is not None
    assert res.b + res.c > 1024
    assert res.p_value == pytest.approx(binomtest(min(res.b, res.c), res.b + res.c).pvalue)


# ---------------------------------------------------------------- bootstrap at full size


def _pairs(rng: np.random.Generator, n: int, p_only_base: float, p_only_cand: float):
    """Pass/fail pairs with P(only baseline right) and P(only candidate right) given."""
    u = rng.random(n)
    base = rng.random(n) < 0.5
    cand = base.copy()
    only_base = u < p_only_base
    only_cand = (u >= p_only_base) & (u < p_only_base + p_only_cand)
    base[only_base], cand[only_base] = True, False
    base[only_cand], cand[only_cand] = False, True
    return base.astype(float), cand.astype(float)


@pytest.mark.parametrize(("n", "reps"), [(1319, 300), (14_042, 120)])
def test_bootstrap_interval_covers_the_true_difference(n: int, reps: int) -> None:
    """95% percentile intervals on GSM8K- and MMLU-sized synthetic data with a known +0.03."""
    rng = np.random.default_rng(n)
    true_delta = 0.13 - 0.10
    covered = 0
    for rep in range(reps):
        base, cand = _pairs(rng, n, 0.10, 0.13)
        lo, hi = paired_bootstrap_ci(base, cand, iters=2000, seed=rep)
        covered += lo <= true_delta <= hi
    share = covered / reps
    sd = math.sqrt(0.95 * 0.05 / reps)
    assert abs(share - 0.95) < 3.5 * sd, share


def test_bootstrap_p_value_is_calibrated_under_the_null() -> None:
    rng = np.random.default_rng(11)
    reps, rejected = 300, 0
    for rep in range(reps):
        base, cand = _pairs(rng, 1319, 0.12, 0.12)
        rejected += paired_bootstrap(base, cand, iters=2000, seed=rep) < 0.05
    sd = math.sqrt(0.05 * 0.95 / reps)
    assert abs(rejected / reps - 0.05) < 3.5 * sd, rejected


def test_bootstrap_continuous_scores_at_full_size() -> None:
    """Many distinct differences (an F1-like score): the index-resampling path."""
    rng = np.random.default_rng(3)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        base = rng.beta(2, 2, n)
        return base, np.clip(base + rng.normal(0.01, 0.1, n), 0.0, 1.0)

    big_b, big_c = draw(4_000_000)
    true_delta = float(np.mean(big_c - big_b))  # population mean, Monte Carlo error ~5e-5
    n, reps, covered = 1319, 60, 0
    for rep in range(reps):
        base, cand = draw(n)
        lo, hi = paired_bootstrap_ci(base, cand, iters=1000, seed=rep)
        covered += lo <= true_delta <= hi
    sd = math.sqrt(0.95 * 0.05 / reps)
    assert abs(covered / reps - 0.95) < 3.5 * sd, covered
    big_base = rng.beta(2, 2, 14_042)
    big_cand = big_base + rng.normal(-0.02, 0.1, 14_042)
    assert paired_bootstrap(big_base, big_cand, iters=1000, seed=0) < 0.001
    first = bootstrap_mean_diffs(big_base, big_cand, iters=500, seed=5)
    assert np.array_equal(first, bootstrap_mean_diffs(big_base, big_cand, iters=500, seed=5))
    assert not np.array_equal(first, bootstrap_mean_diffs(big_base, big_cand, iters=500, seed=6))


def test_bootstrap_paths_agree_on_pass_fail_data() -> None:
    """Multinomial counts and index resampling estimate the same distribution."""
    rng = np.random.default_rng(5)
    base, cand = _pairs(rng, 14_042, 0.10, 0.11)
    counts = bootstrap_mean_diffs(base, cand, iters=4000, seed=1)
    # Adding a negligible distinct jitter per document forces the index path.
    jitter = np.arange(14_042) * 1e-12
    index = bootstrap_mean_diffs(base, cand + jitter, iters=4000, seed=1)
    assert counts.mean() == pytest.approx(float(np.mean(cand - base)), abs=5e-4)
    assert index.mean() == pytest.approx(counts.mean(), abs=5e-4)
    assert index.std() == pytest.approx(counts.std(), rel=0.06)
    assert counts.std() == pytest.approx(np.std(cand - base) / math.sqrt(14_042), rel=0.06)


def test_bootstrap_is_deterministic_with_a_seed_at_full_size() -> None:
    rng = np.random.default_rng(9)
    base, cand = _pairs(rng, 14_042, 0.10, 0.12)
    assert paired_bootstrap(base, cand, seed=4) == paired_bootstrap(base, cand, seed=4)
    assert paired_bootstrap_ci(base, cand, seed=4) == paired_bootstrap_ci(base, cand, seed=4)
    assert paired_bootstrap(base, cand, seed=4) < 0.05
