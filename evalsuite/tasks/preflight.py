"""Check task YAMLs and their data before any weight loads; explain what is wrong and where.

:func:`check_task_files` reads every YAML of the extra task directories (``--include-path``):
bytes that are not UTF-8, malformed YAML (with line and column) and keys lm-eval does not
know (with the closest known key) are refused. :func:`build_and_check` builds each task once
(prompts and data), turns the failures lm-eval reports as bare tracebacks into messages, and
checks the documents the run will use: a task with no documents, or an answer choice /
target that is empty (a zero-length continuation) is refused before anything is computed.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from evalsuite.errors import EvalsuiteError

YAML_SUFFIXES = (".yaml", ".yml")
#: Keys lm-eval's YAML loader handles itself (not TaskConfig / GroupConfig fields).
LOADER_KEYS = frozenset({"include", "group", "group_alias", "class"})


class TaskInputError(EvalsuiteError):
    """A task YAML or its data is malformed, incomplete or empty."""


def known_keys() -> tuple[frozenset[str], frozenset[str]]:
    """Top-level keys of a task YAML and of a group YAML, from lm-eval's own dataclasses."""
    from lm_eval.api.group import GroupConfig
    from lm_eval.api.task import TaskConfig

    task = frozenset(f.name for f in dataclasses.fields(TaskConfig)) | LOADER_KEYS
    group = frozenset(f.name for f in dataclasses.fields(GroupConfig)) | LOADER_KEYS
    return task, group


def _loader() -> Any:
    """A safe YAML loader that accepts lm-eval's ``!function`` tag (and any other tag)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def any_tag(loader: Any, suffix: str, node: Any) -> str:
        return f"!{suffix}"

    Loader.add_multi_constructor("!", any_tag)
    return Loader


def check_yaml_text(path: Path, raw: bytes) -> dict[str, Any] | None:
    """Parse one YAML file's bytes; raise :class:`TaskInputError` naming the problem."""
    import yaml

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise TaskInputError(
            f"{path}: line {line}: byte {raw[exc.start]:#04x} is not UTF-8 ({exc.reason}); "
            "save the file as UTF-8") from None
    try:
        doc = yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TaskInputError(
            f"{path}: {where}malformed YAML ({problem}); fix the syntax (indentation, "
            "quotes, brackets)") from None
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise TaskInputError(f"{path}: a task YAML must be a mapping of keys, got "
                             f"{type(doc).__name__}")
    if "class" in doc:  # a custom Task class takes its own configuration keys
        return doc
    task_keys, group_keys = known_keys()
    allowed = group_keys if "group" in doc and isinstance(doc.get("task"), list) else task_keys
    for key in doc:
        if str(key) not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise TaskInputError(
                f"{path}: unknown key {key!r}; {hint}lm-eval would stop with a TypeError. "
                "Fix the spelling or remove the key (known keys: lm-eval's TaskConfig fields)")
    return doc


def check_task_files(directories: Sequence[Path]) -> None:
    """Check every YAML under the given task directories (``--include-path``)."""
    for directory in directories:
        for path in sorted(Path(directory).rglob("*")):
            if path.suffix in YAML_SUFFIXES and path.is_file():
                check_yaml_text(path, path.read_bytes())


def _leaves(tree: Any) -> Iterator[tuple[str, Any]]:
    """(name, Task) pairs of a ``get_task_dict`` result (groups are nested dicts)."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value)
        elif value is not None:
            yield (getattr(key, "group_name", None) or str(key)), value


def _hint(exc: BaseException) -> str:
    text = str(exc)
    if type(exc).__name__ == "UndefinedError":
        return ("the data has no field the task's YAML uses; check the field names of the data "
                "file against doc_to_text / doc_to_target / doc_to_choice")
    if isinstance(exc, StopIteration) or "out of bounds for size 0" in text:
        return "the task has no documents; its data file or split is empty"
    if isinstance(exc, IndexError) and "string index" in text:
        return "an answer choice or target is an empty string (a zero-length continuation)"
    if isinstance(exc, KeyError):
        return f"the data has no field {text}; check the data file's field names"
    return "check the task's YAML and its data file"


def build_task(name: str, tm: Any, data_dir: str | os.PathLike[str] | None = None) -> Any:
    """``get_task_dict([name], tm)``, its failures explained (:class:`TaskInputError`);
    ``data_dir``: the run's offline data directory, named in the message."""
    from lm_eval.tasks import get_task_dict

    try:
        return get_task_dict([name], tm)
    except EvalsuiteError:
        raise
    except Exception as exc:  # lm-eval and datasets raise many types
        raise TaskInputError(
            f"task {name}{f' (data in {data_dir})' if data_dir else ''}: cannot be built: "
            f"{type(exc).__name__}: {str(exc)[:300]}; {_hint(exc)}") from None


def build_and_check(names: Sequence[str], tm: Any, limit: int | None,
                    data_dir: str | os.PathLike[str] | None = None) -> None:
    """Build every task (prompts and data) and check the documents the run will use."""
    for name in names:
        for leaf, task in _leaves(build_task(name, tm, data_dir)):
            check_documents(leaf, task, limit)


def check_documents(name: str, task: Any, limit: int | None) -> None:
    """Refuse a task without documents, or with an empty answer in the documents used."""
    docs = task.eval_docs
    if len(docs) == 0:
        raise TaskInputError(
            f"task {name}: no documents in its evaluation split; the data file is empty or "
            "the split name is wrong; fix the data or drop the task from --tasks")
    likelihood = task.OUTPUT_TYPE in ("multiple_choice", "loglikelihood")
    if not likelihood:
        return
    for index in range(len(docs) if limit is None else min(limit, len(docs))):
        doc = docs[index]
        answers = (task.doc_to_choice(doc) if task.OUTPUT_TYPE == "multiple_choice"
                   else [task.doc_to_target(doc)])
        for answer in answers:
            if isinstance(answer, str) and not answer.strip():
                raise TaskInputError(
                    f"task {name} doc {index}: answer {answer!r} is empty (a zero-length "
                    "continuation has no likelihood); fix the data or doc_to_choice / "
                    "doc_to_target so every answer has text")
