"""Model families: the one place where an architecture is declared.

A family is one :class:`FamilySpec` in :data:`FAMILIES`. It names the ``config.json``
``model_type`` values it claims and, as ``module:attribute`` strings imported on first use
(so that listing families imports no torch), the pieces the rest of evalsuite calls:

* ``load_network(ckpt_dir, dtype, device)``: the network built from the official checkpoint
  layout, whose ``forward`` returns the official forward's raw logits;
* ``generate(network, input_ids, attention_mask, *, tokens, generator, **settings)``: the
  family's sampler (returns :class:`evalsuite.diffusion.sampler.GenerationResult`);
* ``loglikelihood(network, prompt_ids, answer_ids, *, tokens, **settings)``: the family's
  likelihood protocol.

Adding a family: a package ``evalsuite/families/<name>/`` (network, checkpoint mapping,
sampler/likelihood where they differ from LLaDA's) and one entry below. Nothing in the engine,
the resolver or the adapter names a family.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.errors import CheckpointError


@dataclass(frozen=True)
class FamilySpec:
    """One model family (architecture) and where its pieces live."""

    name: str
    """Short name recorded with every result (``llada``, ``dream``, ...)."""
    model_types: frozenset[str]
    """``config.json`` ``model_type`` values it claims, lower-cased."""
    description: str
    """One line for ``evalsuite models`` and error messages."""
    load_network: str
    """``module:function`` building the network: ``(ckpt_dir, *, dtype, device) -> nn.Module``."""
    generate: str | None = None
    """``module:function`` of the family's sampler, ``(network, input_ids, attention_mask, *,
    tokens, generator, **settings) -> GenerationResult``; None: LLaDA's sampler
    (:func:`evalsuite.api.generate` with LLaDA's settings)."""
    loglikelihood: str | None = None
    """``module:function`` of the family's likelihood, ``(network, prompt_ids, answer_ids, *,
    tokens, **settings) -> LikelihoodResult``; None: LLaDA's Eq. 6 estimator."""

    def resolve(self, attribute: str) -> Callable[..., Any]:
        """Import and return the callable named by the ``module:function`` field ``attribute``."""
        module, _, name = str(getattr(self, attribute)).partition(":")
        return getattr(importlib.import_module(module), name)


FAMILIES: tuple[FamilySpec, ...] = (
    FamilySpec(
        name="llada",
        model_types=frozenset({"llada"}),
        description="LLaDA 8B Base/Instruct, LLaDA 1.5, iLLaDA (ML-GSAI/LLaDA)",
        load_network="evalsuite.models.checkpoint:load_llada_network",
    ),
    FamilySpec(
        name="llada_moe",
        model_types=frozenset({"lladamoe", "llada_moe"}),
        description="LLaDA-MoE 7B-A1B Base/Instruct (inclusionAI), LLaDA's sampler and Eq. 6",
        load_network="evalsuite.families.llada_moe.checkpoint:load_llada_moe_network",
    ),
    FamilySpec(
        name="llada2",
        model_types=frozenset({"llada2_moe"}),
        description="LLaDA2.0 mini/flash (inclusionAI): block diffusion, exact block KV cache",
        load_network="evalsuite.families.llada2.checkpoint:load_llada2_network",
        generate="evalsuite.families.llada2.generate:generate",
        loglikelihood="evalsuite.families.llada2.likelihood:loglikelihood",
    ),
)


def supported_model_types() -> list[str]:
    """Every ``model_type`` some family claims, sorted."""
    return sorted(t for f in FAMILIES for t in f.model_types)


def family_named(name: str) -> FamilySpec:
    """The family called ``name`` (:class:`CheckpointError` naming the known ones)."""
    for family in FAMILIES:
        if family.name == name:
            return family
    raise CheckpointError(f"unknown model family {name!r}; known: "
                          f"{', '.join(f.name for f in FAMILIES)}")


def detect_family(raw_config: Mapping[str, Any], source: str = "config.json") -> FamilySpec:
    """The family whose ``model_types`` contains the config's ``model_type``.

    Raises :class:`CheckpointError` naming the ``model_type`` found and the supported ones.
    """
    model_type = raw_config.get("model_type")
    if model_type is None and "d_model" in raw_config:
        model_type = "llada"  # LLaDA configs written before model_type was required
    if (isinstance(model_type, str) and model_type.lower() == "llada"
            and "d_model" not in raw_config and "num_experts" in raw_config):
        model_type = "lladamoe"  # dInfer's LLaDA-MoE copy reuses model_type "llada"
    if isinstance(model_type, str):
        for family in FAMILIES:
            if model_type.lower() in family.model_types:
                return family
    raise CheckpointError(
        f"{source}: model_type {model_type!r} is not a supported architecture; supported "
        f"model_type values: {', '.join(supported_model_types())} "
        f"(families: {', '.join(f.name for f in FAMILIES)})"
    )


def read_config(ckpt_dir: Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint directory as a dict (:class:`CheckpointError` if absent
    or invalid)."""
    path = ckpt_dir / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found; a checkpoint directory needs config.json "
                              "next to its *.safetensors files") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return raw
