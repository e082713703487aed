"""No side channels: the environment is read once, by the CLI, into the run spec; importing the
lm-eval plugin changes nothing process-wide (its exit-code hook is for lm-eval's own CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT
from evalsuite.cli import build_parser, spec_from_args
from evalsuite.runner import RunSpec, plan
from evalsuite.sandbox import ALLOW_ENV, CodeExecutionNotAllowedError
from evalsuite.tasks.data import DATA_DIR_ENV

DATA = FIXTURES / "data"


def _spec(*argv: str) -> RunSpec:
    return spec_from_args(build_parser().parse_args(["run", "--model", "llada-tiny", *argv]))


def test_the_cli_reads_the_environment_into_the_run_spec(monkeypatch, tmp_path):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    plain = _spec("--tasks", "gsm8k")
    assert plain.allow_code_execution is False and plain.data_dir is None
    monkeypatch.setenv(ALLOW_ENV, "1")
    monkeypatch.setenv(DATA_DIR_ENV, str(DATA))
    from_env = _spec("--tasks", "gsm8k")
    assert from_env.allow_code_execution is True and from_env.data_dir == DATA
    assert _spec("--tasks", "gsm8k", "--data-dir", str(tmp_path)).data_dir == tmp_path


def test_the_library_reads_no_environment(monkeypatch):
    """The opt-in to running model-written code is the run spec's alone: the environment
    variable does not reach past the CLI (it used to be read by the runner and the sandbox)."""
    monkeypatch.setenv(ALLOW_ENV, "1")
    spec = RunSpec(model="llada-tiny", tasks=("humaneval",), data_dir=DATA, limit=1)
    with pytest.raises(CodeExecutionNotAllowedError):
        plan(spec)
    assert plan(RunSpec(model="llada-tiny", tasks=("humaneval",), data_dir=DATA, limit=1,
                        allow_code_execution=True)).code_execution


def test_a_task_that_cannot_be_built_names_the_run_s_data_dir(monkeypatch, tmp_path):
    from evalsuite.tasks.preflight import TaskInputError, build_task
    from evalsuite.tasks.registry import task_manager

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    broken = tmp_path / "broken"
    (broken / "t").mkdir(parents=True)
    (broken / "t" / "t.yaml").write_text(
        "task: broken_task\ncustom_dataset: !function evalsuite.tasks.data.load_gsm8k\n"
        "output_type: generate_until\ntest_split: nope\ndoc_to_text: '{{question}}'\n"
        "doc_to_target: '{{answer}}'\n", encoding="utf-8")
    tm = task_manager(metadata={"evalsuite_data_dir": str(DATA)}, extra_dirs=(broken,))
    with pytest.raises(TaskInputError, match=f"data in {DATA}"):
        build_task("broken_task", tm, DATA)


def _python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_importing_the_plugin_installs_no_exception_hook():
    """The site-packages .pth imports the plugin in every Python process of the venv: it
    registers the model name and leaves sys.excepthook alone (it used to replace it)."""
    out = _python(
        "import sys, evalsuite.lm_eval_plugin as p\n"
        "from lm_eval.api.registry import model_registry\n"
        "print(sys.excepthook is sys.__excepthook__, 'llada' in model_registry,"
        " p.lm_eval_cli_running())\n")
    assert out.split() == ["True", "True", "False"]


def test_a_python_caller_of_the_model_keeps_its_exception_hook():
    from evalsuite.models.adapter import LLaDAEvalModel

    before = sys.excepthook
    LLaDAEvalModel(pretrained="llada-tiny", device="cpu")  # weights load lazily
    assert sys.excepthook is before


def test_the_hook_is_installed_under_lm_eval_s_cli_only():
    """Outside lm-eval's ``Run._execute`` nothing is installed; inside it (here a stand-in
    for lm-eval's own, whose code object the plugin looks for on the stack) an evalsuite error
    exits 2 with one line instead of a traceback. The real CLI: the slow test below."""
    code = (
        "import sys\n"
        "import lm_eval._cli.run as run\n"
        "from evalsuite.lm_eval_plugin import install_exit_code_hook_under_lm_eval_cli as hook\n"
        "assert hook() is False and sys.excepthook is sys.__excepthook__\n"
        "def execute(args):\n"
        "    assert hook() is True\n"
        "    from evalsuite.errors import ConfigError\n"
        "    raise ConfigError('bad model_args')\n"
        "run.Run._execute = staticmethod(execute)\n"
        "run.Run._execute(None)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "evalsuite: error: bad model_args" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_plain_lm_eval_still_exits_2_on_bad_model_args(tmp_path):
    lm_eval = Path(sys.executable).parent / "lm_eval"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [str(lm_eval), "--model", "llada", "--model_args", "pretrained=llada-tiny,gen_lenght=8",
         "--tasks", "tiny_qa_gen", "--include_path", str(FIXTURES / "lm_eval_tasks"),
         "--limit", "1"], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "evalsuite: error: unknown llada model_args gen_lenght" in proc.stderr
    assert "Traceback" not in proc.stderr
