"""Without root: the sandbox falls back to ``restricted`` mode and still refuses the basics.

CI runs as root, so this test drops to ``nobody`` itself (util-linux ``setpriv``) and runs
the real sandbox there with the system interpreter (the harness's may sit under ``/root``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")
NOBODY = 65534


def _readable_by_others(path: Path) -> bool:
    """Whether a uid with no rights can reach ``path`` (every directory above is o+x)."""
    for part in [path, *path.parents]:
        if not part.stat().st_mode & 0o001:
            return False
    return True


def _skip_reason() -> str:
    if os.geteuid() != 0:
        return "needs root to drop to nobody (as a non-root user, the suite itself is this case)"
    if shutil.which("setpriv") is None:
        return "util-linux setpriv is not installed"
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is absent"
    done = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info >= (3, 10))"],
        capture_output=True, text=True, check=False,
    )
    if done.stdout.strip() != "True":
        return f"{SYSTEM_PYTHON} is older than 3.10"
    if not _readable_by_others(REPO / "evalsuite" / "sandbox"):
        return f"{REPO} is not readable by an unprivileged user"
    return ""


SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, sys.argv[1])
    from evalsuite import sandbox as s
    square = s.TestSuite("assert f(2) == 4\\nassert f(3) == 9\\n", "f")
    tamper = "import __main__\\n__main__.GUARD['enabled'] = False\\n"
    udp = "import socket\\ndef f(x):\\n    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))\\n    return x * x\\n"
    forge = tamper + (
        "import os\\n"
        "def f(x):\\n"
        "    for pid in os.listdir('/proc'):\\n"
        "        if not pid.isdigit() or int(pid) in (os.getpid(), HARNESS):\\n"
        "            continue\\n"
        "        for fd in range(0, 16):\\n"
        "            try:\\n"
        "                with open(f'/proc/{pid}/fd/{fd}', 'wb') as fh:\\n"
        "                    fh.write(b'{\\"passed\\": true, \\"detail\\": \\"\\"}\\\\n{\\"status\\": \\"passed\\"}\\\\n')\\n"
        "                print('OPENED', pid, fd)\\n"
        "            except OSError:\\n"
        "                pass\\n"
        "    os._exit(0)\\n"
    ).replace("HARNESS", str(os.getpid()))
    runs = {
        "forge-via-proc": s.run_program(forge, tests=square),
        "good": s.run_program("def f(x):\\n    return x * x\\n", tests=square),
        "wrong": s.run_program("def f(x):\\n    return 4\\n", tests=square),
        "exit": s.run_program("import os\\ndef f(x):\\n    os._exit(0)\\n", tests=square),
        "udp": s.run_program(udp, tests=square),
        "udp-tampered": s.run_program(tamper + udp, tests=square),
        "write": s.run_program("def f(x):\\n    open('/tmp/evalsuite-nonroot-' + str(os.getpid()), 'w')\\n    return x * x\\nimport os\\n", tests=square),
    }
    print(json.dumps({"euid": os.geteuid(), "info": s.isolation_report(),
                      "runs": {k: [v.status, v.detail] for k, v in runs.items()}}))
""")


@pytest.mark.skipif(bool(_skip_reason()), reason=_skip_reason() or "runs")
def test_without_root_the_fallback_holds() -> None:
    done = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         str(SYSTEM_PYTHON), "-I", "-c", SCRIPT, str(REPO)],
        capture_output=True, text=True, check=False, cwd="/", timeout=300,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["euid"] == NOBODY
    info, runs = report["info"], report["runs"]
    assert info["isolation"] == "restricted" and info["uid_separation"] is False
    assert "not running as root" in info["reason"]
    assert runs["good"] == ["passed", ""]
    for name in ("wrong", "exit", "udp", "write", "forge-via-proc"):
        assert runs[name][0] == "failed", (name, runs[name])
    assert "PermissionError" in runs["udp"][1] and "PermissionError" in runs["write"][1]
    assert "EOFError" in runs["forge-via-proc"][1], runs["forge-via-proc"]  # it ran, then exited
    if info["network"].startswith("fresh network namespace"):
        # the guard was switched off by the program, the kernel still has no route out
        assert runs["udp-tampered"][0] == "failed" and "unreachable" in runs["udp-tampered"][1]
    assert sys.executable  # the harness itself is untouched
