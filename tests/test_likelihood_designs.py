"""The estimator's designs: exact enumeration, lower variance than the reference at equal
rows, unbiasedness, the reference algorithm reproduced, CRN, adaptive stopping, non-finite."""

from __future__ import annotations

import re

import copy
import math

import pytest
import torch

from evalsuite.settings.config import EstimatorConfig
from evalsuite.diffusion.designs import (
    allocate,
    auto_design,
    combine,
    exact_design,
    reference_design,
    reference_mask_counts,
)
from evalsuite.diffusion.likelihood import estimate_loglikelihood
from evalsuite.errors import ConfigError

MASK = 1000


def _pair(golden, case):
    return golden[f"ll{case}.prompt"], golden[f"ll{case}.answer"]


def _made_case(golden, length: int, seed: int = 0):
    """The golden prompt of case 2 with a random answer of ``length`` tokens."""
    ans = torch.randint(0, 999, (length,), generator=torch.Generator().manual_seed(seed))
    return golden["ll2.prompt"], ans


def _runs(model, pair, estimator: str, runs: int, mc_num: int = 128, seed0: int = 0):
    config = EstimatorConfig(mc_num=mc_num, batch_size=16, estimator=estimator)
    gens = [torch.Generator().manual_seed(seed0 + s) for s in range(runs)]
    return estimate_loglikelihood(model, [pair] * runs, config=config, mask_id=MASK,
                                  generators=gens, max_rows=256)


def _row_values(model, pair, masks: torch.Tensor) -> torch.Tensor:
    """``(L / l) g(S)`` of each mask row, computed directly with full-sequence logits."""
    prompt, answer = pair
    seq = torch.cat([prompt, answer])
    full = torch.zeros((masks.shape[0], seq.numel()), dtype=torch.bool)
    full[:, prompt.numel():] = masks
    x = seq.expand_as(full).masked_fill(full, MASK)
    with torch.no_grad():
        logp = torch.log_softmax(model(x).double(), -1)
    picked = logp.gather(-1, seq.expand_as(full)[..., None]).squeeze(-1)
    return (picked * full).sum(1) * answer.numel() / full.sum(1)


def _exact_elbo(model, pair) -> float:
    design = exact_design(int(pair[1].numel()))
    return combine(design, _row_values(model, pair, design.masks))[0]


@pytest.mark.parametrize("case", [1, 2])
def test_golden_multi_token_cases_are_exact_under_the_budget(golden_model, golden, golden_meta, case):
    """2^L - 1 <= mc_num: every masked input enumerated once, the bound itself, SE 0."""
    expected = golden_meta["likelihood"][case]["exact_elbo"]
    res = _runs(golden_model, _pair(golden, case), "auto", runs=1)[0]
    length = golden_meta["likelihood"][case]["answer_len"]
    assert res.exact and res.stderr == 0.0 and res.design == "exact"
    assert res.samples == 2 ** length - 1 == res.nfe
    assert res.value == pytest.approx(expected, abs=1e-4)


def test_exact_enumeration_matches_direct_computation(golden_model, golden):
    pair = _made_case(golden, 7)
    res = _runs(golden_model, pair, "auto", runs=1)[0]
    assert res.exact and res.samples == 127
    assert res.value == pytest.approx(_exact_elbo(golden_model, pair), abs=1e-4)


@pytest.mark.parametrize("length", [8, 12])
def test_auto_halves_the_reference_sd_at_no_more_rows_and_is_unbiased(golden_model, golden, length):
    """40 runs each at mc_num 128: SD(auto) <= SD(reference) / 2, mean within 3 SE of the
    exact bound (computed by enumerating all 2^L - 1 inputs), no more rows or passes."""
    pair = _made_case(golden, length, seed=length)
    exact = _exact_elbo(golden_model, pair)
    runs = 40
    auto = _runs(golden_model, pair, "auto", runs, seed0=100)
    ref = _runs(golden_model, pair, "reference", runs, seed0=100)
    va = torch.tensor([r.value for r in auto], dtype=torch.float64)
    vr = torch.tensor([r.value for r in ref], dtype=torch.float64)
    assert va.std() <= 0.5 * vr.std()
    assert abs(va.mean().item() - exact) < 3 * va.std().item() / math.sqrt(runs)
    assert all(r.samples <= 128 and not r.exact and r.design == "auto" for r in auto)
    assert all(r.samples == 128 for r in ref)
    # the reported standard error is calibrated or conservative
    reported = sum(r.stderr for r in auto) / runs
    assert 0.8 < reported / va.std().item() < 3.0


@pytest.mark.slow
@pytest.mark.parametrize("length", [20, 40])
def test_auto_halves_the_reference_sd_on_longer_answers(golden_model, golden, length):
    """Longer answers (40 > mc_num / 4 counts: neighbouring counts share strata)."""
    pair = _made_case(golden, length, seed=length)
    auto = torch.tensor([r.value for r in _runs(golden_model, pair, "auto", 30)])
    ref = torch.tensor([r.value for r in _runs(golden_model, pair, "reference", 30)])
    assert auto.std() <= 0.5 * ref.std()


def test_reference_design_has_the_official_expectation(golden_model, golden, golden_meta):
    """The exact expectation of the reference design (b = 16) equals the one measured from
    the official code (official_expectation_b16), which is off the exact bound."""
    for case in (1, 2):
        meta = golden_meta["likelihood"][case]
        pair, length = _pair(golden, case), meta["answer_len"]
        design = exact_design(length)
        values = _row_values(golden_model, pair, design.masks)
        mean_l = {l: float(values[design.counts == l].mean()) for l in range(1, length + 1)}
        expectation = sum(mean_l[int(l)] for k in range(1, length + 1)
                          for l in reference_mask_counts(length, 16, k)) / (16 * length)
        assert expectation == pytest.approx(meta["official_expectation_b16"], abs=1e-4)
        assert abs(expectation - meta["exact_elbo"]) > 1e-3


def test_reference_runs_match_the_official_spread(golden_model, golden, golden_meta):
    meta = golden_meta["likelihood"][2]
    values = torch.tensor([r.value for r in _runs(golden_model, _pair(golden, 2), "reference", 30)],
                          dtype=torch.float64)
    se = meta["official_mc128_sd"] / math.sqrt(30)
    assert abs(values.mean().item() - meta["official_expectation_b16"]) < 4 * se
    assert 0.6 < values.std().item() / meta["official_mc128_sd"] < 1.6


def test_reference_mask_counts_round_half_to_even():
    for length, b in ((3, 16), (6, 16), (12, 16), (5, 4)):
        for k in range(1, length + 1):
            expected = [((round(k + j * length / b) - 1) % length) + 1 for j in range(b)]
            assert reference_mask_counts(length, b, k).tolist() == expected


def test_reference_design_rows():
    design = reference_design(6, 32, 16, torch.Generator().manual_seed(0))
    assert design.masks.shape == (32, 6) and design.kind == "replicates"
    for g in range(2):
        counts = design.counts[design.group == g]
        assert any(counts.tolist() == reference_mask_counts(6, 16, k).tolist() for k in range(1, 7))


@pytest.mark.parametrize("length, budget", [(8, 128), (12, 128), (20, 128), (40, 128), (200, 128),
                                            (9, 16), (30, 32), (5, 3), (64, 1)])
def test_allocation_covers_every_count_within_budget(length, budget):
    strata = allocate(length, budget)
    covered = [l for s in strata for l in range(s.lo, s.hi + 1)]
    assert covered == list(range(1, length + 1))
    assert sum(s.rows for s in strata) <= budget and all(s.rows >= 1 for s in strata)
    for s in strata:
        if s.exhaustive:
            assert s.lo == s.hi and s.rows == math.comb(length, s.lo)
    design = auto_design(length, budget, seed=1)
    assert design.masks.shape[0] <= budget
    for b, s in enumerate(strata):
        counts = design.counts[design.group == b]
        assert counts.min() >= s.lo and counts.max() <= s.hi


def test_singleton_strata_are_balanced_and_distinct():
    """Inside a stratum every position is masked equally often (+-1) and no subset repeats
    within a cycle."""
    design = auto_design(12, 128, seed=5)
    for b in range(len(design.masses)):
        rows = design.masks[design.group == b]
        cover = rows.sum(0)
        assert cover.max() - cover.min() <= 1
        if int(rows.sum(1)[0]) in (2, 3, 4, 6):
            cycle = 12 // math.gcd(12, int(rows.sum(1)[0]))
            first = {tuple(r.tolist()) for r in rows[:cycle]}
            assert len(first) == min(cycle, rows.shape[0])


def test_auto_design_marginals_are_uniform_subsets():
    """Averaged over seeds, each position is masked with probability l / L in stratum l."""
    hits = torch.zeros(10, dtype=torch.float64)
    rows = 0
    for seed in range(300):
        design = auto_design(10, 40, seed)
        two = design.masks[design.counts == 3]
        hits += two.sum(0)
        rows += two.shape[0]
    assert torch.allclose(hits / rows, torch.full((10,), 0.3, dtype=torch.float64), atol=0.03)


def test_common_random_numbers_reduce_the_spread_of_a_difference(golden_model, golden):
    """Two choices of one question with equal lengths: sharing the design's random numbers
    (crn_groups) makes the difference of their estimates vary much less."""
    prompt = golden["ll2.prompt"]
    a = torch.randint(0, 999, (12,), generator=torch.Generator().manual_seed(1))
    b = a.clone()
    b[:3] = torch.tensor([17, 18, 19])
    config = EstimatorConfig(mc_num=32, batch_size=16)
    seeds = 16
    pairs = [(prompt, a), (prompt, b)] * seeds
    gens = [torch.Generator().manual_seed(s) for s in range(2 * seeds)]
    diffs = {}
    for crn in (True, False):
        groups = [k // 2 for k in range(2 * seeds)] if crn else None
        res = estimate_loglikelihood(golden_model, pairs, config=config, mask_id=MASK,
                                     generators=gens, crn_groups=groups, max_rows=256)
        out = [res[2 * s].value - res[2 * s + 1].value for s in range(seeds)]
        diffs[crn] = torch.tensor(out).std().item()
    assert diffs[True] < 0.7 * diffs[False]


def test_target_se_stops_early_and_records_rounds(golden_model, golden):
    pair = _made_case(golden, 12, seed=3)
    loose = EstimatorConfig(mc_num=128, batch_size=16, target_se=100.0)
    tight = EstimatorConfig(mc_num=128, batch_size=16, target_se=1e-6)
    gen = lambda: [torch.Generator().manual_seed(9)]  # noqa: E731
    first = estimate_loglikelihood(golden_model, [pair], config=loose, mask_id=MASK, generators=gen())[0]
    full = estimate_loglikelihood(golden_model, [pair], config=tight, mask_id=MASK, generators=gen())[0]
    assert first.rounds == 1 and first.samples == 32 and first.stderr <= 100.0
    assert full.rounds > 1 and full.samples == 128 and full.stderr < first.stderr
    # an answer that fits the budget is enumerated at once, whatever the target
    exact = estimate_loglikelihood(golden_model, [_pair(golden, 2)], config=tight, mask_id=MASK,
                                   generators=gen())[0]
    assert exact.exact and exact.rounds == 1


def test_target_se_estimates_stay_unbiased(golden_model, golden):
    pair = _made_case(golden, 9, seed=4)
    exact = _exact_elbo(golden_model, pair)
    config = EstimatorConfig(mc_num=128, batch_size=16, target_se=0.3)
    gens = [torch.Generator().manual_seed(50 + s) for s in range(40)]
    res = estimate_loglikelihood(golden_model, [pair] * 40, config=config, mask_id=MASK,
                                 generators=gens, max_rows=256)
    values = torch.tensor([r.value for r in res], dtype=torch.float64)
    assert abs(values.mean().item() - exact) < 3 * values.std().item() / math.sqrt(40)


def test_nonfinite_logits_are_flagged(golden_model, golden):
    broken = copy.deepcopy(golden_model)
    with torch.no_grad():
        head = broken.wte.weight if broken.ff_out is None else broken.ff_out.weight
        head[7] = float("nan")
    config = EstimatorConfig(mc_num=16, batch_size=16)
    bad = estimate_loglikelihood(broken, [_pair(golden, 1)], config=config, mask_id=MASK)[0]
    good = estimate_loglikelihood(golden_model, [_pair(golden, 1)], config=config, mask_id=MASK)[0]
    assert bad.nonfinite and not good.nonfinite


def test_bfloat16_model_scores_in_float32(golden_model, golden):
    """A bf16 network gives the float32 value up to bf16's error in the network, not in the
    log-softmax (computed in float32)."""
    low = copy.deepcopy(golden_model).to(torch.bfloat16)
    config = EstimatorConfig(mc_num=128, batch_size=16)
    ref = estimate_loglikelihood(golden_model, [_pair(golden, 2)], config=config, mask_id=MASK)[0]
    got = estimate_loglikelihood(low, [_pair(golden, 2)], config=config, mask_id=MASK)[0]
    assert got.exact and math.isfinite(got.value)
    assert got.value == pytest.approx(ref.value, abs=0.5)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"estimator": "official"}, "estimator 'official' (from argument) must be one of auto, stratified, reference"),
    ({"target_se": 0.0}, "target_se 0.0 (from argument) must be > 0"),
    ({"target_se": -1.0}, "target_se -1.0 (from argument) must be > 0"),
])
def test_invalid_design_settings_are_named(kwargs, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        EstimatorConfig(**kwargs)
