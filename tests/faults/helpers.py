"""Running a real ``evalsuite run`` subprocess and reading what it left behind."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "fixtures" / "data"
FAST = ["--gen-length", "16", "--steps", "8", "--block-length", "8", "--mc-num", "16"]


def evalsuite_run(args: list[str], *, env: dict[str, str] | None = None,
                  timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m evalsuite run ARGS`` in a fresh process (this worktree on PYTHONPATH)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", **(env or {})}
    full_env.pop("EVALSUITE_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "evalsuite", "run", *args], cwd=ROOT,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def run_dirs(root: Path) -> list[Path]:
    """Finished run directories (hidden temporary ones excluded)."""
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def samples(run_dir: Path, *, drop: tuple[str, ...] = ("seconds",)) -> list[dict[str, Any]]:
    """The run's per-sample records, without the measured wall time."""
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def record(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


def cached_counts(cache_dir: Path) -> dict[str, int]:
    """Entries per request kind in a request cache (read with a separate connection)."""
    db = cache_dir / "requests.sqlite"
    if not db.exists():
        return {}
    con = sqlite3.connect(str(db))
    try:
        return dict(con.execute("SELECT kind, COUNT(*) FROM answers GROUP BY kind").fetchall())
    finally:
        con.close()
