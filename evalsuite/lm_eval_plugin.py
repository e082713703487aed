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
