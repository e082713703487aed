"""Registers ``--model llada`` with lm-eval without importing torch (lazy target).

Imported by our CLI and, through the ``evalsuite-lm-eval.pth`` file that ``make install``
puts in the venv, by plain ``lm_eval`` (lm-eval 0.4.13 has no plugin entry points).
"""

from __future__ import annotations


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


def _install_exit_code_hook() -> None:
    """An uncaught :class:`~evalsuite.errors.EvalsuiteError` (bad model_args or settings under
    plain ``lm_eval --model llada``) prints its message and exits 2, as ``evalsuite`` does,
    instead of lm-eval's traceback and exit 1. Other exceptions are left to the previous hook."""
    import sys

    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: object) -> None:
        from evalsuite.errors import EvalsuiteError

        if isinstance(exc, EvalsuiteError):
            import os

            print(f"evalsuite: error: {exc}", file=sys.stderr)
            for note in getattr(exc, "__notes__", ()):
                print(f"evalsuite: {note}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.exit_code)
        previous(kind, exc, tb)  # type: ignore[arg-type]

    if getattr(sys.excepthook, "__module__", None) != __name__:
        sys.excepthook = hook


_install_exit_code_hook()
