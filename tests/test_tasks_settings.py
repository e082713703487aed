"""Per-task diffusion settings (values from REFERENCE.md)."""

from __future__ import annotations

import pytest

from evalsuite.settings.paper import benchmark_of, diffusion_settings

OFFICIAL_BASE_GENERATION = {
    "gen_length": 1024,
    "steps": 1024,
    "block_length": 1024,
    "temperature": 0.0,
    "remasking": "low_confidence",
    "cfg_scale": 0.0,
    "logits_eos_inf": False,
    "confidence_eos_eot_inf": False,
}


@pytest.mark.parametrize(
    "task", ["llada_gsm8k", "llada_math", "llada_math_algebra", "llada_bbh_navigate", "llada_humaneval"]
)
def test_base_generation_tasks_use_the_official_setting(task: str) -> None:
    assert diffusion_settings(task, "base") == OFFICIAL_BASE_GENERATION


def test_likelihood_tasks() -> None:
    assert diffusion_settings("llada_mmlu", "base") == {"mc_num": 1, "cfg_scale": 0.0}
    assert diffusion_settings("llada_mmlu_abstract_algebra", "base") == {"mc_num": 1, "cfg_scale": 0.0}
    assert diffusion_settings("llada_piqa", "base") == {"mc_num": 128, "cfg_scale": 0.5}
    # a likelihood task stays one for an instruct model
    assert diffusion_settings("llada_mmlu_anatomy", "instruct") == {"mc_num": 1, "cfg_scale": 0.0}


@pytest.mark.parametrize(
    ("task", "length", "eos_inf", "eos_eot_last"),
    [
        ("llada_mmlu_instruct", 3, False, False),
        ("llada_mmlu_instruct_anatomy", 3, False, False),
        ("llada_gsm8k_instruct", 512, False, True),
        ("llada_gsm8k", 512, False, True),
        ("llada_math_precalc", 512, False, True),
        ("llada_humaneval_instruct", 512, True, False),
    ],
)
def test_instruct_table(task: str, length: int, eos_inf: bool, eos_eot_last: bool) -> None:
    got = diffusion_settings(task, "instruct")
    assert (got["gen_length"], got["steps"], got["block_length"]) == (length, length, length)
    assert (got["logits_eos_inf"], got["confidence_eos_eot_inf"]) == (eos_inf, eos_eot_last)
    assert got["temperature"] == 0.0 and "mc_num" not in got


@pytest.mark.parametrize("family", ["base", "instruct"])
@pytest.mark.parametrize("task", ["llada_poem_forward", "llada_poem_backward"])
def test_poems(task: str, family: str) -> None:
    got = diffusion_settings(task, family)  # type: ignore[arg-type]
    assert (got["gen_length"], got["steps"], got["block_length"]) == (28, 28, 28)
    assert got["logits_eos_inf"] is True and got["confidence_eos_eot_inf"] is False


def test_instruct_without_table_entry_falls_back_to_base() -> None:
    assert diffusion_settings("llada_bbh", "instruct") == OFFICIAL_BASE_GENERATION


@pytest.mark.parametrize(
    ("name", "benchmark"),
    [
        ("gsm8k", "gsm8k"),
        ("mmlu_anatomy", "mmlu"),
        ("mmlu_stem", "mmlu"),
        ("mmlu_pro", None),
        ("minerva_math_algebra", "math"),
        ("bbh_cot_fewshot_navigate", "bbh"),
        ("humaneval_instruct", "humaneval"),
        ("llada_poem_forward", "poem"),
        ("hellaswag", None),
        ("llada_unknown", None),
    ],
)
def test_benchmark_of(name: str, benchmark: str | None) -> None:
    assert benchmark_of(name) == benchmark


def test_unknown_task_has_no_settings() -> None:
    assert diffusion_settings("hellaswag", "base") == {}
