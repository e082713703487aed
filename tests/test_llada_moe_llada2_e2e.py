"""LLaDA-MoE and LLaDA2 end to end: ``evalsuite run``, plain lm-eval (``simple_evaluate`` with
model ``llada``, which dispatches on config.json), the gate in identity mode and the report,
with the random tokenizer-equipped checkpoints of tests/fixtures/tiny (rebuilt bit for bit by
``families/{llada_moe,llada2}/tiny.py``). Also: LLaDA2's settings refused through the real
CLI with exit 2 before any weight loads, and the presets' settings resolved through the plan
(the hub is unreachable: no loading). Scores of random checkpoints are not meaningful.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import evalsuite
from evalsuite.families import family_named

from conftest import FIXTURES, ROOT

MOE_TINY = FIXTURES / "tiny" / "llada-moe-tiny"
LLADA2_TINY = FIXTURES / "tiny" / "llada2-tiny"
TASKS = str(FIXTURES / "lm_eval_tasks")
TOKENIZER = ROOT / "evalsuite" / "assets" / "llada-tiny"


@pytest.mark.parametrize("module, bundled", [("llada_moe", MOE_TINY), ("llada2", LLADA2_TINY)])
def test_tiny_checkpoints_are_rebuilt_bit_for_bit(tmp_path, module, bundled):
    import importlib

    from safetensors.torch import load_file

    build = importlib.import_module(f"evalsuite.families.{module}.tiny").build
    fresh_dir = build(tmp_path / "ckpt", TOKENIZER)
    fresh, kept = (load_file(str(d / "model.safetensors")) for d in (fresh_dir, bundled))
    assert fresh.keys() == kept.keys() and all(torch.equal(fresh[k], kept[k]) for k in fresh)
    assert (fresh_dir / "config.json").read_text() == (bundled / "config.json").read_text()
    assert (bundled / "model.safetensors").stat().st_size < 2_000_000
    # official key layouts: per-expert tensors, not evalsuite's fused ones
    expert = ("model.layers.1.mlp.experts.3.gate_proj.weight" if module == "llada_moe"
              else "model.layers.1.mlp.experts.7.gate_proj.weight")
    assert expert in kept


@pytest.mark.parametrize("ckpt, family", [(MOE_TINY, "llada_moe"), (LLADA2_TINY, "llada2")])
def test_special_ids_come_from_the_checkpoint(ckpt, family):
    model = evalsuite.load_model(str(ckpt), device="cpu")
    raw = json.loads((ckpt / "config.json").read_text())
    assert model.family.name == family
    assert (model.tokens.mask_id, model.tokens.eos_id) == (raw["mask_token_id"],
                                                          raw["eos_token_id"])
    assert model.tokenizer is not None


def _run(args: list[str], out: Path, capsys, cache: Path | None = None) -> dict:
    from evalsuite.cli import main

    caching = ["--no-cache"] if cache is None else ["--cache-dir", str(cache)]
    code = main(["run", *args, "--include-path", TASKS, "--output", str(out), *caching,
                 "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return {"dir": run_dir, "record": json.loads((run_dir / "run.json").read_text())}


@pytest.mark.slow
def test_evalsuite_run_llada2_records_its_settings_and_cache(tmp_path, capsys):
    run = _run(["--model", str(LLADA2_TINY), "--tasks", "tiny_qa_mc,tiny_qa_gen",
                "--gen-length", "16", "--block-length", "8", "--steps", "4", "--mc-num", "8",
                "--cache", "none", "--batch-size", "2"], tmp_path, capsys)
    record = run["record"]
    gen = record["tasks"]["tiny_qa_gen"]["settings"]
    assert set(gen) == set(family_named("llada2").generate_settings)
    assert (gen["cache"], gen["threshold"], gen["minimal_topk"], gen["block_length"],
            gen["steps"]) == ("none", 0.95, 1, 8, 4)
    mc = record["tasks"]["tiny_qa_mc"]["settings"]
    assert mc == {"mc_num": 8, "mc_batch_size": 8, "block_length": 8}
    assert record["model"]["special_tokens"]["mask_id"] == 1
    assert record["model"]["architecture"] == "llada2"
    samples = [json.loads(line) for line in (run["dir"] / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 12


@pytest.mark.slow
def test_evalsuite_run_llada_moe_with_reference_padding(tmp_path, capsys):
    run = _run(["--model", str(MOE_TINY), "--tasks", "tiny_qa_mc,tiny_qa_gen", "--gen-length",
                "8", "--steps", "8", "--mc-num", "8", "--batch-size", "3"], tmp_path, capsys)
    gen = run["record"]["tasks"]["tiny_qa_gen"]["settings"]
    assert set(gen) == set(family_named("llada_moe").generate_settings)
    assert gen["remasking"] == "low_confidence" and gen["gen_length"] == 8
    assert run["record"]["model"]["architecture"] == "llada_moe"


@pytest.mark.slow
@pytest.mark.parametrize("ckpt, extra", [
    (MOE_TINY, "gen_length=8,steps=8"),
    (LLADA2_TINY, "gen_length=16,block_length=8,steps=4,cache=exact"),
])
def test_plain_lm_eval_simple_evaluate(ckpt, extra):
    """Plain lm-eval: model ``llada`` with model_args, the family read from config.json; the
    likelihood of a choice equals the token-level API's (exact designs)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    import evalsuite.lm_eval_plugin  # noqa: F401  (registers --model llada)
    from evalsuite.models.requests import split_context

    out = simple_evaluate(
        model="llada", model_args=f"pretrained={ckpt},device=cpu,mc_num=64,{extra}",
        tasks=["tiny_qa_mc", "tiny_qa_gen"],
        task_manager=TaskManager(include_defaults=False, include_path=TASKS),
        log_samples=True, batch_size=2)
    assert 0.0 <= out["results"]["tiny_qa_mc"]["acc,none"] <= 1.0
    assert "exact_match,none" in out["results"]["tiny_qa_gen"]
    model = evalsuite.load_model(str(ckpt), device="cpu")
    tok, compared = model.tokenizer, 0
    for arg, resp in zip(out["samples"]["tiny_qa_mc"][0]["arguments"],
                         out["samples"]["tiny_qa_mc"][0]["resps"]):
        context, continuation = split_context(arg[0], arg[1])
        ctx = tok(context)["input_ids"]
        cont = tok(context + continuation)["input_ids"][len(ctx):]
        kw = {"block_length": 8} if ckpt == LLADA2_TINY else {}
        expected = evalsuite.loglikelihood(model, torch.tensor(ctx), torch.tensor(cont),
                                           mc_num=64, seed=0, **kw)
        if expected.exact:
            assert abs(resp[0][0] - expected.value) <= 1e-4 * max(1.0, abs(expected.value))
            compared += 1
    assert compared >= 1
    info = out["config"]["model_args"] if "config" in out else ""
    assert "pretrained" in str(info)


def test_llada_moe_reference_padding_is_a_model_arg():
    """The official LLaDA-MoE forward ignores the attention mask (pads attended): the same
    ``reference_padding`` model_arg as LLaDA turns that on; off (default) masks padding."""
    from evalsuite.models.adapter import LLaDAEvalModel

    on = LLaDAEvalModel(pretrained=str(MOE_TINY), device="cpu", reference_padding=True)
    off = LLaDAEvalModel(pretrained=str(MOE_TINY), device="cpu")
    assert on.model.network.reference_padding is True
    assert off.model.network.reference_padding is False
    ids = torch.tensor([[0, 0, 7, 8, 9], [5, 6, 7, 8, 9]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        masked = off.model.network(ids, attention_mask=mask)[0, 2:]
        official = on.model.network(ids, attention_mask=mask)[0, 2:]
        alone = off.model.network(ids[:1, 2:])[0]
    assert torch.allclose(masked, alone, atol=1e-5)
    assert (official - alone).abs().max().item() > 1e-3


@pytest.mark.slow
def test_gate_identity_report_and_request_cache_on_llada2_runs(tmp_path, capsys):
    from evalsuite.cli import main

    args = ["--model", str(LLADA2_TINY), "--tasks", "tiny_qa_mc,tiny_qa_gen", "--gen-length",
            "16", "--block-length", "8", "--steps", "4", "--mc-num", "8"]
    a = _run(args, tmp_path / "a", capsys)["dir"]
    b = _run(args, tmp_path / "b", capsys)["dir"]
    # the request cache: a rerun computes nothing
    cached = [_run(args, tmp_path / f"c{i}", capsys, cache=tmp_path / "cache")["record"]
              for i in range(2)]
    assert cached[0]["reliability"]["cache"]["computed"] == 18
    assert cached[1]["reliability"]["cache"]["from_cache"] == 18
    assert cached[1]["reliability"]["cache"]["computed"] == 0
    md = tmp_path / "gate.md"
    code = main(["gate", "--baseline", str(a), "--candidate", str(b), "--identity",
                 "--markdown", str(md)])
    text = md.read_text()
    assert code == 0, text
    assert "identity mode: on" in text and "match" in text
    html = tmp_path / "report.html"
    assert main(["report", str(a), str(b), "-o", str(html)]) == 0
    page = html.read_text()
    assert "tiny_qa_gen" in page and "llada2-tiny" in page


@pytest.mark.parametrize("flags, needle", [
    (["--gen-length", "20", "--block-length", "8"],
     "gen_length 20 (from cli) is not a multiple of block_length 8"),
    (["--threshold", "1.5"], "threshold 1.5 (from cli) must be in (0, 1]"),
    (["--threshold", "0"], "threshold 0.0 (from cli) must be in (0, 1]"),
    (["--minimal-topk", "0"], "minimal_topk 0 (from cli) must be a positive integer"),
    (["--cache", "dual"], "exact block cache"),
    (["--cfg-scale", "1.0"], "not a setting of the llada2 architecture"),
])
def test_bad_llada2_settings_exit_2_before_any_weight_loads(tmp_path, monkeypatch, capsys,
                                                            flags, needle):
    from evalsuite.cli import main
    import evalsuite.families.llada2.checkpoint as ckpt

    def no_loading(*_a, **_k):
        raise AssertionError("weights loaded")

    monkeypatch.setattr(ckpt, "load_llada2_network", no_loading)
    code = main(["run", "--model", str(LLADA2_TINY), "--tasks", "tiny_qa_gen", "--include-path",
                 TASKS, "--output", str(tmp_path), "--no-cache", *flags])
    err = capsys.readouterr().err
    assert code == 2 and needle in err, err
    assert not any(tmp_path.iterdir())


def test_llada2_knobs_refused_on_other_families(tmp_path, capsys):
    from evalsuite.cli import main

    code = main(["run", "--model", str(MOE_TINY), "--tasks", "tiny_qa_gen", "--include-path",
                 TASKS, "--output", str(tmp_path), "--no-cache", "--minimal-topk", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "not a setting of the llada_moe architecture" in err, err
    with pytest.raises(evalsuite.errors.ConfigError, match="LLaDA2's block-diffusion sampler"):
        evalsuite.settings.config.SamplerConfig(gen_length=8, steps=8, block_length=8,
                                                cache="exact")


SHARED_DATA = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (SHARED_DATA / "gsm8k").is_dir(), reason="../shared absent")


def _plan(model: str, tasks: str, **overrides):
    from evalsuite.runner import RunSpec, plan

    return plan(RunSpec(model=model, tasks=tuple(tasks.split(",")), overrides=overrides,
                        device="cpu", data_dir=SHARED_DATA))


@needs_data
def test_presets_resolve_llada2_defaults_through_the_plan():
    """llada2-mini (hub unreachable): the architecture is the preset's, the
    settings from LLaDA2's official defaults; nothing loads."""
    p = _plan("llada2-mini", "llada_gsm8k")
    assert p.preset.hub_id == "inclusionAI/LLaDA2.0-mini" and p.preset.chat_template
    assert p.architecture == "llada2"
    (task,) = p.tasks
    c = task.config
    assert (c.block_length, c.steps, c.threshold, c.minimal_topk, c.cache, c.temperature) == (
        32, 32, 0.95, 1, "exact", 0.0)
    assert c.gen_length % 32 == 0
    assert _plan("llada2-flash", "llada_gsm8k").architecture == "llada2"
    # a raw hub id of the family, not a preset: its known hub ids, not the "llada" in the name
    from evalsuite.families import architecture_named_in

    assert architecture_named_in("inclusionAI/LLaDA2.0-mini").name == "llada2"
    assert architecture_named_in("inclusionAI/LLaDA-MoE-7B-A1B-Base").name == "llada_moe"
    assert architecture_named_in("GSAI-ML/LLaDA-8B-Base").name == "llada"


@needs_data
def test_presets_resolve_llada_moe_dinfer_table_through_the_plan():
    p = _plan("llada-moe-7b-a1b-instruct", "llada_gsm8k_instruct")
    assert p.preset.hub_id == "inclusionAI/LLaDA-MoE-7B-A1B-Instruct" and p.preset.chat_template
    assert p.architecture == "llada_moe"
    (task,) = p.tasks
    c = task.config
    assert (c.gen_length, c.block_length, c.decoding, c.threshold, c.cache) == (
        1024, 64, "threshold", 0.76, "dual")
    assert task.provenance.sources["threshold"] == "family_table"
    base = _plan("llada-moe-7b-a1b", "llada_gsm8k")
    assert not base.preset.chat_template and base.tasks[0].config.threshold == 0.76
    # a task outside dInfer's table: LLaDA's defaults, not LLaDA 8B's paper table
    other = _plan("llada-moe-7b-a1b", "llada_arith").tasks[0]
    assert other.provenance.sources["threshold"] == "default"


def test_cli_process_exits_2_on_a_partial_last_block(tmp_path):
    """The installed entry point as a user runs it (a separate process): exit 2, the message
    names the value, its source and the fix, and no run directory is written."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "evalsuite", "run", "--model", str(LLADA2_TINY),
                           "--tasks", "tiny_qa_gen", "--include-path", TASKS, "--gen-length", "40",
                           "--output", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "gen_length 40 (from cli) is not a multiple of block_length 32 (from default)" \
        in proc.stderr and "--gen-length 32" in proc.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("flags, needle", [
    (["--threshold", "1.5"], "threshold 1.5 (from cli) must be in (0, 1]"),
    (["--remasking", "random"], "not a setting of the llada2 architecture"),
])
def test_preset_settings_refused_before_any_download(tmp_path, capsys, flags, needle):
    """llada2-mini's architecture is the preset's: its settings are refused (exit 2) with the
    hub unreachable and nothing downloaded."""
    from evalsuite.cli import main

    code = main(["run", "--model", "llada2-mini", "--tasks", "tiny_qa_gen", "--include-path",
                 TASKS, "--output", str(tmp_path), "--no-cache", *flags])
    err = capsys.readouterr().err
    assert code == 2 and needle in err, err
