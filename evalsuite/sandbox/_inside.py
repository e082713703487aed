"""The code that runs inside the sandbox: launcher, judge, worker and the wire format.

Standard library only, and no import of :mod:`evalsuite`: the harness sends this file's text
to a bare ``python -I -B -c`` (``python -c SOURCE ROLE``), so it must stand alone. The
harness also imports it, for :func:`encode` / :func:`decode` and their tests.

Roles (see :mod:`evalsuite.sandbox` for the design):

- ``launcher`` (trusted, root in ``namespaces`` mode): reads the spec from stdin, builds the
  sandbox's file system (inside fresh namespaces), starts the judge and the worker as
  throw-away uids, enforces the wall clock and output caps, prints one JSON result line.
- ``judge`` (trusted code: the dataset's context and tests): calls the candidate function
  in the worker over a pipe; its verdict goes to a descriptor only it holds.
- ``worker`` (untrusted: the model's program): defines the function and serves calls.
"""

from __future__ import annotations

import base64
import builtins
import collections.abc
import json
import math
import os
import sys

MAX_MESSAGE = 8 << 20
"""Largest wire message (bytes); a larger one is a protocol error (a failure)."""

MAX_DEPTH = 200
"""Deepest nesting of a value on the wire."""

TAIL_BYTES = 4000
"""How much of each process's output the launcher keeps (the end of it)."""

# --------------------------------------------------------------------------- wire format


def _reject_constant(name: str) -> object:
    raise ValueError(f"bare {name} is not allowed on the wire")


def encode(value: object, depth: int = 0) -> object:
    """Plain data -> JSON-ready value, keeping the Python types JSON lacks.

    ``None``, ``bool``, ``int``, ``str`` and ``list`` as themselves; finite ``float`` as a
    number, others as ``{"f": "nan"}``; ``tuple`` ``{"t": [...]}``, ``set`` ``{"s": [...]}``,
    ``frozenset`` ``{"fs": [...]}``, ``dict`` ``{"d": [[k, v], ...]}``, ``bytes``
    ``{"b": base64}``, ``complex`` ``{"c": [re, im]}``, ``range`` ``{"r": [start, stop,
    step]}``, any other iterator (a generator, ``map``, ...) ``{"it": [...]}`` (its items).
    Subclasses travel as the value of their built-in base (a named tuple as a tuple, a
    ``Counter`` as a dict, an ``IntEnum`` as an int): a custom ``__eq__`` never crosses,
    whatever the sender does, because :func:`decode` builds only built-in values. Anything
    else raises :class:`TypeError`.
    """
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply for the sandbox's wire format")
    nested = depth + 1
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, float):
        number = float.__float__(value)
        return number if math.isfinite(number) else {"f": repr(number)}
    if isinstance(value, (bytes, bytearray)):
        return {"b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, complex):
        return {"c": [encode(value.real, nested), encode(value.imag, nested)]}
    if isinstance(value, dict):
        return {"d": [[encode(k, nested), encode(v, nested)] for k, v in dict.items(value)]}
    if isinstance(value, list):
        return [encode(v, nested) for v in list.__iter__(value)]
    if isinstance(value, tuple):
        return {"t": [encode(v, nested) for v in tuple.__iter__(value)]}
    if isinstance(value, frozenset):
        return {"fs": [encode(v, nested) for v in frozenset.__iter__(value)]}
    if isinstance(value, set):
        return {"s": [encode(v, nested) for v in set.__iter__(value)]}
    if isinstance(value, range):
        return {"r": [value.start, value.stop, value.step]}
    if isinstance(value, collections.abc.Iterator):
        return {"it": [encode(v, nested) for v in value]}
    raise TypeError(
        f"a {type(value).__name__} cannot cross the sandbox boundary (plain data only)"
    )


def _float(raw: object) -> float:
    if type(raw) is float or type(raw) is int:
        return float(raw)  # type: ignore[arg-type]
    if isinstance(raw, dict) and set(raw) == {"f"} and raw["f"] in ("nan", "inf", "-inf"):
        return float(raw["f"])
    raise ValueError("malformed float on the wire")


def decode(raw: object, depth: int = 0) -> object:
    """Inverse of :func:`encode`; builds only built-in plain values, rejects anything else."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply for the sandbox's wire format")
    kind = type(raw)
    if raw is None or kind is bool or kind is int or kind is str or kind is float:
        return raw
    if kind is list:
        return [decode(v, depth + 1) for v in raw]  # type: ignore[attr-defined]
    if kind is not dict or len(raw) != 1:  # type: ignore[arg-type]
        raise ValueError("malformed value on the wire")
    ((tag, body),) = raw.items()  # type: ignore[attr-defined]
    if tag == "f":
        return _float(raw)
    if tag == "b" and type(body) is str:
        return base64.b64decode(body.encode("ascii"), validate=True)
    if type(body) is not list:
        raise ValueError("malformed value on the wire")
    if tag == "c" and len(body) == 2:
        return complex(_float(body[0]), _float(body[1]))
    if tag == "r" and len(body) == 3 and all(type(v) is int for v in body) and body[2] != 0:
        return range(body[0], body[1], body[2])
    items = [decode(v, depth + 1) for v in body]
    try:
        return _build(tag, items)
    except TypeError as exc:  # an unhashable member of a set or a dict key
        raise ValueError(f"malformed value on the wire: {exc}") from None


def _build(tag: str, items: list) -> object:
    if tag == "t":
        return tuple(items)
    if tag == "it":
        return iter(items)
    if tag == "s":
        return set(items)
    if tag == "fs":
        return frozenset(items)
    if tag == "d":
        pairs = []
        for item in items:
            if type(item) is not list or len(item) != 2:
                raise ValueError("malformed dict on the wire")
            pairs.append((item[0], item[1]))
        return dict(pairs)
    raise ValueError(f"unknown tag {tag!r} on the wire")


def dumps(message: object) -> bytes:
    """One wire message: compact JSON and a newline (JSON escapes newlines inside)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def loads(line: bytes) -> object:
    """Parse one wire message (never pickle: JSON into plain values only)."""
    return json.loads(line.decode("utf-8"), parse_constant=_reject_constant)


class Channel:
    """Newline-delimited JSON over a pair of pipe descriptors."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.buffer = b""

    def send(self, message: object) -> None:
        data = memoryview(dumps(message))
        while data:
            data = data[os.write(self.write_fd, data) :]

    def recv(self) -> object:
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_MESSAGE:
                raise ValueError("message from the other sandbox process is too large")
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                raise EOFError("the other sandbox process closed the pipe")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        if len(line) > MAX_MESSAGE:
            raise ValueError("message from the other sandbox process is too large")
        return loads(line)


def _short(exc: BaseException) -> list[str]:
    return [type(exc).__name__, str(exc)[:500]]


# --------------------------------------------------------------------------- worker

GUARD = {"enabled": True}
"""The worker's in-process guard switch. Deliberately a plain global: in-process guards are
defence in depth, never the boundary (a program can reach this; the tests show the kernel
layer holds when it does)."""


def _install_guard(root: str) -> None:
    """Audit hook for the worker: refuse sockets, writes outside ``root``, starting
    programs, signalling others and ``ctypes``. The only layer in ``restricted`` mode."""
    realpath = os.path.realpath
    getpid = os.getpid
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    path_events = {
        "os.chmod", "os.chown", "os.link", "os.mkdir", "os.remove", "os.rename",
        "os.rmdir", "os.symlink", "os.truncate", "os.utime", "os.setxattr",
        "os.removexattr", "shutil.rmtree", "shutil.copyfile", "shutil.move",
        "sqlite3.connect",
    }
    refused = {
        "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
        "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.fork", "os.forkpty",
        "pty.spawn", "subprocess.Popen", "gc.get_objects", "gc.get_referrers",
        "gc.get_referents", "ctypes.dlopen", "ctypes.cdata", "sys._current_frames",
    }
    banned_modules = {"ctypes", "_ctypes", "_posixsubprocess"}
    guard = GUARD

    def inside(path: object) -> bool:
        if isinstance(path, int):
            return True
        try:
            p = realpath(os.fspath(path))  # type: ignore[arg-type]
        except TypeError:
            return False
        if isinstance(p, bytes):
            p = p.decode("utf-8", "surrogateescape")
        return p == root or p.startswith(root + "/") or p == "/dev/null"

    def hook(event: str, args: tuple) -> None:
        if not guard.get("enabled"):
            return
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(flags, int) and flags & write_flags) or (
                isinstance(mode, str) and any(c in mode for c in "wax+")
            )
            if writing and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the working directory")
        elif event in path_events:
            for arg in args:
                if isinstance(arg, (str, bytes, os.PathLike)) and not inside(arg):
                    raise PermissionError(f"sandbox: {event} on {arg!r} outside the working directory")
        elif event in ("os.kill", "os.killpg", "signal.pthread_kill"):
            if event != "os.kill" or args[0] != getpid():
                raise PermissionError(f"sandbox: {event} of another process is not allowed")
        elif event == "import" and args[0] in banned_modules:
            raise PermissionError(f"sandbox: importing {args[0]} is not allowed")
        elif event in refused:
            raise PermissionError(f"sandbox: {event} is not allowed")

    sys.addaudithook(hook)


def worker_main() -> None:
    """Run the untrusted program; then (tests mode) serve calls of its function."""
    spec = json.loads(sys.stdin.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    channel = Channel(3, 4)
    entry = spec["entry_point"]
    if spec["guard"]:
        _install_guard(os.path.realpath(os.getcwd()))
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(spec["program"], "program.py", "exec"), namespace)
        function = namespace[entry] if entry else None
        if entry and not callable(function):
            raise TypeError(f"{entry} is not a function")
    except BaseException as exc:  # SystemExit too: a program that exits early did not load
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        channel.send({"load_error": _short(exc)})
        os._exit(1)
    sys.stdout.flush()
    if not entry:  # plain mode: the program's own verdict (see the package docstring)
        channel.send({"end": True})
        os._exit(0)
    channel.send({"ready": True})
    while True:
        try:
            call = channel.recv()
        except EOFError:
            os._exit(0)
        args = decode(call["args"])  # type: ignore[index]
        kwargs = decode(call["kwargs"])  # type: ignore[index]
        try:
            reply = {"ok": encode(function(*args, **kwargs))}  # type: ignore[misc]
        except BaseException as exc:
            reply = {"raise": _short(exc)}
        sys.stdout.flush()
        sys.stderr.flush()
        channel.send(reply)


# --------------------------------------------------------------------------- judge


class CandidateError(Exception):
    """The candidate function failed in the worker (an error the judge cannot map back)."""


def _raise_for(name: object, message: object) -> None:
    kind = getattr(builtins, str(name), None)
    safe = (
        isinstance(kind, type)
        and issubclass(kind, Exception)
        and not issubclass(kind, (StopIteration, StopAsyncIteration))
    )
    if safe:
        raise kind(str(message))  # type: ignore[misc]
    raise CandidateError(f"{name}: {message}")


def _proxy(channel: Channel, name: str):  # type: ignore[no-untyped-def]
    """A function that calls the worker's candidate with plain data and decodes the answer."""

    def candidate(*args: object, **kwargs: object) -> object:
        channel.send({"args": encode(list(args)), "kwargs": encode(dict(kwargs))})
        reply = channel.recv()
        if type(reply) is not dict or len(reply) != 1:
            raise CandidateError("malformed reply from the candidate")
        ((kind, body),) = reply.items()
        if kind == "ok":
            return decode(body)
        if kind == "raise" and type(body) is list and len(body) == 2:
            _raise_for(body[0], body[1])
        raise CandidateError("malformed reply from the candidate")

    candidate.__name__ = candidate.__qualname__ = name
    return candidate


def judge_main() -> None:
    """Run the trusted tests against the worker's function; verdict on descriptor 5."""
    _not_dumpable()
    spec = json.loads(sys.stdin.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    verdict_fd = 5
    channel = Channel(4, 3)
    try:
        hello = channel.recv()
        if hello != {"ready": True}:
            error = hello.get("load_error") if type(hello) is dict else None
            if type(error) is list and len(error) == 2:
                raise CandidateError(f"the program failed before its tests: {error[0]}: {error[1]}")
            raise CandidateError("malformed greeting from the candidate")
        namespace: dict[str, object] = {"__name__": "__main__"}
        exec(compile(spec["context"], "context.py", "exec"), namespace)
        namespace[spec["entry_point"]] = _proxy(channel, spec["entry_point"])
        exec(compile(spec["tests"], "tests.py", "exec"), namespace)
    except BaseException as exc:  # noqa: BLE001 - every way out but the end is a failure
        import traceback

        traceback.print_exc()
        verdict = {"passed": False, "detail": f"{type(exc).__name__}: {str(exc)[:500]}"}
    else:
        verdict = {"passed": True, "detail": ""}
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(verdict_fd, dumps(verdict))
    os._exit(0)


# --------------------------------------------------------------------------- launcher

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND = 32, 4096


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    enc = (lambda s: None if s is None else s.encode())
    if libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _bind_ro(source: str, target: str) -> None:
    _mount(source, target, None, MS_BIND, None)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, None)


def _build_root(spec: dict) -> None:
    """Inside fresh mount/pid namespaces: an allow-listed, read-only root, then chroot.

    ``/`` is a small tmpfs holding the system directories and the interpreter's prefix
    (read-only binds), ``/dev/{null,zero,random,urandom}``, a fresh ``/proc`` (this pid
    namespace only, ``hidepid=2``) and ``/tmp``: the program's directory, a tmpfs of
    ``disk_mb`` (the disk quota) owned by the worker's uid.
    """
    root = spec["root"]
    worker_uid = spec["uids"]["worker"]
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=755")
    system = ("usr", "bin", "lib", "lib64", "lib32", "libx32", "sbin")
    for name in system:
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), root + host)
        elif os.path.isdir(host):
            os.mkdir(root + host)
            _bind_ro(host, root + host)
    for prefix in spec["python_roots"]:
        if any(prefix == "/" + n or prefix.startswith("/" + n + "/") for n in system):
            continue
        os.makedirs(root + prefix, mode=0o755, exist_ok=True)
        _bind_ro(prefix, root + prefix)
    os.mkdir(root + "/dev")
    for name in ("null", "zero", "random", "urandom"):
        open(root + "/dev/" + name, "w").close()
        _mount("/dev/" + name, root + "/dev/" + name, None, MS_BIND, None)
    os.mkdir(root + "/proc")
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
    os.mkdir(root + "/tmp")
    quota = "size=%dm,nr_inodes=%d,mode=700,uid=%d,gid=%d" % (
        spec["limits"]["disk_mb"], 16384, worker_uid, worker_uid
    )
    _mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, quota)
    _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
    os.chroot(root)
    os.chdir("/")


def _no_new_privs() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS


def _not_dumpable() -> None:
    """PR_SET_DUMPABLE 0: even a process of the same uid cannot ptrace this one or open its
    ``/proc/<pid>/fd``, ``mem`` or ``environ`` (what protects the launcher and the judge
    from the worker where they share a uid, in the fallback without root)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)


def _spawn(spec: dict, role: str, uid: int | None, fds: dict[int, int], cwd: str, limits: dict) -> int:
    """Fork and exec ``python -c SOURCE role`` with exactly ``fds`` (target -> source)."""
    import resource

    pid = os.fork()
    if pid:
        return pid
    try:
        import fcntl

        high = {target: fcntl.fcntl(source, fcntl.F_DUPFD, 100) for target, source in fds.items()}
        for target in fds:
            os.dup2(high[target], target)
        os.closerange(max(fds) + 1, 1 << 16)
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        _no_new_privs()
        os.chdir(cwd)
        os.umask(0o077)
        for name, value in limits.items():
            resource.setrlimit(getattr(resource, name), (value, value))
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": cwd, "TMPDIR": cwd}
        python = spec["python"]
        argv = [python, "-I", "-B", "-S", "-c", spec["source"], role]
        if role == "worker" and spec["worker_prefix"]:  # its own user + network namespace
            argv = list(spec["worker_prefix"]) + argv
        os.execve(argv[0], argv, env)
    except BaseException as exc:  # noqa: BLE001
        os.write(2, ("sandbox: could not start the %s: %r\n" % (role, exc)).encode())
    os._exit(127)


def _write_all(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        pass
    finally:
        os.close(fd)


def launcher_main() -> None:
    """Set up, run the judge and the worker, print one JSON result line on stdout."""
    import selectors
    import signal
    import time

    _not_dumpable()
    spec = json.loads(sys.stdin.read())
    started = time.monotonic()
    limits = spec["limits"]
    deadline = started + limits["timeout_s"]
    out_fd = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    facts: dict[str, object] = {}
    if spec["mode"] == "namespaces":
        _build_root(spec)
        worker_cwd = "/tmp"
        facts["pid1"] = os.getpid() == 1
    else:
        worker_cwd = spec["root"]
    uids = spec["uids"] or {"worker": None, "judge": None}
    tests = spec["tests"]

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)

    to_worker_r, to_worker_w = os.pipe()  # judge -> worker (calls)
    from_worker_r, from_worker_w = os.pipe()  # worker -> judge (replies) or launcher (plain)
    worker_out_r, worker_out_w = os.pipe()
    worker_in_r, worker_in_w = os.pipe()
    worker_limits = {
        "RLIMIT_AS": limits["memory_mb"] << 20,
        "RLIMIT_NPROC": limits["nproc"],
        "RLIMIT_FSIZE": limits["disk_mb"] << 20,
        "RLIMIT_CPU": int(limits["timeout_s"]) + 1,
        "RLIMIT_CORE": 0,
    }
    worker_fds = {0: worker_in_r, 1: worker_out_w, 2: worker_out_w, 3: to_worker_r, 4: from_worker_w}
    if tests is None:
        worker_fds[3] = null
    pids = {"worker": _spawn(spec, "worker", uids["worker"], worker_fds, worker_cwd, worker_limits)}
    for fd in (worker_in_r, worker_out_w, to_worker_r, from_worker_w):
        os.close(fd)
    streams = {worker_out_r: "worker"}
    verdict_r = None
    if tests is not None:
        judge_out_r, judge_out_w = os.pipe()
        judge_in_r, judge_in_w = os.pipe()
        verdict_r, verdict_w = os.pipe()
        judge_limits = dict(
            worker_limits, RLIMIT_NPROC=limits["judge_nproc"], RLIMIT_FSIZE=1 << 20
        )
        judge_fds = {
            0: judge_in_r, 1: judge_out_w, 2: judge_out_w,
            3: to_worker_w, 4: from_worker_r, 5: verdict_w,
        }
        pids["judge"] = _spawn(spec, "judge", uids["judge"], judge_fds, "/", judge_limits)
        for fd in (judge_in_r, judge_out_w, to_worker_w, from_worker_r, verdict_w):
            os.close(fd)
        streams[judge_out_r] = "judge"
        judge_spec = {k: tests[k] for k in ("context", "tests", "entry_point")}
        _write_all(judge_in_w, json.dumps(judge_spec).encode())
        entry = tests["entry_point"]
    else:
        os.close(to_worker_w)
        entry = ""
        verdict_r = from_worker_r
    worker_spec = {"program": spec["program"], "entry_point": entry, "guard": spec["guard"]}
    _write_all(worker_in_w, json.dumps(worker_spec).encode())

    tails = {"worker": b"", "judge": b""}
    sizes = {"worker": 0, "judge": 0}
    verdict = b""
    exits: dict[str, int] = {}
    outcome = None
    selector = selectors.DefaultSelector()
    for fd in list(streams) + [verdict_r, wake_r]:
        selector.register(fd, selectors.EVENT_READ)
    open_fds = set(streams) | {verdict_r}
    while True:
        while True:  # reap (orphaned daemons land here too when we are pid 1)
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            for role, known in pids.items():
                if known == pid:
                    exits[role] = os.waitstatus_to_exitcode(status)
        judge_done = "judge" in exits if tests is not None else "worker" in exits
        if judge_done and (verdict_r not in open_fds or (tests is None and verdict)):
            break
        if max(sizes.values()) > limits["output_bytes"]:
            outcome = ("failed", "output limit exceeded (more than %d bytes)" % limits["output_bytes"])
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            outcome = ("timeout", "timed out after %g s" % limits["timeout_s"])
            break
        for key, _ in selector.select(timeout=min(remaining, 1.0)):
            fd = key.fd
            chunk = os.read(fd, 1 << 16)
            if fd == wake_r:
                continue
            if not chunk:
                selector.unregister(fd)
                open_fds.discard(fd)
                continue
            if fd == verdict_r:
                verdict = (verdict + chunk)[: MAX_MESSAGE]
            else:
                role = streams[fd]
                sizes[role] += len(chunk)
                tails[role] = (tails[role] + chunk)[-TAIL_BYTES:]
    for pid in pids.values():  # end the known children; pid 1's exit ends the rest
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if outcome is None:
        outcome = _verdict(verdict, tests is not None, exits)
        if outcome[0] == "failed" and "without a verdict" in outcome[1]:
            last = tails["judge"].decode("utf-8", "replace").strip().splitlines()[-1:]
            outcome = (outcome[0], outcome[1] + (": " + last[0][:300] if last else ""))
    result = {
        "status": outcome[0],
        "detail": outcome[1],
        "worker_output": tails["worker"].decode("utf-8", "replace"),
        "judge_output": tails["judge"].decode("utf-8", "replace"),
        "exits": exits,
        "facts": facts,
        "nonce": spec["nonce"],
    }
    _write_all(out_fd, (json.dumps(result) + "\n").encode())
    if spec["mode"] != "namespaces" and uids["worker"] is not None:
        _kill_uids([u for u in uids.values() if u is not None])
    os._exit(0)


def _kill_uids(uids: list[int]) -> None:
    """Without a pid namespace (restricted mode as root): kill every process of ``uids``."""
    import signal
    import time

    for _ in range(1000):
        found = False
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.stat("/proc/" + name).st_uid not in uids:
                    continue
                os.kill(int(name), signal.SIGKILL)
                found = True
            except OSError:
                continue
        if not found:
            return
        time.sleep(0.002)


def _verdict(raw: bytes, with_tests: bool, exits: dict[str, int]) -> tuple[str, str]:
    """(status, detail) from what the judge (or, in plain mode, the worker) reported."""
    try:
        message = loads(raw.split(b"\n", 1)[0]) if raw else None
    except ValueError:
        message = None
    if with_tests:
        if type(message) is dict and type(message.get("passed")) is bool:
            return ("passed", "") if message["passed"] else ("failed", str(message.get("detail", "")))
        return ("failed", "the test process ended without a verdict (exit %s)" % exits.get("judge"))
    if message == {"end": True} and exits.get("worker") == 0:
        return ("passed", "")
    code = exits.get("worker")
    if code is not None and code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return ("failed", "killed by %s" % name)
    if type(message) is dict and type(message.get("load_error")) is list:
        return ("failed", ": ".join(str(x) for x in message["load_error"]))
    return ("failed", "exited with status %s before the end of the program" % code)


if __name__ == "__main__":
    _roles = {"launcher": launcher_main, "judge": judge_main, "worker": worker_main}
    _roles[sys.argv[1]]()
