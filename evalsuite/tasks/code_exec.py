"""Compatibility alias: the sandbox moved to :mod:`evalsuite.sandbox`; import from there."""

from __future__ import annotations

from evalsuite.sandbox import (
    ALLOW_ENV,
    SANDBOX_PYTHON_ENV,
    CodeExecutionNotAllowedError,
    confirmed_for_run,
    ExecResult,
    ExecStatus,
    Isolation,
    SandboxInfo,
    TestSuite,
    execution_confirmed,
    isolation_report,
    require_code_execution_opt_in,
    require_execution_confirmed,
    run_program,
    run_programs,
    sandbox_info,
)

__all__ = [
    "ALLOW_ENV",
    "SANDBOX_PYTHON_ENV",
    "CodeExecutionNotAllowedError",
    "ExecResult",
    "ExecStatus",
    "Isolation",
    "SandboxInfo",
    "TestSuite",
    "confirmed_for_run",
    "execution_confirmed",
    "isolation_report",
    "require_code_execution_opt_in",
    "require_execution_confirmed",
    "run_program",
    "run_programs",
    "sandbox_info",
]
