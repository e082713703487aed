"""The LLaDA2 ``config.json`` (``LLaDA2MoeConfig`` keys), validated before any weight loads."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from evalsuite.errors import CheckpointError


@dataclass(frozen=True)
class LLaDA2Config:
    """The subset of ``config.json`` that defines the network."""

    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    num_hidden_layers: int
    vocab_size: int
    intermediate_size: int
    num_experts: int
    num_experts_per_tok: int
    moe_intermediate_size: int
    num_shared_experts: int | None
    first_k_dense_replace: int
    n_group: int
    topk_group: int
    routed_scaling_factor: float = 1.0
    rope_theta: float = 10000.0
    partial_rotary_factor: float = 1.0
    rms_norm_eps: float = 1e-6
    use_qk_norm: bool = True
    use_qkv_bias: bool = False
    use_bias: bool = False
    tie_word_embeddings: bool = False
    mask_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)

    @property
    def embedding_size(self) -> int:
        return self.vocab_size

    def is_moe(self, layer: int) -> bool:
        return self.num_experts > 0 and layer >= self.first_k_dense_replace

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config.json") -> "LLaDA2Config":
        """Build from the official keys; unsupported options raise :class:`CheckpointError`
        naming the key and the fix."""
        required = ("hidden_size", "num_attention_heads", "num_hidden_layers", "vocab_size",
                    "intermediate_size")
        missing = [k for k in required if raw.get(k) is None]
        if missing:
            raise CheckpointError(
                f"{source}: missing key(s) {', '.join(missing)}; expected a LLaDA2 config.json "
                "(LLaDA2MoeConfig keys hidden_size, num_experts, ...)")
        # options whose other values this implementation does not run (None = unset: fine)
        supported = {"hidden_act": "silu", "rope_scaling": None, "norm_head": False,
                     "use_sliding_window": False}
        for key, ok in supported.items():
            if raw.get(key) is not None and raw[key] != ok:
                raise CheckpointError(f"{source}: {key}={raw[key]!r} is not supported; "
                                      f"LLaDA2 as evalsuite runs it needs {key}={ok!r}")
        for key in ("score_function", "moe_router_score_function"):
            if raw.get(key) not in (None, "sigmoid"):
                raise CheckpointError(
                    f"{source}: {key}={raw[key]!r} is not supported: the LLaDA2 router scores "
                    "experts with sigmoid; set it to \"sigmoid\"")
        hidden, heads = int(raw["hidden_size"]), int(raw["num_attention_heads"])
        kv = int(raw.get("num_key_value_heads") or heads)
        head_dim = int(raw.get("head_dim") or hidden // heads)
        if heads % kv:
            raise CheckpointError(f"{source}: num_attention_heads {heads} is not a multiple of "
                                  f"num_key_value_heads {kv}")
        factor = float(raw.get("partial_rotary_factor", 1.0) or 1.0)
        if not 0 < factor <= 1 or int(head_dim * factor) % 2:
            raise CheckpointError(f"{source}: partial_rotary_factor={factor} must be in (0, 1] "
                                  f"and give an even rotary dimension (head_dim {head_dim})")
        experts = int(raw.get("num_experts") or 0)
        top_k = int(raw.get("num_experts_per_tok") or 0)
        n_group = int(raw.get("n_group") or 1)
        topk_group = int(raw.get("topk_group") or n_group)
        if experts:
            if not 1 <= top_k <= experts:
                raise CheckpointError(f"{source}: num_experts_per_tok={top_k} must be between 1 "
                                      f"and num_experts={experts}")
            if n_group < 1 or experts % n_group or experts // n_group < 2:
                raise CheckpointError(
                    f"{source}: n_group={n_group} must divide num_experts={experts} into groups "
                    "of at least 2 experts (the group score is the sum of its top 2); fix n_group")
            if not 1 <= topk_group <= n_group or top_k > topk_group * (experts // n_group):
                raise CheckpointError(
                    f"{source}: topk_group={topk_group} must be in 1..n_group={n_group} and keep "
                    f"at least num_experts_per_tok={top_k} experts; fix topk_group")
            if raw.get("moe_intermediate_size") is None:
                raise CheckpointError(f"{source}: num_experts={experts} but "
                                      "moe_intermediate_size is missing; add it")
        shared = raw.get("num_shared_experts") or None  # 0: no shared expert
        eos = raw.get("eos_token_id")
        if isinstance(eos, list):
            eos = eos[0] if eos else None
        return cls(
            hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=kv,
            head_dim=head_dim, num_hidden_layers=int(raw["num_hidden_layers"]),
            vocab_size=int(raw["vocab_size"]), intermediate_size=int(raw["intermediate_size"]),
            num_experts=experts, num_experts_per_tok=top_k,
            moe_intermediate_size=int(raw.get("moe_intermediate_size") or 0),
            num_shared_experts=None if shared is None else int(shared),
            first_k_dense_replace=int(raw.get("first_k_dense_replace") or 0),
            n_group=n_group, topk_group=topk_group,
            routed_scaling_factor=float(raw.get("routed_scaling_factor", 1.0)),
            rope_theta=float(raw.get("rope_theta", 10000.0)), partial_rotary_factor=factor,
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            use_qk_norm=bool(raw.get("use_qk_norm", True)),
            use_qkv_bias=bool(raw.get("use_qkv_bias", False)),
            use_bias=bool(raw.get("use_bias", False)),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            mask_token_id=raw.get("mask_token_id"), eos_token_id=eos,
            pad_token_id=raw.get("pad_token_id"),
        )
