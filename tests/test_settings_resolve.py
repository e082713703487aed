"""The settings resolver and the knob registry (pure: no model, no lm-eval run)."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from evalsuite.settings.config import EstimatorConfig, SamplerConfig
from evalsuite.errors import ConfigError
from evalsuite.settings import Overrides, TaskInfo, knobs, parse_knobs, resolve
from evalsuite.settings.knobs import add_flags, from_namespace

GSM8K_YAML = {"until": ["Question:"], "do_sample": False, "temperature": 0.0}


def _lengths(config: SamplerConfig) -> tuple[int, int, int]:
    return config.gen_length, config.steps, config.block_length


def test_gen_length_alone_keeps_a_pure_diffusion_task_pure():
    # old code: "block_length 1024 is larger than gen_length 64" after the weights loaded
    config, prov = resolve("llada_gsm8k", "base", GSM8K_YAML, {"gen_length": 64})
    assert _lengths(config) == (64, 64, 64)
    assert prov.sources["gen_length"] == "cli"
    assert prov.sources["steps"] == prov.sources["block_length"] == "derived"
    assert prov.sources["temperature"] == "yaml" and prov.sources["remasking"] == "paper_table"


def test_gen_length_alone_keeps_block_and_steps_per_token_of_a_semi_autoregressive_base():
    # a semi-autoregressive base: 256 tokens, blocks of 32, 128 steps (half a step per token)
    base = {"gen_length": 256, "block_length": 32, "steps": 128}
    config, prov = resolve("my_task", "base", base, Overrides({"gen_length": 64}, "model_args"))
    assert _lengths(config) == (64, 32, 32)  # block 32 divides 64: kept; 0.5 steps per token
    assert prov.sources["gen_length"] == "model_args"
    assert prov.sources["steps"] == prov.sources["block_length"] == "derived"
    config, _ = resolve("my_task", "base", base, {"gen_length": 48})
    assert config.block_length == 24 and config.steps == 24  # largest divisor of 48 up to 32
    assert any("block_length 24" in note for note in _.notes)


def test_explicit_steps_and_block_are_not_rederived():
    config, prov = resolve("llada_gsm8k", "base", GSM8K_YAML,
                           {"gen_length": 64, "block_length": 8, "steps": 32})
    assert _lengths(config) == (64, 32, 8)
    assert {prov.sources[k] for k in ("gen_length", "steps", "block_length")} == {"cli"}


def test_max_gen_toks_is_honoured_over_the_paper_table():
    # old code: ignored whenever the table set gen_length (1024 for gsm8k)
    config, prov = resolve("llada_gsm8k", "base", {**GSM8K_YAML, "max_gen_toks": 100}, {})
    assert _lengths(config) == (100, 100, 100)
    assert prov.sources["gen_length"] == "yaml"
    # lm-eval's --gen_kwargs wins over the YAML, the CLI over both
    config, prov = resolve("llada_gsm8k", "base", {"max_gen_toks": 100}, {},
                           user_gen_kwargs={"max_gen_toks": 40})
    assert config.gen_length == 40 and prov.sources["gen_length"] == "gen_kwargs"
    config, _ = resolve("llada_gsm8k", "base", {"max_gen_toks": 100}, {"gen_length": 16},
                        user_gen_kwargs={"max_gen_toks": 40})
    assert config.gen_length == 16


def test_unsupported_generation_kwargs_are_recorded_not_dropped():
    config, prov = resolve("llada_gsm8k", "base", {**GSM8K_YAML, "top_p": 0.9, "top_k": 5}, {},
                           user_gen_kwargs={"repetition_penalty": 1.2})
    assert dict(prov.ignored_gen_kwargs) == {"top_p": 0.9, "top_k": 5, "repetition_penalty": 1.2}
    assert prov.as_dict()["ignored_gen_kwargs"]["top_k"] == 5
    assert config.temperature == 0.0


def test_do_sample_maps_to_temperature():
    config, prov = resolve(None, "base", {"do_sample": True}, {})
    assert config.temperature == 1.0 and prov.sources["temperature"] == "yaml"
    config, _ = resolve(None, "base", {"do_sample": True, "temperature": 0.7}, {})
    assert config.temperature == 0.7


def test_exact_task_names_only():
    # old code: prefix matching gave any gsm8k_* task the 1024-token table
    config, prov = resolve("gsm8k_cot", "base", {"max_gen_toks": 256, "until": ["Q:"]}, {})
    assert _lengths(config) == (256, 256, 256) and prov.sources["gen_length"] == "yaml"
    assert "paper_table" not in prov.sources.values()
    config, prov = resolve("llada_gsm8k_long", "base", {}, {})
    assert config.gen_length == 256 and prov.sources["gen_length"] == "default"
    config, prov = resolve("gsm8k", "base", {}, {})  # lm-eval's own gsm8k is in the table
    assert config.gen_length == 1024 and prov.sources["gen_length"] == "paper_table"


def test_instruct_table_and_estimator_settings():
    config, _ = resolve("llada_gsm8k_instruct", "instruct", {}, {})
    assert _lengths(config) == (512, 512, 512) and config.confidence_eos_eot_inf
    est, prov = resolve(TaskInfo("llada_mmlu_anatomy", "loglikelihood"), "base", None, {})
    assert isinstance(est, EstimatorConfig)
    assert (est.mc_num, est.batch_size) == (1, 1)
    assert prov.sources["mc_num"] == "paper_table" and prov.sources["mc_batch_size"] == "derived"
    est, prov = resolve(TaskInfo("llada_piqa", "multiple_choice"), "base", None, {"mc_num": 20})
    assert (est.mc_num, est.batch_size, est.cfg_scale) == (20, 10, 0.5)
    assert prov.sources["cfg_scale"] == "paper_table"


@pytest.mark.parametrize("overrides, fragment", [
    ({"gen_length": 32, "steps": 200}, "steps 200 (from cli) is more than gen_length 32"),
    ({"gen_length": 64, "block_length": 16, "steps": 10},
     "steps 10 (from cli) is not divisible by the number of blocks 4"),
    ({"gen_length": 16, "block_length": 32}, "block_length 32 (from cli) is larger than gen_length 16"),
    ({"gen_length": 100, "block_length": 48}, "gen_length 100 (from cli) is not a multiple of block_length 48"),
    ({"gen_length": 0}, "gen_length 0 (from cli) must be a positive integer"),
])
def test_invalid_sampler_combinations_name_the_values_and_the_fix(overrides, fragment):
    with pytest.raises(ConfigError) as info:
        resolve("llada_gsm8k", "base", GSM8K_YAML, overrides)
    assert fragment in str(info.value)
    assert "--" in str(info.value) or "choose" in str(info.value)


def test_old_gap_steps_larger_than_gen_length_is_refused():
    # old code accepted --gen-length 32 --steps 200, skipped steps silently and recorded 200
    with pytest.raises(ConfigError, match="at most 32 steps can run; use --steps 32 or fewer"):
        resolve(None, "base", {}, {"gen_length": 32, "steps": 200})


def test_mc_num_not_a_multiple_of_mc_batch_size():
    with pytest.raises(ConfigError, match="mc_num 20 .* is not a multiple of mc_batch_size 16"):
        resolve(TaskInfo("llada_piqa", "loglikelihood"), "base", None,
                Overrides({"mc_num": 20, "mc_batch_size": 16}, "model_args"))


def test_every_dataclass_field_is_a_knob_with_flag_and_model_arg():
    names = {f.name for f in dataclasses.fields(SamplerConfig)}
    names |= {"mc_batch_size" if f.name == "batch_size" else f.name
              for f in dataclasses.fields(EstimatorConfig)}
    assert set(knobs()) == names
    parser = argparse.ArgumentParser()
    add_flags(parser)
    every = {k.name: ("true" if k.kind is bool else str(k.choices[0]) if k.choices else "1")
             for k in knobs().values()}
    args = parser.parse_args([f for k, v in every.items() for f in
                              ((knobs()[k].flag,) if knobs()[k].kind is bool else (knobs()[k].flag, v))])
    assert set(from_namespace(args)) == names
    assert set(parse_knobs(every, "model_args")) == names


def test_model_args_strings_are_typed_and_checked():
    assert parse_knobs({"gen_length": "64", "temperature": "0.5", "logits_eos_inf": "true"},
                       "model_args") == {"gen_length": 64, "temperature": 0.5, "logits_eos_inf": True}
    with pytest.raises(ConfigError, match="remasking 'top_k' .from model_args. must be one of low_confidence, random"):
        parse_knobs({"remasking": "top_k"}, "model_args")
    with pytest.raises(ConfigError, match="did you mean 'gen_length'"):
        parse_knobs({"gen_lenght": 8}, "model_args")
