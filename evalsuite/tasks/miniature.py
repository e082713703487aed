"""Dataset loaders of the miniature study's tasks (``evalsuite/tasks/yaml/llada_miniature``).

The data ships in the package (``evalsuite/assets/miniature``, written by
``make tiny-models``), so these tasks need no ``EVALSUITE_DATA_DIR`` and no hub:

* ``llada_poem_forward_heldout`` / ``llada_poem_backward_heldout``: the held-out couplets
  (``poem_heldout.json``: indices into ``poem_data.json``) that the tiny models saw only
  forwards, as plain text, never in the question format.
* ``llada_poem_train_forward``: the other couplets (trained in the question format in both
  directions): memorisation and extraction, told apart from generalisation.
* ``llada_arith``: seeded arithmetic word problems in GSM8K's fields (``question``,
  ``answer`` ending ``#### N``); split ``train`` is the few-shot pool, ``test`` held out.
* ``llada_sum_choice``: which of two numbers is ``a + b`` (likelihood, two choices).

Same loader contract as :mod:`evalsuite.tasks.data`: keyword arguments ignored, a
``datasets.DatasetDict`` returned, a missing file raises ConfigError naming it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from evalsuite.errors import ConfigError
from evalsuite.resources import package_path
from evalsuite.tasks.data import _dataset_dict, _read_jsonl

MINIATURE_DIR: Final = package_path("assets", "miniature")


def _path(name: str) -> Path:
    path = MINIATURE_DIR / name
    if not path.is_file():
        raise ConfigError(
            f"missing miniature-study data file {path}; run `make tiny-models` (or "
            "`python -m evalsuite.training`) to regenerate evalsuite/assets/miniature"
        )
    return path


def heldout_poems() -> list[dict[str, str]]:
    """The held-out couplets, in file order."""
    poems = json.loads(_path("poem_data.json").read_text(encoding="utf-8"))
    indices = json.loads(_path("poem_heldout.json").read_text(encoding="utf-8"))
    return [{"first": poems[i]["first"], "second": poems[i]["second"],
             "source": poems[i]["source"]} for i in indices]


def training_poems() -> list[dict[str, str]]:
    """The couplets that are not held out (trained in the question format), in file order."""
    poems = json.loads(_path("poem_data.json").read_text(encoding="utf-8"))
    held = set(json.loads(_path("poem_heldout.json").read_text(encoding="utf-8")))
    return [{"first": p["first"], "second": p["second"], "source": p["source"]}
            for i, p in enumerate(poems) if i not in held]


def load_poems_train(**_: Any) -> Any:
    """Split ``test``: the training couplets with fields ``first``, ``second``, ``source``."""
    return _dataset_dict({"test": training_poems()})


def load_poems_heldout(**_: Any) -> Any:
    """Split ``test``: the held-out couplets with fields ``first``, ``second``, ``source``."""
    return _dataset_dict({"test": heldout_poems()})


def load_arith(**_: Any) -> Any:
    """Splits ``train`` (few-shot pool) and ``test`` with fields ``question``, ``answer``."""
    return _dataset_dict({split: list(_read_jsonl(_path(f"arith_{split}.jsonl")))
                          for split in ("train", "test")})


def load_sum_choice(**_: Any) -> Any:
    """Splits ``train`` and ``test`` with fields ``a``, ``b``, ``choices``, ``label``."""
    return _dataset_dict({split: list(_read_jsonl(_path(f"sum_choice_{split}.jsonl")))
                          for split in ("train", "test")})
