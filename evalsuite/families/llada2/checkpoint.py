"""Loading an official LLaDA2 checkpoint (``config.json`` + safetensors, Ling/Bailing keys).

Keys: ``model.word_embeddings.weight``, ``model.layers.N.attention.query_key_value.weight``
(fused ``[(H + 2 KV) * head_dim, hidden]``, q then k then v),
``attention.{query,key}_layernorm.weight``, ``attention.dense.weight``, ``input_layernorm``,
``post_attention_layernorm``; dense layers ``mlp.{gate,up,down}_proj.weight``; MoE layers
``mlp.gate.weight`` ``[E, hidden]``, ``mlp.gate.expert_bias`` ``[E]``,
``mlp.experts.E.{gate,up,down}_proj.weight``, ``mlp.shared_experts.{gate,up,down}_proj.weight``;
``model.norm.weight``; ``lm_head.weight`` (absent when tied).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from evalsuite.families import read_config
from evalsuite.families.common import load_weights
from evalsuite.families.llada2.config import LLaDA2Config
from evalsuite.families.llada2.network import LLaDA2Model

EXPERT_KEY = re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(\w+)\.weight")


def describe_mismatch(cfg: LLaDA2Config):
    """A ``describe`` callback naming the config key behind an expert/layer mismatch."""

    def describe(kind: str, key: str, found: tuple[int, ...] | None,
                 expected: tuple[int, ...] | None) -> str | None:
        m = EXPERT_KEY.fullmatch(key)
        if m and kind == "unexpected":
            layer, expert = int(m.group(1)), int(m.group(2))
            if layer < cfg.num_hidden_layers and not cfg.is_moe(layer):
                return (f"key {key!r}: layer {layer} holds experts but first_k_dense_replace="
                        f"{cfg.first_k_dense_replace} makes it dense; fix first_k_dense_replace")
            return (f"key {key!r}: the checkpoint has expert {expert} but config.json says "
                    f"num_experts={cfg.num_experts}; set num_experts to the checkpoint's "
                    "expert count")
        if m and kind == "missing":
            return (f"config.json says num_experts={cfg.num_experts} but expert {m.group(2)} "
                    f"of layer {m.group(1)} is absent; set num_experts to the checkpoint's "
                    "expert count")
        if m and kind == "shape":
            return (f"key {key!r} has shape {found}, config.json implies {expected} "
                    f"(moe_intermediate_size={cfg.moe_intermediate_size}); fix "
                    "moe_intermediate_size")
        if (key.endswith("mlp.gate.weight") or key.endswith("mlp.gate.expert_bias")) \
                and kind == "shape":
            return (f"key {key!r} (the router) has shape {found}: {found[0] if found else '?'} "
                    f"experts, config.json says num_experts={cfg.num_experts}; set num_experts "
                    "to the checkpoint's expert count")
        if ".shared_experts." in key:
            return (f"key {key!r} ({kind}, shape {found}, expected {expected}): config.json "
                    f"num_shared_experts={cfg.num_shared_experts} does not match the "
                    "checkpoint; fix num_shared_experts")
        if "query_key_value" in key and kind == "shape":
            return (f"key {key!r} has shape {found}, config.json implies {expected} "
                    f"((num_attention_heads {cfg.num_attention_heads} + 2 x num_key_value_heads "
                    f"{cfg.num_key_value_heads}) x head_dim {cfg.head_dim}); fix the head "
                    "counts or head_dim")
        return None

    return describe


def load_llada2_network(ckpt_dir: Path, *, dtype: str | torch.dtype = "float32",
                        device: str | torch.device = "cpu") -> LLaDA2Model:
    """The LLaDA2 family's ``load_network`` (:mod:`evalsuite.families`)."""
    source = str(Path(ckpt_dir) / "config.json")
    cfg = LLaDA2Config.from_dict(read_config(Path(ckpt_dir)), source=source)
    with torch.device("meta"):
        model = LLaDA2Model(cfg)
    tied = cfg.tie_word_embeddings
    load_weights(model, Path(ckpt_dir), dtype=dtype, device=device,
                 describe=describe_mismatch(cfg),
                 ignore=lambda key: tied and key == "lm_head.weight")
    return model.fuse_experts()
