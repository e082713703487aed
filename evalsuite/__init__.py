"""evalsuite: evaluation harness for masked diffusion LMs (LLaDA, Dream) and ARM baselines.

Public API (heavy modules are imported on first use):

- :func:`load_model` - a native diffusion checkpoint (LLaDA or Dream; local directory or hub id)
- :func:`generate` - the family's diffusion sampler, with its own setting names
- :func:`loglikelihood` - the family's likelihood protocol (LLaDA Eq. 6; Dream's MC / ar_ftb)
- :func:`evaluate` - run tasks through lm-eval and store the result
- :func:`load_runs` - stored runs as a pandas DataFrame
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["evaluate", "generate", "load_model", "load_runs", "loglikelihood", "__version__"]

_LAZY = {
    "load_model": ("evalsuite.models.loader", "load_model"),
    "generate": ("evalsuite.api", "generate"),
    "loglikelihood": ("evalsuite.api", "loglikelihood"),
    "evaluate": ("evalsuite.runner", "evaluate"),
    "load_runs": ("evalsuite.results", "load_runs"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'evalsuite' has no attribute {name!r}")
