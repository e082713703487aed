"""The opt-in to executing model-written code (nothing runs without it).

The run opts in through lm-eval's ``confirm_run_unsafe_code`` (``lm_eval
--confirm_run_unsafe_code``) or our ``--allow-code-execution`` /
``EVALSUITE_ALLOW_CODE_EXECUTION=1``: evalsuite's CLI reads both into the run spec, and the
runner passes the decision down with :func:`confirmed_for_run`. Nothing here reads the
environment.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import sys
from collections.abc import Iterator, Mapping
from types import FrameType

from evalsuite.errors import EvalsuiteError

__all__ = [
    "ALLOW_ENV",
    "CodeExecutionNotAllowedError",
    "confirmed_for_run",
    "execution_confirmed",
    "require_code_execution_opt_in",
    "require_execution_confirmed",
]

ALLOW_ENV = "EVALSUITE_ALLOW_CODE_EXECUTION"
"""Environment variable: ``1`` opts in to executing model-written code, like
``--allow-code-execution`` (read by the CLI only)."""

_OPT_IN_HINT = (
    "pass --allow-code-execution to evalsuite (or set EVALSUITE_ALLOW_CODE_EXECUTION=1), "
    "or --confirm_run_unsafe_code to lm_eval (confirm_run_unsafe_code=True in Python)"
)


class CodeExecutionNotAllowedError(EvalsuiteError):
    """A task would execute model-written code but the run did not opt in."""


# --------------------------------------------------------------------------- opt-in


def _lm_eval_confirmed() -> bool:
    """True when called (in this thread) from inside lm-eval's ``evaluate`` with
    ``confirm_run_unsafe_code=True``: lm-eval has then already refused unconfirmed runs of
    tasks marked ``unsafe_code``, and its confirmation is the user's opt-in."""
    evaluator = sys.modules.get("lm_eval.evaluator")
    if evaluator is None:
        return False
    code = inspect.unwrap(evaluator.evaluate).__code__
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code:
            return bool(frame.f_locals.get("confirm_run_unsafe_code", False))
        frame = frame.f_back
    return False


_RUN_CONFIRMED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "evalsuite_code_execution_confirmed", default=False)


@contextlib.contextmanager
def confirmed_for_run(confirmed: bool) -> Iterator[None]:
    """Within the block, :func:`execution_confirmed` is true when ``confirmed`` is: how the
    runner passes its ``allow_code_execution`` setting down to the task's scorer (instead of
    writing the environment variable)."""
    token = _RUN_CONFIRMED.set(bool(confirmed) or _RUN_CONFIRMED.get())
    try:
        yield
    finally:
        _RUN_CONFIRMED.reset(token)


def execution_confirmed() -> bool:
    """Whether this run opted in to executing model-written code: the run config
    (:func:`confirmed_for_run`) or lm-eval's ``confirm_run_unsafe_code``."""
    return _RUN_CONFIRMED.get() or _lm_eval_confirmed()


def require_execution_confirmed(what: str) -> None:
    """Raise :class:`CodeExecutionNotAllowedError` unless :func:`execution_confirmed`.

    ``what`` names what would run (e.g. ``"llada_humaneval's unit tests"``).
    """
    if not execution_confirmed():
        raise CodeExecutionNotAllowedError(
            f"refusing to execute model-written code ({what}) without an explicit opt-in; "
            f"{_OPT_IN_HINT}. The code runs in a sandbox, but only run it if you accept that."
        )


def require_code_execution_opt_in(tasks: Mapping[str, object], *, confirmed: bool) -> None:
    """Pre-flight check for a run, before any model loads.

    ``tasks`` maps task names to lm-eval task objects (``TaskManager.load(...)["tasks"]``);
    a task executes code when lm-eval marks it ``UNSAFE_CODE`` (YAML ``unsafe_code: true``).
    Raises :class:`CodeExecutionNotAllowedError` naming the tasks and the flag when one
    does and ``confirmed`` is false.
    """
    unsafe = sorted(name for name, task in tasks.items() if getattr(task, "UNSAFE_CODE", False))
    if unsafe and not confirmed:
        raise CodeExecutionNotAllowedError(
            f"task(s) {', '.join(unsafe)} execute model-written code; to run them, {_OPT_IN_HINT}."
        )
