"""Dataset loading for the task YAMLs: the hub by default, a local directory offline.

Every ``evalsuite/tasks/yaml/llada_*/*.yaml`` names one loader of this module as lm-eval's ``custom_dataset``
(``custom_dataset: !function evalsuite.tasks.data.load_gsm8k``), so plain lm-eval and the
evalsuite CLI load data the same way:

* ``EVALSUITE_DATA_DIR`` unset: the loader calls ``datasets.load_dataset`` on the same hub
  dataset as lm-eval's built-in task (``openai/gsm8k``, ``cais/mmlu``, ...).
* ``EVALSUITE_DATA_DIR=DIR``: the loader reads DIR, laid out as ``../shared/data`` (see
  ``shared/data/MANIFEST.md``), and converts each file to the hub dataset's fields and splits,
  so the task's templates, filters and metrics see identical documents either way.

Contract of every loader: keyword arguments only (lm-eval passes the task's ``metadata``
and ``dataset_kwargs`` merged; unknown keys are ignored), returns a ``datasets.DatasetDict``
whose split names and fields are those of the hub dataset. A missing file raises
:class:`~evalsuite.errors.ConfigError` naming the path and the fix.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from evalsuite.errors import ConfigError

DATA_DIR_ENV: Final = "EVALSUITE_DATA_DIR"
DATA_DIR_META: Final = "evalsuite_data_dir"
"""Task-metadata key of the data directory: the runner passes ``--data-dir`` to lm-eval's
TaskManager as metadata, and lm-eval hands task metadata to every ``custom_dataset`` loader."""

#: Hub dataset (path, default config) of each benchmark: those of lm-eval 0.4.13's built-ins.
HUB_DATASETS: Final[dict[str, tuple[str, str | None]]] = {
    "gsm8k": ("openai/gsm8k", "main"),
    "mmlu": ("cais/mmlu", None),
    "piqa": ("baber/piqa", None),
    "math": ("EleutherAI/hendrycks_math", None),
    "bbh": ("SaylorTwift/bbh", None),
    "humaneval": ("openai/openai_humaneval", None),
}

#: MATH subject config names (hub) -> the ``type`` field of the MATH json files.
MATH_SUBJECTS: Final[dict[str, str]] = {
    "algebra": "Algebra",
    "counting_and_probability": "Counting & Probability",
    "geometry": "Geometry",
    "intermediate_algebra": "Intermediate Algebra",
    "number_theory": "Number Theory",
    "prealgebra": "Prealgebra",
    "precalculus": "Precalculus",
}


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The offline data directory: ``explicit`` (the run's ``--data-dir``, carried in the task
    metadata), else ``EVALSUITE_DATA_DIR``, else None (the hub).

    ``evalsuite run`` reads the variable in its CLI and passes the directory (if any) as task
    metadata; the fallback here is for plain ``lm_eval``, which calls these loaders itself and
    has no run spec (``lm_eval --metadata '{"evalsuite_data_dir": "DIR"}'`` works as well).

    Raises ConfigError when it names a directory that does not exist.
    """
    raw = str(explicit) if explicit else os.environ.get(DATA_DIR_ENV, "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(
            f"{DATA_DIR_ENV}={raw!r} is not a directory; point it at a copy of the benchmark "
            "data laid out as ../shared/data (gsm8k/, mmlu/, piqa/, math/, bbh/, humaneval/, "
            f"llada_poem/), or unset it to load from the Hugging Face hub."
        )
    return path


def _file(root: Path, *parts: str) -> Path:
    path = root.joinpath(*parts)
    if not path.is_file():
        raise ConfigError(
            f"missing data file {path}; {DATA_DIR_ENV}={root} must be laid out as "
            "../shared/data (see its MANIFEST.md), or unset the variable to use the hub."
        )
    return path


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON-lines file; bad bytes or JSON name the file and the line."""
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(
                    f"{path}: line {number}, byte {exc.start + 1}: {raw[exc.start]:#04x} is not "
                    "UTF-8; re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
                ) from None
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{path}: line {number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                    "fix or remove that line"
                ) from None


def _dataset_dict(splits: dict[str, list[dict[str, Any]]]) -> Any:
    import datasets

    return datasets.DatasetDict(
        {name: datasets.Dataset.from_list(rows) for name, rows in splits.items()}
    )


def _from_hub(benchmark: str, name: str | None = None) -> Any:
    """The hub dataset of lm-eval's built-in task; an unreachable hub says how to go offline."""
    import datasets

    from evalsuite.errors import HubUnreachableError

    path, default_name = HUB_DATASETS[benchmark]
    try:
        return datasets.load_dataset(path=path, name=name or default_name)
    except ConnectionError as exc:
        raise HubUnreachableError(
            f"could not download the {benchmark} data {path!r} from the Hugging Face hub "
            f"({exc}). To run offline, point --data-dir (or {DATA_DIR_ENV}) at a directory in "
            "the layout of shared/data (see the README, 'Offline data')"
        ) from None


def _require_subset(benchmark: str, subset: str | None, choices: list[str]) -> str:
    if subset not in choices:
        from evalsuite.errors import did_you_mean

        raise ConfigError(
            did_you_mean(str(subset), choices, f"{benchmark} subset")
            + " Set dataset_kwargs.subset in the task YAML."
        )
    return str(subset)


# --- GSM8K -------------------------------------------------------------------------------


def load_gsm8k(*, evalsuite_data_dir: str | None = None, **_: Any) -> Any:
    """GSM8K: splits ``train`` (few-shot pool) and ``test``; fields ``question``, ``answer``."""
    root = data_dir(evalsuite_data_dir)
    if root is None:
        return _from_hub("gsm8k")
    return _dataset_dict(
        {
            split: list(_read_jsonl(_file(root, "gsm8k", f"{split}.jsonl")))
            for split in ("train", "test")
        }
    )


# --- MMLU --------------------------------------------------------------------------------


def read_mmlu_csv(path: Path, subject: str) -> list[dict[str, Any]]:
    """Rows of an HF-layout MMLU CSV (header ``question,choice0..3,answer``, answer 0-3)
    as ``cais/mmlu`` records: ``question``, ``subject``, ``choices`` (4 strings), ``answer``.
    """
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        expected = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]
        if reader.fieldnames != expected:
            raise ConfigError(
                f"{path}: header {reader.fieldnames} is not the HF cais/mmlu CSV layout "
                f"{expected}; use the copy described in shared/data/MANIFEST.md."
            )
        return [
            {
                "question": row["question"],
                "subject": subject,
                "choices": [row[f"choice{i}"] for i in range(4)],
                "answer": int(row["answer"]),
            }
            for row in reader
        ]


def load_mmlu(*, subset: str | None = None, evalsuite_data_dir: str | None = None, **_: Any) -> Any:
    """MMLU subject ``subset``: splits ``test`` and ``dev`` (5-shot pool), cais/mmlu fields."""
    from evalsuite.tasks.subjects import MMLU_SUBJECTS

    subject = _require_subset("mmlu", subset, sorted(MMLU_SUBJECTS))
    root = data_dir(evalsuite_data_dir)
    if root is None:
        return _from_hub("mmlu", subject)
    return _dataset_dict(
        {
            split: read_mmlu_csv(_file(root, "mmlu", split, f"{subject}_{split}.csv"), subject)
            for split in ("test", "dev")
        }
    )


# --- PIQA --------------------------------------------------------------------------------


def load_piqa(*, evalsuite_data_dir: str | None = None, **_: Any) -> Any:
    """PIQA: split ``validation`` (fields ``goal``, ``sol1``, ``sol2``, ``label``).

    Offline there is no training split (its file is not in the data copy); ``train`` is then
    an empty split with the same fields, enough for lm-eval's 0-shot protocol. Asking for
    few-shot examples offline fails inside lm-eval's sampler.
    """
    root = data_dir(evalsuite_data_dir)
    if root is None:
        return _from_hub("piqa")
    docs = list(_read_jsonl(_file(root, "piqa", "valid.jsonl")))
    labels = _file(root, "piqa", "valid-labels.lst").read_text(encoding="utf-8").split()
    if len(labels) != len(docs):
        raise ConfigError(
            f"{root / 'piqa'}: {len(docs)} questions but {len(labels)} labels; "
            "the two files must be line-aligned copies of PIQA's validation split."
        )
    rows = [
        {"goal": d["goal"], "sol1": d["sol1"], "sol2": d["sol2"], "label": int(lab)}
        for d, lab in zip(docs, labels, strict=True)
    ]
    import datasets

    train = datasets.Dataset.from_list(rows[:1]).select([])
    return datasets.DatasetDict({"train": train, "validation": datasets.Dataset.from_list(rows)})


# --- MATH --------------------------------------------------------------------------------


def load_math(*, subset: str | None = None, evalsuite_data_dir: str | None = None, **_: Any) -> Any:
    """MATH subject ``subset`` (hendrycks_math config name): split ``test`` with fields
    ``problem``, ``level``, ``type``, ``solution``. The few-shot prompt is fixed in the YAML,
    so no training split is needed (the offline copy has none).
    """
    subject = _require_subset("math", subset, list(MATH_SUBJECTS))
    root = data_dir(evalsuite_data_dir)
    if root is None:
        return _from_hub("math", subject)
    wanted = MATH_SUBJECTS[subject]
    rows = [
        {k: d[k] for k in ("problem", "level", "type", "solution")}
        for d in _read_jsonl(_file(root, "math", "test.jsonl"))
        if d["type"] == wanted
    ]
    return _dataset_dict({"test": rows})


# --- BIG-Bench Hard ----------------------------------------------------------------------


def load_bbh(*, subset: str | None = None, evalsuite_data_dir: str | None = None, **_: Any) -> Any:
    """BBH task ``subset``: split ``test`` with fields ``input``, ``target``."""
    from evalsuite.tasks.subjects import BBH_TASKS

    name = _require_subset("bbh", subset, list(BBH_TASKS))
    root = data_dir(evalsuite_data_dir)
    if root is None:
        return _from_hub("bbh", name)
    raw = json.loads(_file(root, "bbh", "bbh", f"{name}.json").read_text(encoding="utf-8"))
    rows = [{"input": ex["input"], "target": ex["target"]} for ex in raw["examples"]]
    return _dataset_dict({"test": rows})


# --- HumanEval ---------------------------------------------------------------------------


def load_humaneval(*, evalsuite_data_dir: str | None = None, **_: Any) -> Any:
    """HumanEval: split ``test`` with fields ``task_id``, ``prompt``, ``canonical_solution``,
    ``test``, ``entry_point`` (for the HumanEval task's YAML, which the sandbox part owns)."""
    root = data_dir(evalsuite_data_dir)
    if root is None:
        return _from_hub("humaneval")
    rows = list(_read_jsonl(_file(root, "humaneval", "HumanEval.jsonl.gz")))
    return _dataset_dict({"test": rows})


# --- LLaDA reversal poems ----------------------------------------------------------------


def load_poems(*, evalsuite_data_dir: str | None = None, **_: Any) -> Any:
    """The 469 couplets of LLaDA's reversal-curse test: split ``test`` with fields ``first``,
    ``second``, ``source``. They are not on the hub: ``EVALSUITE_DATA_DIR`` is required."""
    root = data_dir(evalsuite_data_dir)
    if root is None:
        raise ConfigError(
            "the reversal-poem tasks read llada_poem/poem_data.json from an offline data "
            f"directory; set {DATA_DIR_ENV} to a directory laid out as ../shared/data "
            "(the file is data/poem_data.json of github.com/ML-GSAI/LLaDA)."
        )
    rows = json.loads(_file(root, "llada_poem", "poem_data.json").read_text(encoding="utf-8"))
    return _dataset_dict(
        {"test": [{"first": r["first"], "second": r["second"], "source": r["source"]} for r in rows]}
    )
