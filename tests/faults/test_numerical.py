"""Numerical faults: NaN/inf logits flagged and failing the run, CUDA out-of-memory halving
(injected on the CPU), prompts longer than the model's window, broken checkpoints."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from lm_eval.api.instance import Instance
from safetensors.torch import load_file, save_file

from evalsuite.cli import main
from evalsuite.errors import ConfigError
from evalsuite.models.faults import OutOfMemoryFault
from evalsuite.presets import LLADA_TINY_DIR

from .helpers import DATA, FAST, run_dirs

WEIGHTS = "model.safetensors"


def _edited_checkpoint(tmp_path, edit) -> str:
    """A copy of llada-tiny whose tensors went through ``edit(dict)``."""
    ckpt = tmp_path / "ckpt"
    shutil.copytree(LLADA_TINY_DIR, ckpt)
    tensors = load_file(str(ckpt / WEIGHTS))
    edit(tensors)
    save_file(tensors, str(ckpt / WEIGHTS))
    return str(ckpt)


def _overflowing(tensors):
    """Finite in float16 (1e4 < 65504) but the logits overflow it (about 1e5)."""
    tensors["model.transformer.ln_f.weight"] *= 1e4


def _run(tmp_path, model: str, *extra: str) -> int:
    # --base: a copied checkpoint with a chat template would be detected as instruct
    return main(["run", "--model", model, "--base", "--tasks", "gsm8k,piqa", "--limit", "2",
                 "--data-dir", str(DATA), "--batch-size", "2", "--output",
                 str(tmp_path / "runs"), *FAST, *extra])


@pytest.mark.slow
def test_float16_overflow_is_flagged_per_request_and_fails_the_run(tmp_path, capsys):
    ckpt = _edited_checkpoint(tmp_path, _overflowing)
    code = _run(tmp_path, ckpt, "--dtype", "float16")
    err = capsys.readouterr().err
    assert code == 3, err
    assert "6 request(s) met NaN or infinite logits" in err and "--dtype" in err
    (run,) = run_dirs(tmp_path / "runs")  # written, flagged, never a silent score
    record = json.loads((run / "run.json").read_text())
    assert record["reliability"]["nonfinite"] == {
        "requests": 6, "by_task": {"llada_gsm8k": 2, "llada_piqa": 4}}
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert {r["task"]: r["nonfinite"] for r in rows} == {"llada_gsm8k": 1, "llada_piqa": 2}


@pytest.mark.slow
def test_the_same_weights_in_float32_are_finite(tmp_path, capsys):
    ckpt = _edited_checkpoint(tmp_path, _overflowing)
    code = _run(tmp_path, ckpt, "--dtype", "float32")
    assert code == 0, capsys.readouterr().err
    (run,) = run_dirs(tmp_path / "runs")
    record = json.loads((run / "run.json").read_text())
    assert record["reliability"]["nonfinite"]["requests"] == 0
    assert all("nonfinite" not in json.loads(line)
               for line in (run / "samples.jsonl").read_text().splitlines())


def test_nan_weights_are_refused_naming_the_key(tmp_path, capsys):
    def poison(tensors):
        tensors["model.transformer.blocks.1.up_proj.weight"][3, 5] = float("nan")

    code = _run(tmp_path, _edited_checkpoint(tmp_path, poison))
    err = capsys.readouterr().err
    assert code == 2
    assert "blocks.1.up_proj.weight" in err and "NaN or infinite" in err and WEIGHTS in err
    assert run_dirs(tmp_path / "runs") == []


def test_weights_beyond_float16_are_refused_with_the_dtype_fix(tmp_path, capsys):
    def huge(tensors):
        tensors["model.transformer.wte.weight"][0, 0] = 1e6

    code = _run(tmp_path, _edited_checkpoint(tmp_path, huge), "--dtype", "float16")
    err = capsys.readouterr().err
    assert code == 2 and "beyond the range of float16" in err and "bfloat16" in err


def test_wrong_shapes_are_refused_naming_the_key(tmp_path, capsys):
    def shrink(tensors):
        tensors["model.transformer.blocks.0.q_proj.weight"] = torch.zeros(64, 32)

    code = _run(tmp_path, _edited_checkpoint(tmp_path, shrink))
    err = capsys.readouterr().err
    assert code == 2 and "blocks.0.q_proj.weight" in err and "(64, 32)" in err


# ---------------------------------------------------------------- out of memory


def _lm(**kwargs):
    from evalsuite.models.adapter import LLaDAEvalModel

    return LLaDAEvalModel(pretrained="llada-tiny", device="cpu", gen_length=16, steps=8,
                          block_length=8, mc_num=16, **kwargs)


def _ll_requests(n: int) -> list[Instance]:
    return [Instance("loglikelihood", {}, (f"Question {i}: what comes after {i}?",
                                          f" the number {i + 1} and more"), 0, ("t", i, 1))
            for i in range(n)]


def _gen_requests(n: int) -> list[Instance]:
    return [Instance("generate_until", {}, (f"Count: {'1 2 ' * (i + 1)}", {"until": ["\n\n"]}), 0,
                     ("t", i, 1)) for i in range(n)]


class _OutOfMemoryAbove:
    """Wraps the network's forward: batches of more than ``rows`` sequences raise CUDA OOM."""

    def __init__(self, network, rows: int) -> None:
        self.inner, self.rows, self.raised = network.hidden_states, rows, 0

    def __call__(self, input_ids, *args, **kwargs):
        if input_ids.shape[0] > self.rows:
            self.raised += 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB "
                                              "(injected by the test)")
        return self.inner(input_ids, *args, **kwargs)


def test_out_of_memory_halves_the_batch_and_gives_the_same_results():
    lm = _lm(batch_size=4)
    ll, gen = _ll_requests(6), _gen_requests(4)
    expected_ll, expected_gen = lm.loglikelihood(ll), lm.generate_until(gen)
    assert lm.halving.halvings == 0
    injected = _OutOfMemoryAbove(lm.model.network, rows=2)
    lm.model.network.hidden_states = injected
    # Same draws (per-request generators); smaller forward passes change float rounding only.
    got = lm.loglikelihood(ll)
    assert [g for _, g in got] == [g for _, g in expected_ll]
    assert [v for v, _ in got] == pytest.approx([v for v, _ in expected_ll], rel=1e-6, abs=0)
    assert [v for v, _ in got] != [0.0] * len(got)
    assert lm.generate_until(gen) == expected_gen
    assert injected.raised >= 2 and lm.halving.halvings >= 2


def test_out_of_memory_at_a_batch_of_one_stops_with_the_fix():
    lm = _lm(batch_size=2)
    lm.model.network.hidden_states = _OutOfMemoryAbove(lm.model.network, rows=0)
    with pytest.raises(OutOfMemoryFault, match="even with a batch of 1.*--dtype"):
        lm.generate_until(_gen_requests(2))


# ---------------------------------------------------------------- prompt length


def test_an_over_long_prompt_is_cut_from_the_left_and_recorded():
    lm = _lm(batch_size=2, max_length=48)
    long_context = " ".join(f"word{i}" for i in range(200))
    (short,) = lm.loglikelihood([Instance("loglikelihood", {}, ("Q: 1+1?", " 2"), 0, ("t", 0, 1))])
    out = lm.loglikelihood([Instance("loglikelihood", {}, (long_context, " end"), 0, ("t", 1, 1))])
    assert len(out) == 1 and out[0][0] < 0
    enc = lm.engine.encode
    ctx, cont = enc(long_context), enc(long_context + " end")[len(enc(long_context)):]
    assert lm.truncated == {"t": {"requests": 1, "tokens": len(ctx) + len(cont) - 48}}
    lm.generate_until([Instance("generate_until", {}, (long_context, {"until": []}), 0, ("g", 0, 1))])
    assert lm.truncated["g"] == {"requests": 1, "tokens": len(ctx) - (48 - 16)}
    assert short[0] < 0


def test_an_answer_longer_than_the_window_is_refused():
    lm = _lm(batch_size=1, max_length=8)
    with pytest.raises(ConfigError, match="window is 8"):
        lm.loglikelihood([Instance("loglikelihood", {}, ("Q:", " " + "long " * 20), 0, ("t", 0, 1))])
    with pytest.raises(ConfigError, match="gen-length"):
        lm.generate_until([Instance("generate_until", {}, ("Q:", {"until": []}), 0, ("t", 0, 1))])


# ---------------------------------------------------------------- the pure decisions


def test_fit_to_window_cuts_from_the_left_only_when_needed():
    from evalsuite.models.faults import fit_to_window

    assert fit_to_window(list(range(10)), 3, 8, "x").prompt == [5, 6, 7, 8, 9]
    assert fit_to_window(list(range(10)), 3, 8, "x").dropped == 5
    assert fit_to_window([1, 2], 3, 8, "x").dropped == 0
    with pytest.raises(ConfigError, match="x: the answer needs 9 tokens"):
        fit_to_window([1], 9, 8, "x")


def test_map_halving_keeps_order_and_halves_only_on_oom():
    from evalsuite.models.faults import HalvingState, halving_levels, map_halving

    seen, out = [], []

    def run(batch, level):
        seen.append(len(batch))
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("injected")
        return [x * 10 for x in batch]

    state = HalvingState()
    map_halving(list(range(7)), 8, run, lambda b, r: out.extend(r), state, halving_levels(8))
    assert out == [x * 10 for x in range(7)]
    assert seen[:3] == [7, 4, 2] and state.halvings == 2
    with pytest.raises(ValueError):
        map_halving([1], 1, lambda b, lv: (_ for _ in ()).throw(ValueError("not OOM")),
                    lambda b, r: None, HalvingState(), 3)
    assert [halving_levels(n) for n in (1, 2, 3, 4, 32)] == [0, 1, 2, 2, 5]
