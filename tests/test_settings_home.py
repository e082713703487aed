"""Settings, one home (issue 15, deliverable 4): one set of defaults, one validator with one
message format, the knob registry as the only list of knobs (paper tables and API included).
Each test names the defect of the old layout it guards against."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from pathlib import Path
import re

import pytest
import torch

import evalsuite
from evalsuite.diffusion.likelihood import estimate_loglikelihood
from evalsuite.diffusion.sampler import diffusion_generate
from evalsuite.errors import ConfigError
from evalsuite.settings import paper
from evalsuite.settings.config import EstimatorConfig, SamplerConfig
from evalsuite.settings.fields import PROBABILITY, knob
from evalsuite.settings.knobs import add_flags, from_namespace, knobs, parse_knobs, record_of
from evalsuite.settings.resolve import (
    DEFAULT_GEN_LENGTH,
    Overrides,
    TaskInfo,
    resolve,
    settings_record,
    validate_overrides,
)

MASK = 1000  # the golden checkpoint's mask id
knobs_module = importlib.import_module("evalsuite.settings.knobs")


def test_one_set_of_defaults():
    # old: SamplerConfig.gen_length was 128 while the resolver's default was 256
    config, prov = resolve(TaskInfo(None), "base")
    plain = SamplerConfig()
    assert (plain.gen_length, plain.steps, plain.block_length) == (
        config.gen_length, config.steps, config.block_length) == (DEFAULT_GEN_LENGTH,) * 3
    assert prov.sources["gen_length"] == "default"
    assert knobs()["gen_length"].defaults["sampler"] == DEFAULT_GEN_LENGTH


@pytest.mark.parametrize("values, fragment, fix", [
    ({"gen_length": 32, "steps": 200, "block_length": 32},
     "steps 200 (from {src}) is more than gen_length 32 (from {src})", ("--steps 32", "steps=32")),
    ({"gen_length": 64, "steps": 10, "block_length": 16},
     "steps 10 (from {src}) is not divisible by the number of blocks 4", ("--steps 8", "steps=8")),
    ({"gen_length": 16, "steps": 16, "block_length": 32},
     "block_length 32 (from {src}) is larger than gen_length 16", ("--block-length 16",
                                                                     "block_length=16")),
    ({"gen_length": 8, "steps": 8, "block_length": 8, "threshold": 1.5},
     "threshold 1.5 (from {src}) must be in (0, 1]", ("--threshold 0.9", "threshold=0.9")),
    ({"gen_length": 8, "steps": 8, "block_length": 8, "temperature": -1.0},
     "temperature -1.0 (from {src}) must be >= 0", ("--temperature 0.0", "temperature=0.0")),
])
def test_one_validator_one_message_format(values, fragment, fix):
    # old: three validators; the dataclass accepted steps > gen_length and its messages named
    # neither the source nor the fix
    with pytest.raises(ConfigError) as direct:
        SamplerConfig(**values)
    with pytest.raises(ConfigError) as cli:
        resolve(TaskInfo(None), "base", {}, Overrides(values, "cli"))
    with pytest.raises(ConfigError) as early:
        validate_overrides(Overrides(values, "model_args"))
    assert fragment.format(src="argument") in str(direct.value)
    assert fragment.format(src="cli") in str(cli.value)
    assert fragment.format(src="model_args") in str(early.value)
    assert fix[0] in str(cli.value) and fix[1] in str(direct.value)
    for message in (str(direct.value), str(cli.value), str(early.value)):
        assert re.match(r"^\w+ \S+ \(from \w+\) .+; .+", message), message


def test_estimator_messages_share_the_format():
    with pytest.raises(ConfigError, match=re.escape(
            "mc_num 20 (from argument) is not a multiple of mc_batch_size 16 (from argument); "
            "use mc_num=16 or 32")):
        EstimatorConfig(mc_num=20, batch_size=16)
    with pytest.raises(ConfigError, match=re.escape("mc_num 0 (from cli) must be a positive "
                                                    "integer; pass e.g. --mc-num 256")):
        parse_knobs({"mc_num": "0"}, "cli")


def test_old_homes_are_gone():
    # old: evalsuite/config.py (with split_settings, no caller) and tasks/settings.py, which
    # re-declared the knobs in its own dataclass
    package = Path(evalsuite.__file__).parent
    assert not (package / "config.py").exists()
    assert not (package / "tasks" / "settings.py").exists()
    import evalsuite.settings.config as config

    assert not hasattr(config, "split_settings") and not hasattr(paper, "DiffusionSettings")


def test_paper_tables_are_parsed_through_the_registry():
    registry = knobs()
    for name in paper.EXACT_NAMES:
        for family in ("base", "instruct"):
            values = paper.diffusion_settings(name, family)
            assert values and set(values) <= set(registry), name
            assert parse_knobs(values, "check") == values  # typed as the registry types them
    with pytest.raises(ConfigError, match="did you mean 'gen_length'"):
        paper._parsed({"gsm8k": {"gen_lenght": 8}}, "test")
    with pytest.raises(ConfigError, match=re.escape("steps -1 (from paper table test[gsm8k])")):
        paper._parsed({"gsm8k": {"steps": -1}}, "test")


def test_a_new_dataclass_field_is_a_flag_a_model_arg_a_checked_and_recorded_knob(monkeypatch):
    """What a family helper adds (as Dream added top_p): one field (``min_p`` is hypothetical)."""

    @dataclasses.dataclass(frozen=True)
    class WithMinP(SamplerConfig):
        min_p: float = knob(1.0, PROBABILITY)
        """Minimum probability relative to the top token."""

    monkeypatch.setitem(knobs_module.OWNERS, "sampler", WithMinP)
    knobs_module.knobs.cache_clear()
    try:
        assert knobs()["min_p"].help == "Minimum probability relative to the top token."
        assert parse_knobs({"min_p": "0.5"}, "model_args") == {"min_p": 0.5}
        with pytest.raises(ConfigError, match=re.escape(
                "min_p 2.0 (from model_args) must be in (0, 1]; pass e.g. min_p=0.9")):
            parse_knobs({"min_p": "2"}, "model_args")
        parser = argparse.ArgumentParser()
        add_flags(parser)
        assert from_namespace(parser.parse_args(["--min-p", "0.3"])) == {"min_p": 0.3}
        assert record_of(WithMinP(min_p=0.5))["min_p"] == 0.5
        with pytest.raises(ConfigError, match=re.escape("min_p 0.0 (from argument)")):
            WithMinP(min_p=0.0)
    finally:
        knobs_module.knobs.cache_clear()


def test_settings_record_names_the_estimator_batch_mc_batch_size():
    # old: stored as "batch_size", which reads like the run's batch size
    record = settings_record(EstimatorConfig(mc_num=32, batch_size=8))
    assert record["mc_batch_size"] == 8 and "batch_size" not in record
    # every estimator knob of the family (Dream's nll_type, LLaDA2's block_length are not LLaDA's)
    assert set(record) == ({k for k, v in knobs().items() if "estimator" in v.fields}
                           - {"nll_type", "block_length"})


def test_api_generate_takes_every_sampler_knob(golden_model, golden):
    # old: api.generate hand-listed eight knobs; decoding, threshold, cache, early_exit failed
    prompt = golden["gen0.prompt"]
    for extra in ({"decoding": "threshold", "threshold": 0.5, "early_exit": False},
                  {"cache": "dual", "steps": 8}, {"cache": "prefix"}):
        got = evalsuite.generate(golden_model, prompt, gen_length=16, block_length=8, **extra)
        config = SamplerConfig(gen_length=16, block_length=8,
                               steps=extra.get("steps", 16), **{k: v for k, v in extra.items()
                                                                if k != "steps"})
        want = diffusion_generate(golden_model, prompt, config=config, mask_id=MASK,
                                  generator=torch.Generator().manual_seed(0))
        assert torch.equal(got.generated, want.generated), extra
        assert got.nfe == want.nfe


def test_api_keywords_go_through_the_registry(golden_model, golden):
    prompt = golden["gen0.prompt"]
    with pytest.raises(ConfigError, match="did you mean 'gen_length'"):
        evalsuite.generate(golden_model, prompt, gen_lenght=8)
    with pytest.raises(ConfigError, match="mc_num do\\(es\\) not apply to sampler settings"):
        evalsuite.generate(golden_model, prompt, gen_length=8, mc_num=4)
    with pytest.raises(ConfigError, match=re.escape("gen_length 12 (from argument) is not a "
                                                    "multiple of block_length 8")):
        evalsuite.generate(golden_model, prompt, gen_length=12, block_length=8)
    # a gen_length alone is pure diffusion at that length (the resolver's rule)
    alone = evalsuite.generate(golden_model, prompt, gen_length=8)
    assert alone.generated.shape[-1] == 8 and alone.nfe == 8


def test_api_loglikelihood_takes_every_estimator_knob(golden_model, golden):
    prompt, answer = golden["gen0.prompt"][0], golden["gen1.prompt"][0][:3]
    got = evalsuite.loglikelihood(golden_model, prompt, answer, mc_num=16, mc_batch_size=8,
                                  estimator="stratified", seed=5)
    want = estimate_loglikelihood(
        golden_model, [(prompt, answer)], config=EstimatorConfig(mc_num=16, batch_size=8,
                                                                 estimator="stratified"),
        mask_id=MASK, generators=[torch.Generator().manual_seed(5)], max_rows=8)[0]
    assert got.value == pytest.approx(want.value) and got.nfe == want.nfe
    with pytest.raises(ConfigError, match="did you mean 'mc_batch_size'"):
        evalsuite.loglikelihood(golden_model, prompt, answer, batch_size=8)


def test_settings_modules_import_without_a_cycle():
    """Every import counts, lazy ones too: fields <- validate <- config <- knobs <- paper/resolve
    (the dataclasses validate themselves without importing the registry derived from them)."""
    import ast

    package = Path(evalsuite.__file__).parent / "settings"
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        if path.stem == "__init__":
            continue
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("evalsuite.settings."):
                    deps.add(node.module.rsplit(".", 1)[1])
                elif node.module == "evalsuite.settings":
                    deps |= {a.name for a in node.names if (package / f"{a.name}.py").exists()}
        graph[path.stem] = deps - {path.stem}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n}))
                   for n in graph.get(start, ()))

    assert graph["fields"] == set() and graph["validate"] == {"fields"}
    assert not [m for m in graph if reaches(m, m, set())]
