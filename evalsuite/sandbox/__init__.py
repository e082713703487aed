"""Sandboxed execution of untrusted Python programs (model-written code such as HumanEval).

Public entry point: :func:`run_program` ``(program, *, tests=None, timeout_s, memory_mb,
max_processes, disk_mb, output_kb) -> ExecResult``; :func:`isolation_report` gives the
isolation in force for the run record. Nothing runs unless the run opted in
(:func:`require_execution_confirmed`).

**Why the verdict cannot be forged.** A program that is scored never runs in the process
that decides the score. With a :class:`TestSuite` (how HumanEval scores), three processes:

- the *worker* (untrusted, a throw-away uid) runs the model's program, which defines the
  function, and then serves calls of that function;
- the *judge* (trusted, a second throw-away uid) runs the dataset's code: the context (for
  HumanEval the problem's prompt, so helpers such as ``poly`` are the dataset's, not the
  model's) and the tests, with the entry point bound to a proxy. Each call sends the
  arguments to the worker and decodes the answer; both travel as JSON of plain values
  (tuples, sets, dicts, bytes, ranges, iterators, non-finite floats tagged), never pickle,
  and the judge builds only built-in objects from them, so no custom ``__eq__`` and no
  code crosses (a subclass arrives as the value of its built-in base). An exception in the
  worker is re-raised in the judge as a built-in ``Exception`` subclass (never
  ``SystemExit``). The judge reports a pass only after the tests ran to their end; any
  other way out (an assertion, an error, the worker dying or sending malformed data, a
  timeout) is a failure;
- the *launcher* (trusted, root inside the namespaces) reads the judge's verdict from a
  pipe only the judge holds. The worker cannot reach the judge: another uid (no ptrace,
  no signals, no ``/proc/<pid>/fd`` or ``mem``), ``hidepid=2``, and the tests never enter
  its address space, so walking its own stack, patching a checker, overriding builtins or
  ``assert``, ``os._exit(0)``, ``SystemExit`` or printing/writing fake markers on any
  descriptor change nothing but its own answers.

Without a :class:`TestSuite` the program is its own test (it passes when it runs to its
end); that verdict is the program's to fake, so scoring always uses a :class:`TestSuite`.

**Isolation** (``namespaces`` mode, chosen when running as root with util-linux
``unshare``): the launcher starts under ``unshare --net --mount --pid --ipc --uts --fork
--kill-child``, so there is no network (a fresh network namespace, loopback down), and it
is pid 1 of a fresh pid namespace: when it exits the kernel kills every process left
(daemons included), and nothing outside is visible or signallable. It builds an
allow-listed root (read-only binds of ``/usr``, ``/lib*`` and the interpreter's prefix,
four ``/dev`` nodes, a fresh ``/proc`` with ``hidepid=2``) and chroots into it; the only
writable place is ``/tmp``, the program's directory, a tmpfs of ``disk_mb`` (the total
disk quota, 64 MiB by default) owned by the worker's uid. The judge and the worker run as
distinct throw-away uids with no groups and ``no_new_privs``, under ``RLIMIT_AS`` (memory),
``RLIMIT_NPROC`` (processes), ``RLIMIT_CPU``, ``RLIMIT_FSIZE``, no core files, a clean
environment, and a wall clock and an output cap enforced by the launcher. Every process is
``python -I -B -S``: the standard library only (no site-packages, no ``.pth`` hooks).

**Fallback** (``restricted`` mode: not root, or no working ``unshare``; logged as a
warning and recorded): the same three processes without mount or pid namespaces. The worker
runs in its own unprivileged user namespace with a fresh network namespace where the kernel
allows, under an audit hook that refuses socket creation outright, writes outside its
directory, ``fork``/exec, signals to other processes and ``ctypes``. The launcher and the
judge make themselves non-dumpable (no ptrace or ``/proc/<pid>/fd`` even for the same uid),
and the launcher's result line carries a per-run nonce. As root the judge and the worker
still get throw-away uids and every process of those uids is killed afterwards; otherwise
the session is, and the program has the user's rights (files, the harness process). In-process
hooks can be tampered with, so this mode is weaker: use root (CI and containers do) for real
isolation. ``EVALSUITE_SANDBOX_ISOLATION`` forces a mode.
"""

from __future__ import annotations

from evalsuite.sandbox.core import (
    ISOLATION_ENV,
    SANDBOX_PYTHON_ENV,
    ExecResult,
    ExecStatus,
    Isolation,
    SandboxError,
    SandboxInfo,
    TestSuite,
    isolation_report,
    raise_for_sandbox_errors,
    run_program,
    run_programs,
    sandbox_info,
)
from evalsuite.sandbox.optin import (
    ALLOW_ENV,
    CodeExecutionNotAllowedError,
    confirmed_for_run,
    execution_confirmed,
    require_code_execution_opt_in,
    require_execution_confirmed,
)

__all__ = [
    "ALLOW_ENV",
    "ISOLATION_ENV",
    "SANDBOX_PYTHON_ENV",
    "CodeExecutionNotAllowedError",
    "confirmed_for_run",
    "ExecResult",
    "ExecStatus",
    "Isolation",
    "SandboxError",
    "SandboxInfo",
    "TestSuite",
    "execution_confirmed",
    "isolation_report",
    "raise_for_sandbox_errors",
    "require_code_execution_opt_in",
    "require_execution_confirmed",
    "run_program",
    "run_programs",
    "sandbox_info",
]
