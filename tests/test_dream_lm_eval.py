"""Dream end to end through lm-eval's real ``simple_evaluate`` (model ``llada``, which
dispatches on the checkpoint's config.json), with the bundled random ``dream-tiny``.

What this proves: a Dream checkpoint runs likelihood and generation tasks through the adapter
and the engine with Dream's protocol (EOS appended and logit shift in the likelihood, Dream's
sampler with its setting names), gives the same numbers as the token-level API, and refuses a
LLaDA-only model_arg before loading. dream-tiny is random: scores are not meaningful.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager

import evalsuite
from evalsuite.errors import ConfigError
from evalsuite.families.dream.tiny import build
from evalsuite.models.requests import split_context

from conftest import FIXTURES, ROOT

DREAM_TINY = ROOT / "evalsuite" / "assets" / "dream-tiny"
TASKS = str(FIXTURES / "lm_eval_tasks")


@pytest.fixture(scope="module")
def task_manager() -> TaskManager:
    return TaskManager(include_defaults=False, include_path=TASKS)


def test_bundled_checkpoint_is_reproducible(tmp_path):
    from safetensors.torch import load_file

    rebuilt = build(tmp_path / "dream-tiny", ROOT / "evalsuite" / "assets" / "llada-tiny")
    fresh, bundled = load_file(str(rebuilt / "model.safetensors")), \
        load_file(str(DREAM_TINY / "model.safetensors"))
    assert fresh.keys() == bundled.keys() and "lm_head.weight" in fresh
    assert all(torch.equal(fresh[k], bundled[k]) for k in fresh)
    assert (rebuilt / "config.json").read_text() == (DREAM_TINY / "config.json").read_text()


def test_simple_evaluate_runs_dream_likelihood_and_generation(task_manager):
    import evalsuite.lm_eval_plugin  # noqa: F401  (registers --model llada)

    out = simple_evaluate(
        model="llada",
        model_args=f"pretrained={DREAM_TINY},device=cpu,gen_length=8,steps=8,alg=maskgit_plus,"
                   "mc_num=8,mc_batch_size=8",
        tasks=["tiny_qa_mc", "tiny_qa_gen"], task_manager=task_manager, log_samples=True,
        batch_size=2)
    assert 0.0 <= out["results"]["tiny_qa_mc"]["acc,none"] <= 1.0
    assert "exact_match,none" in out["results"]["tiny_qa_gen"]
    # the likelihood of a choice is Dream's (EOS appended, shifted logits), as the API gives
    model = evalsuite.load_model(str(DREAM_TINY), device="cpu")
    sample = out["samples"]["tiny_qa_mc"][0]
    tok = model.tokenizer
    compared = 0
    for arg, resp in zip(sample["arguments"], sample["resps"]):
        context, continuation = split_context(arg[0], arg[1])
        whole = tok(context + continuation)["input_ids"]
        ctx = tok(context)["input_ids"]
        cont = whole[len(ctx):]
        assert ctx[0] != tok.bos_token_id  # the tokenizer adds none: Dream's eval prepends it
        ctx = [tok.bos_token_id, *ctx]
        expected = evalsuite.loglikelihood(model, torch.tensor(ctx), torch.tensor(cont),
                                           mc_num=8, mc_batch_size=8, seed=0)
        if expected.exact:  # an exact design does not depend on the seed
            assert math.isclose(resp[0][0], expected.value, rel_tol=1e-5, abs_tol=1e-5)
            compared += 1
    assert compared >= 1
    # generation used Dream's sampler: 8 steps at most per request, each answer a string
    gen = out["samples"]["tiny_qa_gen"]
    assert len(gen) == 6 and all(isinstance(s["resps"][0][0], str) for s in gen)


def test_llada_model_arg_on_a_dream_checkpoint_is_refused():
    from evalsuite.models.adapter import LLaDAEvalModel

    with pytest.raises(ConfigError, match="'block_length' .* dream architecture"):
        LLaDAEvalModel(pretrained=str(DREAM_TINY), device="cpu", block_length=8)


def test_evalsuite_run_on_a_dream_checkpoint(tmp_path, capsys):
    """`evalsuite run` end to end: Dream's defaults recorded, no LLaDA paper table."""
    import json

    from evalsuite.cli import main
    from evalsuite.families import family_named

    code = main(["run", "--model", str(DREAM_TINY), "--tasks", "tiny_qa_mc,tiny_qa_gen",
                 "--include-path", TASKS, "--output", str(tmp_path), "--no-cache",
                 "--mc-num", "8", "--mc-batch-size", "8", "--gen-length", "8", "--steps", "8",
                 "--top-p", "0.95"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"evalsuite: {DREAM_TINY} (dream, float32) on tiny_qa_mc, tiny_qa_gen" in err
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    record = json.loads((run_dir / "run.json").read_text())
    gen = record["tasks"]["tiny_qa_gen"]["settings"]
    assert gen["alg"] == "entropy" and gen["top_p"] == 0.95 and gen["gen_length"] == 8
    # only Dream's knobs: none of LLaDA's (block_length, remasking, decoding, ...)
    assert set(gen) == set(family_named("dream").generate_settings)
    mc = record["tasks"]["tiny_qa_mc"]["settings"]
    assert mc["mc_num"] == 8 and mc["nll_type"] == "mc" and "target_se" not in mc
    assert record["model"]["special_tokens"]["mask_id"] == 1
    assert record["model"]["architecture"] == "dream"  # typed: ModelInfo.architecture


def test_cli_refuses_a_llada_setting_for_dream_before_loading(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "evalsuite", "run", "--model", str(DREAM_TINY),
                           "--tasks", "tiny_qa_mc", "--include-path", TASKS,
                           "--remasking", "random", "--output", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2
    assert "'remasking' (cli) is not a setting of the dream architecture" in proc.stderr
    assert "alg, alg_temp" in proc.stderr
