"""The LLaDA-MoE ``config.json`` (``LLaDAMoEConfig`` keys), validated before any weight loads."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from evalsuite.errors import CheckpointError

#: Router score functions accepted in ``moe_router_score_function``. The official forward
#: routes with softmax whatever this says (the field is stored, never read), so both values a
#: LLaDA-MoE config may carry give the softmax router; anything else is refused.
SCORE_FUNCTIONS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class LLaDAMoEConfig:
    """The subset of ``config.json`` that defines the network."""

    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    num_hidden_layers: int
    vocab_size: int
    num_experts: int
    num_experts_per_tok: int
    expert_intermediate_size: int
    dense_intermediate_size: int
    moe_layer_freq: tuple[int, ...]
    shared_expert_intermediate_size: int | None = None
    rope_theta: float = 10000.0
    partial_rotary_factor: float = 1.0
    rms_norm_eps: float = 1e-5
    qk_layernorm: bool = True
    clip_qkv: float | None = None
    attention_bias: bool = False
    tie_word_embeddings: bool = False
    moe_router_enable_expert_bias: bool = False
    mask_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)

    @property
    def embedding_size(self) -> int:
        """Rows of the embedding (special ids must be below it)."""
        return self.vocab_size

    def is_moe(self, layer: int) -> bool:
        return self.moe_layer_freq[layer] != 0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config.json") -> "LLaDAMoEConfig":
        """Build from the official keys; unsupported options raise :class:`CheckpointError`
        naming the key and the fix."""
        required = ("hidden_size", "num_attention_heads", "num_hidden_layers", "vocab_size",
                    "num_experts", "num_experts_per_tok", "expert_intermediate_size")
        missing = [k for k in required if raw.get(k) is None]
        if missing:
            raise CheckpointError(
                f"{source}: missing key(s) {', '.join(missing)}; expected a LLaDA-MoE "
                "config.json (LLaDAMoEConfig keys hidden_size, num_experts, ...)")
        if raw.get("hidden_act", "silu") != "silu":
            raise CheckpointError(f"{source}: hidden_act={raw['hidden_act']!r} is not supported "
                                  "(LLaDA-MoE uses silu); set hidden_act to \"silu\"")
        if raw.get("rope_scaling") is not None:
            raise CheckpointError(f"{source}: rope_scaling={raw['rope_scaling']!r} is not "
                                  "supported (only the default RoPE); set it to null")
        score = raw.get("moe_router_score_function", "softmax")
        if score is not None and score not in SCORE_FUNCTIONS:
            raise CheckpointError(
                f"{source}: moe_router_score_function={score!r} is not supported: the "
                "official LLaDA-MoE forward always routes with softmax; use one of "
                f"{', '.join(SCORE_FUNCTIONS)}")
        hidden, heads = int(raw["hidden_size"]), int(raw["num_attention_heads"])
        kv = int(raw.get("num_key_value_heads") or heads)
        layers = int(raw["num_hidden_layers"])
        if hidden % heads or heads % kv:
            raise CheckpointError(
                f"{source}: hidden_size {hidden}, num_attention_heads {heads}, "
                f"num_key_value_heads {kv} are inconsistent (hidden_size % num_attention_heads "
                "and num_attention_heads % num_key_value_heads must be 0)")
        experts, top_k = int(raw["num_experts"]), int(raw["num_experts_per_tok"])
        if experts < 1 or not 1 <= top_k <= experts:
            raise CheckpointError(
                f"{source}: num_experts_per_tok={top_k} must be between 1 and num_experts="
                f"{experts}")
        freq = raw.get("moe_layer_freq", 1)
        freq_t = (int(freq),) * layers if isinstance(freq, int) else tuple(int(f) for f in freq)
        if len(freq_t) != layers or any(f not in (0, 1) for f in freq_t):
            raise CheckpointError(
                f"{source}: moe_layer_freq={freq!r} must be 0/1 per layer "
                f"(num_hidden_layers={layers} entries: 0 dense, 1 MoE)")
        dense = raw.get("dense_intermediate_size") or raw.get("intermediate_size")
        if dense is None and 0 in freq_t:
            raise CheckpointError(f"{source}: moe_layer_freq has dense layers but "
                                  "dense_intermediate_size is missing; add it")
        factor = float(raw.get("partial_rotary_factor", 1.0) or 1.0)
        head_dim = hidden // heads
        if not 0 < factor <= 1 or int(head_dim * factor) % 2:
            raise CheckpointError(f"{source}: partial_rotary_factor={factor} must be in (0, 1] "
                                  f"and give an even rotary dimension (head_dim {head_dim})")
        shared = raw.get("shared_expert_intermediate_size")
        clip = raw.get("clip_qkv")
        return cls(
            hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=kv,
            num_hidden_layers=layers, vocab_size=int(raw["vocab_size"]), num_experts=experts,
            num_experts_per_tok=top_k,
            expert_intermediate_size=int(raw["expert_intermediate_size"]),
            dense_intermediate_size=int(dense or 0), moe_layer_freq=freq_t,
            shared_expert_intermediate_size=None if shared is None else int(shared),
            rope_theta=float(raw.get("rope_theta", 10000.0)), partial_rotary_factor=factor,
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-5)),
            qk_layernorm=bool(raw.get("qk_layernorm", True)),
            clip_qkv=None if clip is None else float(clip),
            attention_bias=bool(raw.get("attention_bias", False)),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            moe_router_enable_expert_bias=bool(raw.get("moe_router_enable_expert_bias", False)),
            mask_token_id=raw.get("mask_token_id"), eos_token_id=_first(raw.get("eos_token_id")),
            pad_token_id=raw.get("pad_token_id"),
        )


def _first(value: Any) -> Any:
    """``eos_token_id`` may be a list in Hugging Face configs: the first is the EOS."""
    if isinstance(value, list):
        return value[0] if value else None
    return value
