"""Dream's ``config.json`` (``model_type: Dream``, Qwen2 keys) as the network needs it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from evalsuite.errors import CheckpointError

#: Options of the official config that change the network and that this implementation
#: refuses unless they have the value it implements (key -> accepted values).
FIXED_OPTIONS: dict[str, tuple[Any, ...]] = {
    "hidden_act": ("silu",),
    "rope_scaling": (None,),
    "use_sliding_window": (False, None),
}
REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "vocab_size")


@dataclass(frozen=True)
class DreamConfig:
    """The subset of Dream's official ``config.json`` that defines the network."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 32768
    mask_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def embedding_size(self) -> int:
        """Rows of the embedding (the vocabulary), for the special-token range checks."""
        return self.vocab_size

    @property
    def max_sequence_length(self) -> int:
        return self.max_position_embeddings

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "config.json") -> "DreamConfig":
        """Build from the official keys; every unsupported option or inconsistency raises
        :class:`CheckpointError` naming the key, the value and the fix."""
        missing = [k for k in REQUIRED if k not in raw]
        if missing:
            raise CheckpointError(
                f"{source}: missing key(s) {', '.join(missing)}; a Dream config.json "
                "(model_type Dream) has the Qwen2 keys hidden_size, intermediate_size, "
                "num_hidden_layers, num_attention_heads, vocab_size: use the checkpoint's "
                "original config.json")
        for key, accepted in FIXED_OPTIONS.items():
            if key in raw and raw[key] not in accepted:
                raise CheckpointError(
                    f"{source}: {key}={raw[key]!r} is not supported for Dream (supported: "
                    f"{' or '.join(repr(a) for a in accepted)}); this network cannot be run "
                    "natively as configured")
        ints: dict[str, int] = {}
        for key in (*REQUIRED, "num_key_value_heads", "max_position_embeddings"):
            if key not in raw:
                continue
            value = raw[key]
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise CheckpointError(f"{source}: {key}={value!r} must be a positive integer")
            ints[key] = value
        heads = ints["num_attention_heads"]
        kv_heads = ints.get("num_key_value_heads", heads)
        hidden = ints["hidden_size"]
        if hidden % heads or heads % kv_heads:
            raise CheckpointError(
                f"{source}: hidden_size {hidden}, num_attention_heads {heads}, "
                f"num_key_value_heads {kv_heads} are inconsistent (hidden_size % "
                "num_attention_heads and num_attention_heads % num_key_value_heads must be 0)")
        if (hidden // heads) % 2:
            raise CheckpointError(f"{source}: head dimension {hidden // heads} (hidden_size / "
                                  "num_attention_heads) must be even for rotary embeddings")
        special = {}
        for key in ("mask_token_id", "eos_token_id", "pad_token_id", "bos_token_id"):
            value = raw.get(key)
            if isinstance(value, list):  # generation configs may list several EOS ids
                value = value[0] if value else None
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or not 0 <= value < ints["vocab_size"]):
                raise CheckpointError(f"{source}: {key}={raw.get(key)!r} is not a token id of "
                                      f"the vocabulary (vocab_size {ints['vocab_size']})")
            special[key] = value
        return cls(
            hidden_size=hidden,
            intermediate_size=ints["intermediate_size"],
            num_hidden_layers=ints["num_hidden_layers"],
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            vocab_size=ints["vocab_size"],
            rope_theta=float(raw.get("rope_theta", 10000.0)),
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            max_position_embeddings=ints.get("max_position_embeddings", 32768),
            **special,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
