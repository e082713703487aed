"""An installed wheel is a complete harness: built from the checkout, installed into a fresh
virtual environment outside it, it lists the task suite, runs a task and registers ``llada``
with lm-eval, from any directory. (A wheel used to have no tasks: the YAMLs lived outside the
package.)

The fresh environment gets its dependencies (torch, lm-eval, ...) from the test's own
environment through a path line in a ``.pth`` file (no download, nothing of evalsuite: that
directory's own ``.pth`` files are not run), and evalsuite only from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What the sdist/wheel is built from (the checkout's build files and the package).
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "evalsuite-lm-eval.pth")


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_an_installed_wheel_runs_from_any_directory(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "EVALSUITE_DATA_DIR", "EVALSUITE_CACHE_DIR")}
    env["OMP_NUM_THREADS"] = "1"
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "evalsuite", src / "evalsuite",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    # build: the setuptools of this environment, verbose so that its warnings show
    built = _run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                  "-w", str(tmp_path / "dist"), str(src)], tmp_path, env)
    assert "deprecat" not in (built.stdout + built.stderr).lower()  # SPDX licence string
    (wheel,) = (tmp_path / "dist").glob("evalsuite-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                         "['purelib'])"], tmp_path, env).stdout.strip())
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (purelib / "00-dependencies.pth").write_text("\n".join(deps) + "\n")
    installed = _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index",
                      "--ignore-installed", str(wheel)], tmp_path, env)
    assert "deprecat" not in (installed.stdout + installed.stderr).lower()

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([str(python), "-c", "import evalsuite, sys; print(evalsuite.__file__)"], work,
                 env).stdout.strip()
    assert Path(where).is_relative_to(purelib) and not Path(where).is_relative_to(ROOT)

    listing = _run([str(venv / "bin" / "evalsuite"), "tasks"], work, env).stdout
    assert "llada_sum_choice" in listing and "llada_mmlu_anatomy" in listing
    assert str(purelib / "evalsuite" / "tasks" / "yaml") in listing

    run = _run([str(venv / "bin" / "evalsuite"), "run", "--model", "llada-tiny", "--tasks",
                "llada_sum_choice", "--limit", "2", "--no-cache", "--output", "runs"], work, env)
    assert "run written to" in run.stdout and "llada_sum_choice: acc,none=" in run.stdout
    assert len(list((work / "runs").glob("*/run.json"))) == 1

    # plain lm-eval finds `llada` through the .pth file the wheel installed
    assert (purelib / "evalsuite-lm-eval.pth").is_file()
    registered = _run([str(python), "-c", "from lm_eval.api.registry import model_registry; "
                       "print('llada' in model_registry)"], work, env).stdout.split()
    assert registered == ["True"]
