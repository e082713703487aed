"""Parity with the reference implementation on shared/golden (copied into tests/fixtures)."""

from __future__ import annotations

import pytest
import torch

from evalsuite.settings.config import SamplerConfig
from evalsuite.diffusion.sampler import diffusion_generate

TOL = 1e-4


def test_logits_match_reference(golden_model, golden):
    with torch.no_grad():
        logits = golden_model(golden["logits.input_ids"])
    assert (logits - golden["logits.logits"]).abs().max().item() < TOL


def test_left_padded_logits_match_reference_in_reference_mode(golden_model, golden):
    """The reference ignores the attention mask; reference_padding reproduces it exactly."""
    ids, mask = golden["logits.input_ids"], golden["logits_masked.attention_mask"]
    golden_model.reference_padding = True
    try:
        with torch.no_grad():
            logits = golden_model(ids, attention_mask=mask)
    finally:
        golden_model.reference_padding = False
    assert (logits - golden["logits_masked.logits"]).abs().max().item() < TOL


def test_padding_mask_makes_padded_rows_equal_their_unpadded_logits(golden_model, golden):
    ids, mask = golden["logits.input_ids"], golden["logits_masked.attention_mask"]
    with torch.no_grad():
        padded = golden_model(ids, attention_mask=mask)
        for row in range(ids.shape[0]):
            keep = mask[row].bool()
            alone = golden_model(ids[row:row + 1, keep])
            assert (padded[row, keep] - alone[0]).abs().max().item() < TOL
    # and the mask matters: a padded row differs from attending to the padding
    assert (padded[0] - golden["logits_masked.logits"][0]).abs().max().item() > 0.1


@pytest.mark.parametrize("case", [0, 1, 2])
def test_greedy_generation_matches_reference(golden_model, golden, golden_meta, case):
    settings = golden_meta["generation"][case]
    config = SamplerConfig(gen_length=settings["gen_length"], steps=settings["steps"],
                           block_length=settings["block_length"], cfg_scale=settings["cfg_scale"])
    out = diffusion_generate(golden_model, golden[f"gen{case}.prompt"], config=config,
                             mask_id=golden_meta["mask_id"], eos_id=golden_meta["eos_token_id"])
    assert torch.equal(out.tokens, golden[f"gen{case}.output"])
    assert out.nfe == settings["steps"]


def test_batched_left_padded_generation_matches_reference(golden_model, golden, golden_meta):
    settings = golden_meta["generation"][3]
    config = SamplerConfig(gen_length=settings["gen_length"], steps=settings["steps"],
                           block_length=settings["block_length"])
    golden_model.reference_padding = True
    try:
        out = diffusion_generate(golden_model, golden["genbatch.prompt"],
                                 golden["genbatch.attention_mask"], config=config,
                                 mask_id=golden_meta["mask_id"])
    finally:
        golden_model.reference_padding = False
    assert torch.equal(out.tokens, golden["genbatch.output"])


def test_batched_generation_with_mask_equals_rows_alone(golden_model, golden, golden_meta):
    config = SamplerConfig(gen_length=16, steps=16, block_length=8)
    prompts, mask = golden["genbatch.prompt"], golden["genbatch.attention_mask"]
    batch = diffusion_generate(golden_model, prompts, mask, config=config,
                               mask_id=golden_meta["mask_id"])
    assert batch.tokens.shape == (3, prompts.shape[1] + 16)
    for row in range(3):
        alone = diffusion_generate(golden_model, prompts[row:row + 1, mask[row].bool()],
                                   config=config, mask_id=golden_meta["mask_id"])
        assert torch.equal(alone.generated[0], batch.generated[row])
