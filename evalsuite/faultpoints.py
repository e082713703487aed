"""Named points where the fault-injection tests kill the process for real.

``EVALSUITE_KILL_AT=POINT[:N]`` makes the process SIGKILL itself the N-th time (default 1) it
reaches ``POINT``: ``loglikelihood`` / ``generate_until`` (just after a finished batch was
committed to the request cache) or ``write_run`` (half-way through writing a run directory).
SIGKILL cannot be caught, so what survives is exactly what a kill by the OS, an OOM killer or a
preempted cloud machine would leave. Unset (always, outside the tests), this does nothing.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "EVALSUITE_KILL_AT"
_reached: dict[str, int] = {}


def reached(point: str) -> None:
    """Count ``point``; SIGKILL this process when ``$EVALSUITE_KILL_AT`` asks for it."""
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    name, _, count = spec.partition(":")
    if name != point:
        return
    _reached[point] = _reached.get(point, 0) + 1
    if _reached[point] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
