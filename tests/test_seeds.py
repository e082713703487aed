"""Per-request seeds: run seed, request, settings and repeat index (lm-eval ``repeats``)."""

from __future__ import annotations

import pytest
from lm_eval import simple_evaluate
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager

from evalsuite.models.adapter import LLaDAEvalModel
from evalsuite.models.requests import repeat_indices

from conftest import FIXTURES


def test_repeat_indices_count_equal_keys():
    assert repeat_indices(["a", "b", "a", "a", "b"]) == [0, 0, 1, 2, 1]


@pytest.fixture(scope="module")
def lm() -> LLaDAEvalModel:
    return LLaDAEvalModel(pretrained="llada-tiny", device="cpu", batch_size=3)


def _same_instance_three_times(temperature: float) -> list[Instance]:
    kwargs = {"until": [], "max_gen_toks": 8, "temperature": temperature, "do_sample": temperature > 0}
    inst = Instance("generate_until", {}, ("Question: What is 2 + 3?\nAnswer:", kwargs), 0,
                    ("t", 0, 3))
    return [inst, inst, inst]  # what lm-eval's evaluator sends for `repeats: 3`


def test_repeats_differ_at_positive_temperature(lm):
    # old code: the seed ignored the repeat index, so the three samples were identical
    outputs = lm.generate_until(_same_instance_three_times(1.0))
    assert len(set(outputs)) == 3


def test_repeats_are_identical_at_temperature_zero(lm):
    outputs = lm.generate_until(_same_instance_three_times(0.0))
    assert len(set(outputs)) == 1


def test_run_seed_changes_the_samples_and_is_reproducible():
    outs = []
    for seed in (1, 2, 1):
        lm = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", seed=seed)
        outs.append(lm.generate_until(_same_instance_three_times(1.0)[:1])[0])
    assert outs[0] == outs[2] and outs[0] != outs[1]


@pytest.mark.slow
def test_lm_eval_repeats_give_distinct_samples(lm):
    tm = TaskManager(include_defaults=False, include_path=str(FIXTURES / "lm_eval_tasks"))
    out = simple_evaluate(model=lm, tasks=["tiny_qa_repeat"], task_manager=tm, limit=2,
                          log_samples=True)
    for sample in out["samples"]["tiny_qa_repeat"]:
        (responses,) = sample["resps"]  # one Instance, answered 3 times
        assert len(responses) == 3 and len(set(responses)) == 3
    assert lm.settings_used["tiny_qa_repeat"]["temperature"] == 2.0
