"""Loading an official LLaDA-MoE checkpoint (``config.json`` + safetensors, Hugging Face keys).

Keys: ``model.embed_tokens.weight``, ``model.layers.N.self_attn.{q,k,v,o}_proj.weight``,
``self_attn.{q,k}_norm.weight``, ``input_layernorm``, ``post_attention_layernorm``; MoE layers
``mlp.gate.weight`` ``[E, hidden]``, ``mlp.experts.E.{gate,up,down}_proj.weight``, optional
``mlp.expert_bias``, optional ``shared_expert.{gate,up,down}_proj.weight``; dense layers
``mlp.{gate,up,down}_proj.weight``; ``model.norm.weight``; ``lm_head.weight`` (absent when
tied). dInfer's fused-expert layout (``mlp.w1``/``mlp.w2``) is refused with a message.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from evalsuite.families import read_config
from evalsuite.families.common import load_weights
from evalsuite.families.llada_moe.config import LLaDAMoEConfig
from evalsuite.families.llada_moe.network import LLaDAMoEModel

EXPERT_KEY = re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(\w+)\.weight")


def describe_mismatch(cfg: LLaDAMoEConfig):
    """A ``describe`` callback naming the config key behind an expert/layer mismatch."""

    def describe(kind: str, key: str, found: tuple[int, ...] | None,
                 expected: tuple[int, ...] | None) -> str | None:
        m = EXPERT_KEY.fullmatch(key)
        if ".mlp.w1" in key or ".mlp.w2" in key:
            return (f"key {key!r} is dInfer's fused-expert layout; evalsuite reads the "
                    "Hugging Face layout (mlp.experts.E.{gate,up,down}_proj): use the hub "
                    "checkpoint, not a dInfer-converted one")
        if m and kind == "unexpected":
            layer, expert = int(m.group(1)), int(m.group(2))
            if layer < cfg.num_hidden_layers and not cfg.is_moe(layer):
                return (f"key {key!r}: layer {layer} holds experts but moe_layer_freq[{layer}]"
                        f" is 0 (dense); fix moe_layer_freq in config.json")
            return (f"key {key!r}: the checkpoint has expert {expert} but config.json says "
                    f"num_experts={cfg.num_experts}; set num_experts to the checkpoint's "
                    "expert count")
        if m and kind == "missing":
            return (f"config.json says num_experts={cfg.num_experts} but expert "
                    f"{m.group(2)} of layer {m.group(1)} is absent; set num_experts to the "
                    "checkpoint's expert count")
        if m and kind == "shape":
            return (f"key {key!r} has shape {found}, config.json implies {expected} "
                    f"(expert_intermediate_size={cfg.expert_intermediate_size}, hidden_size="
                    f"{cfg.hidden_size}); fix expert_intermediate_size")
        if key.endswith("mlp.gate.weight") and kind == "shape":
            return (f"key {key!r} (the router) has shape {found}: {found[0] if found else '?'}"
                    f" experts, config.json says num_experts={cfg.num_experts}; set "
                    "num_experts to the checkpoint's expert count")
        if key.endswith("mlp.expert_bias"):
            return (f"key {key!r}: config.json moe_router_enable_expert_bias="
                    f"{cfg.moe_router_enable_expert_bias} does not match the checkpoint; set "
                    "it to " + ("true" if kind == "unexpected" else "false"))
        if ".shared_expert." in key:
            return (f"key {key!r}: config.json shared_expert_intermediate_size="
                    f"{cfg.shared_expert_intermediate_size} does not match the checkpoint; "
                    "fix shared_expert_intermediate_size")
        return None

    return describe


def load_llada_moe_network(ckpt_dir: Path, *, dtype: str | torch.dtype = "float32",
                           device: str | torch.device = "cpu") -> LLaDAMoEModel:
    """The LLaDA-MoE family's ``load_network`` (:mod:`evalsuite.families`)."""
    source = str(Path(ckpt_dir) / "config.json")
    cfg = LLaDAMoEConfig.from_dict(read_config(Path(ckpt_dir)), source=source)
    with torch.device("meta"):
        model = LLaDAMoEModel(cfg)
    if cfg.tie_word_embeddings:
        def ignore(key: str) -> bool:
            return key == "lm_head.weight"
    else:
        def ignore(key: str) -> bool:
            return False
    load_weights(model, Path(ckpt_dir), dtype=dtype, device=device,
                 describe=describe_mismatch(cfg), ignore=ignore)
    return model
