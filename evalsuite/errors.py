"""User-facing errors.

Every error raised for bad user input is an :class:`EvalsuiteError`; the CLI prints its
message without a traceback and exits with :data:`EXIT_USAGE` (2). Messages say what is wrong
and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_USAGE = 2


class EvalsuiteError(Exception):
    """Base class of errors caused by user input or the environment (exit code 2)."""

    exit_code: int = EXIT_USAGE


class ConfigError(EvalsuiteError):
    """Invalid settings (sampler, estimator, run), detected before any weight loads."""


class UnknownNameError(EvalsuiteError):
    """An unknown model preset, task or option value."""


class CheckpointError(EvalsuiteError):
    """A missing, truncated or mismatched checkpoint file."""


class HubUnreachableError(EvalsuiteError):
    """The Hugging Face hub could not be reached for a hub id."""


class MissingDependencyError(EvalsuiteError):
    """An optional dependency is not installed."""


class ResultsError(EvalsuiteError):
    """An unreadable, truncated or incompatible result file."""


def did_you_mean(name: str, choices: Iterable[str], kind: str) -> str:
    """Return "unknown {kind} 'name'; did you mean ...?" with the closest choices listed."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    msg = f"unknown {kind} {name!r}"
    if close:
        msg += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    msg += f" Known {kind}s: {', '.join(choices)}."
    return msg
