"""Task names: short names -> lm-eval task/group names, and the TaskManager over the suite.

The suite is the lm-eval YAMLs shipped inside the package (``evalsuite/tasks/yaml``, package
data found through :mod:`importlib.resources`), so an installed wheel has every task.

Short names (``gsm8k``, ``mmlu``, ...) and full names (``llada_gsm8k``, a subtask such as
``llada_mmlu_anatomy``) are accepted. For instruct models the instruct variant is chosen
where the protocol differs (``mmlu`` -> ``llada_mmlu_instruct``). Resolution reads only the
YAML files' ``task:``/``group:`` lines: no lm-eval, torch or model import.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Final, get_args

from evalsuite.errors import UnknownNameError, did_you_mean
from evalsuite.presets import Family

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager

#: Short name -> top-level task or group of the suite.
SHORT_NAMES: Final[dict[str, str]] = {
    "gsm8k": "llada_gsm8k",
    "mmlu": "llada_mmlu",
    "piqa": "llada_piqa",
    "math": "llada_math",
    "bbh": "llada_bbh",
    "humaneval": "llada_humaneval",
    "poem_forward": "llada_poem_forward",
    "poem_backward": "llada_poem_backward",
}

_INSTRUCT_SUFFIX: Final = "_instruct"
_NAME_LINE = re.compile(r"^(?:task|group):\s*['\"]?([A-Za-z0-9_.\-]+)['\"]?\s*$", re.MULTILINE)


def tasks_dir() -> Path:
    """The task YAML directory shipped in the package (``evalsuite/tasks/yaml``)."""
    from evalsuite.resources import package_path

    return package_path("tasks", "yaml")


TASKS_DIR: Final[Path] = tasks_dir()
MINIATURE_DIR: Final = "llada_miniature"


@lru_cache(maxsize=8)
def _names_in(directory: Path) -> frozenset[str]:
    names: set[str] = set()
    for path in directory.rglob("*.yaml"):
        names.update(_NAME_LINE.findall(path.read_text(encoding="utf-8")))
    return frozenset(names)


_UNSAFE_LINE = re.compile(r"^unsafe_code:\s*true\s*$", re.MULTILINE | re.IGNORECASE)
_INCLUDE_LINE = re.compile(r"^include:\s*['\"]?([\w.\-/]+)", re.MULTILINE)


def _is_unsafe(path: Path, depth: int = 0) -> bool:
    """Whether a YAML, or one it includes, says ``unsafe_code: true`` (executes model output)."""
    text = path.read_text(encoding="utf-8")
    if _UNSAFE_LINE.search(text):
        return True
    parent = _INCLUDE_LINE.search(text)
    target = path.parent / parent.group(1) if parent else None
    return bool(target and depth < 8 and target.is_file() and _is_unsafe(target, depth + 1))


def unsafe_task_names(names: Sequence[str], extra_dirs: Sequence[Path] = (),
                      root: Path | None = None) -> list[str]:
    """The requested tasks that execute model-written code (lm-eval's ``unsafe_code``).

    ``root``: the suite directory (default :func:`tasks_dir`)."""
    wanted = set(names)
    unsafe: set[str] = set()
    for directory in (root or tasks_dir(), *map(Path, extra_dirs)):
        for path in directory.rglob("*.yaml"):
            found = set(_NAME_LINE.findall(path.read_text(encoding="utf-8"))) & wanted
            if found and _is_unsafe(path):
                unsafe |= found
    return sorted(unsafe)


def known_task_names(root: Path | None = None) -> frozenset[str]:
    """Every task and group name defined by the YAMLs of ``root`` (default :func:`tasks_dir`)."""
    return _names_in(Path(root).resolve() if root else tasks_dir())


def miniature_task_names(root: Path | None = None) -> frozenset[str]:
    """The miniature study's tasks (``llada_miniature``), offered next to the paper's."""
    directory = (Path(root) if root else tasks_dir()) / MINIATURE_DIR
    return _names_in(directory) if directory.is_dir() else frozenset()


def _instruct_variant(name: str, known: frozenset[str]) -> str:
    """The instruct counterpart of a task or subtask name, or the name itself if none."""
    if name.endswith(_INSTRUCT_SUFFIX) or f"{_INSTRUCT_SUFFIX}_" in name:
        return name
    for base in sorted((k[: -len(_INSTRUCT_SUFFIX)] for k in known if k.endswith(_INSTRUCT_SUFFIX)), key=len, reverse=True):
        if name == base or name.startswith(base + "_"):
            candidate = base + _INSTRUCT_SUFFIX + name[len(base) :]
            if candidate in known:
                return candidate
    return name


def resolve_tasks(
    names: Sequence[str], family: Family, extra_dirs: Sequence[Path] = (),
    root: Path | None = None,
) -> list[str]:
    """lm-eval task/group names for user-given short or full names, in order, without repeats.

    ``family`` "instruct" picks the instruct variant where one exists (the protocol differs).
    Tasks defined in ``extra_dirs`` (``--include-path``) are accepted by their full names;
    ``root`` is the suite directory (default :func:`tasks_dir`).
    Raises UnknownNameError (with the closest names) for an unknown name or family.
    """
    if family not in get_args(Family):
        raise UnknownNameError(did_you_mean(str(family), get_args(Family), "model family"))
    if not names:
        raise UnknownNameError(f"no task given; choose among {', '.join(SHORT_NAMES)}.")
    suite = Path(root).resolve() if root else tasks_dir()
    known = known_task_names(suite).union(*(_names_in(Path(d).resolve()) for d in extra_dirs))
    resolved: list[str] = []
    for raw in names:
        name = raw.strip()
        full = SHORT_NAMES.get(name, name)
        if full not in known:
            if name in SHORT_NAMES:
                raise UnknownNameError(
                    f"task {name!r} maps to {full!r}, which no YAML in {suite} defines; "
                    "the installed package is incomplete: reinstall evalsuite."
                )
            top_level = {n for base in SHORT_NAMES.values() for n in (base, base + _INSTRUCT_SUFFIX)}
            study = miniature_task_names(suite)
            raise UnknownNameError(did_you_mean(name, set(SHORT_NAMES) | (top_level & known) | study, "task"))
        if family == "instruct":
            full = _instruct_variant(full, known)
        if full not in resolved:
            resolved.append(full)
    return resolved


def task_manager(
    metadata: dict[str, object] | None = None, extra_dirs: Sequence[Path] = (),
    root: Path | None = None,
) -> TaskManager:
    """lm-eval TaskManager over the suite (``root``, default :func:`tasks_dir`) plus
    ``extra_dirs``, no built-in tasks: fast to index."""
    from lm_eval.tasks import TaskManager

    paths = [str(root or tasks_dir()), *(str(d) for d in extra_dirs)]
    include: str | list[str] = paths[0] if len(paths) == 1 else paths
    return TaskManager(include_path=include, include_defaults=False, metadata=metadata)
