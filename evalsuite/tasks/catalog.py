"""The task suite as a catalog: every task and group, its kind, documents and settings source.

What ``evalsuite tasks`` lists. The YAMLs are read with PyYAML (``include:`` templates merged,
``!function`` tags kept as their dotted names, nothing imported), so listing needs neither
lm-eval nor torch. Documents are counted only where the data is local: the miniature study's
tasks (their data ships in the package) always, the paper's tasks when a data directory in the
layout of shared/data is given; the hub is never contacted.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from evalsuite.errors import EvalsuiteError
from evalsuite.tasks.data import DATA_DIR_META

Kind = Literal["task", "group"]
SettingsSource = Literal["paper table", "YAML", "default", "-"]

#: Loader modules whose data ships inside the package (counted without a data directory).
PACKAGED_DATA_MODULES: Final = ("evalsuite.tasks.miniature",)
_SOURCE_LABELS: Final[dict[str, SettingsSource]] = {"paper_table": "paper table", "yaml": "YAML",
                                                    "default": "default"}


@dataclass(frozen=True)
class CatalogEntry:
    """One task or group of the suite."""

    name: str
    kind: Kind
    path: Path
    """The YAML that defines it."""
    config: Mapping[str, Any]
    """Its YAML, ``include:`` templates merged (``!function`` values as dotted names)."""
    members: tuple[str, ...] = ()
    """Groups: the task, group or tag names they list."""
    tags: tuple[str, ...] = ()
    """Tasks: the tags they carry (groups may list a tag)."""


@dataclass(frozen=True)
class Catalog:
    """Every task and group under one suite directory (plus extra directories)."""

    entries: Mapping[str, CatalogEntry]
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Tag -> the tasks that carry it."""

    def leaves(self, name: str, depth: int = 0) -> list[str]:
        """The tasks under a task, group or tag name (a task: itself)."""
        entry = self.entries.get(name)
        if entry is None:
            return [leaf for t in self.tags.get(name, ()) for leaf in self.leaves(t, depth + 1)]
        if entry.kind == "task" or depth > 16:
            return [name]
        return [leaf for m in entry.members for leaf in self.leaves(m, depth + 1)]

    def select(self, substring: str | None = None) -> list[CatalogEntry]:
        """Entries whose name contains ``substring`` (case-insensitive), sorted by name."""
        needle = (substring or "").lower()
        return [e for n, e in sorted(self.entries.items()) if needle in n.lower()]


class _Loader(yaml.SafeLoader):
    """A safe YAML loader that keeps ``!function a.b.c`` as the string ``a.b.c``."""


_Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _read(path: Path, depth: int = 0) -> dict[str, Any]:
    """A YAML file with its ``include:`` chain merged (the including file wins)."""
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}  # noqa: S506
    if not isinstance(data, dict):
        return {}
    parent = data.pop("include", None)
    if isinstance(parent, str) and depth < 8 and (path.parent / parent).is_file():
        return {**_read(path.parent / parent, depth + 1), **data}
    return data


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v if isinstance(v, str) else str(v.get("task") or v.get("group"))
                     for v in value if isinstance(v, (str, dict)))
    return ()


def _yaml_files(directory: Path) -> Iterator[Path]:
    yield from sorted(p for p in directory.rglob("*.yaml") if p.is_file())


def build_catalog(root: Path | None = None, extra_dirs: Sequence[Path] = ()) -> Catalog:
    """Read every task and group YAML of ``root`` (default: the packaged suite) and
    ``extra_dirs``."""
    from evalsuite.tasks.registry import tasks_dir

    entries: dict[str, CatalogEntry] = {}
    tags: dict[str, list[str]] = {}
    for directory in (Path(root) if root else tasks_dir(), *map(Path, extra_dirs)):
        for path in _yaml_files(directory):
            config = _read(path)
            if isinstance(config.get("group"), str):
                name = config["group"]
                members = _names(config.get("task"))
                entries[name] = CatalogEntry(name, "group", path, config, members)
            elif isinstance(config.get("task"), str):
                name = config["task"]
                carried = _names(config.get("tag"))
                entries[name] = CatalogEntry(name, "task", path, config, tags=carried)
                for tag in carried:
                    tags.setdefault(tag, []).append(name)
    return Catalog(entries, {t: tuple(sorted(n)) for t, n in tags.items()})


def _loader(dotted: str) -> Any:
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def task_documents(entry: CatalogEntry, data_dir: Path | None) -> int | None:
    """Documents in a task's evaluation split (``test_split``, else ``validation_split``), or
    None when its data is not local (hub data without ``data_dir``; not an evalsuite loader).

    Raises :class:`~evalsuite.errors.EvalsuiteError` (naming the file) when ``data_dir`` lacks
    a file the task needs."""
    dotted = entry.config.get("custom_dataset")
    split = entry.config.get("test_split") or entry.config.get("validation_split")
    if not isinstance(dotted, str) or not dotted.startswith("evalsuite.") or not split:
        return None
    packaged = dotted.rpartition(".")[0] in PACKAGED_DATA_MODULES
    if not packaged and data_dir is None:
        return None
    kwargs = dict(entry.config.get("dataset_kwargs") or {})
    if not packaged:
        kwargs[DATA_DIR_META] = str(data_dir)
    dataset = _loader(dotted)(**kwargs)
    return len(dataset[split])


def documents(catalog: Catalog, name: str, data_dir: Path | None,
              memo: dict[str, int | str | None] | None = None) -> int | str | None:
    """Documents of a task, or summed over a group's tasks; None when not local, ``"missing"``
    when ``data_dir`` lacks a file a task needs. ``memo`` keeps the per-task counts between
    calls with the same catalog and ``data_dir`` (a listing counts each task once)."""
    memo = {} if memo is None else memo
    counts: list[int] = []
    for leaf in dict.fromkeys(catalog.leaves(name)):
        if leaf not in memo:
            entry = catalog.entries.get(leaf)
            try:
                memo[leaf] = None if entry is None else task_documents(entry, data_dir)
            except EvalsuiteError:
                memo[leaf] = "missing"
        count = memo[leaf]
        if not isinstance(count, int):
            return count
        counts.append(count)
    return sum(counts) if counts else None


def settings_source(catalog: Catalog, name: str) -> SettingsSource:
    """Where a task's diffusion settings come from when no flag overrides them (base family),
    judged by its main knob (``gen_length`` for generation, ``mc_num`` for likelihood): the
    paper's table, the task YAML's generation kwargs, or the harness defaults; a group reports
    its tasks' source when they agree, ``-`` otherwise."""
    from evalsuite.errors import ConfigError
    from evalsuite.settings import Overrides, TaskInfo, resolve

    found: set[SettingsSource] = set()
    for leaf in dict.fromkeys(catalog.leaves(name)):
        entry = catalog.entries.get(leaf)
        if entry is None:
            return "-"
        output_type = str(entry.config.get("output_type") or "generate_until")
        gen_kwargs = (dict(entry.config.get("generation_kwargs") or {})
                      if output_type == "generate_until" else {})
        try:
            info = TaskInfo(leaf, output_type)  # type: ignore[arg-type]
            _, provenance = resolve(info, "base", gen_kwargs, Overrides({}, "cli"))
        except ConfigError:
            return "-"
        knob = "gen_length" if output_type == "generate_until" else "mc_num"
        found.add(_SOURCE_LABELS.get(provenance.sources.get(knob, "default"), "default"))
    return found.pop() if len(found) == 1 else "-"
