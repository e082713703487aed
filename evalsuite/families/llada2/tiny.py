"""``llada2-tiny``: random weights in LLaDA2's official (Ling/Bailing) layout with a
tokenizer, for end-to-end tests through ``evalsuite run`` and lm-eval (text in, text out).

The official format exactly (``config.json`` with ``LLaDA2MoeConfig`` keys and ``model_type:
llada2_moe``; safetensors keys ``model.word_embeddings.weight``,
``model.layers.N.attention.query_key_value.weight``, ``attention.{query,key}_layernorm``,
``attention.dense``, ``mlp.gate.weight`` / ``mlp.gate.expert_bias``,
``mlp.experts.E.{gate,up,down}_proj.weight``, ``mlp.shared_experts.*``, ``lm_head.weight``):
LLaDA2-mini's proportions shrunk (layer 0 dense, layer 1 MoE with 8 experts, top-2, 4 groups
of which 2 are kept, one shared expert, partial rotary 0.5), and llada-tiny's byte-level BPE
tokenizer (vocabulary 2048: ``<|endoftext|>`` 0 = EOS = pad, ``<|mdm_mask|>`` 1 = mask; the
ids are in ``config.json``, read from there), no chat template. The weights are random
(seeded): it tests the plumbing, not accuracy. :func:`build` regenerates it bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import torch

SEED = 20261204
CONFIG = {
    "architectures": ["LLaDA2MoeModelLM"],
    "auto_map": {"AutoConfig": "configuration_llada2_moe.LLaDA2MoeConfig",
                 "AutoModel": "modeling_llada2_moe.LLaDA2MoeModel",
                 "AutoModelForCausalLM": "modeling_llada2_moe.LLaDA2MoeModelLM"},
    "model_type": "llada2_moe",
    "hidden_act": "silu",
    "hidden_size": 64,
    "head_dim": 16,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 128,
    "moe_intermediate_size": 32,
    "first_k_dense_replace": 1,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "n_group": 4,
    "topk_group": 2,
    "num_shared_experts": 1,
    "routed_scaling_factor": 2.5,
    "partial_rotary_factor": 0.5,
    "rope_scaling": None,
    "rope_theta": 600000.0,
    "rms_norm_eps": 1e-6,
    "use_qk_norm": True,
    "use_qkv_bias": False,
    "use_bias": False,
    "norm_head": False,
    "use_sliding_window": False,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
    "vocab_size": 2048,
    "eos_token_id": 0,
    "pad_token_id": 0,
    "mask_token_id": 1,
    "dtype": "float32",
    "use_cache": False,
}


def build(out_dir: Path, tokenizer_dir: Path, seed: int = SEED) -> Path:
    """Write the checkpoint to ``out_dir`` (config, weights, tokenizer without chat template)."""
    from evalsuite.families.common import write_tiny_checkpoint
    from evalsuite.families.llada2.config import LLaDA2Config
    from evalsuite.families.llada2.network import LLaDA2Model

    with torch.device("meta"):
        network = LLaDA2Model(LLaDA2Config.from_dict(CONFIG))  # per-expert keys (unfused)
    return write_tiny_checkpoint(out_dir, CONFIG, network, tokenizer_dir, seed)
