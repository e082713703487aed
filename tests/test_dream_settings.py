"""Dream: bad settings and bad checkpoints are refused with messages that name the problem;
early exit, slots and per-request generators work for Dream as for LLaDA."""

from __future__ import annotations

import json
import shutil
import re
from pathlib import Path

import pytest
import torch

import evalsuite
from evalsuite.api import settings_from_kwargs
from evalsuite.settings.config import SamplerConfig
from evalsuite.diffusion.sampler import diffusion_generate
from evalsuite.diffusion.stopping import StopRule
from evalsuite.errors import CheckpointError, ConfigError
from evalsuite.families import check_settings, detect_family, family_named, read_config
from evalsuite.families.dream.protocol import sampler_config

ROOT = Path(__file__).resolve().parents[1]
DREAM_DIR = ROOT / "tests" / "fixtures" / "golden" / "dream" / "tiny-dream"
LLADA_DIR = ROOT / "tests" / "fixtures" / "golden" / "tiny-llada"
MASK = 1000


@pytest.fixture(scope="module")
def dream():
    return evalsuite.load_model(str(DREAM_DIR), device="cpu")


@pytest.fixture(scope="module")
def gold():
    from safetensors.torch import load_file

    return load_file(str(DREAM_DIR.parent / "tiny-dream-golden.safetensors"))


# --- settings: refused before any weight loads (config.json only) -------------------------

@pytest.mark.parametrize("setting", ["alg", "alg_temp", "top_p", "top_k", "batch_schedule",
                                     "nll_type"])
def test_dream_setting_on_a_llada_checkpoint(setting):
    family = detect_family(read_config(LLADA_DIR))
    with pytest.raises(ConfigError) as err:
        check_settings(family, [setting], where="model_args")
    text = str(err.value)
    assert repr(setting) in text and "llada architecture" in text
    assert "setting of dream" in text and "block_length" in text  # the valid names


@pytest.mark.parametrize("setting", ["block_length", "remasking", "logits_eos_inf",
                                     "confidence_eos_eot_inf", "decoding", "threshold",
                                     "cache", "target_se"])
def test_llada_setting_on_a_dream_checkpoint(setting):
    family = detect_family(read_config(DREAM_DIR))
    with pytest.raises(ConfigError) as err:
        check_settings(family, [setting])
    text = str(err.value)
    assert repr(setting) in text and "dream architecture (model_type dream)" in text
    assert "setting of llada" in text and "alg" in text


def test_knob_names_of_each_family_are_accepted():
    check_settings(family_named("dream"), ["alg", "top_p", "mc_batch_size", "nll_type"])
    check_settings(family_named("llada"), ["remasking", "mc_batch_size", "target_se"])
    with pytest.raises(ConfigError, match="'no_such' .* Valid"):
        check_settings(family_named("dream"), ["no_such"])


@pytest.mark.parametrize("settings, fragment", [
    ({"alg": "greedy"}, "alg 'greedy' (from argument) must be one of origin, maskgit_plus, "
                        "topk_margin, entropy; pass e.g. alg='origin'"),
    ({"top_p": 0.0}, "top_p 0.0 (from argument) must be in (0, 1]"),
    ({"top_p": 1.5}, "top_p 1.5 (from argument) must be in (0, 1]"),
    ({"alg_temp": -0.1}, "alg_temp -0.1 (from argument) must be >= 0"),
    ({"top_k": 0}, "top_k 0 (from argument) must be a positive integer; pass e.g. top_k=50"),
    ({"batch_schedule": "mean"}, "batch_schedule 'mean' (from argument) must be one of per_row, "
                                 "batch_mean"),
])
def test_invalid_dream_values_are_named(settings, fragment):
    with pytest.raises(ConfigError) as err:
        sampler_config(steps=4, gen_length=8, **settings)
    assert fragment in str(err.value)


def test_api_refuses_before_sampling(dream, gold):
    prompt = gold["gen1.prompt"]
    with pytest.raises(ConfigError, match="'block_length' .* dream architecture"):
        evalsuite.generate(dream, prompt, steps=4, gen_length=8, block_length=8)
    with pytest.raises(ConfigError, match=re.escape("top_p 2.0 (from generate argument) must "
                                                    "be in (0, 1]")):
        evalsuite.generate(dream, prompt, steps=4, gen_length=8, top_p=2.0)
    # steps alone: the default length, pure diffusion, Dream's alg (the one resolver's rules)
    config = settings_from_kwargs("sampler", {"steps": 4}, "generate", "dream")
    assert (config.gen_length, config.block_length, config.alg) == (256, 256, "entropy")
    with pytest.raises(ConfigError, match="'target_se' .* likelihood setting of the dream"):
        evalsuite.loglikelihood(dream, prompt[0], prompt[0, :2], target_se=0.1)
    with pytest.raises(ConfigError, match=re.escape(
            "nll_type 'ar_btf' (from loglikelihood argument) must be one of mc, ar_ftb")):
        evalsuite.loglikelihood(dream, prompt[0], prompt[0, :2], nll_type="ar_btf")


def test_llada_model_refuses_dream_settings(golden_model, golden):
    with pytest.raises(ConfigError, match="'alg' .* llada architecture .* dream models"):
        evalsuite.generate(golden_model, golden["gen0.prompt"], steps=4, gen_length=8,
                           block_length=8, alg="entropy")
    with pytest.raises(ConfigError, match="'nll_type' .* llada"):
        evalsuite.loglikelihood(golden_model, golden["gen0.prompt"][0], golden["gen0.prompt"][0, :2],
                                nll_type="ar_ftb")


def test_llada_settings_reject_blocks_with_alg():
    with pytest.raises(ConfigError, match="has no blocks: block_length must equal gen_length 8"):
        SamplerConfig(gen_length=8, block_length=4, steps=4, alg="entropy")
    with pytest.raises(ConfigError, match=re.escape(
            "remasking 'random' (from argument) is a LLaDA setting; Dream's sampler "
            "(alg 'entropy') needs remasking 'low_confidence'")):
        SamplerConfig(gen_length=8, block_length=8, steps=4, alg="entropy", remasking="random")


# --- checkpoints -----------------------------------------------------------------------------

def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "ckpt"
    shutil.copytree(DREAM_DIR, target)
    for f in target.iterdir():
        f.chmod(0o644)
    return target


def _edit_config(path: Path, **changes) -> None:
    raw = json.loads((path / "config.json").read_text())
    raw.update(changes)
    (path / "config.json").write_text(json.dumps(raw))


@pytest.mark.parametrize("changes, fragment", [
    ({"num_hidden_layers": 3}, "missing key(s) model.layers.2."),
    ({"num_hidden_layers": 1}, "layer 1 exists in the weights but config.json has num_hidden_layers 1"),
    ({"num_key_value_heads": 4}, "self_attn.k_proj.bias' has shape (32,), config.json implies (64,)"),
    ({"hidden_act": "gelu"}, "hidden_act='gelu' is not supported for Dream"),
    ({"rope_scaling": {"type": "yarn", "factor": 4}}, "rope_scaling="),
    ({"num_attention_heads": 3}, "hidden_size 64, num_attention_heads 3"),
    ({"mask_token_id": 5000}, "mask_token_id=5000 is not a token id of the vocabulary"),
])
def test_config_checkpoint_mismatch_names_key_and_fix(tmp_path, changes, fragment):
    path = _copy(tmp_path)
    _edit_config(path, **changes)
    with pytest.raises(CheckpointError) as err:
        evalsuite.load_model(str(path), device="cpu")
    assert fragment in str(err.value)


def test_missing_config_keys_are_listed(tmp_path):
    path = _copy(tmp_path)
    raw = json.loads((path / "config.json").read_text())
    del raw["hidden_size"]
    (path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="missing key\\(s\\) hidden_size; a Dream config.json"):
        evalsuite.load_model(str(path), device="cpu")


def test_untied_config_without_head_says_how_to_fix(tmp_path):
    from safetensors.torch import load_file, save_file

    path = _copy(tmp_path)
    tensors = load_file(str(path / "model.safetensors"))
    del tensors["lm_head.weight"]
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="set tie_word_embeddings true"):
        evalsuite.load_model(str(path), device="cpu")
    _edit_config(path, tie_word_embeddings=True)
    tied = evalsuite.load_model(str(path), device="cpu")
    assert tied.network.lm_head is None
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        expected = tied.network.hidden_states(ids) @ tensors["model.embed_tokens.weight"].T
        assert torch.allclose(tied.network(ids), expected, atol=1e-5)


def test_sharded_checkpoint_with_index_loads_the_same(tmp_path, dream, gold):
    from safetensors.torch import load_file, save_file

    path = _copy(tmp_path)
    tensors = load_file(str(path / "model.safetensors"))
    (path / "model.safetensors").unlink()
    keys = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    weight_map = {}
    for name, part in shards.items():
        save_file({k: tensors[k] for k in part}, str(path / name))
        weight_map.update({k: name for k in part})
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    sharded = evalsuite.load_model(str(path), device="cpu")
    with torch.no_grad():
        assert torch.equal(sharded.network(gold["logits.input_ids"]),
                           dream.network(gold["logits.input_ids"]))


# --- the one sampler's machinery works for Dream ---------------------------------------------

def test_early_exit_gives_identical_answers_with_fewer_passes(dream, gold):
    prompts, mask = gold["genbatch0.prompt"], gold["genbatch0.attention_mask"]
    config = sampler_config(steps=16, gen_length=16, alg="maskgit_plus")
    off = diffusion_generate(dream.network, prompts, mask, config=config.replace(early_exit=False),
                             mask_id=MASK, logit_shift=1)
    stop_id = int(off.generated[0, 3])  # a token the first row commits early on
    rule = StopRule(stop_ids=frozenset({stop_id}))
    on = diffusion_generate(dream.network, prompts, mask, config=config, mask_id=MASK,
                            logit_shift=1, stop=rule)
    for row in range(3):
        full = off.generated[row].tolist()
        cut = full.index(stop_id) if stop_id in full else len(full)
        assert on.generated[row].tolist()[:cut] == full[:cut]
    assert any(on.exited) and sum(on.row_nfe) < sum(off.row_nfe)


def test_batch_mean_turns_early_exit_off(dream, gold):
    prompts, mask = gold["genbatch0.prompt"], gold["genbatch0.attention_mask"]
    config = sampler_config(steps=8, gen_length=16, alg="entropy", batch_schedule="batch_mean")
    out = diffusion_generate(dream.network, prompts, mask, config=config, mask_id=MASK,
                             logit_shift=1, stop=StopRule(stop_ids=frozenset(range(1024))))
    assert not any(out.exited)


@pytest.mark.parametrize("settings", [
    {"alg": "entropy", "temperature": 0.7, "top_p": 0.9},
    {"alg": "origin", "temperature": 0.5},
    {"alg": "maskgit_plus", "alg_temp": 0.3, "top_k": 20},
])
def test_random_dream_sampling_is_batch_invariant_with_per_row_generators(dream, gold, settings):
    """6 requests through 2 slots (refills mid-run): each row equals its solo run from the
    same seed, whatever it was batched with."""
    prompts = gold["genbatch0.prompt"].repeat(2, 1)
    mask = gold["genbatch0.attention_mask"].repeat(2, 1)
    config = sampler_config(steps=8, gen_length=16, **settings)
    seeds = [11, 12, 13, 14, 15, 16]
    batch = diffusion_generate(dream.network, prompts, mask, config=config, mask_id=MASK,
                               logit_shift=1, batch_size=2,
                               generator=[torch.Generator().manual_seed(s) for s in seeds])
    for row, seed in enumerate(seeds):
        keep = mask[row].bool()
        solo = diffusion_generate(dream.network, prompts[row:row + 1, keep], config=config,
                                  mask_id=MASK, logit_shift=1,
                                  generator=[torch.Generator().manual_seed(seed)])
        assert torch.equal(solo.generated[0], batch.generated[row])
    assert not torch.equal(batch.generated[0], batch.generated[3]) or settings["alg"] == "origin"


def test_seed_reproduces_and_differs(dream, gold):
    kwargs = dict(steps=8, gen_length=16, alg="entropy", temperature=1.0)
    a = evalsuite.generate(dream, gold["gen1.prompt"], seed=1, **kwargs)
    b = evalsuite.generate(dream, gold["gen1.prompt"], seed=1, **kwargs)
    c = evalsuite.generate(dream, gold["gen1.prompt"], seed=2, **kwargs)
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)


def test_unknown_model_type_names_the_supported_ones(tmp_path):
    path = _copy(tmp_path)
    _edit_config(path, model_type="qwen2")
    with pytest.raises(CheckpointError, match="model_type 'qwen2' is not a supported "
                                              "architecture; supported model_type values: "
                                              "dream, llada"):
        evalsuite.load_model(str(path), device="cpu")


def test_architecture_is_read_from_config_alone(tmp_path):
    from evalsuite.families import architecture_of

    assert architecture_of(str(DREAM_DIR)).name == "dream"
    assert architecture_of(str(LLADA_DIR)).name == "llada"
    assert architecture_of(str(tmp_path)) is None  # no config.json: unknown, nothing loaded


def test_llada_records_seeds_and_cache_keys_are_unchanged_by_dreams_fields():
    """The 12 settings LLaDA recorded before Dream joined, and nothing else: its request
    seeds and request-cache keys are those of earlier versions."""
    from evalsuite.settings.resolve import settings_record

    before = {"gen_length", "steps", "block_length", "temperature", "cfg_scale", "remasking",
              "logits_eos_inf", "confidence_eos_eot_inf", "decoding", "threshold", "cache",
              "early_exit"}
    assert set(settings_record(SamplerConfig())) == before
    dream_record = settings_record(sampler_config(steps=4, gen_length=8))
    assert dream_record["alg"] == "entropy" and "top_p" in dream_record
    from evalsuite.settings.config import EstimatorConfig

    assert "nll_type" not in settings_record(EstimatorConfig())
    assert settings_record(EstimatorConfig(nll_type="ar_ftb"))["nll_type"] == "ar_ftb"
    with pytest.raises(ConfigError, match=re.escape(
            "top_p 0.9 (from argument) is a setting of Dream's sampler and needs alg")):
        SamplerConfig(top_p=0.9)
