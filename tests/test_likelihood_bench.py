"""The likelihood benchmark's baseline is the official algorithm; its helpers are correct."""

from __future__ import annotations

import math
import sys

import torch

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import likelihood_bench as bench  # noqa: E402

from evalsuite.diffusion.designs import reference_mask_counts  # noqa: E402


def test_official_forward_process_masks_the_official_counts():
    seq = torch.arange(20)[None].repeat(16, 1)
    x, p_mask = bench.official_forward_process(seq, 8, 99, torch.Generator().manual_seed(0))
    counts = (x == 99).sum(1)
    assert (x[:, :8] == seq[:, :8]).all()  # the prompt is never masked
    assert torch.equal(p_mask, counts.double() / 12)
    assert any(torch.equal(counts, reference_mask_counts(12, 16, k)) for k in range(1, 13))


def test_official_loop_reproduces_the_golden_reference_statistics(golden_model, golden, golden_meta):
    """20 runs of the baseline on golden case 2: mean within 4 SE of the official code's
    expectation, SD close to the official code's."""
    meta = golden_meta["likelihood"][2]
    prompt, answer = golden["ll2.prompt"], golden["ll2.answer"]
    values = torch.tensor([bench.official_loglikelihood(golden_model, prompt, answer, 1000,
                                                        torch.Generator().manual_seed(s))
                           for s in range(20)], dtype=torch.float64)
    se = meta["official_mc128_sd"] / math.sqrt(20)
    assert abs(values.mean().item() - meta["official_expectation_b16"]) < 4 * se
    assert 0.6 < values.std().item() / meta["official_mc128_sd"] < 1.6


def test_flip_rate_counts_disagreeing_seed_pairs():
    # 3 seeds x (question of 2 choices + question of 3 choices)
    values = torch.tensor([[1.0, 0.0, 0.0, 2.0, 1.0],
                           [1.0, 0.0, 0.0, 2.0, 1.0],
                           [0.0, 1.0, 3.0, 2.0, 1.0]])
    # question 1: seeds pick 0, 0, 1 -> 2 of 3 pairs differ; question 2: 1, 1, 0 -> 2 of 3
    assert bench._flip_rate(values, [2, 3]) == 2 / 3


def test_proportional_network_puts_about_seven_percent_in_the_head():
    _, shape = bench.proportional_network(layers=2)
    assert 0.06 < shape["head_fraction"] < 0.08


def test_difference_sd_is_the_spread_of_first_minus_second_choice():
    values = torch.tensor([[1.0, 0.0, 5.0, 5.0],
                           [3.0, 0.0, 6.0, 6.0]], dtype=torch.float64)
    # question 1: differences 1, 3 -> SD sqrt(2); question 2: differences 0, 0 -> 0
    assert abs(bench._difference_sd(values, [2, 2]) - math.sqrt(2) / 2) < 1e-12
