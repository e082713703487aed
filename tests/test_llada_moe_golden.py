"""LLaDA-MoE parity with the official code on tests/fixtures/golden/llada_moe (from
shared/golden/llada_moe): logits, LLaDA's sampler token for token, Eq. 6 likelihood."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

import evalsuite
from evalsuite.errors import CheckpointError

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden" / "llada_moe"
CKPT = GOLDEN / "tiny-llada-moe"
TOL = 1e-4


@pytest.fixture(scope="module")
def gold():
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "tiny-llada-moe-golden.safetensors"))


@pytest.fixture(scope="module")
def meta():
    return json.loads((GOLDEN / "tiny-llada-moe-golden.json").read_text())


@pytest.fixture(scope="module")
def model():
    return evalsuite.load_model(str(CKPT), device="cpu")


def test_recognised_from_config_with_ids_from_the_checkpoint(model, meta):
    assert model.family.name == "llada_moe"
    assert model.tokens.mask_id == meta["mask_token_id"]
    assert model.tokens.eos_id == meta["eos_token_id"]
    assert model.tokens.pad_id == meta["pad_token_id"]


def test_logits_match_official(model, gold):
    with torch.no_grad():
        logits = model.network(gold["logits.input_ids"])
    assert (logits - gold["logits.logits"]).abs().max().item() <= TOL


def test_padding_official_mode_ignores_mask_default_honours_it(model, gold):
    ids, mask = gold["logits.input_ids"], gold["logits_padded.attention_mask"]
    net = model.network
    with torch.no_grad():
        net.reference_padding = True
        try:
            official = net(ids, attention_mask=mask)
        finally:
            net.reference_padding = False
        masked = net(ids, attention_mask=mask)
        assert (official - gold["logits.logits"]).abs().max().item() <= TOL
        assert (masked - gold["logits_padded_dllm_variant.logits"]).abs().max().item() <= TOL
        for row in range(ids.shape[0]):  # masked rows equal their solo runs
            keep = mask[row].bool()
            alone = net(ids[row:row + 1, keep])
            assert (masked[row, keep] - alone[0]).abs().max().item() <= TOL
    assert (masked - official).abs().max().item() > 0.1  # the mask matters


@pytest.mark.parametrize("case", [0, 1, 2, 3])
def test_generation_matches_official(model, gold, meta, case):
    s = meta["generation"][case]
    prompt = gold[f"gen{case}.prompt"]
    mask = torch.ones_like(prompt) if s["cfg_scale"] > 0 else None  # as generate.py needs
    out = evalsuite.generate(model, prompt, mask, steps=s["steps"], gen_length=s["gen_length"],
                             block_length=s["block_length"], cfg_scale=s["cfg_scale"],
                             temperature=s["temperature"], remasking=s["remasking"])
    assert torch.equal(out.tokens, gold[f"gen{case}.output"])
    assert bool((out.generated == meta["mask_token_id"]).any()) == s["output_contains_mask_id"]


def test_batch_official_with_reference_padding_and_masked_by_default(model, gold, meta):
    s = meta["generation"][4]
    prompts, mask = gold["genbatch.prompt"], gold["genbatch.attention_mask"]
    settings = dict(steps=s["steps"], gen_length=s["gen_length"], block_length=s["block_length"])
    model.network.reference_padding = True
    try:
        official = evalsuite.generate(model, prompts, mask, **settings)
    finally:
        model.network.reference_padding = False
    assert torch.equal(official.tokens, gold["genbatch.output_official"])
    masked = evalsuite.generate(model, prompts, mask, **settings)
    assert torch.equal(masked.tokens, gold["genbatch.output_dllm_masked"])
    for row in range(prompts.shape[0]):
        alone = evalsuite.generate(model, prompts[row:row + 1, mask[row].bool()], **settings)
        assert torch.equal(alone.generated[0], masked.generated[row])


@pytest.mark.parametrize("case", [0, 1, 2])
def test_likelihood_exact_enumeration_equals_golden_bound(model, gold, meta, case):
    want = meta["likelihood"][case]["exact_elbo"]
    res = evalsuite.loglikelihood(model, gold[f"ll{case}.prompt"], gold[f"ll{case}.answer"],
                                  mc_num=128, seed=0)
    assert res.exact
    assert abs(res.value - want) <= 1e-4 * abs(want)


@pytest.mark.parametrize("case", [1, 2])
def test_likelihood_monte_carlo_mean_within_three_standard_errors(model, gold, meta, case):
    want = meta["likelihood"][case]["exact_elbo"]
    runs = [evalsuite.loglikelihood(model, gold[f"ll{case}.prompt"], gold[f"ll{case}.answer"],
                                    mc_num=4, mc_batch_size=4, seed=s, estimator="stratified").value
            for s in range(40)]
    mean = sum(runs) / len(runs)
    sd = math.sqrt(sum((r - mean) ** 2 for r in runs) / (len(runs) - 1))
    assert sd > 0  # really Monte Carlo
    assert abs(mean - want) <= 3 * sd / math.sqrt(len(runs))


def _copy_checkpoint(tmp_path: Path) -> Path:
    target = tmp_path / "ckpt"
    shutil.copytree(CKPT, target)
    return target


def _edit_config(ckpt: Path, **changes) -> None:
    raw = json.loads((ckpt / "config.json").read_text())
    raw.update(changes)
    (ckpt / "config.json").write_text(json.dumps(raw))


@pytest.mark.parametrize("changes, needle", [
    ({"num_experts": 5}, "num_experts"),
    ({"num_experts": 3}, "num_experts"),
    ({"expert_intermediate_size": 16}, "expert_intermediate_size"),
    ({"moe_layer_freq": [0, 1]}, "moe_layer_freq"),
    ({"moe_router_enable_expert_bias": True}, "moe_router_enable_expert_bias"),
    ({"moe_router_score_function": "sparsemixer"}, "moe_router_score_function"),
    ({"num_experts_per_tok": 9}, "num_experts_per_tok"),
])
def test_mismatched_expert_config_is_refused_naming_the_key(tmp_path, changes, needle):
    ckpt = _copy_checkpoint(tmp_path)
    _edit_config(ckpt, **changes)
    with pytest.raises(CheckpointError, match=needle):
        evalsuite.load_model(str(ckpt), device="cpu")


@pytest.mark.parametrize("raw, family", [
    ({"model_type": "lladamoe"}, "llada_moe"),
    ({"model_type": "LLaDA_MoE"}, "llada_moe"),
    # dInfer's copy of the LLaDA-MoE config reuses model_type "llada" with MoE keys
    ({"model_type": "llada", "num_experts": 64, "hidden_size": 2048}, "llada_moe"),
    ({"model_type": "llada", "d_model": 4096}, "llada"),
    ({"model_type": "llada2_moe"}, "llada2"),
])
def test_family_detected_from_config(raw, family):
    from evalsuite.families import detect_family

    assert detect_family(raw).name == family


def test_dense_layer_shared_expert_and_expert_bias_round_trip(tmp_path):
    """Options the golden checkpoint lacks: a dense layer (moe_layer_freq 0), a shared expert
    and the router's expert bias, saved in the official key layout and loaded back."""
    from safetensors.torch import save_file

    from evalsuite.families.llada_moe.config import LLaDAMoEConfig
    from evalsuite.families.llada_moe.network import LLaDAMoEModel

    raw = json.loads((CKPT / "config.json").read_text())
    raw.update(moe_layer_freq=[0, 1], shared_expert_intermediate_size=48,
               moe_router_enable_expert_bias=True)
    torch.manual_seed(0)
    net = LLaDAMoEModel(LLaDAMoEConfig.from_dict(raw)).eval()
    moe = net.model.layers[1].mlp
    with torch.no_grad():
        moe.expert_bias.copy_(torch.tensor([0.3, -0.2, 0.0, 0.1]))
    keys = set(net.state_dict())
    assert "model.layers.0.mlp.gate_proj.weight" in keys
    assert "model.layers.1.shared_expert.up_proj.weight" in keys
    assert "model.layers.1.mlp.expert_bias" in keys
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps(raw))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
              str(ckpt / "model.safetensors"))
    loaded = evalsuite.load_model(str(ckpt), device="cpu").network
    ids = torch.randint(0, 1000, (2, 12))
    with torch.no_grad():
        assert torch.equal(loaded(ids), net(ids))
        h = torch.randn(5, raw["hidden_size"])
        weights, chosen = moe.route(h)
        probs = torch.softmax(moe.gate(h), dim=-1) + moe.expert_bias
    # the bias stays in the weights and nothing is renormalised (norm_topk_prob ignored)
    assert torch.allclose(weights, probs.gather(1, chosen))
    assert not torch.allclose(weights.sum(-1), torch.ones(5))


def test_approximate_cache_modes_of_llada_sampler_run_and_start_exact(model, gold, meta):
    """LLaDA's prefix/dual KV cache (Fast-dLLM, approximate; dInfer's LLaDA-MoE settings use a
    dual cache): the first pass of a block equals the full forward; the modes run."""
    from evalsuite.models.llada import KVCache

    net, ids = model.network, gold["logits.input_ids"]
    with torch.no_grad():
        full = net(ids)
        first, cache = net.forward_cached(ids, None, active=slice(10, 20), positions=slice(10, 20))
        again, _ = net.forward_cached(ids, None, active=slice(10, 20), positions=slice(10, 20),
                                      cache=cache)
    assert isinstance(cache, KVCache)
    assert (first - full[:, 10:20]).abs().max().item() <= TOL
    assert (again - full[:, 10:20]).abs().max().item() <= TOL  # same tokens: still exact
    from evalsuite.settings.config import SamplerConfig
    from evalsuite.diffusion.sampler import diffusion_generate

    s = meta["generation"][1]
    for mode in ("prefix", "dual"):
        config = SamplerConfig(gen_length=s["gen_length"], steps=s["steps"],
                               block_length=s["block_length"], cache=mode)
        out = diffusion_generate(net, gold["gen1.prompt"], config=config,
                                 mask_id=meta["mask_token_id"])
        assert out.tokens.shape == gold["gen1.output"].shape
        assert torch.equal(out.tokens[:, :13], gold["gen1.prompt"])
