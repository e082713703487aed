"""Sandboxed execution of untrusted Python programs (model-written code such as HumanEval).

Nothing here runs unless the evaluation run opted in (:func:`require_execution_confirmed`):
lm-eval's ``confirm_run_unsafe_code`` (``lm_eval --confirm_run_unsafe_code``) or our
``--allow-code-execution`` / ``EVALSUITE_ALLOW_CODE_EXECUTION=1``.

Each program runs in a fresh ``python -I -B`` process (:func:`run_program`):

- its own session and process group, a private temporary working directory (deleted after);
- when the harness runs as root (CI, containers): a throw-away uid/gid that no user or process
  has, with no supplementary groups. The kernel then enforces what matters: the program can
  signal no process but its own, cannot write files it does not own (only its working
  directory and world-writable places), and ``RLIMIT_NPROC`` really caps its processes (it
  does not apply to root). After the run every process of that uid is killed, whatever
  session or group it moved to;
- resource limits: address space (``RLIMIT_AS``), processes (``RLIMIT_NPROC``), file size,
  CPU time (a backstop behind the wall-clock timeout), no core files;
- a Python audit hook that refuses, at the Python level, writes outside the working
  directory (which also covers world-writable places such as ``/tmp``), starting other
  programs (exec, spawn, ``subprocess``), signalling other processes, ``ctypes`` and
  ``_posixsubprocess``;
- a wall-clock timeout, after which the whole process group (and the uid) is killed.

Without root (``same-user`` isolation) the uid separation is unavailable: the audit hook and
process-group/session killing still apply, ``RLIMIT_NPROC`` is set to the user's current
process count plus the cap, a process that starts a new session and outlives the program is
not found, and a program that escapes the Python level runs with the user's rights.
:func:`sandbox_info` tells which isolation is in use.

A program *passes* only when it runs to its end: the sandbox reports success on a private
pipe with a per-run nonce after the program returned, so ``sys.exit(0)``, ``os._exit(0)``
or a crash before the end are failures.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import itertools
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Literal

from evalsuite.errors import EvalsuiteError

__all__ = [
    "ALLOW_ENV",
    "CodeExecutionNotAllowedError",
    "ExecResult",
    "ExecStatus",
    "Isolation",
    "SandboxInfo",
    "confirmed_for_run",
    "execution_confirmed",
    "require_code_execution_opt_in",
    "require_execution_confirmed",
    "run_program",
    "run_programs",
    "sandbox_info",
]

_log = logging.getLogger(__name__)

ALLOW_ENV = "EVALSUITE_ALLOW_CODE_EXECUTION"
"""Environment variable: ``1`` opts in to executing model-written code (what
``--allow-code-execution`` sets)."""

SANDBOX_PYTHON_ENV = "EVALSUITE_SANDBOX_PYTHON"
"""Environment variable naming the interpreter to run programs with (default: probed)."""

ExecStatus = Literal["passed", "failed", "timeout", "error"]
Isolation = Literal["uid", "same-user"]

_OPT_IN_HINT = (
    "pass --allow-code-execution to evalsuite (or set EVALSUITE_ALLOW_CODE_EXECUTION=1), "
    "or --confirm_run_unsafe_code to lm_eval (confirm_run_unsafe_code=True in Python)"
)


class CodeExecutionNotAllowedError(EvalsuiteError):
    """A task would execute model-written code but the run did not opt in."""


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one sandboxed program.

    ``status``: ``passed`` (ran to its end), ``failed`` (raised, exited early, was killed by
    a signal or a resource limit), ``timeout`` (wall clock exceeded; counts as a failure),
    ``error`` (the sandbox itself could not start the program). ``passed`` is true exactly
    when ``status == "passed"``. ``detail`` is a short reason (the last line of the
    traceback, the signal, ...). ``seconds`` is wall time including interpreter start.
    """

    passed: bool
    status: ExecStatus
    detail: str
    seconds: float


@dataclass(frozen=True)
class SandboxInfo:
    """How programs are isolated on this machine (see the module docstring)."""

    isolation: Isolation
    python: str
    """Interpreter that runs the programs."""


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
    (:func:`confirmed_for_run`), the user's environment variable, or lm-eval's flag."""
    return (_RUN_CONFIRMED.get() or os.environ.get(ALLOW_ENV, "").strip() == "1"
            or _lm_eval_confirmed())


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


# --------------------------------------------------------------------------- sandbox side


def _sandbox_main() -> None:  # pragma: no cover - runs in the sandboxed interpreter
    """Entry point inside the sandbox; its source is sent with ``python -c``.

    Self-contained (imports inside, Python >= 3.8): argv[1] is a JSON spec, stdin carries
    the nonce, the program is ``program.py`` in the working directory.
    """
    import json
    import os
    import resource
    import sys
    import traceback

    spec = json.loads(sys.argv[1])
    nonce = sys.stdin.readline().strip().encode()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    report_fd = int(spec["report_fd"])

    for name, value in spec["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))

    root = os.path.realpath(os.getcwd())
    with open("program.py", encoding="utf-8") as fh:
        source = fh.read()

    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    path_events = {
        "os.chmod",
        "os.chown",
        "os.chflags",
        "os.lchflags",
        "os.link",
        "os.mkdir",
        "os.remove",
        "os.removexattr",
        "os.rename",
        "os.rmdir",
        "os.setxattr",
        "os.symlink",
        "os.truncate",
        "os.utime",
        "shutil.rmtree",
        "shutil.copyfile",
        "shutil.copymode",
        "shutil.copystat",
        "shutil.move",
        "sqlite3.connect",
    }
    run_events = {
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.system",
        "os.startfile",
        "pty.spawn",
        "subprocess.Popen",
    }
    banned_modules = {"ctypes", "_ctypes", "_posixsubprocess"}
    banned_events = {
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "socket.connect",
        "socket.bind",
        "socket.sendto",
    }
    realpath = os.path.realpath
    isdir = os.path.isdir
    fspath = os.fspath
    getpid = os.getpid

    def inside(path: object) -> bool:
        if isinstance(path, int):  # an already open descriptor
            return True
        try:
            p = realpath(fspath(path))  # type: ignore[call-overload]
        except TypeError:
            return False
        if isinstance(p, bytes):
            p = p.decode("utf-8", "surrogateescape")
        return p == root or p.startswith(root + "/") or p == "/dev/null"

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(flags, int) and flags & write_flags) or (
                isinstance(mode, str) and any(c in mode for c in "wax+")
            )
            if writing and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the working directory")
            if not writing and not inside(path) and isdir(path):
                # a descriptor of an outside directory would let dir_fd= calls write there
                raise PermissionError(f"sandbox: opening directory {path!r} is not allowed")
        elif event in path_events:
            for arg in args:
                if isinstance(arg, (str, bytes, os.PathLike)) and not inside(arg):
                    raise PermissionError(
                        f"sandbox: {event} on {arg!r} outside the working directory"
                    )
        elif event in run_events:
            raise PermissionError(f"sandbox: {event} (starting programs) is not allowed")
        elif event in ("os.kill", "os.killpg", "signal.pthread_kill"):
            if event != "os.kill" or args[0] != getpid():
                raise PermissionError(f"sandbox: {event} of another process is not allowed")
        elif event == "import" and args[0] in banned_modules:
            raise PermissionError(f"sandbox: importing {args[0]} is not allowed")
        elif event in banned_events:
            raise PermissionError(f"sandbox: {event} is not allowed")

    sys.addaudithook(hook)
    del spec
    program_globals = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(source, "program.py", "exec"), program_globals)
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # SystemExit too: a program that exits early did not pass
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    os.write(report_fd, nonce)
    os._exit(0)


@functools.cache
def _sandbox_source() -> str:
    return inspect.getsource(_sandbox_main) + "\n_sandbox_main()\n"


# --------------------------------------------------------------------------- harness side

_UID_BASE = 0x4000_0000  # ids far above any real user's (uid_t is 32 bits)
_uid_counter = itertools.count()
_uid_lock = threading.Lock()


def _processes_of(uid: int, *, zombies: bool = False) -> list[int]:
    """Pids of processes whose /proc entry belongs to ``uid`` (live ones unless ``zombies``)."""
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
            if zombies or state != b"Z":
                pids.append(int(entry.name))
    return pids


def _fresh_uid() -> int:
    """A uid/gid no process uses now: unique per (harness pid, call), checked in /proc."""
    while True:
        with _uid_lock:
            n = next(_uid_counter)
        uid = _UID_BASE + ((os.getpid() & 0x3FFFF) << 12) + (n & 0xFFF)
        if not _processes_of(uid):
            return uid


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` until none is left (new forks are caught next round)."""
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
    """Same-user fallback: kill the process group and every process still in the session."""
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


def _python_candidates() -> list[str]:
    override = os.environ.get(SANDBOX_PYTHON_ENV)
    if override:
        return [override]
    names = [
        sys.executable,
        os.path.realpath(sys.executable),
        getattr(sys, "_base_executable", ""),
        "/usr/bin/python3",
        shutil.which("python3") or "",
        "/usr/local/bin/python3",
    ]
    seen: list[str] = []
    for name in names:
        if name and name not in seen and os.path.exists(name):
            seen.append(name)
    return seen


def _probe(python: str, uid: int | None) -> bool:
    """Can ``python`` start and import the modules HumanEval tests use, as ``uid``?"""
    try:
        done = subprocess.run(
            [python, "-I", "-B", "-c", "import json, math, re, hashlib, resource, typing"],
            cwd="/",
            env={"PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
            user=uid,
            group=uid,
            extra_groups=None if uid is None else [],
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@functools.cache
def sandbox_info() -> SandboxInfo:
    """Choose the isolation and interpreter once per process (see the module docstring).

    As root: the first candidate interpreter (``EVALSUITE_SANDBOX_PYTHON``, this one, the
    system ``python3``) that a throw-away uid can run gives ``uid`` isolation; otherwise, or
    without root, ``same-user`` with this interpreter (logged as a warning).
    """
    candidates = _python_candidates()
    if os.geteuid() == 0:
        probe_uid = _fresh_uid()
        try:
            for python in candidates:
                if _probe(python, probe_uid):
                    return SandboxInfo(isolation="uid", python=python)
        finally:
            _kill_uid(probe_uid)
        _log.warning(
            "sandbox: no interpreter among %s is usable by an unprivileged uid (is it under "
            "a private directory such as /root?); set %s to one that is. Falling back to "
            "same-user isolation.",
            candidates,
            SANDBOX_PYTHON_ENV,
        )
    else:
        _log.warning("sandbox: not running as root, using same-user isolation (weaker).")
    return SandboxInfo(
        isolation="same-user", python=candidates[0] if candidates else sys.executable
    )


def _limits(
    *, memory_mb: int, max_processes: int, timeout_s: float, isolation: Isolation, uid: int
) -> dict[str, int]:
    """rlimits (name -> soft = hard) for one program."""
    nproc = max_processes
    if isolation == "same-user":  # RLIMIT_NPROC counts every process of the user, zombies too
        nproc += len(_processes_of(uid, zombies=True))
    return {
        "RLIMIT_AS": memory_mb * 1024 * 1024,
        "RLIMIT_NPROC": nproc,
        "RLIMIT_FSIZE": 64 * 1024 * 1024,
        "RLIMIT_CPU": int(timeout_s) + 2,
        "RLIMIT_CORE": 0,
    }


def _tail(fh: IO[bytes], limit: int = 4000) -> str:
    """The last ``limit`` bytes of a file, decoded."""
    size = fh.seek(0, os.SEEK_END)
    fh.seek(max(0, size - limit))
    return fh.read().decode("utf-8", "replace")


def _failure_detail(returncode: int, stderr: str) -> str:
    """Short reason for a program that did not pass: its signal or last stderr line."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        reason = {"SIGXCPU": " (CPU time limit)", "SIGXFSZ": " (file size limit)"}.get(name, "")
        return f"killed by {name}{reason}"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if lines:
        return lines[-1][:500]
    return f"exited with status {returncode} before the end of the program"


@dataclass(frozen=True)
class _Run:
    """One program's place: its working directory and the ids it runs under."""

    workdir: Path
    uid: int
    """The throw-away uid (``uid`` isolation) or the harness's own."""
    drop_privileges: bool


def _prepare(program: str, info: SandboxInfo) -> _Run:
    """Private working directory holding ``program.py``, owned by the program's uid."""
    drop = info.isolation == "uid"
    uid = _fresh_uid() if drop else os.geteuid()
    workdir = Path(tempfile.mkdtemp(prefix="evalsuite-sandbox-"))
    (workdir / "program.py").write_text(program, encoding="utf-8")
    if drop:
        os.chown(workdir, uid, uid)
        os.chown(workdir / "program.py", uid, uid)
    os.chmod(workdir, 0o700)
    return _Run(workdir=workdir, uid=uid, drop_privileges=drop)


def _spawn(
    run: _Run, info: SandboxInfo, spec: dict[str, object], out: IO[bytes], err: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start the sandbox interpreter (new session; throw-away ids when dropping privileges)."""
    report_fd = spec["report_fd"]
    assert isinstance(report_fd, int)
    return subprocess.Popen(
        [info.python, "-I", "-B", "-c", _sandbox_source(), json.dumps(spec)],
        cwd=run.workdir,
        env={
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(run.workdir),
            "TMPDIR": str(run.workdir),
        },
        stdin=subprocess.PIPE,
        stdout=out,
        stderr=err,
        pass_fds=(report_fd,),
        start_new_session=True,
        umask=0o077,
        user=run.uid if run.drop_privileges else None,
        group=run.uid if run.drop_privileges else None,
        extra_groups=[] if run.drop_privileges else None,
    )


def _clean_up(run: _Run, proc: subprocess.Popen[bytes]) -> int:
    """Kill everything the program started (whatever session it moved to); its exit code."""
    if run.drop_privileges:
        _kill_uid(run.uid)
    _kill_session(proc.pid)
    return proc.wait()


def run_program(
    program: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    max_processes: int = 16,
) -> ExecResult:
    """Run ``program`` (Python source) in the sandbox and report whether it ran to its end.

    The caller is responsible for the opt-in (:func:`require_execution_confirmed`); tasks
    check it before calling. ``timeout_s`` is wall-clock seconds from start (interpreter
    start included); ``memory_mb`` caps each process's address space; ``max_processes``
    caps the processes and threads the program may have at once (with ``uid`` isolation).
    Never raises for anything the program does; the result says what happened.
    """
    info = sandbox_info()
    started = time.monotonic()
    run = _prepare(program, info)
    report_r, report_w = os.pipe()
    limits = _limits(
        memory_mb=memory_mb,
        max_processes=max_processes,
        timeout_s=timeout_s,
        isolation=info.isolation,
        uid=run.uid,
    )
    nonce = secrets.token_hex(16).encode()
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = _spawn(run, info, {"report_fd": report_w, "limits": limits}, out, err)
            except OSError as exc:
                detail = f"could not start the sandbox: {exc}"
                return ExecResult(False, "error", detail, time.monotonic() - started)
            finally:
                os.close(report_w)
            with contextlib.suppress(BrokenPipeError), proc.stdin as stdin:  # type: ignore[union-attr]
                stdin.write(nonce + b"\n")
            try:
                proc.wait(timeout=max(timeout_s - (time.monotonic() - started), 0.001))
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            returncode = _clean_up(run, proc)
            seconds = time.monotonic() - started
            os.set_blocking(report_r, False)
            try:
                reported = os.read(report_r, 64)
            except BlockingIOError:
                reported = b""
            if timed_out:
                return ExecResult(False, "timeout", f"timed out after {timeout_s:g} s", seconds)
            if returncode == 0 and reported == nonce:
                return ExecResult(True, "passed", "", seconds)
            return ExecResult(False, "failed", _failure_detail(returncode, _tail(err)), seconds)
    finally:
        os.close(report_r)
        shutil.rmtree(run.workdir, ignore_errors=True)


def run_programs(
    programs: Sequence[str] | Iterable[str],
    *,
    workers: int = 2,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    max_processes: int = 16,
) -> list[ExecResult]:
    """:func:`run_program` over many programs, ``workers`` at a time; results in input order."""
    items = list(programs)
    if not items:
        return []
    run = functools.partial(
        run_program, timeout_s=timeout_s, memory_mb=memory_mb, max_processes=max_processes
    )
    sandbox_info()  # probe once, before the threads start
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        return list(pool.map(run, items))
