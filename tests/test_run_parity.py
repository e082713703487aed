"""lm-eval parity options of `evalsuite run` (real lm-eval, the bundled tiny model)."""

from __future__ import annotations

import json

import pytest

from evalsuite.cli import main

from conftest import FIXTURES

DATA = FIXTURES / "data"


def test_wandb_without_the_package_exits_2_naming_the_install(capsys, tmp_path):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed (tests/test_wandb_offline.py logs to it for real)")
    code = main(["run", "--model", "llada-tiny", "--tasks", "gsm8k", "--data-dir", str(DATA),
                 "--output", str(tmp_path), "--wandb-args", "project=x"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install wandb" in err
    assert not list(tmp_path.iterdir())


def test_bad_gen_kwargs_exit_2(capsys, tmp_path):
    code = main(["run", "--model", "llada-tiny", "--tasks", "gsm8k", "--data-dir", str(DATA),
                 "--output", str(tmp_path), "--gen-kwargs", "max_gen_toks"])
    assert code == 2 and "--gen-kwargs" in capsys.readouterr().err


@pytest.mark.slow
def test_lm_eval_options_reach_lm_eval_and_the_record(tmp_path, capsys):
    code = main(["run", "--model", "llada-tiny", "--tasks", "gsm8k", "--limit", "2",
                 "--data-dir", str(DATA), "--output", str(tmp_path), "--num-fewshot", "1",
                 "--system-instruction", "You are terse.", "--apply-chat-template",
                 "--no-fewshot-as-multiturn", "--gen-kwargs", "max_gen_toks=8,top_p=0.9",
                 "--seed", "7", "--mc-num", "8"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "generation kwargs top_p are not supported" in err
    (run_dir,) = tmp_path.iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    task = record["tasks"]["llada_gsm8k"]
    assert task["n_shot"] == 1
    assert task["settings"]["gen_length"] == 8 and task["settings"]["steps"] == 8
    prov = record["tasks"]["llada_gsm8k"]["provenance"]
    assert prov["sources"]["gen_length"] == "gen_kwargs"
    assert prov["ignored_gen_kwargs"] == {"top_p": 0.9}
    options = record["lm_eval_options"]
    assert options["system_instruction"] == "You are terse." and options["apply_chat_template"]
    assert options["fewshot_as_multiturn"] is False
    assert record["seeds"]["torch_random_seed"] == 7 and record["seeds"]["request_seed_base"] == 7
    assert record["model"]["chat_template"] is True
    sample = json.loads((run_dir / "samples.jsonl").read_text().splitlines()[0])
    assert "You are terse." in sample["prompt"] and "<|start_header_id|>" in sample["prompt"]


@pytest.mark.slow
def test_predict_only_stores_outputs(tmp_path, capsys):
    code = main(["run", "--model", "llada-tiny", "--tasks", "gsm8k", "--limit", "1",
                 "--data-dir", str(DATA), "--output", str(tmp_path), "--predict-only",
                 "--gen-length", "8"])
    err = capsys.readouterr().err
    assert code == 0, err
    (run_dir,) = tmp_path.iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["lm_eval_options"]["predict_only"] is True
    sample = json.loads((run_dir / "samples.jsonl").read_text().splitlines()[0])
    assert 0 <= sample["generated_tokens"] <= 8 and isinstance(sample["output"], str)
    assert "exact_match" not in sample["scores"]  # not scored: lm-eval's "bypass" metric
