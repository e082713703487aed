"""Every settings rule, fed bad values through ``evalsuite run`` and through plain
``lm_eval --model llada --model_args ...`` (a real subprocess): exit code 2, the message, and
no weight loaded. The checkpoint used has an unreadable weights file, so any attempt to load
weights would end in "cannot read safetensors file" instead of the settings message."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalsuite.cli import main
from evalsuite.presets import LLADA_TINY_DIR

from conftest import FIXTURES

LOAD_ATTEMPTED = "cannot read safetensors file"

#: (model_args / flags, message fragment with {src} for "cli" / "model_args")
RULES = [
    ({"gen_length": 32, "steps": 200}, "steps 200 (from {src}) is more than gen_length 32"),
    ({"gen_length": 64, "block_length": 16, "steps": 10},
     "steps 10 (from {src}) is not divisible by the number of blocks 4"),
    ({"gen_length": 16, "block_length": 32}, "block_length 32 (from {src}) is larger than gen_length 16"),
    ({"gen_length": 100, "block_length": 48}, "gen_length 100 (from {src}) is not a multiple of block_length 48"),
    ({"gen_length": 0}, "gen_length 0 (from {src}) must be a positive integer"),
    ({"steps": -3}, "steps -3 (from {src}) must be a positive integer"),
    ({"mc_num": -1}, "mc_num -1 (from {src}) must be a positive integer"),
    ({"mc_num": 20, "mc_batch_size": 16}, "mc_num 20 (from {src}) is not a multiple of mc_batch_size 16"),
    ({"cfg_scale": -1.0}, "cfg_scale -1.0 (from {src}) must be >= 0"),
]
IDS = ["steps>gen", "steps%blocks", "block>gen", "gen%block", "zero", "negative-steps",
       "negative-mc", "mc%batch", "negative-cfg"]


@pytest.fixture(scope="module")
def unloadable(tmp_path_factory) -> Path:
    """llada-tiny's config and tokenizer with a weights file that cannot be read."""
    out = tmp_path_factory.mktemp("unloadable") / "llada-unloadable"
    shutil.copytree(LLADA_TINY_DIR, out)
    (out / "model.safetensors").write_bytes(b"\0" * 64)
    return out


def _flags(values: dict) -> list[str]:
    return [x for k, v in values.items() for x in ("--" + k.replace("_", "-"), str(v))]


@pytest.mark.parametrize("values, fragment", RULES, ids=IDS)
def test_cli_refuses_before_loading(values, fragment, unloadable, tmp_path, capsys):
    code = main(["run", "--model", str(unloadable), "--tasks", "gsm8k", "--limit", "1",
                 "--data-dir", str(FIXTURES / "data"), "--output", str(tmp_path / "runs"),
                 *_flags(values)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert fragment.format(src="cli") in err
    assert LOAD_ATTEMPTED not in err and not (tmp_path / "runs").exists()


def test_cli_refuses_a_task_dependent_combination_before_loading(unloadable, tmp_path, capsys):
    # gsm8k's table sets gen_length 1024 (instruct: 512); --steps 2048 only fails for the task
    code = main(["run", "--model", str(unloadable), "--tasks", "gsm8k", "--limit", "1",
                 "--data-dir", str(FIXTURES / "data"), "--output", str(tmp_path / "runs"),
                 "--steps", "2048"])
    err = capsys.readouterr().err
    assert code == 2
    assert "task llada_gsm8k_instruct: steps 2048 (from cli) is more than gen_length 512 " \
           "(from paper_table)" in err
    assert LOAD_ATTEMPTED not in err


def _lm_eval(model_args: str, *extra: str) -> subprocess.CompletedProcess[str]:
    lm_eval = Path(sys.executable).parent / "lm_eval"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [str(lm_eval), "--model", "llada", "--model_args", model_args, "--tasks", "tiny_qa_gen",
         "--include_path", str(FIXTURES / "lm_eval_tasks"), "--limit", "1", *extra],
        capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("values, fragment", RULES, ids=IDS)
def test_lm_eval_refuses_before_loading(values, fragment, unloadable):
    args = ",".join([f"pretrained={unloadable}", *(f"{k}={v}" for k, v in values.items())])
    proc = _lm_eval(args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert fragment.format(src="model_args") in proc.stderr
    assert LOAD_ATTEMPTED not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_lm_eval_refuses_a_task_dependent_combination_before_loading(unloadable):
    # tiny_qa_gen's YAML says max_gen_toks 16: steps=64 is fine alone, too many for the task
    proc = _lm_eval(f"pretrained={unloadable},steps=64")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "steps 64 (from model_args) is more than gen_length 16 (from yaml)" in proc.stderr
    assert LOAD_ATTEMPTED not in proc.stderr


@pytest.mark.slow
def test_lm_eval_unknown_model_arg_exits_2(unloadable):
    proc = _lm_eval(f"pretrained={unloadable},gen_lenght=8")
    assert proc.returncode == 2
    assert "unknown llada model_args gen_lenght" in proc.stderr


@pytest.mark.slow
def test_lm_eval_without_device_runs_on_the_cpu():
    # old code: "Torch not compiled with CUDA enabled" (lm-eval passes cuda:0 by default)
    proc = _lm_eval("pretrained=llada-tiny,gen_length=8,steps=8,block_length=8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CUDA is not available; running on the CPU" in proc.stderr
    assert "tiny_qa_gen" in proc.stdout
