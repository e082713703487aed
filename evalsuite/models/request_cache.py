"""Request cache: finished requests in SQLite, so that a killed run resumes where it stopped.

One row per answered request, keyed by the SHA-256 of everything that can change its answer
(:func:`request_key`): the model identity (checkpoint content fingerprint, tokenizer files,
dtype, device type, adapter knobs such as ``max_length``), the request itself (context and
continuation, or context, stop sequences and generation kwargs), every resolved sampler or
estimator setting, the per-request seed with the repeat index, the evalsuite version, the
source of the code that computes answers (:data:`ANSWER_CODE`) and
:data:`CACHE_SCHEMA_VERSION`. A changed setting gives a different key, so an entry is never
reused for a different computation.

The database runs in WAL mode and every batch is committed as one transaction as soon as it
finishes: a SIGKILL at any point loses at most the batch in flight, and a reader never sees a
half-written batch. ``synchronous=NORMAL`` keeps commits cheap; it is durable against a crash
of the process (what a kill is), not against a power cut of the machine, after which only the
last batches are recomputed.

Why not lm-eval's ``--use_cache``: lm-eval 0.4.13 hashes only the request arguments (the
context and continuation or generation kwargs), not the model arguments, so a changed
``steps``, ``mc_num`` or ``temperature`` returns the old answers. The adapter refuses it
(:func:`refuse_lm_eval_cache`); pass ``request_cache=DIR`` in ``model_args`` instead.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalsuite import faultpoints
from evalsuite.errors import ConfigError, EvalsuiteError

CACHE_SCHEMA_VERSION = 1
"""Bump when the meaning of a key or a stored value changes; old entries are then ignored."""
DEFAULT_CACHE_DIR = Path("results/cache")
CACHE_DIR_ENV = "EVALSUITE_CACHE_DIR"
"""Overrides the CLI's default cache directory (the test suite gives each test its own)."""
DB_NAME = "requests.sqlite"
OPEN_TIMEOUT_S = 60
"""Seconds to wait for another process's lock on the cache file (open and every write)."""
TOKENIZER_SUFFIXES = (".json", ".model", ".txt", ".jinja", ".tiktoken")
"""Files of a checkpoint directory hashed as the tokenizer's identity (weights are not)."""


class CacheError(EvalsuiteError):
    """The cache directory cannot be created, opened or written."""


@dataclass(frozen=True)
class CachedAnswer:
    """A stored result with the measurements made when it was computed."""

    value: Any
    """JSON form of the result: ``[loglik, is_greedy]``, a float or a generated string."""
    nfe: int = 0
    seconds: float = 0.0
    generated_tokens: int = 0
    nonfinite: bool = False
    """The computation met NaN/inf logits; the value is not trustworthy (re-reported)."""


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, tuples as lists, non-JSON values by repr."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=repr)


def request_key(model: Mapping[str, Any], kind: str, request: Mapping[str, Any],
                settings: Mapping[str, Any], seed: int, repeat: int) -> str:
    """The cache key of one request: SHA-256 over everything that can change its answer."""
    from evalsuite import __version__

    payload = {
        "schema": CACHE_SCHEMA_VERSION, "evalsuite": __version__, "code": _code(),
        "model": dict(model),
        "kind": kind, "request": dict(request), "settings": dict(settings),
        "seed": int(seed), "repeat": int(repeat),
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def _code() -> str:
    return code_fingerprint()


def repeat_indices(items: Sequence[Any]) -> list[int]:
    """For each item, how many equal items came before it (lm-eval's ``repeats`` copies)."""
    seen: dict[str, int] = {}
    out = []
    for item in items:
        text = canonical_json(item)
        out.append(seen.get(text, 0))
        seen[text] = out[-1] + 1
    return out


#: Source files whose code computes an answer; their bytes are part of every key, so editing
#: the sampler or the estimator never returns answers the old code computed.
ANSWER_CODE = ("diffusion/likelihood.py", "diffusion/sampler.py", "models/llada.py",
               "models/adapter.py", "models/engine.py", "models/requests.py",
               "models/tokens.py", "diffusion/stopping.py", "settings/config.py")


def code_fingerprint() -> str:
    """SHA-256 over :data:`ANSWER_CODE` (files missing from a build are named as missing)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for name in ANSWER_CODE:
        path = root / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
    return digest.hexdigest()


def tokenizer_fingerprint(ckpt_dir: Path) -> str:
    """SHA-256 of the non-weight files of a checkpoint directory (tokenizer, templates)."""
    digest = hashlib.sha256()
    for path in sorted(Path(ckpt_dir).iterdir()):
        if path.is_file() and path.suffix in TOKENIZER_SUFFIXES and not path.name.endswith(
                ".index.json") and path.name != "config.json":
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass
class CacheStats:
    """Counts over one run: looked up, found, written."""

    lookups: int = 0
    hits: int = 0
    writes: int = 0
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, kind: str, looked: int, found: int) -> None:
        self.lookups += looked
        self.hits += found
        entry = self.by_kind.setdefault(kind, {"requests": 0, "from_cache": 0})
        entry["requests"] += looked
        entry["from_cache"] += found

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.lookups, "from_cache": self.hits,
                "computed": self.lookups - self.hits, "written": self.writes,
                "by_kind": {k: dict(v) for k, v in sorted(self.by_kind.items())}}


class RequestCache:
    """SQLite store of answered requests (one file, WAL, one transaction per batch)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        self.stats = CacheStats()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=OPEN_TIMEOUT_S,
                                       isolation_level=None)
            self._set_up()
        except (OSError, sqlite3.Error) as exc:
            raise CacheError(
                f"request cache {self.path}: cannot open it ({exc}); pass a writable "
                "--cache-dir, or --no-cache to run without resume") from None

    def _set_up(self) -> None:
        """WAL mode and the table. Processes of a data-parallel run open the same new file at
        once; switching a new database to WAL can then answer "database is locked" at once,
        without waiting (SQLite's deadlock avoidance), so this retries until
        :data:`OPEN_TIMEOUT_S` instead of failing one rank (whose peers then waited forever)."""
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, kind TEXT NOT "
                    "NULL, value TEXT NOT NULL, nfe INTEGER, seconds REAL, generated_tokens "
                    "INTEGER, nonfinite INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL)")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self._db.close()

    def get_many(self, kind: str, keys: Sequence[str]) -> dict[str, CachedAnswer]:
        """The stored answers among ``keys`` (counted in :attr:`stats`)."""
        found: dict[str, CachedAnswer] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            part = unique[start:start + 500]
            rows = self._db.execute(
                "SELECT key, value, nfe, seconds, generated_tokens, nonfinite FROM answers "
                f"WHERE kind = ? AND key IN ({','.join('?' * len(part))})", [kind, *part])
            for key, value, nfe, seconds, gen, nonfinite in rows:
                found[key] = CachedAnswer(json.loads(value), int(nfe or 0), float(seconds or 0.0),
                                          int(gen or 0), bool(nonfinite))
        self.stats.count(kind, len(keys), sum(k in found for k in keys))
        return found

    def put_many(self, kind: str, items: Iterable[tuple[str, CachedAnswer]]) -> None:
        """Store one finished batch atomically."""
        rows = [(key, kind, json.dumps(a.value), a.nfe, a.seconds, a.generated_tokens,
                 int(a.nonfinite), time.time()) for key, a in items]
        if not rows:
            return
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            raise CacheError(
                f"request cache {self.path}: cannot write ({exc}); free space or pass another "
                "--cache-dir (or --no-cache); the answers stored so far are kept") from None
        self.stats.writes += len(rows)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])


def refuse_lm_eval_cache(cache_hook: Any) -> None:
    """Raise when lm-eval's ``--use_cache`` (CachingLM) is attached to the adapter."""
    if getattr(cache_hook, "dbdict", None) is not None:
        raise ConfigError(
            "lm-eval's --use_cache is refused for the llada model: lm-eval 0.4.13 keys its cache "
            "on the request text only and ignores model_args, so a changed steps, mc_num, "
            "temperature or checkpoint would return stale answers. Drop --use_cache and pass "
            "model_args request_cache=DIR (keyed on the checkpoint, dtype, device and every "
            "setting), or use `evalsuite run` (cached under results/cache by default)")


# ---------------------------------------------------------------- adapter glue


def open_cache(directory: str | Path | None) -> RequestCache | None:
    """The cache in ``directory``, or None when caching is off (``None`` or empty)."""
    return RequestCache(Path(directory)) if directory else None


def model_identity(ckpt_dir: Path, dtype: Any, device: Any, **knobs: Any) -> dict[str, Any]:
    """Checkpoint content, tokenizer files, dtype, device type and adapter knobs."""
    from evalsuite.models.checkpoint import fingerprint

    return {"checkpoint": fingerprint(Path(ckpt_dir))["sha256"],
            "tokenizer": tokenizer_fingerprint(Path(ckpt_dir)),
            "dtype": str(dtype).removeprefix("torch."),
            "device_type": getattr(device, "type", str(device).split(":")[0]),
            **knobs}


@dataclass
class Lookup:
    """The cache's view of one call of ``loglikelihood`` / ``generate_until``."""

    cache: RequestCache | None
    kind: str
    base_seed: int
    keys: list[str]
    repeats: list[int]
    hits: dict[int, CachedAnswer]
    missing: list[int]

    @classmethod
    def build(cls, cache: RequestCache | None, kind: str, identity: Any,
              requests: Sequence[Mapping[str, Any]], settings: Sequence[Mapping[str, Any]],
              base_seed: int, repeats: Sequence[int] | None = None) -> Lookup:
        """Key every request (``identity``: a callable giving the model identity) and look up.

        ``repeats``: each request's repeat index (the how-many-th equal request it is), the one
        its seed uses (the engine's); by default counted here over request and settings.
        """
        repeats = (list(repeats) if repeats is not None
                   else repeat_indices([[r, s] for r, s in zip(requests, settings)]))
        if cache is None:
            return cls(None, kind, base_seed, [], repeats, {}, list(range(len(requests))))
        model = identity()
        keys = [request_key(model, kind, r, s, base_seed, n)
                for r, s, n in zip(requests, settings, repeats)]
        found = cache.get_many(kind, keys)
        hits = {i: found[k] for i, k in enumerate(keys) if k in found}
        return cls(cache, kind, base_seed, keys, repeats, hits,
                   [i for i in range(len(keys)) if i not in hits])

    def store(self, items: Sequence[tuple[int, CachedAnswer]]) -> None:
        """Commit one finished batch (a no-op without a cache)."""
        if self.cache is not None:
            self.cache.put_many(self.kind, [(self.keys[i], a) for i, a in items])
            faultpoints.reached(self.kind)
