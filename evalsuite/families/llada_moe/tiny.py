"""``llada-moe-tiny``: random weights in LLaDA-MoE's official layout with a tokenizer, for
end-to-end tests through ``evalsuite run`` and lm-eval (text in, text out).

The official format exactly (``config.json`` with ``LLaDAMoEConfig`` keys and ``model_type:
lladamoe``; safetensors keys ``model.embed_tokens.weight``, ``model.layers.N.self_attn.
{q,k,v,o}_proj.weight``, ``self_attn.{q,k}_norm.weight``, ``mlp.gate.weight``,
``mlp.experts.E.{gate,up,down}_proj.weight``, ``mlp.expert_bias``, ``shared_expert.*``,
``lm_head.weight``): layer 0 dense, layer 1 MoE (4 experts, top-2, expert bias, a shared
expert), and llada-tiny's byte-level BPE tokenizer (vocabulary 2048: ``<|endoftext|>`` 0 =
EOS = pad, ``<|mdm_mask|>`` 1 = mask; the ids are in ``config.json``, read from there), no
chat template. The weights are random (seeded): it tests the plumbing, not accuracy.
:func:`build` regenerates it bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import torch

SEED = 20261203
CONFIG = {
    "architectures": ["LLaDAMoEModelLM"],
    "auto_map": {"AutoConfig": "configuration_lladamoe.LLaDAMoEConfig",
                 "AutoModel": "modeling_lladamoe.LLaDAMoEModelLM",
                 "AutoModelForCausalLM": "modeling_lladamoe.LLaDAMoEModelLM"},
    "model_type": "lladamoe",
    "attention_bias": False,
    "clip_qkv": None,
    "hidden_act": "silu",
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "num_hidden_layers": 2,
    "dense_intermediate_size": 128,
    "expert_intermediate_size": 32,
    "shared_expert_intermediate_size": 32,
    "moe_layer_freq": [0, 1],
    "num_experts": 4,
    "num_experts_per_tok": 2,
    "norm_topk_prob": True,
    "moe_router_enable_expert_bias": True,
    "moe_router_score_function": "softmax",
    "qk_layernorm": True,
    "partial_rotary_factor": 1.0,
    "rope_scaling": None,
    "rope_theta": 50000.0,
    "rms_norm_eps": 1e-5,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
    "vocab_size": 2048,
    "eos_token_id": 0,
    "pad_token_id": 0,
    "mask_token_id": 1,
    "torch_dtype": "float32",
    "use_cache": False,
}


def build(out_dir: Path, tokenizer_dir: Path, seed: int = SEED) -> Path:
    """Write the checkpoint to ``out_dir`` (config, weights, tokenizer without chat template)."""
    from evalsuite.families.common import write_tiny_checkpoint
    from evalsuite.families.llada_moe.config import LLaDAMoEConfig
    from evalsuite.families.llada_moe.network import LLaDAMoEModel

    with torch.device("meta"):
        network = LLaDAMoEModel(LLaDAMoEConfig.from_dict(CONFIG))
    return write_tiny_checkpoint(out_dir, CONFIG, network, tokenizer_dir, seed)
