"""Where a result came from: interpreter, platform, package versions, harness git state.

Nothing here names the host or user; the record is safe to commit and share.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES: tuple[str, ...] = (
    "evalsuite",
    "lm_eval",
    "torch",
    "transformers",
    "datasets",
    "accelerate",
    "math_verify",
    "gguf",
    "tokenizers",
    "safetensors",
    "numpy",
    "vllm",
)
"""Packages whose versions can change a number; absent ones are recorded as ``None``."""


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed distribution version per name (``None`` when not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            try:
                out[name] = metadata.version(name.replace("_", "-"))
            except metadata.PackageNotFoundError:
                out[name] = None
    return out


def git_state(repo: Path) -> dict[str, Any]:
    """``{"revision": sha | None, "dirty": bool | None}`` of the git checkout at ``repo``.

    ``dirty`` is true when tracked files differ from the commit (untracked files are ignored,
    so results written inside the tree do not make later runs dirty).
    """

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(repo), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    revision = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"revision": revision, "dirty": None if status is None else bool(status)}


def harness_root() -> Path:
    """The directory holding the ``evalsuite`` package (the repository root in a checkout)."""
    return Path(__file__).resolve().parents[2]


def display_id(hub_id: str) -> str:
    """Hub ids as given; paths inside the installed package as ``evalsuite/...`` (portable)."""
    path = Path(hub_id)
    package = Path(__file__).resolve().parents[1]
    if path.is_absolute() and path.resolve().is_relative_to(package):
        return str(Path("evalsuite") / path.resolve().relative_to(package))
    return hub_id


def collect_environment() -> dict[str, Any]:
    """Provenance for a run record: python, platform, package versions, harness git state."""
    torch_info: dict[str, Any] = {}
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch_info = {
            "threads": torch.get_num_threads(),
            "cuda": getattr(torch.version, "cuda", None),
        }
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
        },
        "packages": package_versions(),
        "git": git_state(harness_root()),
        "torch": torch_info,
    }
