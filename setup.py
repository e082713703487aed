"""Build hook: ship ``evalsuite-lm-eval.pth`` at the top of site-packages.

lm-eval 0.4.13 finds models only in its own registry (it reads no entry points), so plain
``lm_eval --model llada`` needs ``evalsuite.lm_eval_plugin`` imported before it looks the name
up. Python runs the ``import`` line of a ``.pth`` file in site-packages at start-up: the wheel
(and an editable install) carries that file, so every install registers the model the same way.
Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "evalsuite-lm-eval.pth"


class BuildPyWithPth(build_py):
    """``build_py`` that also puts :data:`PTH` at the root of the build (the wheel's purelib)."""

    def run(self) -> None:
        super().run()
        self.copy_file(str(Path(__file__).resolve().parent / PTH), str(Path(self.build_lib) / PTH))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / PTH)]


setup(cmdclass={"build_py": BuildPyWithPth})
