"""The bundled ``dream-tiny`` checkpoint: random weights in Dream's official layout, with a
tokenizer, for end-to-end tests through lm-eval (text in, text out).

It is Dream's format exactly (``config.json`` with the Qwen2 keys and ``model_type: Dream``,
safetensors keys ``model.embed_tokens.weight``, ``model.layers.N.self_attn.{q,k,v}_proj.
{weight,bias}``, ..., ``lm_head.weight``), an untied head as the real model, and
llada-tiny's byte-level BPE tokenizer (vocabulary 2048: ``<|endoftext|>`` 0 = EOS = pad, ``<|mdm_mask|>`` 1 = mask),
without a chat template (a base model). The weights are random (seeded): it tests the
plumbing, not accuracy. :func:`build` regenerates it bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import torch

SEED = 20261203
CONFIG = {
    "architectures": ["DreamModel"],
    "auto_map": {"AutoConfig": "configuration_dream.DreamConfig",
                 "AutoModel": "modeling_dream.DreamModel"},
    "model_type": "Dream",
    "hidden_act": "silu",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 2048,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": False,
    "use_sliding_window": False,
    "sliding_window": None,
    "attention_dropout": 0.0,
    "bos_token_id": 5,
    "eos_token_id": 0,
    "pad_token_id": 0,
    "mask_token_id": 1,
    "torch_dtype": "float32",
}


def build(out_dir: Path, tokenizer_dir: Path, seed: int = SEED) -> Path:
    """Write the checkpoint to ``out_dir`` (config, weights, tokenizer without chat template)."""
    from evalsuite.families.common import write_tiny_checkpoint
    from evalsuite.families.dream.config import DreamConfig
    from evalsuite.families.dream.network import DreamModel

    with torch.device("meta"):
        network = DreamModel(DreamConfig.from_dict(CONFIG))
    return write_tiny_checkpoint(out_dir, CONFIG, network, tokenizer_dir, seed)
