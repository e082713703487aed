"""Model families: the one place where an architecture is declared.

A family is one :class:`FamilySpec` in :data:`FAMILIES`. It names the ``config.json``
``model_type`` values it claims and, as ``module:attribute`` strings imported on first use
(so that listing families imports no torch), the pieces the rest of evalsuite calls:

* ``load_network(ckpt_dir, dtype, device)``: the network built from the official checkpoint
  layout, whose ``forward`` returns the official forward's raw logits;
* ``estimate(network, pairs, *, config, tokens, generators, max_rows)``: the family's
  likelihood protocol, batched (returns one
  :class:`evalsuite.diffusion.likelihood.LikelihoodResult` per pair);
* ``sample(network, input_ids, attention_mask, *, config, mask_id, eos_id, eot_id, generator,
  stop, batch_size, on_finish, logit_shift)``: the family's sampler, called by the engine and
  :func:`evalsuite.generate` alike (returns
  :class:`evalsuite.diffusion.sampler.GenerationResult`).

The sampler of LLaDA, LLaDA-MoE and Dream is the one loop of :mod:`evalsuite.diffusion.sampler`:
a family differs by its knobs (Dream's ``alg``), their defaults and ``logit_shift``. LLaDA2's
block diffusion (causal across blocks, an exact block KV cache) is its own ``sample``.

Each family also names the settings (knobs) its sampler and its likelihood accept (its own
names, e.g. Dream's ``alg``): :func:`check_settings` refuses another family's setting with a
:class:`~evalsuite.errors.ConfigError` naming the setting, the architecture and the valid
names, before any weight loads (it needs only ``config.json``).

Adding a family: a package ``evalsuite/families/<name>/`` (network, checkpoint mapping,
sampler/likelihood where they differ from LLaDA's) and one entry below. Nothing in the engine,
the resolver or the adapter names a family.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalsuite.errors import CheckpointError, ConfigError

#: LLaDA's sampler settings (``evalsuite.generate`` keywords; SamplerConfig fields).
LLADA_GENERATE_SETTINGS = frozenset({
    "steps", "gen_length", "block_length", "temperature", "cfg_scale", "remasking",
    "logits_eos_inf", "confidence_eos_eot_inf", "decoding", "threshold", "cache", "early_exit"})
#: LLaDA's estimator settings (``evalsuite.loglikelihood`` keywords; knob names).
LLADA_LIKELIHOOD_SETTINGS = frozenset({"mc_num", "mc_batch_size", "cfg_scale", "estimator",
                                       "target_se"})
#: Dream's own sampler names (``gen_length`` is Dream's ``max_new_tokens``).
DREAM_GENERATE_SETTINGS = frozenset({
    "steps", "gen_length", "temperature", "alg", "alg_temp", "top_p", "top_k",
    "batch_schedule", "early_exit"})
DREAM_LIKELIHOOD_SETTINGS = frozenset({"mc_num", "mc_batch_size", "cfg_scale", "estimator",
                                       "nll_type"})
#: LLaDA2's block-diffusion sampler (the official ``generate`` names; ``steps`` per block,
#: ``cache`` exact or none).
LLADA2_GENERATE_SETTINGS = frozenset({
    "gen_length", "block_length", "steps", "threshold", "minimal_topk", "eos_early_stop",
    "temperature", "top_p", "top_k", "cache", "early_exit"})
#: LLaDA2's block-diffusion likelihood bound (this project's definition).
LLADA2_LIKELIHOOD_SETTINGS = frozenset({"mc_num", "mc_batch_size", "block_length"})


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
    network_class: str = "evalsuite.models.llada:LLaDAModel"
    """``module:Class`` of the network (recognises a bare network given to the API)."""
    generate_settings: frozenset[str] = LLADA_GENERATE_SETTINGS
    """Knobs of its sampler (``evalsuite.generate`` keywords)."""
    likelihood_settings: frozenset[str] = LLADA_LIKELIHOOD_SETTINGS
    """Knobs of its likelihood (``evalsuite.loglikelihood`` keywords)."""
    logit_shift: int = 0
    """Position i is predicted by the output at ``i - logit_shift`` (Dream: 1)."""
    estimate: str = "evalsuite.families.llada:estimate"
    """``module:function``: the batched likelihood of the engine,
    ``(network, pairs, *, config, tokens, generators, max_rows) -> list[LikelihoodResult]``."""
    sampler_defaults: Mapping[str, Any] = field(default_factory=dict)
    """Sampler knob values below every task/user setting (Dream: ``alg`` entropy)."""
    estimator_defaults: Mapping[str, Any] = field(default_factory=dict)
    """Estimator knob values below every task/user setting (Dream: ``mc_batch_size`` 32, the
    largest divisor of ``mc_num`` up to it when not given, as Dream's eval wrapper batches)."""
    task_table: str = "evalsuite.settings.paper:diffusion_settings"
    """``module:function`` giving the family's official per-task settings,
    ``(task_name, "base" | "instruct") -> {knob: value}`` ({} for a task without an entry):
    LLaDA's paper table, Dream's table of its evaluation scripts."""
    table_source: str = "paper_table"
    """Provenance source recorded for a value from ``task_table``."""
    table_over_yaml: bool = False
    """Whether the table outranks the task YAML's ``generation_kwargs``: the suite's YAMLs
    are written for LLaDA's protocol (``temperature: 0``), so another family's own protocol
    (Dream instruct's temperature 0.1) sits above them; stop strings stay the YAML's."""
    add_bos_token: bool = False
    """Whether the official evaluation prepends the tokenizer's BOS token to every plain
    (not chat-templated) context itself (Dream: ``add_bos_token=true`` in its scripts; its
    Qwen2 tokenizer adds none). LLaDA's tokenizer adds its BOS on its own."""
    rolling: bool = True
    """Whether the family's protocol has a rolling (perplexity) likelihood."""
    sample: str = "evalsuite.diffusion.sampler:diffusion_generate"
    """``module:function``: the family's sampler (see the module docstring)."""
    derive_lengths: bool = True
    """LLaDA's rule: ``steps`` and ``block_length`` follow a ``gen_length`` set above them
    (:mod:`evalsuite.settings.resolve`). False (LLaDA2): ``block_length`` and ``steps`` (per
    block) keep their own values, and a ``gen_length`` from a task (not the user) is rounded up
    to whole blocks, as the official generate fills whole blocks."""
    hub_ids: frozenset[str] = frozenset()
    """Hub ids known to be this family, so that a preset's architecture is known before its
    ``config.json`` is downloaded."""

    def settings(self) -> frozenset[str]:
        """Every setting of the family (knob names of :mod:`evalsuite.settings.knobs`)."""
        return self.generate_settings | self.likelihood_settings

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
        name="dream",
        model_types=frozenset({"dream"}),
        description="Dream 7B Base/Instruct (Dream-org/Dream-v0-*-7B; DreamLM/Dream)",
        load_network="evalsuite.families.dream.checkpoint:load_dream_network",
        network_class="evalsuite.families.dream.network:DreamModel",
        generate_settings=DREAM_GENERATE_SETTINGS,
        likelihood_settings=DREAM_LIKELIHOOD_SETTINGS,
        logit_shift=1,
        estimate="evalsuite.families.dream.protocol:estimate",
        sampler_defaults={"alg": "entropy"},
        estimator_defaults={"mc_batch_size": 32},
        task_table="evalsuite.families.dream.tasks:dream_settings",
        table_source="family_table",
        table_over_yaml=True,
        add_bos_token=True,
        rolling=False,
    ),
    FamilySpec(
        name="llada_moe",
        model_types=frozenset({"lladamoe", "llada_moe"}),
        description="LLaDA-MoE 7B-A1B Base/Instruct (inclusionAI): LLaDA's sampler and Eq. 6",
        load_network="evalsuite.families.llada_moe.checkpoint:load_llada_moe_network",
        network_class="evalsuite.families.llada_moe.network:LLaDAMoEModel",
        task_table="evalsuite.families.llada_moe.protocol:settings_table",
        table_source="family_table",
        table_over_yaml=True,
        hub_ids=frozenset({"inclusionAI/LLaDA-MoE-7B-A1B-Base",
                           "inclusionAI/LLaDA-MoE-7B-A1B-Instruct"}),
    ),
    FamilySpec(
        name="llada2",
        model_types=frozenset({"llada2_moe"}),
        description="LLaDA2.0 mini/flash (inclusionAI): block diffusion, exact block KV cache",
        load_network="evalsuite.families.llada2.checkpoint:load_llada2_network",
        network_class="evalsuite.families.llada2.network:LLaDA2Model",
        generate_settings=LLADA2_GENERATE_SETTINGS,
        likelihood_settings=LLADA2_LIKELIHOOD_SETTINGS,
        estimate="evalsuite.families.llada2.likelihood:estimate",
        sample="evalsuite.families.llada2.generate:sample",
        sampler_defaults={"block_length": 32, "steps": 32, "threshold": 0.95,
                          "minimal_topk": 1, "cache": "exact"},
        task_table="evalsuite.families.llada2.settings:task_table",
        table_source="family_table",
        rolling=False,
        derive_lengths=False,
        hub_ids=frozenset({"inclusionAI/LLaDA2.0-mini", "inclusionAI/LLaDA2.0-flash"}),
    ),
)


def check_settings(family: FamilySpec, names: Iterable[str], kind: str = "any",
                   where: str = "settings") -> None:
    """Refuse a setting ``family`` does not have (another family's, or unknown).

    ``kind``: ``generate``, ``loglikelihood`` or ``any`` (either; names as knobs). Raises
    :class:`ConfigError` naming the setting, the architecture, the valid names and, when
    another family has the setting, that family."""
    if kind == "generate":
        valid = family.generate_settings
    elif kind == "loglikelihood":
        valid = family.likelihood_settings
    else:
        valid = family.settings()
    for name in names:
        if name in valid:
            continue
        owners = [f.name for f in FAMILIES if f is not family and
                  (name in f.generate_settings or name in f.likelihood_settings
                   or name in f.settings())]
        owned = f"; it is a setting of {', '.join(owners)} models" if owners else ""
        label = {"generate": "generation ", "loglikelihood": "likelihood "}.get(kind, "")
        raise ConfigError(
            f"{name!r} ({where}) is not a {label}setting of the {family.name} architecture "
            f"(model_type {', '.join(sorted(family.model_types))}){owned}. Valid {label}settings "
            f"for {family.name}: {', '.join(sorted(valid))}")


def architecture_of(path_or_hub_id: str) -> FamilySpec | None:
    """The family of a local checkpoint directory (or a cached hub snapshot) from its
    ``config.json`` alone; None when there is no local config to read."""
    path = Path(path_or_hub_id).expanduser()
    if not (path / "config.json").is_file():
        from evalsuite.family import cached_hub_dir

        cached = cached_hub_dir(path_or_hub_id) if path_or_hub_id.count("/") == 1 else None
        if cached is None or not (cached / "config.json").is_file():
            return None
        path = cached
    return detect_family(read_config(path), source=str(path / "config.json"))


def architecture_named_in(hub_id: str) -> FamilySpec | None:
    """The family a hub id names (``GSAI-ML/LLaDA-8B-Base`` -> llada, ``Dream-org/Dream-v0-
    Base-7B`` -> dream), for a hub id whose ``config.json`` is not downloaded; None otherwise.
    A family's known ``hub_ids`` come first (``inclusionAI/LLaDA2.0-mini`` is llada2, not
    llada), then the longest family name found in the id."""
    known = next((f for f in FAMILIES if hub_id in f.hub_ids), None)
    if known is not None:
        return known
    lowered = hub_id.lower().replace("-", "_")
    named = [f for f in FAMILIES if f.name in lowered]
    return max(named, key=lambda f: len(f.name)) if named else None


def architecture_of_preset(preset: Any) -> FamilySpec:
    """The family of a :class:`evalsuite.presets.ModelPreset` before any weight loads: its
    ``config.json`` (a local directory or a cached hub snapshot), else the preset's declared
    ``architecture``, else the family its hub id names, else LLaDA."""
    found = architecture_of(preset.hub_id)
    if found is not None:
        return found
    if getattr(preset, "architecture", None):
        return family_named(preset.architecture)
    return architecture_named_in(preset.hub_id) or FAMILIES[0]


def family_of_network(network: object) -> FamilySpec:
    """The family whose ``network_class`` built ``network`` (LLaDA when none matches)."""
    cls = type(network)
    for family in FAMILIES:
        module, _, name = family.network_class.partition(":")
        if cls.__module__ == module and cls.__name__ == name:
            return family
    return FAMILIES[0]


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
