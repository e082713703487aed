"""Published numbers (``evalsuite/data/published.json``) and how runs are matched to them."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from evalsuite.errors import ConfigError
from evalsuite.resources import package_path

PUBLISHED_FILE = package_path("data", "published.json")

_ALIASES = {"minerva_math": "math", "hendrycks_math": "math", "math500": "math"}


@dataclass(frozen=True)
class Published:
    """One published score in percent, with its source citation."""

    models: tuple[str, ...]
    task: str
    value: float
    source: str
    note: str | None = None
    shots: int | None = None


def canonical_task(name: str) -> str:
    """``llada_gsm8k_instruct`` -> ``gsm8k``: the key published numbers are filed under."""
    key = name.lower()
    key = re.sub(r"^llada_", "", key)
    key = re.sub(r"(_instruct|_cot|_base|_chat)+$", "", key)
    return _ALIASES.get(key, key)


@lru_cache(maxsize=4)
def load_published(path: Path = PUBLISHED_FILE) -> tuple[Published, ...]:
    """Parse the published-numbers file; ConfigError when it is malformed."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        sources = raw["sources"]
        return tuple(
            Published(
                models=tuple(e["models"]),
                task=str(e["task"]),
                value=float(e["value"]),
                source=str(sources[e["source"]]),
                note=e.get("note"),
                shots=e.get("shots"),
            )
            for e in raw["entries"]
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: malformed published-numbers file ({exc!r})") from None


def lookup(
    model_names: Sequence[str], task: str, entries: Sequence[Published] | None = None
) -> Published | None:
    """The published entry for a model (any of its names, case-insensitive) and task, if any."""
    entries = load_published() if entries is None else entries
    names = {n.lower() for n in model_names if n}
    key = canonical_task(task)
    for entry in entries:
        if entry.task == key and names & {m.lower() for m in entry.models}:
            return entry
    return None
