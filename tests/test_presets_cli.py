"""Presets and the CLI's bad-input paths: exit 2 with a clear message, before any weight loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from evalsuite.cli import main
from evalsuite.errors import UnknownNameError
from evalsuite.presets import LLADA_TINY_DIR, PRESETS, resolve_model

from conftest import GOLDEN

REQUIRED = {"llada-8b", "llada-8b-instruct", "llada-1.5", "illada-8b", "illada-8b-instruct",
            "llama3-8b", "llama3-8b-instruct", "llama2-7b", "qwen2.5-7b", "qwen2.5-7b-instruct",
            "llada-tiny", "smollm2-135m-instruct"}


def test_every_preset_of_the_issue_exists_and_resolves():
    assert REQUIRED <= set(PRESETS)
    for name in REQUIRED:
        preset = resolve_model(name)
        assert preset.backend in ("llada", "hf", "vllm")
        assert preset.chat_template == (preset.family == "instruct")
    assert resolve_model("llada-8b").hub_id == "GSAI-ML/LLaDA-8B-Base"
    assert resolve_model("illada-8b-instruct").backend == "llada"
    assert resolve_model("llama3-8b").backend == "hf"


def test_local_paths_and_hub_ids_are_accepted():
    assert resolve_model(str(GOLDEN / "tiny-llada")).backend == "llada"
    assert resolve_model(str(LLADA_TINY_DIR)).backend == "llada"
    assert resolve_model("GSAI-ML/LLaDA-8B-Instruct").family == "instruct"
    assert resolve_model("Qwen/Qwen2.5-7B").backend == "hf"
    assert resolve_model("llada-8b", family="instruct").chat_template


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="did you mean 'llada-8b'"):
        resolve_model("lada-8b")


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_unknown_model_exits_2_with_did_you_mean(capsys):
    code, err = _run(capsys, "run", "--model", "llada-8bb", "--tasks", "gsm8k")
    assert code == 2 and "did you mean 'llada-8b'" in err


def test_unknown_task_exits_2_with_did_you_mean(capsys):
    code, err = _run(capsys, "run", "--model", "llada-tiny", "--tasks", "gsm8kk")
    assert code == 2 and "gsm8k" in err and "did you mean" in err


@pytest.mark.parametrize("flags, fragment", [
    (["--gen-length", "100", "--block-length", "48"], "gen_length 100 (from cli) is not a multiple of block_length 48"),
    (["--gen-length", "64", "--block-length", "16", "--steps", "10"], "steps 10 (from cli) is not divisible by the number of blocks 4"),
    (["--gen-length", "16", "--block-length", "32"], "block_length 32 (from cli) is larger than gen_length 16"),
    (["--gen-length", "-4"], "gen_length -4 (from cli) must be a positive integer"),
    (["--mc-num", "-1"], "mc_num -1 (from cli) must be a positive integer"),
    (["--limit", "0"], "--limit must be a positive integer"),
    (["--decoding", "threshold", "--threshold", "1.5"], "threshold 1.5 (from cli) must be in (0, 1]"),
])
def test_invalid_settings_exit_2_naming_the_values(capsys, flags, fragment):
    code, err = _run(capsys, "run", "--model", "llada-tiny", "--tasks", "gsm8k", *flags)
    assert code == 2 and fragment in err


def test_missing_data_dir_exits_2(capsys, tmp_path):
    code, err = _run(capsys, "run", "--model", "llada-tiny", "--tasks", "gsm8k",
                     "--data-dir", str(tmp_path / "absent"))
    assert code == 2 and "does not exist" in err


def test_humaneval_without_opt_in_exits_2(capsys, monkeypatch):
    monkeypatch.delenv("EVALSUITE_ALLOW_CODE_EXECUTION", raising=False)
    code, err = _run(capsys, "run", "--model", "llada-tiny", "--tasks", "humaneval")
    assert code == 2 and "--allow-code-execution" in err


def test_diffusion_settings_on_an_arm_are_refused(capsys):
    code, err = _run(capsys, "run", "--model", "llama3-8b", "--tasks", "gsm8k", "--steps", "8")
    assert code == 2 and "apply to LLaDA-family models only" in err


def test_bad_input_fails_before_importing_torch():
    """The checks run before any model code: torch is never imported for an unknown name."""
    code = (
        "import sys\n"
        "from evalsuite.cli import main\n"
        "rc = main(['run', '--model', 'nope-model', '--tasks', 'gsm8k'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "unknown model preset 'nope-model'" in proc.stderr


def test_python_dash_m_entry_point_lists_presets():
    proc = subprocess.run([sys.executable, "-m", "evalsuite", "models"], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0
    assert "llada-8b" in proc.stdout and "smollm2-135m-instruct" in proc.stdout
    # every preset's row names its architecture (the family that runs it)
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:]}
    assert rows["dream-7b"][2] == "dream" and rows["llada2-mini"][2] == "llada2"
    assert rows["llada-moe-7b-a1b"][2] == "llada_moe" and rows["llada-8b"][2] == "llada"
    assert rows["arm-tiny"][2] == "arm"
