"""Model family from the checkpoint: a chat template in the tokenizer means instruct."""

from __future__ import annotations

import json
import shutil

import pytest

from evalsuite.cli import main
from evalsuite.family import decide_family
from evalsuite.presets import LLADA_TINY_DIR, resolve_model

from conftest import FIXTURES


@pytest.fixture()
def without_template(tmp_path):
    out = tmp_path / "base-model"
    shutil.copytree(LLADA_TINY_DIR, out)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config.pop("chat_template")
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return out


def test_a_local_checkpoint_with_a_chat_template_is_instruct(tmp_path):
    # old code: any path without the word "instruct" ran the base protocol
    local = tmp_path / "my-llada-1.5"
    shutil.copytree(LLADA_TINY_DIR, local)
    preset = resolve_model(str(local))
    assert preset.family == "instruct" and preset.chat_template
    assert preset.family_reason == "the tokenizer has a chat template"


def test_no_chat_template_is_base_even_with_instruct_in_the_name(tmp_path, without_template):
    named = tmp_path / "something-instruct"
    shutil.copytree(without_template, named)
    preset = resolve_model(str(named))
    assert preset.family == "base" and preset.family_reason == "the tokenizer has no chat template"


def test_flags_and_presets_win(tmp_path):
    local = tmp_path / "m"
    shutil.copytree(LLADA_TINY_DIR, local)
    assert resolve_model(str(local), family="base").family == "base"
    assert resolve_model(str(local), family="base").family_reason == "--base given"
    assert resolve_model("llada-tiny").family_reason == "preset"
    # a hub id that is not cached: the preset with that hub id decides (LLaDA 1.5 is instruct)
    assert resolve_model("GSAI-ML/LLaDA-1.5").family == "instruct"


def test_decision_is_pure():
    d = decide_family(override=None, preset_family=None, has_chat_template=None, name="x/y")
    assert d.family == "base" and "guessed from the name" in d.reason


@pytest.mark.slow
def test_run_prints_and_records_the_decision(tmp_path, capsys):
    local = tmp_path / "local-llada"
    shutil.copytree(LLADA_TINY_DIR, local)
    code = main(["run", "--model", str(local), "--tasks", "gsm8k", "--limit", "1",
                 "--data-dir", str(FIXTURES / "data"), "--output", str(tmp_path / "runs"),
                 "--gen-length", "8", "--num-fewshot", "0"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "family instruct (the tokenizer has a chat template); chat template on" in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["model"]["family"] == "instruct" and record["model"]["chat_template"] is True
    assert record["family"] == {"family": "instruct",
                                         "reason": "the tokenizer has a chat template"}
    assert "llada_gsm8k_instruct" in record["tasks"]
    prov = record["tasks"]["llada_gsm8k_instruct"]["provenance"]["sources"]
    assert prov["gen_length"] == "cli" and prov["steps"] == "derived"
