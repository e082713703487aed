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

import json
import shutil
from pathlib import Path

import torch

TOKENIZER_FILES = ("tokenizer.json", "special_tokens_map.json")
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
    from safetensors.torch import save_file

    from evalsuite.families.dream.config import DreamConfig
    from evalsuite.families.dream.network import DreamModel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = DreamConfig.from_dict(CONFIG)
    torch.manual_seed(seed)
    model = DreamModel(cfg)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in sorted(model.state_dict().items()):
        if key.endswith("layernorm.weight") or key == "model.norm.weight":
            state[key] = torch.ones_like(value)
        else:
            scale = 0.5 if key == "model.embed_tokens.weight" else 0.08
            state[key] = (torch.randn(value.shape, generator=gen) * scale).contiguous()
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    for name in TOKENIZER_FILES:
        shutil.copyfile(Path(tokenizer_dir) / name, out_dir / name)
    tok_cfg = json.loads((Path(tokenizer_dir) / "tokenizer_config.json").read_text())
    tok_cfg.pop("chat_template", None)
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")
    return out_dir
