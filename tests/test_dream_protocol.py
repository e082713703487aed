"""Dream's own per-task protocol: presets, the family table chosen by the architecture, its
provenance, and the record naming the architecture. Everything here resolves before any
weight loads (the 7B presets are planned, never loaded: the hub is unreachable)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES
from evalsuite.errors import ConfigError
from evalsuite.families import architecture_of_preset, family_named
from evalsuite.families.dream.tasks import dream_settings
from evalsuite.presets import ASSETS, PRESETS, resolve_model
from evalsuite.runner import RunSpec, plan
from evalsuite.settings.paper import diffusion_settings

DATA = FIXTURES / "data"
DREAM_TINY = str(ASSETS / "dream-tiny")


def _planned(model: str, tasks: tuple[str, ...], **spec: object) -> dict[str, object]:
    p = plan(RunSpec(model=model, tasks=tasks, data_dir=DATA, limit=1, **spec))  # type: ignore[arg-type]
    return {"plan": p, **{t.name: t for t in p.tasks}}


def test_presets_name_the_dream_checkpoints_and_architecture():
    base, instruct = PRESETS["dream-7b"], PRESETS["dream-7b-instruct"]
    assert base.hub_id == "Dream-org/Dream-v0-Base-7B" and base.family == "base"
    assert instruct.hub_id == "Dream-org/Dream-v0-Instruct-7B"
    assert instruct.family == "instruct" and instruct.chat_template
    assert base.backend == instruct.backend == "llada"  # the native diffusion adapter
    # not downloaded: the preset's declared architecture decides, before any file is read
    assert architecture_of_preset(base).name == "dream"
    # a bare hub id names its family too; a local directory is read from config.json
    assert architecture_of_preset(resolve_model("Dream-org/Dream-v0-Base-7B")).name == "dream"
    assert resolve_model("Dream-org/Dream-v0-Base-7B").backend == "llada"
    assert architecture_of_preset(resolve_model(DREAM_TINY)).name == "dream"
    assert architecture_of_preset(PRESETS["llada-8b"]).name == "llada"


def test_dream_7b_gsm8k_resolves_dreams_own_protocol_with_its_provenance():
    planned = _planned("dream-7b", ("gsm8k", "mmlu"))
    assert planned["plan"].architecture == "dream"
    gsm8k = planned["llada_gsm8k"]
    c = gsm8k.config
    assert (c.gen_length, c.steps, c.block_length) == (256, 256, 256)
    assert (c.alg, c.alg_temp, c.temperature, c.top_p, c.top_k) == ("entropy", 0.0, 0.0, 0.95, None)
    sources = gsm8k.provenance.sources
    for knob in ("gen_length", "steps", "temperature", "top_p", "alg", "alg_temp"):
        assert sources[knob] == "family_table", knob
    assert sources["block_length"] == "derived"  # no blocks: pure diffusion at 256
    mmlu = next(v for k, v in planned.items() if k.startswith("llada_mmlu_"))
    e = mmlu.config
    assert (e.mc_num, e.batch_size, e.cfg_scale, e.nll_type) == (128, 32, 0.0, "mc")
    assert mmlu.provenance.sources["mc_num"] == "family_table"


def test_dream_instruct_table_outranks_the_llada_yaml_but_not_the_user():
    gsm8k = _planned("dream-7b-instruct", ("gsm8k",))["llada_gsm8k_instruct"]
    c = gsm8k.config
    # the suite's YAML says temperature 0 (LLaDA's protocol); Dream instruct runs at 0.1
    assert (c.gen_length, c.steps, c.temperature, c.top_p) == (256, 256, 0.1, 0.9)
    assert gsm8k.provenance.sources["temperature"] == "family_table"
    user = _planned("dream-7b-instruct", ("gsm8k",),
                    overrides={"top_p": "0.5", "gen_length": "64"})["llada_gsm8k_instruct"]
    assert (user.config.top_p, user.config.gen_length, user.config.steps) == (0.5, 64, 64)
    assert user.provenance.sources["top_p"] == "cli"
    assert user.provenance.sources["steps"] == "derived"  # one step per token, as Dream's table


def test_a_local_dream_checkpoint_gets_the_same_table():
    planned = _planned(DREAM_TINY, ("gsm8k",))
    assert planned["plan"].architecture == "dream"
    c = planned["llada_gsm8k"].config
    assert (c.gen_length, c.top_p, c.alg) == (256, 0.95, "entropy")
    instruct = _planned(DREAM_TINY, ("gsm8k",), family="instruct")["llada_gsm8k_instruct"]
    assert (instruct.config.temperature, instruct.config.top_p) == (0.1, 0.9)


def test_llada_keeps_its_paper_table():
    c = _planned("llada-8b", ("gsm8k",))["llada_gsm8k"]
    assert (c.config.gen_length, c.config.block_length, c.config.alg) == (1024, 1024, None)
    assert c.provenance.sources["gen_length"] == "paper_table"
    assert _planned("llada-8b", ("gsm8k",))["plan"].architecture == "llada"


def test_dream_preset_refuses_a_llada_setting_before_loading():
    with pytest.raises(ConfigError, match="'remasking' .* dream architecture"):
        plan(RunSpec(model="dream-7b", tasks=("gsm8k",), data_dir=DATA, limit=1,
                     overrides={"remasking": "random"}))
    with pytest.raises(ConfigError, match="'alg' .* llada architecture"):
        plan(RunSpec(model="llada-8b", tasks=("gsm8k",), data_dir=DATA, limit=1,
                     overrides={"alg": "entropy"}))


def test_dream_table_entries_are_dream_knobs_only():
    dream = family_named("dream")
    for name in ("gsm8k", "llada_math", "bbh_cot_fewshot", "humaneval", "mmlu", "piqa",
                 "llada_mmlu_instruct", "llada_humaneval_instruct"):
        for family in ("base", "instruct"):
            values = dream_settings(name, family)
            assert values and set(values) <= dream.settings(), (name, family)
    assert dream_settings("llada_poem_forward", "base") == {}  # LLaDA's own study task
    assert dream_settings("humaneval", "instruct")["gen_length"] == 768
    assert dream_settings("llada_mmlu_instruct", "base")["gen_length"] == 128
    assert diffusion_settings("gsm8k", "base")["gen_length"] == 1024  # LLaDA's table untouched


def test_dream_prompts_get_the_bos_its_eval_adds_but_chat_prompts_do_not():
    """Dream's scripts pass ``add_bos_token=true``; its wrapper prepends the BOS to plain
    prompts only. LLaDA's tokenizer adds its own BOS, so LLaDA's encoding is unchanged."""
    from evalsuite.models.engine import DiffusionEngine
    from evalsuite.models.loader import load_tokenizer
    from evalsuite.settings.resolve import Overrides

    def engine(path: str, architecture: str) -> DiffusionEngine:
        return DiffusionEngine(lambda: None, family="base", seed=0, overrides=Overrides({}),
                               tokenizer_loader=lambda: load_tokenizer(Path(path)),
                               architecture=architecture)

    dream = engine(DREAM_TINY, "dream")
    bos = dream.tokenizer.bos_token_id
    plain = dream.tokenizer("1+1=", add_special_tokens=True)["input_ids"]
    assert plain[0] != bos and dream.encode("1+1=") == [bos, *plain]
    assert dream.encode(dream.tokenizer.bos_token + "1+1=") == [bos, *plain]  # not twice
    dream.chat_templated = True
    assert dream.encode("1+1=") == plain
    llada = engine(str(PRESETS["llada-tiny"].hub_id), "llada")
    assert llada.encode("1+1=") == llada.tokenizer("1+1=")["input_ids"]
