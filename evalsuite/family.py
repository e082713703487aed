"""Model family (base or instruct) from the checkpoint itself.

Rule: an explicit ``--instruct`` / ``--base`` (model_args ``family=``) wins; a preset fixes
its family; otherwise a chat template in the checkpoint's tokenizer (``chat_template`` in
``tokenizer_config.json`` or a ``chat_template.jinja`` file) means instruct, and none means
base. When the tokenizer files cannot be read without a download (a hub id that is not in
the local cache), a preset with the same hub id decides, else the name (``instruct`` in it),
and the reason says so. Reads at most
two small files; loads no weights and imports no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Family = Literal["base", "instruct"]

TEMPLATE_FILES = ("tokenizer_config.json", "chat_template.jinja", "chat_template.json")


@dataclass(frozen=True)
class FamilyDecision:
    """The family and why (recorded in run.json, printed by ``evalsuite run``)."""

    family: Family
    reason: str


def decide_family(*, override: Family | None, preset_family: Family | None,
                  has_chat_template: bool | None, name: str,
                  known_family: Family | None = None) -> FamilyDecision:
    """The pure decision (see the module docstring). ``has_chat_template`` None: unknown;
    ``known_family``: the family of a preset with the same hub id (used when the tokenizer
    cannot be read)."""
    if override is not None:
        return FamilyDecision(override, f"--{override} given")
    if preset_family is not None:
        return FamilyDecision(preset_family, "preset")
    if has_chat_template is not None:
        if has_chat_template:
            return FamilyDecision("instruct", "the tokenizer has a chat template")
        return FamilyDecision("base", "the tokenizer has no chat template")
    if known_family is not None:
        return FamilyDecision(known_family, f"tokenizer not available locally; {name} is the "
                                            f"hub id of a {known_family} preset")
    guessed: Family = "instruct" if "instruct" in name.lower() else "base"
    return FamilyDecision(guessed, "tokenizer not available locally; guessed from the name "
                                   f"({'contains' if guessed == 'instruct' else 'lacks'} 'instruct')")


def has_chat_template(directory: Path) -> bool | None:
    """Whether the tokenizer files in ``directory`` define a chat template; None when the
    directory holds no tokenizer config."""
    if (directory / "chat_template.jinja").is_file() or (directory / "chat_template.json").is_file():
        return True
    config = directory / "tokenizer_config.json"
    if not config.is_file():
        return None
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return bool(raw.get("chat_template"))


def cached_hub_dir(hub_id: str, revision: str | None = None) -> Path | None:
    """The local snapshot directory of a hub id when its tokenizer config is cached."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return None
    for name in TEMPLATE_FILES:
        try:
            found = try_to_load_from_cache(hub_id, name, revision=revision)
        except Exception:  # an invalid repo id: nothing cached
            return None
        if isinstance(found, str):
            return Path(found).parent
    return None
