"""The results store: one directory per run, written atomically, read with validation.

Layout (see :mod:`evalsuite.results.schema`)::

    results/runs/<run-id>/run.json        run record, schema_version, integrity hashes
    results/runs/<run-id>/samples.jsonl   one sample record per document

Writing
    A run is assembled in a hidden sibling directory ``.tmp-<run-id>-<pid>`` (files fsynced)
    and moved into place with one ``rename``. Readers therefore see a complete run or nothing.
    Run ids carry a UTC timestamp and random suffix, so concurrent writers never collide, and
    ``rename`` refuses to replace a non-empty directory, so a run never overwrites another.
Reading
    :func:`read_run` accepts a v1 or v2 run directory (v1 migrated on read), an lm-eval output directory or
    ``results_*.json`` file (schema v0, migrated on read). Any problem raises ResultsError
    naming the file and what is wrong.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from evalsuite import faultpoints
from evalsuite.errors import ResultsError
from evalsuite.results.convert import (
    RequestStats,
    RunFacts,
    convert_lm_eval,
    epoch_to_iso,
    utc_now_iso,
)
from evalsuite.results.migrations import upgrade
from evalsuite.results.schema import (
    RUN_FILE,
    SAMPLES_FILE,
    SCHEMA_VERSION,
    Run,
    RunRecord,
    SampleRecord,
    run_from_dict,
    run_to_dict,
    sample_from_dict,
    sample_to_dict,
)

__all__ = ["Run", "Skipped", "find_runs", "new_run_id", "read_run", "read_runs", "write_run",
           "write_run_from_lm_eval"]  # Run lives in schema; re-exported for older imports


@dataclass(frozen=True)
class Skipped:
    """An input that could not be loaded, with the reason (already naming the file)."""

    path: Path
    message: str


# ---------------------------------------------------------------- writing


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:48] or "run"


def new_run_id(preset: str) -> str:
    """``<UTC yyyymmddTHHMMSSZ>-<preset slug>-<6 hex>``: sortable by time, unique."""
    stamp = utc_now_iso().replace("-", "").replace(":", "")
    return f"{stamp}-{_slug(preset)}-{secrets.token_hex(3)}"


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_run(root: Path, record: RunRecord, samples: Iterable[SampleRecord]) -> Path:
    """Write a new run directory ``root/<record.run_id>`` atomically and return it.

    Raises ResultsError when a run with that id already exists (it is never replaced).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / record.run_id
    if final.exists():
        raise ResultsError(
            f"{final}: a run with this id already exists; runs are never overwritten"
        )
    samples_bytes = b"".join(
        json.dumps(sample_to_dict(s), ensure_ascii=False, sort_keys=True).encode() + b"\n"
        for s in samples
    )
    body = run_to_dict(record)
    body["integrity"] = {
        "record_sha256": _sha256(_canonical(body)),
        "samples_sha256": _sha256(samples_bytes),
        "n_samples": samples_bytes.count(b"\n"),
    }
    tmp = root / f".tmp-{record.run_id}-{os.getpid()}-{secrets.token_hex(2)}"
    tmp.mkdir()
    try:
        _write_file(tmp / SAMPLES_FILE, samples_bytes)
        faultpoints.reached("write_run")
        _write_file(tmp / RUN_FILE, json.dumps(body, indent=1, ensure_ascii=False).encode() + b"\n")
        _fsync_dir(tmp)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise ResultsError(
                    f"{final}: a run with this id already exists; runs are never overwritten"
                ) from exc
            raise
        _fsync_dir(root)
    finally:
        if tmp.exists():
            for child in tmp.iterdir():
                child.unlink()
            tmp.rmdir()
    return final


def write_run_from_lm_eval(
    root: Path,
    lm_eval_output: Mapping[str, Any],
    facts: RunFacts,
    request_stats: RequestStats,
) -> Path:
    """Convert a ``simple_evaluate(..., log_samples=True)`` output and write it as a new run.

    ``facts``: what the run knows (:class:`~evalsuite.results.convert.RunFacts`);
    ``request_stats``: :data:`~evalsuite.results.convert.RequestStats`. Returns the new run
    directory.
    """
    record, samples = convert_lm_eval(
        lm_eval_output, facts, request_stats, run_id=new_run_id(facts.model.preset or "run"),
        created_utc=utc_now_iso()
    )
    return write_run(root, record, samples)


# ---------------------------------------------------------------- reading


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot be read ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "the file is truncated or was edited by hand. Re-run the evaluation or restore "
            "the file."
        ) from None


def _read_jsonl(path: Path) -> tuple[list[Any], bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ResultsError(
            f"{path}: missing; the run has no per-sample records. Re-run with sample logging "
            "(evalsuite run always logs samples)."
        ) from None
    rows = []
    for lineno, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ResultsError(
                f"{path}: line {lineno} is not valid JSON ({exc.msg}); the file is truncated or "
                "was edited by hand. Re-run the evaluation or restore the file."
            ) from None
    return rows, data


def _load_v1(run_dir: Path, with_samples: bool) -> Run:
    run_path = run_dir / RUN_FILE
    body = _read_json(run_path)
    if not isinstance(body, dict):
        raise ResultsError(f"{run_path}: expected a JSON object at the top level")
    if "schema_version" not in body:
        raise ResultsError(f"{run_path}: no schema_version; this is not an evalsuite run record")
    version = body["schema_version"]
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or not 1 <= version <= SCHEMA_VERSION
    ):
        raise ResultsError(
            f"{run_path}: unknown schema_version {version!r}; this evalsuite reads versions "
            f"0..{SCHEMA_VERSION}. Upgrade evalsuite to read newer runs."
        )
    integrity = body.pop("integrity", None)
    if not isinstance(integrity, dict):
        raise ResultsError(f"{run_path}: no integrity block; the file was not written by evalsuite")
    if integrity.get("record_sha256") != _sha256(_canonical(body)):
        raise ResultsError(
            f"{run_path}: content does not match its recorded sha256; the file was edited after "
            "the run was written. Restore it or re-run; result files are not meant to be edited."
        )
    samples_raw: list[Any] = []
    if with_samples:
        samples_path = run_dir / SAMPLES_FILE
        samples_raw, data = _read_jsonl(samples_path)
        if not samples_raw:
            raise ResultsError(f"{samples_path}: empty; the run has no per-sample records")
        if integrity.get("samples_sha256") != _sha256(data):
            expected = integrity.get("n_samples")
            raise ResultsError(
                f"{samples_path}: does not match the sha256 recorded in {RUN_FILE} "
                f"({len(samples_raw)} records, {expected} written); the file is truncated or was "
                "edited after the run was written. Restore it or re-run."
            )
    doc = upgrade({"schema_version": version, "run": body, "samples": samples_raw})
    return _build(run_dir, run_path, doc, with_samples)


def _build(path: Path, run_path: Path, doc: Mapping[str, Any], with_samples: bool) -> Run:
    try:
        record = run_from_dict(doc["run"])
    except ResultsError as exc:
        raise ResultsError(f"{run_path}: {exc}") from None
    samples: list[SampleRecord] = []
    for i, raw in enumerate(doc["samples"]):
        try:
            samples.append(sample_from_dict(raw, f"sample {i + 1}"))
        except ResultsError as exc:
            raise ResultsError(f"{path / SAMPLES_FILE}: {exc}") from None
    if with_samples:
        if not samples:
            raise ResultsError(f"{path}: the run has no per-sample records")
        counts: dict[str, int] = {}
        for s in samples:
            counts[s.task] = counts.get(s.task, 0) + 1
        for task in record.leaf_tasks():
            if counts.get(task.name, 0) != task.n_samples:
                raise ResultsError(
                    f"{path}: task {task.name} has {counts.get(task.name, 0)} sample records, "
                    f"the run record says {task.n_samples}"
                )
    return Run(path=path, record=record, samples=tuple(samples))


_LEGACY_RESULTS = re.compile(r"^results_(?P<stamp>.+)\.json$")


def _load_legacy(results_file: Path, with_samples: bool) -> Run:
    """Read lm-eval's ``results_<stamp>.json`` + ``samples_<task>_<stamp>.jsonl`` (schema v0)."""
    body = _read_json(results_file)
    if not isinstance(body, dict) or not isinstance(body.get("results"), dict):
        raise ResultsError(f"{results_file}: not an lm-eval results file (no 'results' object)")
    match = _LEGACY_RESULTS.match(results_file.name)
    stamp = match.group("stamp") if match else results_file.stem
    samples: dict[str, list[Any]] = {}
    for name in sorted(body.get("configs") or body["results"]):
        candidate = results_file.parent / f"samples_{name}_{stamp}.jsonl"
        if candidate.exists():
            samples[name], _ = _read_jsonl(candidate)
    if not samples:
        raise ResultsError(
            f"{results_file}: no samples_<task>_{stamp}.jsonl beside it; the run has no "
            "per-sample records. Re-run lm_eval with --log_samples."
        )
    legacy = {
        "lm_eval": body,
        "samples": samples,
        "run_id": f"lm-eval-{_slug(results_file.parent.name)}-{_slug(stamp)}",
        "created_utc": epoch_to_iso(body.get("date")) or "unknown",
    }
    try:
        doc = upgrade({"schema_version": 0, "run": legacy, "samples": []})
    except ResultsError as exc:
        raise ResultsError(f"{results_file}: {exc}") from None
    return _build(results_file.parent, results_file, doc, with_samples)


def read_run(path: Path | str, *, samples: bool = True) -> Run:
    """Load one run: a run directory, an lm-eval output directory or ``results_*.json``.

    With ``samples=False`` only the run record is read and checked (faster, for tables).
    Raises ResultsError naming the file and the problem.
    """
    path = Path(path)
    if path.is_file():
        if path.name == RUN_FILE:
            return _load_v1(path.parent, samples)
        if _LEGACY_RESULTS.match(path.name):
            return _load_legacy(path, samples)
        raise ResultsError(f"{path}: not a run directory, {RUN_FILE} or lm-eval results_*.json")
    if not path.is_dir():
        raise ResultsError(f"{path}: no such run directory")
    if (path / RUN_FILE).exists():
        return _load_v1(path, samples)
    legacy = sorted(path.glob("results_*.json"))
    if len(legacy) == 1:
        return _load_legacy(legacy[0], samples)
    if len(legacy) > 1:
        raise ResultsError(
            f"{path}: holds {len(legacy)} lm-eval results files; name one results_*.json"
        )
    raise ResultsError(f"{path}: not a run directory (no {RUN_FILE} and no lm-eval results_*.json)")


def find_runs(paths: Iterable[Path | str], *, depth: int = 3) -> list[Path]:
    """Expand inputs to run locations: a run itself, or a directory holding runs.

    Directories that are not runs are searched ``depth`` levels down (``results/`` finds
    ``results/runs/*`` and ``results/baselines/*``). Hidden directories (writes in progress)
    are ignored. A directory that is neither a run nor holds sub-directories is returned as-is
    so that :func:`read_run` reports it (a run directory that lost its ``run.json``).
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and not (p / RUN_FILE).exists():
            legacy = sorted(p.glob("results_*.json"))
            if len(legacy) > 1:
                out.extend(legacy)
                continue
            if not legacy and depth > 0:
                children = sorted(
                    c for c in p.iterdir() if c.is_dir() and not c.name.startswith(".")
                )
                if children:
                    out.extend(find_runs(children, depth=depth - 1))
                    continue
        out.append(p)
    return out


def read_runs(
    paths: Iterable[Path | str],
    *,
    samples: bool = True,
    on_error: Literal["raise", "skip"] = "raise",
) -> tuple[list[Run], list[Skipped]]:
    """Load every run under ``paths``; with ``on_error="skip"`` bad ones are returned as Skipped."""
    runs: list[Run] = []
    skipped: list[Skipped] = []
    for p in find_runs(paths):
        try:
            runs.append(read_run(p, samples=samples))
        except ResultsError as exc:
            if on_error == "raise":
                raise
            skipped.append(Skipped(p, str(exc)))
    return runs, skipped
