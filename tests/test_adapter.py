"""The lm-eval adapter through lm-eval's real simple_evaluate, with the bundled llada-tiny."""

from __future__ import annotations

import pytest
import torch
from lm_eval import simple_evaluate
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager

from evalsuite.errors import ConfigError
from evalsuite.models.adapter import LLaDAEvalModel
from evalsuite.models.requests import split_context, truncate_stop
from evalsuite.settings import TaskInfo

from conftest import FIXTURES

TASKS = str(FIXTURES / "lm_eval_tasks")
FAST = dict(gen_length=8, steps=8, block_length=8, mc_num=8)


@pytest.fixture(scope="module")
def task_manager() -> TaskManager:
    return TaskManager(include_defaults=False, include_path=TASKS)


def _outputs(lm, tm, tasks=("tiny_qa_gen", "tiny_qa_mc"), **kwargs):
    out = simple_evaluate(model=lm, tasks=list(tasks), task_manager=tm, log_samples=True, **kwargs)
    return out, {t: {s["doc_id"]: s["resps"] for s in rows} for t, rows in out["samples"].items()}


def test_results_do_not_depend_on_batch_size(task_manager):
    one = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", batch_size=1, **FAST)
    four = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", batch_size=4, **FAST)
    out1, s1 = _outputs(one, task_manager)
    out4, s4 = _outputs(four, task_manager)
    assert s1["tiny_qa_gen"] == s4["tiny_qa_gen"]
    for doc, resps in s1["tiny_qa_mc"].items():
        for a, b in zip(resps, s4["tiny_qa_mc"][doc]):
            assert a[0][0] == pytest.approx(b[0][0], abs=1e-3)
    assert out1["results"]["tiny_qa_mc"]["acc,none"] == out4["results"]["tiny_qa_mc"]["acc,none"]
    # bookkeeping: every document has forward passes and time recorded
    assert set(one.request_stats) >= {("tiny_qa_gen", d) for d in range(6)}
    assert all(v["nfe"] > 0 for v in one.request_stats.values())
    assert one.settings_used["tiny_qa_gen"]["gen_length"] == 8
    assert one.settings_used["tiny_qa_mc"]["mc_num"] == 8


def test_stop_sequences_are_applied_after_decoding(task_manager):
    lm = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", batch_size=2, gen_length=32,
                        steps=32, block_length=32)
    # the trained tiny model answers word problems in the "... = N ...\n#### N" layout
    question = "Question: Mia has 12 pens. Mia gives away 4. How many pens are left?\nAnswer:"
    req = Instance("generate_until", {}, (question, {"until": ["####"]}), 0, ("t", 0, 1))
    free = Instance("generate_until", {}, (question, {"until": []}), 0, ("t", 1, 1))
    cut, full = lm.generate_until([req, free])
    assert "####" in full, "fixture assumption: the tiny model emits '####'"
    assert cut == full[: full.index("####")] and "####" not in cut


def test_single_token_continuations_are_exact_and_flag_greedy(task_manager):
    lm = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", mc_num=128)
    ctx = "Question: What is 2 + 3?\nAnswer:"
    token = lm.tokenizer.decode(lm.tokenizer(" 5")["input_ids"][:1])
    (value, greedy), = lm.loglikelihood([Instance("loglikelihood", {}, (ctx, token), 0, ("t", 0, 1))])
    ids = torch.tensor(lm.tokenizer(ctx)["input_ids"] + [lm.tokens.mask_id])[None]
    with torch.no_grad():
        logp = torch.log_softmax(lm.model.network(ids)[0, -1], -1)
    target = lm.tokenizer(ctx + token)["input_ids"][-1]
    assert value == pytest.approx(logp[target].item(), abs=1e-4)
    assert greedy == (int(logp.argmax()) == target)
    assert lm.request_stats[("t", 0)]["nfe"] == 1


def test_chat_template_is_applied_for_instruct(task_manager):
    lm = LLaDAEvalModel(pretrained="llada-tiny", family="instruct", device="cpu", **FAST)
    out, _ = _outputs(lm, task_manager, tasks=("tiny_qa_gen",), limit=2, apply_chat_template=True)
    prompt = out["samples"]["tiny_qa_gen"][0]["arguments"][0][0]
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>")
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_rolling_loglikelihood_is_the_bound_over_the_text():
    lm = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", mc_num=16)
    text = "Natalia sold clips to 48 of her friends."
    (value,) = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0, ("w", 0, 1))])
    (again,) = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0, ("w", 1, 1))])
    assert value < 0 and value == again  # content-seeded: reproducible
    assert 0 < lm.request_stats[("w", 0)]["nfe"] <= 16  # duplicate masked rows run once


def test_official_gsm8k_settings_apply_with_no_options():
    lm = LLaDAEvalModel(pretrained="llada-tiny", device="cpu")
    config = lm.engine.settings(TaskInfo("llada_gsm8k"), {"until": ["Question:"]})
    assert config.gen_length == config.steps == config.block_length == 1024
    assert config.temperature == 0.0 and config.remasking == "low_confidence"
    assert not lm.engine.loaded  # resolving settings loads no weight


def test_unknown_model_arg_is_named():
    with pytest.raises(ConfigError, match="unknown llada model_args gen_lenght"):
        LLaDAEvalModel(pretrained="llada-tiny", gen_lenght=8)


def test_invalid_sampler_model_args_are_refused_before_loading():
    with pytest.raises(ConfigError, match=r"gen_length 100 \(from model_args\) is not a multiple of block_length 48"):
        LLaDAEvalModel(pretrained="does-not-matter-never-loaded", gen_length=100, block_length=48)


def test_context_split_moves_trailing_space_to_the_continuation():
    assert split_context("Answer: ", "5") == ("Answer:", " 5")
    assert split_context("Answer:", " 5") == ("Answer:", " 5")


def test_truncate_stop_cuts_at_the_earliest_stop():
    assert truncate_stop("a\n\nQuestion: b", ("Question:", "\n\n")) == "a"
    assert truncate_stop("abc", ()) == "abc"
