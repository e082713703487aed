"""A typed run record (issue 15, deliverables 5, 7, 9): typed fields written by one builder
from the plan and the model's own ``get_model_info()``, the v1 -> v2 migration, honest token
counts, per-request seeds, and loglikelihood_rolling in the request cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lm_eval import simple_evaluate
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager

from evalsuite.errors import ResultsError
from evalsuite.gate_identity import run_context
from evalsuite.models.adapter import LLaDAEvalModel
from evalsuite.models.engine import DiffusionEngine, TaskSettings
from evalsuite.models.requests import tokens_to_cut
from evalsuite.report import build_report, render_html
from evalsuite.results import SCHEMA_VERSION, read_run
from evalsuite.results.convert import convert_lm_eval, facts_from_lm_eval_config
from evalsuite.results.schema import (
    Checkpoint,
    Run,
    Speed,
    run_from_dict,
    run_to_dict,
)
from evalsuite.settings import Overrides, TaskInfo, resolve

from conftest import FIXTURES

REPO = Path(__file__).resolve().parents[1]
TASKS = str(FIXTURES / "lm_eval_tasks")
FAST = dict(gen_length=8, steps=8, block_length=8, mc_num=8)
V1_RUNNER = FIXTURES / "results" / "v1" / "20260101T000000Z-llada-tiny-runner"


@pytest.fixture(scope="module")
def task_manager() -> TaskManager:
    return TaskManager(include_defaults=False, include_path=TASKS)


# ---------------------------------------------------------------- the record and its migration


def test_v1_runner_record_migrates_into_typed_fields():
    # old: these facts lived in RunRecord.extra and readers dug them out by string keys
    rec = read_run(V1_RUNNER).record
    assert rec.schema_version == SCHEMA_VERSION == 2
    assert rec.status == "complete" and rec.failure is None
    assert rec.checkpoint is not None and len(rec.checkpoint.sha256) == 64
    assert rec.checkpoint.dir == "evalsuite/assets/llada-tiny"
    assert rec.world_size == 1 and rec.family is not None and rec.family.reason == "preset"
    assert rec.requested_tasks[:2] == ("llada_gsm8k", "llada_piqa")
    assert rec.overrides == {"gen_length": 32, "steps": 16, "block_length": 16, "mc_num": 16}
    assert rec.lm_eval_options is not None and rec.lm_eval_options.predict_only is False
    assert rec.reliability is not None and rec.reliability.cache.enabled
    assert rec.reliability.cache.requests == 232 and rec.reliability.truncation.window == 4096
    # v1 writers ran only the LLaDA family natively: gate identity compares architectures
    assert rec.model.backend == "llada" and rec.model.architecture == "llada"
    piqa = rec.tasks["llada_piqa"]
    assert piqa.settings["mc_batch_size"] == 16 and "batch_size" not in piqa.settings
    assert piqa.provenance is not None and piqa.provenance.sources["mc_num"] == "cli"
    assert rec.seeds.request_seed_base == 1234 and rec.seeds.torch_random_seed == 1234
    assert rec.seeds.request_seed_rule and rec.speed.tokens_counted_to_cut is False
    assert rec.extra == {}


def test_v2_record_round_trips_every_field(tmp_path: Path):
    import dataclasses

    from evalsuite.results.schema import SandboxRecord
    from evalsuite.sandbox import isolation_report

    rec = read_run(V1_RUNNER).record
    again = run_from_dict(json.loads(json.dumps(run_to_dict(rec))))
    assert again == rec
    sandboxed = dataclasses.replace(
        rec, sandbox=SandboxRecord(("llada_humaneval",), isolation_report()), status="failed",
        failure="ValueError: x")
    again = run_from_dict(json.loads(json.dumps(run_to_dict(sandboxed))))
    assert again.sandbox is not None and again.sandbox.tasks == ("llada_humaneval",)
    assert again.sandbox.isolation["verdict"] == isolation_report()["verdict"]
    assert (again.status, again.failure) == ("failed", "ValueError: x")
    bad = run_to_dict(rec)
    bad["world_size"] = "2"
    with pytest.raises(ResultsError, match="run.world_size: expected int"):
        run_from_dict(bad)


def test_v2_fixture_loads():
    (run_dir,) = (FIXTURES / "results" / "v2").iterdir()
    run = read_run(run_dir)
    rec = run.record
    assert rec.schema_version == 2 and rec.speed.tokens_counted_to_cut
    assert rec.speed.tokens_per_nfe is not None and rec.tasks["llada_gsm8k"].provenance
    assert all(s.seeds for s in run.samples)


def test_committed_baselines_load_through_the_migration():
    for name in ("llada-tiny", "arm-tiny"):
        rec = read_run(REPO / "results" / "baselines" / name).record
        assert rec.schema_version == SCHEMA_VERSION and rec.status == "complete"
        assert rec.extra == {}


def test_readers_use_the_typed_fields():
    run = read_run(V1_RUNNER)
    rec = run.record
    import dataclasses

    moved = dataclasses.replace(rec, checkpoint=Checkpoint("x", "f" * 64), world_size=2,
                                status="failed", failure="RuntimeError: boom")
    context = run_context(Run(run.path, moved, run.samples))
    assert context["model.checkpoint_sha256"] == "f" * 64 and context["world_size"] == "2"
    report = build_report([Run(run.path, moved, run.samples)])
    assert report.runs[0].failed == "RuntimeError: boom"


def test_speed_reports_tokens_per_forward_pass():
    speed = Speed(wall_time_s=10.0, nfe=100, generated_tokens=30, generation_s=5.0,
                  generation_nfe=60, tokens_counted_to_cut=True)
    assert speed.tokens_per_s == 6.0 and speed.tokens_per_nfe == 0.5
    html = render_html(build_report([read_run(next((FIXTURES / "results" / "v2").iterdir()))]))
    assert "tokens / pass" in html


# ---------------------------------------------------------------- the model's own report


def test_plain_lm_eval_records_settings_through_get_model_info(task_manager):
    # old: a plain `lm_eval --model llada` output carried no settings at all
    lm = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", **FAST)
    out = simple_evaluate(model=lm, tasks=["tiny_qa_gen", "tiny_qa_mc"], task_manager=task_manager,
                          limit=2, log_samples=True)
    info = out["config"]["evalsuite"]
    assert info["settings"]["tiny_qa_gen"]["gen_length"] == 8
    assert info["checkpoint"]["dir"] == "evalsuite/assets/llada-tiny"
    facts = facts_from_lm_eval_config(out)
    record, samples = convert_lm_eval(out, facts, {}, run_id="r", created_utc="t",
                                      source_format="lm-eval")
    gen = record.tasks["tiny_qa_gen"]
    assert gen.settings["gen_length"] == 8 and gen.provenance is not None
    assert gen.provenance.sources["gen_length"] == "model_args"
    assert record.tasks["tiny_qa_mc"].settings["mc_num"] == 8
    assert record.checkpoint is not None and record.seeds.request_seed_base == 1234
    assert record.reliability is not None and record.family is not None


def test_the_plan_s_provenance_is_the_model_s_own():
    # old: the engine labelled --gen_kwargs as "yaml" and the runner overwrote it afterwards
    task = TaskInfo("llada_gsm8k", "generate_until")
    yaml = {"until": ["Question:"], "do_sample": False, "max_gen_toks": 256}
    planned_config, planned = resolve(task, "base", yaml, {}, user_gen_kwargs={"max_gen_toks": 16})
    assert planned.sources["gen_length"] == "gen_kwargs"
    engine = DiffusionEngine(lambda: None, family="base", seed=1, overrides=Overrides({}),
                             planned={"llada_gsm8k": TaskSettings(planned_config, planned)})
    merged = {**yaml, "max_gen_toks": 16}  # what lm-eval hands the model
    assert engine.settings(task, merged) == planned_config
    assert engine.task_settings["llada_gsm8k"].provenance.sources["gen_length"] == "gen_kwargs"


# ---------------------------------------------------------------- tokens, seeds, rolling cache


def test_tokens_to_cut_counts_the_answer_not_the_slots():
    decode = "".join  # one character per token
    ids = list("abcdefgh")
    assert tokens_to_cut(ids, "abcdefgh", decode) == 8
    assert tokens_to_cut(ids, "abc", decode) == 3
    assert tokens_to_cut(ids, "", decode) == 0
    assert tokens_to_cut([], "", decode) == 0


def test_generated_tokens_are_counted_up_to_the_cut(task_manager):
    # old: every generation request counted gen_length tokens, EOS padding included
    lm = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", gen_length=16, steps=16,
                        block_length=16)
    free = lm.generate_until([Instance("generate_until", {}, ("Question: 1 + 1?", {"until": []}),
                                       0, ("t", 0, 1))])[0]
    assert len(free) >= 2, free
    stop = free[1]
    cut = lm.generate_until([Instance("generate_until", {}, ("Question: 1 + 1?", {"until": [stop]}),
                                      0, ("t", 1, 1))])[0]
    assert cut == free[:free.index(stop)]
    full, short = lm.request_stats[("t", 0)], lm.request_stats[("t", 1)]
    tok = lm.tokenizer
    assert full["generated_tokens"] <= 16
    assert short["generated_tokens"] < full["generated_tokens"]
    assert short["generated_tokens"] >= len(tok(cut, add_special_tokens=False)["input_ids"]) - 1
    assert full["generation_requests"] == 1 and len(full["seeds"]) == 1


def test_samples_record_each_request_seed(task_manager):
    lm = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", **FAST)
    out = simple_evaluate(model=lm, tasks=["tiny_qa_mc"], task_manager=task_manager, limit=2,
                          log_samples=True)
    record, samples = convert_lm_eval(out, facts_from_lm_eval_config(out), lm.request_stats,
                                      run_id="r", created_utc="t")
    for sample in samples:
        n_choices = len(sample.loglikelihoods or ())
        assert sample.seeds is not None and len(sample.seeds) == n_choices > 1
        assert len(set(sample.seeds)) == 1  # the auto design: one seed per question (CRN)


def test_loglikelihood_rolling_uses_the_request_cache(tmp_path: Path):
    # old: rolling requests were recomputed on every resume
    def rolling(lm: LLaDAEvalModel) -> list[float]:
        texts = ["The cat sat on the mat.", "Two plus two is four."]
        return lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (t,), 0,
                                                  ("t", i, 1)) for i, t in enumerate(texts)])

    cache = str(tmp_path / "cache")
    first = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", mc_num=4, request_cache=cache)
    values = rolling(first)
    assert first.request_cache.stats.by_kind["loglikelihood_rolling"] == {"requests": 2,
                                                                          "from_cache": 0}
    second = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", mc_num=4, request_cache=cache)
    assert rolling(second) == values
    assert second.request_cache.stats.by_kind["loglikelihood_rolling"] == {"requests": 2,
                                                                           "from_cache": 2}
    assert second.request_stats[("t", 0)]["seeds"] == first.request_stats[("t", 0)]["seeds"]
    changed = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", mc_num=8, request_cache=cache)
    rolling(changed)
    assert changed.request_cache.stats.by_kind["loglikelihood_rolling"]["from_cache"] == 0
