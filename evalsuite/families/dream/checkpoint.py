"""Loading Dream's official checkpoint layout (single or sharded safetensors, no remote code).

Keys: ``model.embed_tokens.weight``, ``model.layers.N.self_attn.{q,k,v}_proj.{weight,bias}``,
``model.layers.N.self_attn.o_proj.weight``, ``model.layers.N.mlp.{gate,up,down}_proj.weight``,
``model.layers.N.{input,post_attention}_layernorm.weight``, ``model.norm.weight`` and
``lm_head.weight`` (absent when ``tie_word_embeddings``). These are the names of the
network's own parameters, so the mapping is the identity; every mismatch names the file, the
key and the fix.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from evalsuite.errors import CheckpointError
from evalsuite.families import read_config
from evalsuite.families.dream.config import DreamConfig
from evalsuite.families.dream.network import DreamModel
from evalsuite.models.checkpoint import _finite, checkpoint_files, iter_tensors, parse_dtype

HEAD_KEY = "lm_head.weight"
LAYER_KEY = re.compile(r"^model\.layers\.(\d+)\.")
#: Buffers some exports carry that hold no weights (recomputed from config.json here).
IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


def _mismatch_hint(key: str, cfg: DreamConfig) -> str:
    match = LAYER_KEY.match(key)
    if match and int(match.group(1)) >= cfg.num_hidden_layers:
        return (f"layer {match.group(1)} exists in the weights but config.json has "
                f"num_hidden_layers {cfg.num_hidden_layers}: use the config.json that came "
                "with these weights")
    if key == HEAD_KEY and cfg.tie_word_embeddings:
        return ""
    return ("the weights do not match config.json (hidden_size, num_hidden_layers, "
            "num_key_value_heads, tie_word_embeddings): use the config.json that came with them")


def load_dream_network(ckpt_dir: Path, *, dtype: str | torch.dtype = "float32",
                       device: str | torch.device = "cpu") -> DreamModel:
    """The Dream family's ``load_network``: build on the meta device, load straight into
    ``dtype`` on ``device`` (:class:`CheckpointError` for any mismatch)."""
    ckpt_dir = Path(ckpt_dir)
    torch_dtype = parse_dtype(dtype)
    cfg = DreamConfig.from_dict(read_config(ckpt_dir), source=str(ckpt_dir / "config.json"))
    with torch.device("meta"):
        model = DreamModel(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state: dict[str, torch.Tensor] = {}
    for key, path, tensor in iter_tensors(checkpoint_files(ckpt_dir)):
        if key.endswith(IGNORED_SUFFIXES):
            continue
        if key not in expected:
            if key == HEAD_KEY and cfg.tie_word_embeddings:
                continue  # a tied checkpoint that also stores the head: the embedding is used
            raise CheckpointError(f"{path}: unexpected key {key!r}; {_mismatch_hint(key, cfg)}")
        if tuple(tensor.shape) != expected[key]:
            raise CheckpointError(
                f"{path}: key {key!r} has shape {tuple(tensor.shape)}, config.json implies "
                f"{expected[key]}; {_mismatch_hint(key, cfg)}")
        state[key] = _finite(tensor.to(device=device, dtype=torch_dtype), tensor, key, path,
                             torch_dtype)
    missing = sorted(set(expected) - set(state))
    if missing:
        hint = ("config.json says tie_word_embeddings false but the weights have no "
                f"{HEAD_KEY}: set tie_word_embeddings true if the head is the embedding"
                if missing == [HEAD_KEY] else
                "the checkpoint is incomplete (a missing shard?) or does not match config.json")
        raise CheckpointError(
            f"{ckpt_dir}: missing key(s) {', '.join(missing[:5])}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "") + f"; {hint}")
    model.load_state_dict(state, assign=True, strict=True)
    model.eval().requires_grad_(False)
    return model
