"""``load_model``: a native diffusion checkpoint (any registered family) plus its tokenizer
and special tokens."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evalsuite.families import FamilySpec, detect_family, read_config
from evalsuite.models.checkpoint import parse_dtype, resolve_checkpoint_dir
from evalsuite.models.tokens import SpecialTokens, resolve_special_tokens

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


@dataclass
class DiffusionLM:
    """A loaded masked diffusion LM: network, tokenizer and the ids the algorithms need."""

    network: torch.nn.Module
    """The family's network; its forward gives the official forward's raw logits."""
    tokenizer: Any | None
    tokens: SpecialTokens
    model_id: str
    checkpoint_dir: Path
    dtype: torch.dtype
    revision: str | None = None
    family: FamilySpec | None = None
    """The architecture recognised from ``config.json`` (:mod:`evalsuite.families`)."""

    @property
    def device(self) -> torch.device:
        return self.network.device

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 positions: slice | None = None) -> torch.Tensor:
        return self.network(input_ids, attention_mask=attention_mask, positions=positions)


def load_tokenizer(ckpt_dir: Path) -> Any | None:
    """The checkpoint's tokenizer without running remote code, or None when it has none."""
    if not any((ckpt_dir / f).exists() for f in TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    logging.getLogger("transformers").setLevel(logging.ERROR)
    return AutoTokenizer.from_pretrained(str(ckpt_dir), trust_remote_code=False)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(
    path_or_hub_id: str,
    *,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device | None = None,
    revision: str | None = None,
) -> DiffusionLM:
    """Load an official diffusion-LM checkpoint (local directory or hub id).

    The architecture is recognised from ``config.json`` (:func:`evalsuite.families.detect_family`;
    an unknown ``model_type`` is refused with the supported ones). ``dtype``: float32, bfloat16
    or float16. ``device``: defaults to CUDA when available. Special ids come from
    ``config.json`` and the tokenizer (see :class:`SpecialTokens`).
    """
    device = device or default_device()
    ckpt_dir = resolve_checkpoint_dir(path_or_hub_id, revision)
    family = detect_family(read_config(ckpt_dir), source=str(ckpt_dir / "config.json"))
    network = family.resolve("load_network")(ckpt_dir, dtype=dtype, device=device)
    tokenizer = load_tokenizer(ckpt_dir)
    tokens = resolve_special_tokens(network.config, tokenizer)
    return DiffusionLM(network, tokenizer, tokens, path_or_hub_id, ckpt_dir,
                       parse_dtype(dtype), revision, family)
