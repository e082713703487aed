"""The sandbox runs real programs, hostile ones included, in real subprocesses."""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

import pytest

from evalsuite.errors import EXIT_USAGE, EvalsuiteError
from evalsuite.tasks import code_exec
from evalsuite.tasks.code_exec import (
    ALLOW_ENV,
    CodeExecutionNotAllowedError,
    run_program,
    run_programs,
    sandbox_info,
)

UID_ISOLATION = sandbox_info().isolation == "uid"


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def _pids(detail: str) -> list[int]:
    match = re.search(r"PIDS \[([\d, ]*)\]", detail)
    assert match, detail
    return [int(p) for p in match.group(1).split(",") if p.strip()]


def _our_sandbox_processes() -> list[int]:
    """Live processes under the sandbox uids this test process hands out."""
    base = code_exec._UID_BASE + ((os.getpid() & 0x3FFFF) << 12)
    found = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            try:
                uid = entry.stat().st_uid
            except OSError:
                continue
            if entry.name.isdigit() and base <= uid < base + 4096 and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


# --- ordinary programs -------------------------------------------------------------------


def test_passing_program_passes() -> None:
    result = run_program("import math\nassert math.gcd(12, 18) == 6\nprint('ok')\n", timeout_s=5)
    assert (result.passed, result.status, result.detail) == (True, "passed", "")
    assert 0 < result.seconds < 5


def test_failing_assertion_fails_with_reason() -> None:
    result = run_program("def f():\n    return 1\nassert f() == 2, 'wrong answer'\n", timeout_s=5)
    assert (result.passed, result.status) == (False, "failed")
    assert "AssertionError: wrong answer" in result.detail


def test_syntax_error_fails() -> None:
    result = run_program("def f(:\n    pass\n", timeout_s=5)
    assert result.status == "failed" and "SyntaxError" in result.detail


@pytest.mark.parametrize(
    "program", ["import sys\nsys.exit(0)\nassert False\n", "import os\nos._exit(0)\nassert False\n"]
)
def test_exiting_early_is_not_a_pass(program: str) -> None:
    result = run_program(program, timeout_s=5)
    assert result.status == "failed", result


def test_program_runs_in_a_private_directory_that_is_deleted(tmp_path: Path) -> None:
    program = (
        "import os\n"
        "open('scratch.txt', 'w').write('x')\n"
        "os.mkdir('sub')\n"
        "assert os.path.exists('sub') and open('scratch.txt').read() == 'x'\n"
        "raise SystemExit('CWD ' + os.getcwd())\n"
    )
    result = run_program(program, timeout_s=5)
    assert result.status == "failed"
    cwd = result.detail.split("CWD ", 1)[1].strip()
    assert cwd != os.getcwd() and not Path(cwd).exists()


def test_run_programs_keeps_order_and_runs_two_at_once() -> None:
    programs = [f"import time\ntime.sleep(0.8)\nassert {i} != 2\n" for i in range(4)]
    started = time.monotonic()
    results = run_programs(programs, workers=2, timeout_s=10)
    elapsed = time.monotonic() - started
    assert [r.passed for r in results] == [True, True, False, True]
    assert elapsed < 3.0, f"4 x 0.8 s on 2 workers took {elapsed:.2f} s (sequential: >= 3.2 s)"


# --- hostile programs ---------------------------------------------------------------------


def test_infinite_loop_times_out_and_is_killed() -> None:
    started = time.monotonic()
    result = run_program("while True:\n    pass\n", timeout_s=1.0)
    assert (result.passed, result.status) == (False, "timeout")
    assert time.monotonic() - started < 5


def test_memory_bomb_fails_fast() -> None:
    result = run_program("x = bytearray(8 * 1024 ** 3)\n", timeout_s=10, memory_mb=256)
    assert (result.passed, result.status) == (False, "failed")
    assert "MemoryError" in result.detail
    assert result.seconds < 5


def test_growing_memory_bomb_fails() -> None:
    program = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 ** 2))\n"
    result = run_program(program, timeout_s=10, memory_mb=256)
    assert result.status == "failed" and "MemoryError" in result.detail


def test_fork_bomb_is_capped_and_cleaned_up() -> None:
    program = (
        "import os, time\n"
        "pids = []\n"
        "try:\n"
        "    while True:\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        pids.append(pid)\n"
        "except OSError:\n"
        "    raise SystemExit(f'PIDS {pids}')\n"
    )
    result = run_program(program, timeout_s=10, max_processes=8)
    assert result.status == "failed", result
    children = _pids(result.detail)
    assert 1 <= len(children) <= 8
    deadline = time.monotonic() + 2
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in children)


def test_exponential_fork_bomb_leaves_nothing_behind() -> None:
    program = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    result = run_program(program, timeout_s=1.5, max_processes=16)
    assert not result.passed and result.status in ("timeout", "failed")
    if UID_ISOLATION:
        assert _our_sandbox_processes() == []


@pytest.mark.skipif(
    not UID_ISOLATION, reason="same-user isolation cannot find processes that left the session"
)
def test_processes_that_leave_the_session_are_killed() -> None:
    program = (
        "import os, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "raise SystemExit(f'PIDS [{pid}]')\n"
    )
    result = run_program(program, timeout_s=5)
    (child,) = _pids(result.detail)
    deadline = time.monotonic() + 2
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


_ESCAPES = {
    "open": "open(TARGET, 'w').write('x')\n",
    "os.open": "import os\nos.write(os.open(TARGET, os.O_WRONLY | os.O_CREAT), b'x')\n",
    "pathlib": "import pathlib\npathlib.Path(TARGET).write_text('x')\n",
    "rename-out": "import os\nopen('f', 'w').write('x')\nos.rename('f', TARGET)\n",
    "chdir": "import os\nos.chdir(os.path.dirname(TARGET))\nopen(os.path.basename(TARGET), 'w')\n",
    "dir_fd": (
        "import os\nd = os.open(os.path.dirname(TARGET), os.O_RDONLY)\n"
        "os.open(os.path.basename(TARGET), os.O_WRONLY | os.O_CREAT, dir_fd=d)\n"
    ),
    "symlink": "import os\nos.symlink(TARGET, 'link')\nopen('link', 'w').write('x')\n",
    "sqlite": "import sqlite3\nsqlite3.connect(TARGET).execute('create table t (x)')\n",
}


@pytest.mark.parametrize("how", sorted(_ESCAPES))
def test_writing_outside_its_directory_is_refused(how: str) -> None:
    target = Path("/tmp") / f"evalsuite-sandbox-escape-{uuid.uuid4().hex}"
    program = f"TARGET = {str(target)!r}\n" + _ESCAPES[how]
    try:
        result = run_program(program, timeout_s=5)
        assert result.status == "failed" and "PermissionError" in result.detail, result
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)


def test_writing_into_the_harness_directories_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    result = run_program(f"open({str(target)!r}, 'w').write('x')\n", timeout_s=5)
    assert result.status == "failed"
    assert not target.exists()


@pytest.mark.skipif(not UID_ISOLATION, reason="uid isolation needs root")
def test_program_runs_as_an_unprivileged_uid_without_rights_on_the_system() -> None:
    program = (
        "import os\n"
        "assert os.getuid() != 0 and os.geteuid() != 0 and os.getgid() != 0\n"
        "assert os.getgroups() == []\n"
        "assert not os.access('/etc/passwd', os.W_OK)\n"
        "assert not os.access('/etc', os.W_OK)\n"
        "assert os.access('.', os.W_OK)\n"
    )
    result = run_program(program, timeout_s=5)
    assert result.passed, result


@pytest.mark.parametrize(
    "program",
    [
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
        "import os, signal\nos.kill(-1, signal.SIGKILL)\n",
        "import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\n",
    ],
    ids=["parent", "everyone", "parent-group"],
)
def test_killing_other_processes_fails_and_the_run_goes_on(program: str) -> None:
    result = run_program(program, timeout_s=5)
    assert result.status == "failed", result
    assert run_program("assert True\n", timeout_s=5).passed


@pytest.mark.parametrize(
    "program",
    [
        "import subprocess\nsubprocess.run(['sh', '-c', 'true'])\n",
        "import os\nos.system('true')\n",
        "import os\nos.execv('/bin/sh', ['sh', '-c', 'true'])\n",
        "import ctypes\n",
    ],
    ids=["subprocess", "system", "exec", "ctypes"],
)
def test_starting_programs_and_ctypes_are_refused(program: str) -> None:
    result = run_program(program, timeout_s=5)
    assert result.status == "failed" and "PermissionError" in result.detail, result


def test_huge_output_does_not_hurt_the_harness() -> None:
    result = run_program(
        "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", timeout_s=10
    )
    assert not result.passed


# --- opt-in ------------------------------------------------------------------------------


def test_opt_in_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    assert not code_exec.execution_confirmed()
    with pytest.raises(CodeExecutionNotAllowedError) as err:
        code_exec.require_execution_confirmed("unit tests")
    assert isinstance(err.value, EvalsuiteError) and err.value.exit_code == EXIT_USAGE
    message = str(err.value)
    assert "--allow-code-execution" in message and ALLOW_ENV in message
    assert "--confirm_run_unsafe_code" in message
    monkeypatch.setenv(ALLOW_ENV, "0")
    assert not code_exec.execution_confirmed()
    monkeypatch.setenv(ALLOW_ENV, "1")
    assert code_exec.execution_confirmed()
    code_exec.require_execution_confirmed("unit tests")
