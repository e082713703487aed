"""Harness side of the sandbox: choose the isolation, start the launcher, read its result.

See :mod:`evalsuite.sandbox` for the design; the code that runs inside is
:mod:`evalsuite.sandbox._inside`.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from evalsuite.errors import ConfigError, EvalsuiteError

__all__ = [
    "ISOLATION_ENV",
    "SANDBOX_PYTHON_ENV",
    "ExecResult",
    "ExecStatus",
    "Isolation",
    "SandboxError",
    "SandboxInfo",
    "TestSuite",
    "raise_for_sandbox_errors",
    "isolation_report",
    "run_program",
    "run_programs",
    "sandbox_info",
]

_log = logging.getLogger(__name__)

ISOLATION_ENV = "EVALSUITE_SANDBOX_ISOLATION"
"""``auto`` (default), ``namespaces`` (fail if unavailable) or ``restricted`` (the fallback)."""

SANDBOX_PYTHON_ENV = "EVALSUITE_SANDBOX_PYTHON"
"""Interpreter for ``restricted`` mode as root (it must be usable by an unprivileged uid)."""

ExecStatus = Literal["passed", "failed", "timeout", "error"]
Isolation = Literal["namespaces", "restricted"]

_SOURCE = (Path(__file__).with_name("_inside.py")).read_text(encoding="utf-8")
_UID_BASE = 0x4000_0000  # ids far above any real user's (uid_t is 32 bits)
_uid_counter = itertools.count()
_uid_lock = threading.Lock()
_GRACE_S = 20.0
"""Extra seconds the harness waits for the launcher after the program's own wall clock."""


class SandboxError(EvalsuiteError):
    """The sandbox itself could not run programs (the environment, not the program)."""


@dataclass(frozen=True)
class TestSuite:
    """Trusted test code for a program's function (see the package docstring).

    ``context`` runs first in the trusted judge (for HumanEval: the problem's prompt, which
    defines the helpers its tests use); then ``entry_point`` is bound to a proxy of the
    program's function and ``tests`` runs (for HumanEval: ``test`` + ``check(entry_point)``).
    The program passes exactly when ``tests`` runs to its end without an exception.
    """

    __test__ = False  # not a pytest test class

    tests: str
    entry_point: str
    context: str = ""


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one sandboxed program.

    ``status``: ``passed`` (with a :class:`TestSuite`: the tests ran to their end; without:
    the program did), ``failed`` (an assertion, an exception, an early exit, a signal, a
    resource or output limit), ``timeout`` (wall clock; a failure too), ``error`` (the
    sandbox itself could not run the program). ``passed`` is true exactly when
    ``status == "passed"``. ``detail`` is a short reason; ``output`` the end of the
    program's stdout and stderr; ``seconds`` the wall time, start-up included.
    """

    passed: bool
    status: ExecStatus
    detail: str
    seconds: float
    output: str = ""


@dataclass(frozen=True)
class SandboxInfo:
    """The isolation in force on this machine (what :func:`isolation_report` records)."""

    isolation: Isolation
    python: str
    """Interpreter that runs the launcher, the judge and the worker."""
    uid_separation: bool
    """Judge and worker run as throw-away uids (root only), distinct from each other."""
    network: str
    """``network namespace (no interfaces up)`` or ``sockets refused by an audit hook``."""
    filesystem: str
    disk_quota: str
    processes: str
    reason: str = ""
    """Why this isolation was chosen (the fallback's cause)."""


# --------------------------------------------------------------------------- ids, processes


def _processes_of(uid: int) -> list[int]:
    """Pids of live processes whose /proc entry belongs to ``uid``."""
    pids: list[int] = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
                with open(f"/proc/{entry.name}/stat", "rb") as fh:
                    state = fh.read().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if state != b"Z":
                pids.append(int(entry.name))
    return pids


def uid_range() -> range:
    """The throw-away uids this process hands out (for tests that look for leftovers)."""
    base = _UID_BASE + ((os.getpid() & 0x3FFFF) << 12)
    return range(base, base + 4096)


def _fresh_uid() -> int:
    """A uid/gid no process uses now: unique per (harness pid, call), checked in /proc."""
    ids = uid_range()
    while True:
        with _uid_lock:
            n = next(_uid_counter)
        uid = ids[n % len(ids)]
        if not _processes_of(uid):
            return uid


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` until none is left."""
    for _ in range(1000):
        pids = _processes_of(uid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)
    _log.warning("sandbox: processes of uid %d survived repeated SIGKILL", uid)


def _kill_session(sid: int) -> None:
    """Kill the process group ``sid`` and every process still in session ``sid``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signal.SIGKILL)
    for _ in range(100):
        found = False
        with os.scandir("/proc") as entries:
            for entry in entries:
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/stat", "rb") as fh:
                        fields = fh.read().rsplit(b")", 1)[1].split()
                except OSError:
                    continue
                if fields[0] != b"Z" and int(fields[3]) == sid:
                    found = True
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(entry.name), signal.SIGKILL)
        if not found:
            return
        time.sleep(0.002)


# --------------------------------------------------------------------------- choosing


def _harness_python() -> tuple[str, list[str]]:
    """This interpreter's real path and the directories it needs (its prefixes)."""
    python = os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable)
    roots = sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix)})
    return python, roots


def _restricted_python(uid: int | None) -> str:
    """An interpreter the worker's uid can run (``restricted`` mode)."""
    override = os.environ.get(SANDBOX_PYTHON_ENV)
    candidates = [override] if override else [
        _harness_python()[0], sys.executable, "/usr/bin/python3", shutil.which("python3") or "",
    ]
    for python in dict.fromkeys(c for c in candidates if c and os.path.exists(c)):
        if uid is None or _probe_python(python, uid):
            return python
    raise ConfigError(
        f"sandbox: no interpreter among {candidates} can be run by an unprivileged uid; set "
        f"{SANDBOX_PYTHON_ENV} to one outside private directories such as /root"
    )


def _probe_python(python: str, uid: int) -> bool:
    try:
        done = subprocess.run(
            [python, "-I", "-B", "-S", "-c", "import json, math, resource, selectors"],
            cwd="/", env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL,
            capture_output=True, timeout=30, check=False, user=uid, group=uid, extra_groups=[],
        )
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        _kill_uid(uid)
    return done.returncode == 0


@functools.cache
def _netns_prefix() -> tuple[str, ...]:
    """For the fallback: ``unshare`` options that give a fresh network namespace here (as
    root, or in an unprivileged user namespace where the kernel allows), else ``()``."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    options = ["--user", "--map-root-user", "--net"]  # also works after dropping to a uid
    try:
        done = subprocess.run(
            [unshare, *options, "--", "true"], capture_output=True, timeout=30, check=False,
            env={"PATH": "/usr/bin:/bin"}, cwd="/",
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    return (unshare, *options, "--") if done.returncode == 0 else ()


def _info(isolation: Isolation, python: str, reason: str) -> SandboxInfo:
    root = os.geteuid() == 0
    if isolation == "namespaces":
        return SandboxInfo(
            isolation="namespaces",
            python=python,
            uid_separation=True,
            network="fresh network namespace (loopback down, no interfaces)",
            filesystem=(
                "fresh mount namespace, chroot into a read-only allow-listed root "
                "(/usr, /lib*, the interpreter's prefix, /dev/null|zero|random|urandom, "
                "a fresh /proc with hidepid=2)"
            ),
            disk_quota="program directory /tmp is a size-limited tmpfs (disk_mb)",
            processes="fresh pid namespace (launcher is pid 1), RLIMIT_NPROC per throw-away uid",
            reason=reason,
        )
    return SandboxInfo(
        isolation="restricted",
        python=python,
        uid_separation=root,
        network=(
            "the worker in its own unprivileged user namespace with a fresh network "
            "namespace (loopback down), and sockets refused by an in-process audit hook"
            if _netns_prefix()
            else "sockets refused by an in-process audit hook (tamperable; no network "
            "namespace available here)"
        ),
        filesystem=(
            "writes outside the program directory refused by the audit hook"
            + ("; throw-away uid (kernel file permissions)" if root else "; same user")
        ),
        disk_quota="RLIMIT_FSIZE per file only (no total quota)",
        processes=(
            "fork refused by the audit hook; RLIMIT_NPROC; every process of the uid killed"
            if root
            else "fork refused by the audit hook; RLIMIT_NPROC; the session killed"
        ),
        reason=reason,
    )


def _probe_namespaces() -> str:
    """Empty string when a namespaced run works here, else why not."""
    if os.geteuid() != 0:
        return "not running as root (namespaces, chroot and uid separation need root)"
    if shutil.which("unshare") is None:
        return "util-linux unshare is not installed"
    result = _execute("namespaces", "assert 1 + 1 == 2\n", None, _Limits(timeout_s=30))
    if result.status != "passed":
        return f"a namespaced probe run failed: {result.detail} {result.output[-300:]}"
    return ""


@functools.cache
def sandbox_info() -> SandboxInfo:
    """Choose the isolation once per process: ``namespaces`` where it works, else the
    ``restricted`` fallback (a warning says why). :data:`ISOLATION_ENV` forces one."""
    wanted = os.environ.get(ISOLATION_ENV, "auto").strip() or "auto"
    if wanted not in ("auto", "namespaces", "restricted"):
        raise ConfigError(
            f"{ISOLATION_ENV}={wanted!r} is not one of auto, namespaces, restricted; unset it "
            "or pick one"
        )
    if wanted != "restricted":
        why = _probe_namespaces()
        if not why:
            return _info("namespaces", _harness_python()[0], f"{ISOLATION_ENV}={wanted}")
        if wanted == "namespaces":
            raise ConfigError(
                f"sandbox: {ISOLATION_ENV}=namespaces but {why}; unset it to fall back"
            )
        _log.warning("sandbox: using the restricted fallback: %s", why)
        reason = why
    else:
        reason = f"{ISOLATION_ENV}=restricted"
    probe_uid = _fresh_uid() if os.geteuid() == 0 else None
    return _info("restricted", _restricted_python(probe_uid), reason)


def isolation_report() -> dict[str, Any]:
    """The isolation in force, as plain data for the run record (``run.json``)."""
    info = sandbox_info()
    return {
        **asdict(info),
        "verdict": (
            "split: the dataset's tests run in a trusted judge process that calls the "
            "program's function in a separate untrusted worker over a pipe exchanging JSON "
            "plain data only; the judge's verdict travels on a descriptor only it holds"
        ),
        "euid": os.geteuid(),
        "kernel": platform.release(),
        "defaults": asdict(_Limits()),
    }


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class _Limits:
    timeout_s: float = 10.0
    memory_mb: int = 1024
    max_processes: int = 16
    disk_mb: int = 64
    output_kb: int = 1024


def _validate(limits: _Limits) -> None:
    for name, value in asdict(limits).items():
        if not value > 0:
            raise ConfigError(f"sandbox limit {name}={value!r} must be positive")


def _execute(
    isolation: Isolation, program: str, tests: TestSuite | None, limits: _Limits,
    python: str | None = None,
) -> ExecResult:
    """One launcher run (the launcher starts the judge and the worker)."""
    started = time.monotonic()
    root = os.geteuid() == 0
    uids = {"worker": _fresh_uid(), "judge": _fresh_uid()} if root else None
    if uids and uids["worker"] == uids["judge"]:
        uids["judge"] = _fresh_uid()
    workdir = tempfile.mkdtemp(prefix="evalsuite-sandbox-")
    if isolation == "namespaces":
        harness_python, python_roots = _harness_python()
        python = harness_python
    else:
        python = python or sandbox_info().python
        python_roots = []
        if uids:
            os.chown(workdir, uids["worker"], uids["worker"])
    nonce = secrets.token_hex(16)
    nproc = limits.max_processes
    if not root:  # RLIMIT_NPROC counts every process of the user
        nproc += len(_processes_of(os.geteuid())) + 8
    spec = {
        "mode": isolation,
        "root": workdir,
        "program": program,
        "tests": None if tests is None else asdict(tests),
        "uids": uids,
        "python": python,
        "python_roots": python_roots,
        "source": _SOURCE,
        "guard": True,
        "nonce": nonce,
        "worker_prefix": list(_netns_prefix()) if isolation == "restricted" else [],
        "limits": {
            "timeout_s": limits.timeout_s,
            "memory_mb": limits.memory_mb,
            "disk_mb": limits.disk_mb,
            "nproc": nproc,
            "judge_nproc": 4 if root else nproc,
            "output_bytes": limits.output_kb * 1024,
        },
    }
    command = [python, "-I", "-B", "-S", "-c", _SOURCE, "launcher"]
    if isolation == "namespaces":
        command = [
            shutil.which("unshare") or "unshare", "--net", "--mount", "--pid", "--ipc",
            "--uts", "--fork", "--kill-child", "--", *command,
        ]
    try:
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd="/", env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, start_new_session=True,
        )
    except OSError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        return ExecResult(False, "error", f"could not start the sandbox: {exc}", 0.0)
    try:
        out, err = proc.communicate(
            json.dumps(spec).encode(), timeout=limits.timeout_s + _GRACE_S
        )
    except subprocess.TimeoutExpired:  # the launcher's own clock did not end it: kill all
        _kill_session(proc.pid)
        proc.kill()
        proc.wait()
        detail = f"timed out after {limits.timeout_s:g} s"
        return ExecResult(False, "timeout", detail, time.monotonic() - started)
    finally:
        _kill_session(proc.pid)
        if uids:
            for uid in uids.values():
                _kill_uid(uid)
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.monotonic() - started
    try:
        result = json.loads(out.decode("utf-8").strip().splitlines()[-1])
        status = result["status"]
        if result["nonce"] != nonce:
            raise ValueError("the launcher's result lacks this run's nonce")
    except (ValueError, IndexError, KeyError, TypeError):
        tail = err.decode("utf-8", "replace").strip()[-500:]
        return ExecResult(False, "error", f"the sandbox launcher failed: {tail}", seconds)
    output = result["worker_output"]
    detail = result["detail"]
    if status == "failed" and tests is None and "before the end" in detail:
        lines = [line for line in output.strip().splitlines() if line.strip()]
        detail = lines[-1][:500] if lines else detail
    return ExecResult(status == "passed", status, detail, seconds, output)


def run_program(
    program: str,
    *,
    tests: TestSuite | None = None,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    max_processes: int = 16,
    disk_mb: int = 64,
    output_kb: int = 1024,
) -> ExecResult:
    """Run ``program`` (Python source) in the sandbox; the public entry point.

    With ``tests`` (how model code is scored): the program runs in the untrusted worker and
    the tests in the trusted judge, which calls ``tests.entry_point`` over the pipe; the
    result is a pass exactly when the tests ran to their end. Without ``tests``: the
    program is its own test and passes when it runs to its end (an early ``sys.exit`` or
    ``os._exit`` fails; a program that wants to can fake this, so it is not for scoring).
    Limits: ``timeout_s`` wall clock (start-up included; CPU time is capped at the same),
    ``memory_mb`` address space per process, ``max_processes`` processes and threads,
    ``disk_mb`` all files of the program directory together (a per-file cap in the
    fallback), ``output_kb`` stdout + stderr (more is a failure). The caller checks the
    opt-in (:func:`evalsuite.sandbox.require_execution_confirmed`). Never raises for
    anything the program does.
    """
    limits = _Limits(timeout_s, memory_mb, max_processes, disk_mb, output_kb)
    _validate(limits)
    info = sandbox_info()
    return _execute(info.isolation, program, tests, limits, info.python)


def raise_for_sandbox_errors(results: Sequence[ExecResult]) -> None:
    """Raise :class:`SandboxError` when any result has status ``error``: the sandbox did
    not run that program, so scoring it as a failure would record a wrong number."""
    errors = [r for r in results if r.status == "error"]
    if errors:
        raise SandboxError(
            f"the sandbox could not run {len(errors)} of {len(results)} programs (first: "
            f"{errors[0].detail}); nothing was scored. Check `python -c \"import evalsuite."
            f"sandbox as s; print(s.isolation_report())\"` and {ISOLATION_ENV}."
        )


def run_programs(
    programs: Sequence[str] | Iterable[str],
    *,
    tests: Sequence[TestSuite | None] | None = None,
    workers: int = 2,
    **limits: Any,
) -> list[ExecResult]:
    """:func:`run_program` over many programs (``tests[i]`` for ``programs[i]``),
    ``workers`` at a time; results in input order."""
    from concurrent.futures import ThreadPoolExecutor

    items = list(programs)
    suites = list(tests) if tests is not None else [None] * len(items)
    if len(suites) != len(items):
        raise ValueError(f"{len(items)} programs but {len(suites)} test suites")
    if not items:
        return []
    sandbox_info()  # choose once, before the threads start
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        return list(
            pool.map(lambda pair: run_program(pair[0], tests=pair[1], **limits), zip(items, suites))
        )
