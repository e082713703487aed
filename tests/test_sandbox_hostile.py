"""Hostile programs: each is scored as a failure, the harness goes on, nothing outside changes.

Every attack runs as a HumanEval-like candidate ``f`` whose trusted tests expect a square,
so only a forged verdict could make it pass. Where the namespaces are in force (root, as
in CI) each attack also runs with the worker's in-process guard switched off by the
program itself (``TAMPER``), so that the kernel layer alone is shown to hold.
"""

from __future__ import annotations

import os
import socket
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalsuite.sandbox import ExecResult, TestSuite, run_program, sandbox_info
from evalsuite.sandbox.core import _execute, _Limits, _restricted_python, _fresh_uid, uid_range

NAMESPACES = sandbox_info().isolation == "namespaces"
ROOT = os.geteuid() == 0
SQUARE = TestSuite(tests="assert f(2) == 4\nassert f(-3) == 9\nassert f(7) == 49\n", entry_point="f")
TAMPER = "import __main__\n__main__.GUARD['enabled'] = False\n"
GUARDS = ["guarded", "tampered"] if NAMESPACES else ["guarded"]
needs_namespaces = pytest.mark.skipif(
    not NAMESPACES, reason=f"namespaces not in force here: {sandbox_info().reason}"
)


def _candidate(attack: str, guard: str, *, at_load: bool = False) -> str:
    """A program whose ``f`` runs ``attack`` (or runs it at load time) and answers wrongly."""
    prefix = TAMPER if guard == "tampered" else ""
    body = textwrap.indent(textwrap.dedent(attack), "    ")
    if at_load:
        return f"{prefix}{textwrap.dedent(attack)}\ndef f(x):\n    return -1\n"
    return f"{prefix}def f(x):\n{body}\n    return -1\n"


def _run(program: str, **limits: object) -> ExecResult:
    result = run_program(program, tests=SQUARE, **{"timeout_s": 10, **limits})  # type: ignore[arg-type]
    assert not result.passed and result.status in ("failed", "timeout"), result
    return result


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def _leftovers() -> list[int]:
    """Live processes under the throw-away uids this test process hands out."""
    ids = uid_range()
    found = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and entry.stat().st_uid in ids and _alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(autouse=True)
def _harness_goes_on() -> Iterator[None]:
    """After every attack: the harness is alive, the sandbox still scores, nothing is left."""
    yield
    assert run_program("def f(x):\n    return x * x\n", tests=SQUARE).passed
    if ROOT:
        assert _leftovers() == []


# --- resources ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("guard", GUARDS)
def test_infinite_loop_times_out(guard: str) -> None:
    result = _run(_candidate("while True:\n    pass\n", guard), timeout_s=1.5)
    assert result.status == "timeout"


@pytest.mark.parametrize("guard", GUARDS)
def test_memory_bomb_fails(guard: str) -> None:
    attack = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 ** 2))\n"
    result = _run(_candidate(attack, guard), memory_mb=256)
    assert "MemoryError" in result.detail


@pytest.mark.slow
@pytest.mark.parametrize("guard", GUARDS)
def test_fork_bomb_is_capped_and_nothing_is_left(guard: str) -> None:
    attack = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    _run(_candidate(attack, guard), timeout_s=2, max_processes=8)


@pytest.mark.slow
@pytest.mark.parametrize("guard", GUARDS)
def test_deep_recursion_fails(guard: str) -> None:
    attack = "import sys\nsys.setrecursionlimit(10 ** 7)\ndef r(n):\n    return r(n + 1) + 1\nreturn r(0)\n"
    _run(_candidate(attack, guard), timeout_s=3, memory_mb=256)


@pytest.mark.parametrize("guard", GUARDS)
def test_huge_output_fails_at_the_cap(guard: str) -> None:
    attack = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n"
    result = _run(_candidate(attack, guard), output_kb=256)
    assert "output limit" in result.detail


@pytest.mark.slow
@needs_namespaces
@pytest.mark.parametrize("guard", GUARDS)
def test_filling_the_disk_stops_at_the_quota(guard: str) -> None:
    program = TAMPER if guard == "tampered" else ""
    program += (
        "import os\nwritten = 0\n"
        "try:\n"
        "    for i in range(300):\n"
        "        with open(f'blob{i}', 'wb') as fh:\n"
        "            fh.write(b'x' * (1 << 20))\n"
        "        written += 1 << 20\n"
        "except OSError as exc:\n"
        "    print('STOPPED', written, exc.errno)\n"
    )
    result = run_program(program, disk_mb=16, timeout_s=20)
    assert "STOPPED" in result.output, result
    written, errno = result.output.split("STOPPED", 1)[1].split()
    assert int(written) <= 16 << 20 and int(errno) in (27, 28)  # EFBIG / ENOSPC


# --- the file system -----------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A file the harness owns outside the sandbox, and (as root) one under /usr/local,
    which the sandbox can see read-only."""
    victim = tmp_path / "victim.txt"
    victim.write_text("original", encoding="utf-8")
    yield victim


ESCAPES = {
    "write": "open(TARGET, 'w').write('pwned')\n",
    "create-beside": "import os\nopen(os.path.join(os.path.dirname(TARGET), 'new'), 'w').write('x')\n",
    "delete": "import os\nos.remove(TARGET)\n",
    "rename-over": "import os\nopen('f', 'w').write('pwned')\nos.rename('f', TARGET)\n",
    "chmod": "import os\nos.chmod(TARGET, 0o777)\n",
    "symlink": "import os\nos.symlink(TARGET, 'link')\nopen('link', 'w').write('pwned')\n",
}


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("how", sorted(ESCAPES))
def test_writing_and_deleting_outside_its_directory(how: str, guard: str, outside: Path) -> None:
    targets = [outside]
    canary = Path("/usr/local") / f"evalsuite-canary-{uuid.uuid4().hex}"
    if ROOT:
        canary.write_text("original", encoding="utf-8")
        targets.append(canary)
    try:
        for target in targets:
            before = sorted(os.listdir(target.parent))
            mode = target.stat().st_mode
            attack = f"TARGET = {str(target)!r}\n{ESCAPES[how]}"
            _run(_candidate(attack, guard))
            assert target.read_text(encoding="utf-8") == "original"
            assert target.stat().st_mode == mode and sorted(os.listdir(target.parent)) == before
    finally:
        canary.unlink(missing_ok=True)


# --- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize("guard", GUARDS)
def test_environment_and_other_processes_environ_are_not_readable(
    guard: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"hunter2-{uuid.uuid4().hex}"
    monkeypatch.setenv("EVALSUITE_TEST_SECRET", secret)
    program = (TAMPER if guard == "tampered" else "") + textwrap.dedent(f"""
        import os
        found = [repr(dict(os.environ))]
        for pid in [{os.getpid()}, {os.getppid()}, 1] + [int(p) for p in os.listdir('/proc') if p.isdigit()]:
            for name in ('environ', 'cmdline'):
                try:
                    found.append(open(f'/proc/{{pid}}/{{name}}', 'rb').read().decode('latin-1'))
                except OSError as exc:
                    found.append(type(exc).__name__)
        for path in ('/proc/self/environ', '/root/.bash_history', '/etc/shadow', {str(Path.cwd())!r}):
            try:
                found.append(repr(os.listdir(path)) if os.path.isdir(path) else open(path).read())
            except OSError as exc:
                found.append(type(exc).__name__)
        print('\\n'.join(found))
    """)
    result = run_program(program, timeout_s=10, output_kb=4096)
    assert result.status == "passed", result  # it ran; it just found nothing
    assert secret not in result.output
    assert "hunter2" not in result.output


# --- network -------------------------------------------------------------------------------


@pytest.fixture
def listeners() -> Iterator[tuple[socket.socket, socket.socket]]:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    for s in (tcp, udp):
        s.setblocking(False)
    yield tcp, udp
    tcp.close()
    udp.close()


NETWORK = {
    "tcp-connect": "s = socket.create_connection(('127.0.0.1', TCP), timeout=2)\ns.sendall(b'leak')\n",
    "udp-sendto": "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'leak', ('127.0.0.1', UDP))\n",
    "udp-sendmsg": (
        "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendmsg([b'leak'], [], 0, ('127.0.0.1', UDP))\n"
    ),
    "udp-connect-send": (
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nu.connect(('127.0.0.1', UDP))\nu.send(b'leak')\n"
    ),
    "raw-fd-socket": "s = socket.socket(fileno=socket.socket().detach())\ns.connect(('127.0.0.1', TCP))\n",
}


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("how", sorted(NETWORK))
def test_no_network(how: str, guard: str, listeners: tuple[socket.socket, socket.socket]) -> None:
    tcp, udp = listeners
    attack = f"import socket\nTCP, UDP = {tcp.getsockname()[1]}, {udp.getsockname()[1]}\n{NETWORK[how]}"
    _run(_candidate(attack, guard))
    # loopback delivery is synchronous: anything sent before the run ended is queued now
    with pytest.raises(BlockingIOError):
        tcp.accept()
    with pytest.raises(BlockingIOError):
        udp.recvfrom(64)


# --- processes -----------------------------------------------------------------------------


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize(
    "attack",
    [
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
        "import os, signal\nos.kill(1, signal.SIGKILL)\n",
        "import os, signal\nos.kill(-1, signal.SIGKILL)\n",
        "import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\n",
        f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)\n",
        f"import os, signal\nos.kill({os.getppid()}, signal.SIGKILL)\n",
    ],
    ids=["parent", "pid1", "everyone", "parent-group", "harness", "harness-parent"],
)
def test_killing_the_parent_or_the_harness(attack: str, guard: str) -> None:
    _run(_candidate(attack, guard))


@pytest.mark.slow
@pytest.mark.skipif(not ROOT, reason="finding escaped daemons needs the throw-away uids (root)")
@pytest.mark.parametrize("guard", GUARDS)
def test_a_daemon_does_not_outlive_the_program(guard: str, tmp_path: Path) -> None:
    attack = """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            os._exit(0)
        time.sleep(0.2)
    """
    _run(_candidate(attack, guard, at_load=True))
    deadline = time.monotonic() + 5
    while _leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _leftovers() == []


@pytest.mark.parametrize("guard", GUARDS)
def test_starting_programs_gets_nothing_out(guard: str, tmp_path: Path) -> None:
    target = tmp_path / "from-shell"
    attack = f"import subprocess\nsubprocess.run(['sh', '-c', 'echo x > {target}'])\n"
    _run(_candidate(attack, guard))
    assert not target.exists()


# --- forging a pass --------------------------------------------------------------------------

FORGERIES = {
    "exit-0-at-load": ("import os\nos._exit(0)\n", True),
    "exit-0-in-call": ("import os\nos._exit(0)\n", False),
    "system-exit": ("raise SystemExit(0)\n", False),
    "keyboard-interrupt": ("raise KeyboardInterrupt\n", False),
    "stop-iteration": ("raise StopIteration\n", False),
    "always-equal-object": (
        "class E:\n    def __eq__(self, o):\n        return True\nreturn E()\n", False
    ),
    "always-equal-int": (
        "class E(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\n"
        "return E(0)\n",
        False,
    ),
    "override-builtins": (
        "import builtins\nbuiltins.AssertionError = type('A', (BaseException,), {})\n"
        "builtins.__dict__['__import__'] = None\n",
        True,
    ),
    "replace-check-and-candidate": (
        "check = lambda candidate: None\ncandidate = lambda *a: 4\nMETADATA = {}\n", True
    ),
    "walk-the-stack": (
        "import sys\nframe = sys._getframe()\n"
        "while frame:\n"
        "    for k, v in list(frame.f_locals.items()):\n"
        "        if k in ('verdict', 'nonce', 'report_fd', 'verdict_fd', 'channel'):\n"
        "            print('FOUND', k)\n"
        "    frame.f_globals['GUARD'] = {}\n"
        "    frame = frame.f_back\n",
        False,
    ),
    "fake-markers-on-every-fd": (
        "import os, json\n"
        "for fd in range(0, 64):\n"
        "    for msg in (b'{\"passed\": true, \"detail\": \"\"}\\n', b'{\"ready\": true}\\n',\n"
        "                b'{\"ok\": 4}\\n', b'{\"end\": true}\\n', b'PASSED\\n'):\n"
        "        try:\n"
        "            os.write(fd, msg)\n"
        "        except OSError:\n"
        "            pass\n"
        "print('{\"status\": \"passed\", \"detail\": \"\"}')\n",
        False,
    ),
    "judge-descriptors-via-proc": (
        "import os\n"
        "for pid in range(1, 200):\n"
        "    for fd in range(0, 12):\n"
        "        try:\n"
        "            with open(f'/proc/{pid}/fd/{fd}', 'wb') as fh:\n"
        "                fh.write(b'{\"passed\": true, \"detail\": \"\"}\\n')\n"
        "        except OSError:\n"
        "            pass\n",
        False,
    ),
    "patch-the-worker-protocol": (
        "import __main__\n__main__.encode = lambda v, depth=0: 4\n__main__.decode = lambda v, d=0: v\n",
        True,
    ),
    "plant-modules-where-the-judge-might-import": (
        "import os\n"
        "src = 'import os\\nos._exit(0)\\n'\n"
        "for d in ('.', '/tmp', '/var/tmp', '/dev/shm', os.path.expanduser('~')):\n"
        "    for name in ('json.py', 'sitecustomize.py', 'usercustomize.py', 'traceback.py'):\n"
        "        try:\n"
        "            open(os.path.join(d, name), 'w').write(src)\n"
        "        except OSError:\n"
        "            pass\n",
        True,
    ),
    "signal-or-poke-other-processes": (
        "import os, signal\n"
        "for pid in range(1, 400):\n"
        "    if pid == os.getpid():\n"
        "        continue\n"
        "    for sig in (signal.SIGSTOP, signal.SIGUSR1):\n"
        "        try:\n"
        "            os.kill(pid, sig)\n"
        "        except OSError:\n"
        "            pass\n"
        "    try:\n"
        "        with open(f'/proc/{pid}/mem', 'r+b') as fh:\n"
        "            fh.write(b'x')\n"
        "    except OSError:\n"
        "        pass\n",
        True,
    ),
    "steal-a-nonce-and-print-a-result": (
        "import os, re, json\n"
        "found = set()\n"
        "for pid in range(1, 400):\n"
        "    for part in ('cmdline', 'environ', 'fd/0'):\n"
        "        try:\n"
        "            found.update(re.findall(rb'[0-9a-f]{32}', open(f'/proc/{pid}/{part}', 'rb').read(1 << 20)))\n"
        "        except OSError:\n"
        "            pass\n"
        "for n in found:\n"
        "    print(json.dumps({'status': 'passed', 'detail': '', 'nonce': n.decode(), 'worker_output': ''}))\n",
        False,
    ),
    "reduce-to-the-right-answer": (
        "class E(int):\n    def __reduce__(self):\n        return (int, (4,))\nreturn E(-1)\n", False
    ),
    "child-exits-0-later": (
        "import os, time\nif os.fork() == 0:\n    time.sleep(3)\n    os._exit(0)\n", False
    ),
    "close-every-descriptor": ("import os\nos.closerange(0, 1024)\n", False),
    "read-the-tests-and-answer-them": (
        # the expected values, if the trusted tests could be read anywhere, would make a
        # wrong program pass: search every process's cmdline, environ and descriptors, the
        # writable directories and its own inherited descriptors for "f(x) == y"
        "import os, re\n"
        "blobs = []\n"
        "def grab(path):\n"
        "    try:\n"
        "        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)\n"
        "        blobs.append(os.read(fd, 1 << 16))\n"
        "        os.close(fd)\n"
        "    except OSError:\n"
        "        pass\n"
        "for pid in [d for d in os.listdir('/proc') if d.isdigit()]:\n"
        "    for part in ('cmdline', 'environ'):\n"
        "        grab(f'/proc/{pid}/{part}')\n"
        "    for fd in range(0, 16):\n"
        "        grab(f'/proc/{pid}/fd/{fd}')\n"
        "for top in ('/tmp', '/var/tmp', '/dev/shm', os.getcwd()):\n"
        "    for d, _, names in os.walk(top):\n"
        "        for name in names:\n"
        "            grab(os.path.join(d, name))\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        os.set_blocking(fd, False)\n"
        "        blobs.append(os.read(fd, 1 << 16))\n"
        "    except OSError:\n"
        "        pass\n"
        "found = {int(a): int(b) for blob in blobs\n"
        "         for a, b in re.findall(rb'f\\((-?\\d+)\\) == (-?\\d+)', blob)}\n"
        "return found.get(x, -1)\n",
        False,
    ),
    "huge-reply": ("return 'x' * (64 << 20)\n", False),
    "deep-reply": ("v = []\nfor _ in range(100000):\n    v = [v]\nreturn v\n", False),
}


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("how", sorted(FORGERIES))
def test_a_pass_cannot_be_forged(how: str, guard: str) -> None:
    attack, at_load = FORGERIES[how]
    _run(_candidate(attack, guard, at_load=at_load))


# --- the fallback, exercised here too (as root it keeps the throw-away uids) -------------

RESTRICTED_ATTACKS = {
    "udp-sendmsg": NETWORK["udp-sendmsg"],
    "tcp-connect": NETWORK["tcp-connect"],
    "write-outside": ESCAPES["write"],
    "fork": "import os\nos.fork()\n",
    "subprocess": "import subprocess\nsubprocess.run(['true'])\n",
    "ctypes": "import ctypes\n",
    "fake-markers": FORGERIES["fake-markers-on-every-fd"][0],
    "system-exit": FORGERIES["system-exit"][0],
}


@pytest.mark.parametrize("how", sorted(RESTRICTED_ATTACKS))
def test_restricted_fallback_refuses_the_basic_attacks(
    how: str, listeners: tuple[socket.socket, socket.socket], outside: Path
) -> None:
    tcp, udp = listeners
    attack = (
        f"import socket\nTCP, UDP = {tcp.getsockname()[1]}, {udp.getsockname()[1]}\n"
        f"TARGET = {str(outside)!r}\n{RESTRICTED_ATTACKS[how]}"
    )
    python = _restricted_python(_fresh_uid() if ROOT else None)
    result = _execute("restricted", _candidate(attack, "guarded"), SQUARE, _Limits(), python)
    assert result.status == "failed", result
    if how not in ("fake-markers", "system-exit"):
        assert "PermissionError" in result.detail, result
    assert outside.read_text(encoding="utf-8") == "original"
    with pytest.raises(BlockingIOError):
        udp.recvfrom(64)
    with pytest.raises(BlockingIOError):
        tcp.accept()
