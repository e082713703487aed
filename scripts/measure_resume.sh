#!/usr/bin/env bash
# Time a resumed run against a full one: a full run (no cache), the same run SIGKILLed after
# half of its generation batches, then the same command again (resume from the cache).
# Usage: scripts/measure_resume.sh [LIMIT]   (PYTHONPATH must point at the checkout)
set -uo pipefail
LIMIT=${LIMIT:-${1:-16}}
HALF=$((LIMIT / 2))
WORK=$(mktemp -d)
PY=${PYTHON:-.venv/bin/python}
ARGS=(run --model llada-tiny --tasks gsm8k --limit "$LIMIT" --batch-size 1
      --data-dir tests/fixtures/data --gen-length 64 --steps 64 --block-length 32)
t() { local s; s=$(date +%s.%N); "$@" >/dev/null 2>&1; local rc=$?; echo "$rc $(echo "$(date +%s.%N) - $s" | bc)"; }
read -r rc full < <(t "$PY" -m evalsuite "${ARGS[@]}" --output "$WORK/full" --no-cache)
echo "full run: ${full}s (rc $rc)"
read -r rc killed < <(t env EVALSUITE_KILL_AT="generate_until:$HALF" "$PY" -m evalsuite "${ARGS[@]}" --output "$WORK/resumed" --cache-dir "$WORK/cache")
echo "killed after $HALF of $LIMIT batches: ${killed}s (rc $rc)"
read -r rc resumed < <(t "$PY" -m evalsuite "${ARGS[@]}" --output "$WORK/resumed" --cache-dir "$WORK/cache")
echo "resumed run: ${resumed}s (rc $rc)"
"$PY" - "$WORK" <<'PYEOF'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
def only(root):
    (run,) = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return run
def rows(run):
    return [{k: v for k, v in json.loads(l).items() if k != "seconds"}
            for l in (run / "samples.jsonl").read_text().splitlines()]
full, resumed = only(work / "full"), only(work / "resumed")
cache = json.loads((resumed / "run.json").read_text())["extra"]["reliability"]["cache"]
print(f"per-sample results identical: {rows(full) == rows(resumed)}; from cache {cache['from_cache']}, computed {cache['computed']}")
PYEOF
rm -rf "$WORK"
