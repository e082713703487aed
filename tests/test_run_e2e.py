"""`evalsuite run` end to end: lm-eval's real evaluate, the results store, provenance."""

from __future__ import annotations

import json
import shutil

import pytest

import evalsuite
from evalsuite.cli import main

from conftest import FIXTURES

DATA = FIXTURES / "data"
FAST = ["--gen-length", "16", "--steps", "8", "--block-length", "8", "--mc-num", "8"]


@pytest.mark.slow
def test_run_records_everything_a_result_depends_on(tmp_path, capsys):
    code = main(["run", "--model", "llada-tiny", "--tasks", "gsm8k,piqa", "--limit", "3",
                 "--data-dir", str(DATA), "--batch-size", "3", "--output", str(tmp_path), *FAST])
    assert code == 0, capsys.readouterr().err
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["model"]["preset"] == "llada-tiny"
    assert record["model"]["resolved_id"] == "evalsuite/assets/llada-tiny"
    assert record["model"]["dtype"] == "float32"
    assert record["model"]["special_tokens"]["mask_id"] == 1
    assert record["checkpoint"]["sha256"]
    gsm8k, piqa = record["tasks"]["llada_gsm8k"], record["tasks"]["llada_piqa"]
    assert gsm8k["settings"]["gen_length"] == 16 and gsm8k["settings"]["steps"] == 8
    assert gsm8k["settings"]["remasking"] == "low_confidence"
    assert piqa["settings"]["mc_num"] == 8
    assert piqa["settings"]["cfg_scale"] == 0.5  # the task's official CFG, not overridden
    assert gsm8k["version"] and gsm8k["n_shot"] == 5
    assert record["seeds"]["request_seed_base"] == 1234
    env = record["environment"]
    assert env["packages"]["lm_eval"] == "0.4.13" and env["packages"]["torch"]
    assert "revision" in env["git"] and "dirty" in env["git"]
    assert record["device"] == "cpu"
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6
    # generated tokens are counted up to the cut, not as gen_length answer slots
    gen_tokens = [s["generated_tokens"] for s in samples if s["task"] == "llada_gsm8k"]
    assert record["speed"]["nfe"] > 0
    assert record["speed"]["generated_tokens"] == sum(gen_tokens) <= 3 * 16
    assert record["speed"]["tokens_counted_to_cut"] is True
    assert record["speed"]["tokens_per_nfe"] == pytest.approx(
        sum(gen_tokens) / record["speed"]["generation_nfe"])
    assert all(s["seeds"] and len(s["seeds"]) >= 1 for s in samples)
    for s in samples:
        assert s["nfe"] > 0 and s["seconds"] > 0
        assert s["prompt"]
    df = evalsuite.load_runs([run_dir])
    assert {"llada_gsm8k", "llada_piqa"} <= set(df["task"])


@pytest.mark.slow
def test_a_failing_task_keeps_the_finished_ones(tmp_path, capsys):
    out = tmp_path / "runs"
    with pytest.raises(ValueError, match="scoring failed on purpose") as info:
        main(["run", "--model", "llada-tiny", "--tasks", "gsm8k,tiny_qa_badscore", "--limit", "2",
              "--data-dir", str(DATA), "--include-path", str(FIXTURES / "lm_eval_tasks"),
              "--output", str(out), "--gen-length", "8", "--steps", "8", "--block-length", "8"])
    assert any("saved in" in note for note in info.value.__notes__)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    record = json.loads((run_dir / "run.json").read_text())
    assert set(record["tasks"]) == {"llada_gsm8k"}
    assert "scoring failed on purpose" in record["failure"]


def test_invalid_yaml_setting_fails_before_any_weight_loads(tmp_path, capsys, monkeypatch):
    import evalsuite.runner as runner

    def no_model(_plan):
        raise AssertionError("the model was built before the settings were checked")

    monkeypatch.setattr(runner, "build_lm", no_model)
    code = main(["run", "--model", "llada-tiny", "--tasks", "gsm8k,tiny_qa_badgen", "--limit", "2",
                 "--data-dir", str(DATA), "--include-path", str(FIXTURES / "lm_eval_tasks"),
                 "--output", str(tmp_path / "runs"), *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert ("task tiny_qa_badgen: remasking 'top_k' (from yaml generation kwarg) must be one of "
            "low_confidence, random; pass e.g. remasking: low_confidence in the task YAML's "
            "generation_kwargs") in err
    assert not (tmp_path / "runs").exists()


def test_missing_data_fails_before_any_weight_loads(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(DATA / "gsm8k", data / "gsm8k")  # piqa is missing on purpose
    import evalsuite.runner as runner

    def no_model(_plan):
        raise AssertionError("the model was built before the data was checked")

    monkeypatch.setattr(runner, "build_lm", no_model)
    code = main(["run", "--model", "llada-tiny", "--tasks", "gsm8k,piqa", "--limit", "2",
                 "--data-dir", str(data), "--output", str(tmp_path / "runs"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "piqa" in err
    assert not (tmp_path / "runs").exists()
