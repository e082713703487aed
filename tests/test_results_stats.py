"""Paired tests: exact McNemar against scipy's binomial test, seeded bootstrap."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from evalsuite.results.stats import mcnemar_exact, paired_bootstrap, paired_test


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
