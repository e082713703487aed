"""Registers ``--model llada`` with lm-eval without importing torch (lazy target).

lm-eval 0.4.13 finds models only in its own registry: it reads no entry points and has no
plugin directory. The one registration mechanism is therefore an import of this module before
lm-eval looks the name up: our CLI imports it, and plain ``lm_eval`` gets it from the
``evalsuite-lm-eval.pth`` file that the wheel installs at the top of site-packages (``setup.py``;
an editable ``make install`` copies the same file there).

Importing this module only registers the name. The exit-code hook (an evalsuite error exits 2
with one message) is installed by the model itself, and only when lm-eval's own command line
builds it (:func:`install_exit_code_hook_under_lm_eval_cli`).
"""

from __future__ import annotations

import sys
from types import FrameType, TracebackType


def register() -> None:
    """Add the lazy ``llada`` entry to lm-eval's model registry (idempotent)."""
    import lm_eval.models  # noqa: F401  (fills the registry with lm-eval's own lazy entries)
    from lm_eval.api.registry import model_registry

    if "llada" not in model_registry:
        model_registry.register("llada", target="evalsuite.models.adapter:LLaDAEvalModel")


try:
    register()
except ImportError:  # lm-eval not installed: nothing to register
    pass


def lm_eval_cli_running(frame: FrameType | None = None) -> bool:
    """Whether this call runs inside lm-eval's own command line (``lm_eval run ...``): its
    ``Run._execute`` is on the call stack. A Python caller of ``simple_evaluate`` is not."""
    module = sys.modules.get("lm_eval._cli.run")
    execute = getattr(getattr(module, "Run", None), "_execute", None)
    code = getattr(execute, "__code__", None)
    if code is None:
        return False
    frame = frame or sys._getframe(1)
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def _exit_code_hook(previous: object) -> object:
    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        from evalsuite.errors import EvalsuiteError

        if isinstance(exc, EvalsuiteError):
            import os

            print(f"evalsuite: error: {exc}", file=sys.stderr)
            for note in getattr(exc, "__notes__", ()):
                print(f"evalsuite: {note}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.exit_code)
        previous(kind, exc, tb)  # type: ignore[operator]

    hook.evalsuite_exit_code_hook = True  # type: ignore[attr-defined]
    return hook


def install_exit_code_hook_under_lm_eval_cli() -> bool:
    """Under lm-eval's command line, an uncaught :class:`~evalsuite.errors.EvalsuiteError`
    (bad model_args or settings under ``lm_eval --model llada``) prints its message and exits 2,
    as ``evalsuite`` does, instead of lm-eval's traceback and exit 1; other exceptions go to
    the previous hook. Elsewhere (our CLI, a Python caller) nothing is installed. Returns
    whether the hook is in place (idempotent)."""
    if getattr(sys.excepthook, "evalsuite_exit_code_hook", False):
        return True
    if not lm_eval_cli_running(sys._getframe(1)):
        return False
    sys.excepthook = _exit_code_hook(sys.excepthook)  # type: ignore[assignment]
    return True
