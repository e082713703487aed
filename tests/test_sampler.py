"""Diffusion sampler: schedule, settings validation, CFG, randomness, EOS flags."""

from __future__ import annotations

import re

import pytest
import torch

import evalsuite
from evalsuite.settings.config import SamplerConfig
from evalsuite.diffusion.sampler import diffusion_generate, transfer_schedule
from evalsuite.errors import ConfigError

MASK = 1000


def test_transfer_schedule_is_linear_with_remainder_first():
    sched = transfer_schedule(torch.tensor([10, 4, 0]), 4)
    assert sched.tolist() == [[3, 3, 2, 2], [1, 1, 1, 1], [0, 0, 0, 0]]


@pytest.mark.parametrize("kwargs, fragment", [
    ({"gen_length": 100, "block_length": 48, "steps": 10}, "gen_length 100 (from argument) is not a multiple of block_length 48"),
    ({"gen_length": 64, "block_length": 16, "steps": 10}, "steps 10 (from argument) is not divisible by the number of blocks 4"),
    ({"gen_length": 16, "block_length": 32, "steps": 16}, "block_length 32 (from argument) is larger than gen_length 16"),
    ({"gen_length": -8, "block_length": 8, "steps": 8}, "gen_length -8 (from argument) must be a positive integer"),
    ({"gen_length": 8, "block_length": 8, "steps": 8, "temperature": -1.0}, "temperature -1.0 (from argument) must be >= 0"),
    ({"gen_length": 8, "block_length": 8, "steps": 8, "remasking": "top_k"}, "remasking 'top_k' (from argument) must be one of"),
])
def test_invalid_settings_name_the_values(kwargs, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        SamplerConfig(**kwargs)


def test_cfg_without_attention_mask_runs_and_differs(golden_model, golden):
    prompt = golden["gen0.prompt"]
    plain = evalsuite.generate(golden_model, prompt, steps=8, gen_length=8, block_length=8)
    guided = evalsuite.generate(golden_model, prompt, steps=8, gen_length=8, block_length=8,
                                cfg_scale=2.0)
    assert guided.tokens.shape == plain.tokens.shape
    assert not torch.equal(guided.tokens, plain.tokens)
    assert (guided.generated != MASK).all()


def test_cfg_with_attention_mask_equals_rows_alone(golden_model, golden):
    prompts, mask = golden["genbatch.prompt"], golden["genbatch.attention_mask"]
    batch = evalsuite.generate(golden_model, prompts, mask, steps=8, gen_length=8,
                               block_length=8, cfg_scale=1.0)
    for row in range(3):
        alone = evalsuite.generate(golden_model, prompts[row:row + 1, mask[row].bool()],
                                   steps=8, gen_length=8, block_length=8, cfg_scale=1.0)
        assert torch.equal(alone.generated[0], batch.generated[row])


def test_temperature_sampling_is_reproducible_from_the_seed(golden_model, golden):
    prompt = golden["gen0.prompt"]
    kwargs = dict(steps=8, gen_length=16, block_length=8, temperature=1.0)
    a = evalsuite.generate(golden_model, prompt, seed=1, **kwargs)
    b = evalsuite.generate(golden_model, prompt, seed=1, **kwargs)
    c = evalsuite.generate(golden_model, prompt, seed=2, **kwargs)
    greedy = evalsuite.generate(golden_model, prompt, steps=8, gen_length=16, block_length=8)
    assert torch.equal(a.tokens, b.tokens)
    assert not torch.equal(a.tokens, c.tokens) or not torch.equal(a.tokens, greedy.tokens)


def test_per_row_generators_make_sampling_batch_invariant(golden_model, golden):
    prompts, mask = golden["genbatch.prompt"], golden["genbatch.attention_mask"]
    config = SamplerConfig(gen_length=8, steps=8, block_length=8, temperature=0.7,
                           remasking="random")
    gens = [torch.Generator().manual_seed(10 + r) for r in range(3)]
    batch = diffusion_generate(golden_model, prompts, mask, config=config, mask_id=MASK,
                               generator=gens)
    for row in range(3):
        alone = diffusion_generate(golden_model, prompts[row:row + 1, mask[row].bool()],
                                   config=config, mask_id=MASK,
                                   generator=[torch.Generator().manual_seed(10 + row)])
        assert torch.equal(alone.generated[0], batch.generated[row])


class _PrefersEos(torch.nn.Module):
    """A stand-in network whose logits favour EOS (id 3) everywhere, then token 5, 6, ..."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, positions=None):
        b, t = input_ids.shape
        logits = torch.full((b, t, 16), -10.0)
        logits[:, :, 3] = 5.0
        logits[:, :, 4] = 4.0  # EoT
        ramp = torch.linspace(0.0, 3.0, t)
        logits[:, :, 5] = ramp  # confidence of token 5 grows to the right
        return logits if positions is None else logits[:, positions]


def test_logits_eos_inf_never_emits_eos():
    net = _PrefersEos()
    config = SamplerConfig(gen_length=8, steps=8, block_length=8, logits_eos_inf=True)
    out = diffusion_generate(net, torch.tensor([[7, 8]]), config=config, mask_id=1, eos_id=3)
    assert (out.generated != 3).all()
    config = SamplerConfig(gen_length=8, steps=8, block_length=8)
    out = diffusion_generate(net, torch.tensor([[7, 8]]), config=config, mask_id=1, eos_id=3)
    assert (out.generated == 3).all()


def test_confidence_eos_eot_inf_commits_eos_and_eot_last():
    net = _PrefersEos()
    config = SamplerConfig(gen_length=4, steps=4, block_length=4, confidence_eos_eot_inf=True,
                           logits_eos_inf=True)
    # with EOS banned, EoT (id 4) is the argmax everywhere; the flag must commit it last, so
    # the first step commits nothing else either: every position predicts EoT and all are last.
    out = diffusion_generate(net, torch.tensor([[7, 8]]), config=config, mask_id=1, eos_id=3, eot_id=4)
    assert (out.generated == 4).all()


class _MixedPredictor(torch.nn.Module):
    """Position 0 of the answer predicts EOS with high confidence; others token 9, lower."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[torch.Tensor] = []

    def forward(self, input_ids, attention_mask=None, positions=None):
        b, t = input_ids.shape
        self.seen.append(input_ids.clone())
        logits = torch.zeros((b, t, 16))
        logits[:, :, 9] = 2.0
        logits[:, 2, 3] = 20.0  # first answer position (prompt length 2): EOS, very confident
        return logits if positions is None else logits[:, positions]


def test_eos_confidence_flag_changes_commit_order():
    config = SamplerConfig(gen_length=4, steps=4, block_length=4)
    net = _MixedPredictor()
    diffusion_generate(net, torch.tensor([[7, 8]]), config=config, mask_id=1, eos_id=3)
    assert net.seen[1][0, 2].item() == 3  # without the flag EOS is committed first
    net = _MixedPredictor()
    flagged = config.replace(confidence_eos_eot_inf=True)
    out = diffusion_generate(net, torch.tensor([[7, 8]]), config=flagged, mask_id=1, eos_id=3)
    assert net.seen[1][0, 2].item() == 1  # still masked after step 1: committed last
    assert net.seen[3][0, 2].item() == 1
    assert out.generated[0, 0].item() == 3


def test_semi_autoregressive_blocks_fill_left_to_right(golden_model, golden):
    seen: list[torch.Tensor] = []

    class Spy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = golden_model

        def forward(self, input_ids, attention_mask=None, positions=None):
            seen.append(input_ids.clone())
            return self.inner(input_ids, attention_mask, positions)

    prompt = golden["gen1.prompt"]
    p = prompt.shape[1]
    config = SamplerConfig(gen_length=16, steps=8, block_length=8)
    out = diffusion_generate(Spy(), prompt, config=config, mask_id=MASK)
    assert out.nfe == 8
    after_first_block = seen[4][0]
    assert (after_first_block[p:p + 8] != MASK).all()
    assert (after_first_block[p + 8:] == MASK).all()


class _Confident(torch.nn.Module):
    """Logits with a fixed confidence per answer position: 0.95 at even, 0.5 at odd offsets."""

    def __init__(self, prompt_length: int) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.p = prompt_length
        self.calls = 0

    def forward(self, input_ids, attention_mask=None, positions=None):
        self.calls += 1
        b, t = input_ids.shape
        logits = torch.full((b, t, 8), -30.0)
        for j in range(t):
            confident = (j - self.p) % 2 == 0
            logits[:, j, 6] = 0.0
            logits[:, j, 7] = 2.95 if confident else 0.0  # softmax ~0.95 vs 0.5
        return logits if positions is None else logits[:, positions]


def test_threshold_decoding_commits_all_confident_positions_in_one_pass():
    net = _Confident(prompt_length=2)
    config = SamplerConfig(gen_length=8, steps=8, block_length=8, decoding="threshold",
                           threshold=0.9)
    out = diffusion_generate(net, torch.tensor([[4, 5]]), config=config, mask_id=1)
    # pass 1 commits the 4 confident positions; the 4 unsure ones (0.5) go one per pass
    assert out.nfe == 1 + 4 == net.calls
    assert (out.generated != 1).all()
    schedule = diffusion_generate(_Confident(2), torch.tensor([[4, 5]]),
                                  config=config.replace(decoding="schedule"), mask_id=1)
    assert schedule.nfe == 8
    assert torch.equal(schedule.generated, out.generated)


def test_threshold_decoding_on_the_golden_model_fills_every_block(golden_model, golden):
    config = SamplerConfig(gen_length=32, steps=32, block_length=8, decoding="threshold",
                           threshold=0.5)
    out = diffusion_generate(golden_model, golden["gen1.prompt"], config=config, mask_id=MASK)
    assert (out.generated != MASK).all()
    assert 4 <= out.nfe <= 32


@pytest.mark.parametrize("kwargs, fragment", [
    ({"decoding": "fast"}, "decoding 'fast' (from argument) must be one of schedule, threshold"),
    ({"decoding": "threshold", "threshold": 0.0}, "threshold 0.0 (from argument) must be in (0, 1]"),
    ({"decoding": "threshold", "remasking": "random"}, "needs remasking='low_confidence'"),
])
def test_invalid_decoding_settings(kwargs, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        SamplerConfig(gen_length=8, steps=8, block_length=8, **kwargs)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_kv_cache_pass_is_exact_while_the_sequence_is_unchanged(golden_model, golden, mode):
    prompts, mask = golden["genbatch.prompt"], golden["genbatch.attention_mask"]
    x = torch.cat([prompts, torch.full((3, 16), MASK)], dim=1)
    full_mask = torch.cat([mask, torch.ones(3, 16, dtype=mask.dtype)], dim=1)
    cols = slice(14, 22)
    active = slice(14, 30) if mode == "prefix" else cols
    with torch.no_grad():
        reference = golden_model(x, attention_mask=full_mask, positions=cols)
        built, cache = golden_model.forward_cached(x, full_mask, active=active, positions=cols)
        reused, _ = golden_model.forward_cached(x, full_mask, active=active, positions=cols,
                                                cache=cache)
    assert (built - reference).abs().max().item() < 1e-4
    assert (reused - reference).abs().max().item() < 1e-4


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_cached_generation_fills_every_block_and_is_batch_invariant(golden_model, golden, mode):
    prompts, mask = golden["genbatch.prompt"], golden["genbatch.attention_mask"]
    config = SamplerConfig(gen_length=16, steps=16, block_length=8, cache=mode)
    batch = diffusion_generate(golden_model, prompts, mask, config=config, mask_id=MASK)
    assert (batch.generated != MASK).all() and batch.nfe == 16
    for row in range(3):
        alone = diffusion_generate(golden_model, prompts[row:row + 1, mask[row].bool()],
                                   config=config, mask_id=MASK)
        assert torch.equal(alone.generated[0], batch.generated[row])


def test_cache_with_cfg_runs(golden_model, golden):
    config = SamplerConfig(gen_length=16, steps=8, block_length=8, cache="dual", cfg_scale=1.0)
    out = diffusion_generate(golden_model, golden["gen0.prompt"], config=config, mask_id=MASK)
    assert (out.generated != MASK).all()


def test_unknown_cache_mode_is_named():
    with pytest.raises(ConfigError, match=r"cache 'full' \(from argument\) must be one of none, prefix, dual"):
        SamplerConfig(gen_length=8, steps=8, block_length=8, cache="full")
