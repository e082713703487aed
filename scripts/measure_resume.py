"""Time a resumed run against a full one (README, "Reliability").

A full run without the cache; the same run SIGKILLed after half of its generation batches
(``EVALSUITE_KILL_AT``); the same command again, resuming from the cache. Prints wall and CPU
seconds of each process (CPU time is the fairer number on a shared machine) and checks that
the resumed run's per-sample results equal the full run's.

    PYTHONPATH=. .venv/bin/python scripts/measure_resume.py --limit 16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], env: dict[str, str]) -> tuple[int, float, float]:
    """(return code, wall seconds, CPU seconds of the child) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    code = subprocess.run(cmd, env=env, capture_output=True).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return code, wall, cpu


def rows(root: Path) -> list[dict]:
    (run,) = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (run / "samples.jsonl").read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    base = [sys.executable, "-m", "evalsuite", "run", "--model", "llada-tiny", "--tasks", "gsm8k",
            "--limit", str(args.limit), "--batch-size", "1", "--data-dir", "tests/fixtures/data",
            "--gen-length", "64", "--steps", "64", "--block-length", "32"]
    env = dict(os.environ)
    env.pop("EVALSUITE_KILL_AT", None)
    full = timed([*base, "--output", str(work / "full"), "--no-cache"], env)
    cached = ["--output", str(work / "resumed"), "--cache-dir", str(work / "cache")]
    half = args.limit // 2
    killed = timed([*base, *cached], {**env, "EVALSUITE_KILL_AT": f"generate_until:{half}"})
    resumed = timed([*base, *cached], env)
    for name, (code, wall, cpu) in (("full", full), (f"killed after {half}/{args.limit}", killed),
                                    ("resumed", resumed)):
        print(f"{name:22s} rc {code:4d}  wall {wall:7.1f} s  cpu {cpu:7.1f} s")
    record = json.loads(next(p for p in (work / "resumed").iterdir()
                             if not p.name.startswith(".")).joinpath("run.json").read_text())
    cache = record["reliability"]["cache"]
    print(f"resumed/full: wall {resumed[1] / full[1]:.2f}, cpu {resumed[2] / full[2]:.2f}; "
          f"from cache {cache['from_cache']}, computed {cache['computed']}; per-sample results "
          f"identical: {rows(work / 'full') == rows(work / 'resumed')}")


if __name__ == "__main__":
    main()
