"""The estimator settings through the lm-eval adapter: design, target SE, shared randomness."""

from __future__ import annotations

import pytest
from lm_eval.api.instance import Instance

from evalsuite.errors import ConfigError
from evalsuite.models.adapter import LLaDAEvalModel

CONTEXT = "Question: which is a fruit?\nAnswer:"
CHOICES = [" a ripe yellow banana from the market", " a rusty old bicycle chain link"]


def _requests(context=CONTEXT, choices=CHOICES, doc=0):
    return [Instance("loglikelihood", {}, (context, c), i, ("t", doc, 1))
            for i, c in enumerate(choices)]


def test_estimator_and_target_se_pass_through_and_are_recorded():
    lm = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", mc_num=32,
                        estimator="reference", target_se=0.5)
    reqs = _requests()
    for r in reqs:
        r.task_name = "tiny"
    out = lm.loglikelihood(reqs)
    assert len(out) == 2
    used = lm.settings_used["tiny"]
    assert used["estimator"] == "reference" and used["target_se"] == 0.5 and used["mc_num"] == 32


def test_default_design_shares_random_numbers_across_the_choices_of_a_question():
    """The design's seed comes from the context alone (common random numbers for the
    choices): a choice's value does not depend on its order or document, and another context
    gives other draws."""
    lm = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", mc_num=16)
    first = lm.loglikelihood(_requests())
    again = lm.loglikelihood(_requests(choices=list(reversed(CHOICES)), doc=1))
    assert first[0][0] == pytest.approx(again[1][0], abs=1e-9)
    assert first[1][0] == pytest.approx(again[0][0], abs=1e-9)
    other = lm.loglikelihood(_requests(context=CONTEXT + " ", doc=2))
    assert other[0][0] != first[0][0]


def test_unknown_estimator_is_a_config_error():
    with pytest.raises(ConfigError, match="estimator 'official' .*must be one of auto, stratified, reference"):
        LLaDAEvalModel(pretrained="llada-tiny", device="cpu", estimator="official")
