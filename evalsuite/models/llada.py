"""Native LLaDA-family network: LLaDA 8B Base/Instruct, LLaDA 1.5 and iLLaDA.

A bidirectional (non-causal) Llama-style transformer in the OLMo layout of the official
checkpoints: RMSNorm, rotary embeddings (half rotation), SwiGLU, grouped-query attention when
``n_kv_heads < n_heads``, optional tied embeddings. No remote code is executed.

The forward pass takes an optional key padding mask (1 = token, 0 = padding). Rotary
embeddings are relative, so left or right padding with a key mask gives the same logits for
the real tokens as no padding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from evalsuite.errors import CheckpointError


@dataclass(frozen=True)
class LLaDAConfig:
    """The subset of the official ``config.json`` that defines the network."""

    d_model: int
    n_heads: int
    n_layers: int
    mlp_hidden_size: int
    vocab_size: int
    embedding_size: int
    n_kv_heads: int
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    weight_tying: bool = False
    mask_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    max_sequence_length: int = 4096

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config.json") -> "LLaDAConfig":
        """Build from official keys, refusing options this implementation does not support."""
        unsupported = {
            "alibi": False,
            "rope": True,
            "block_type": "llama",
            "activation_type": "silu",
            "layer_norm_type": "rms",
            "include_bias": False,
            "include_qkv_bias": False,
            "attention_layer_norm": False,
            "input_emb_norm": False,
            "scale_logits": False,
        }
        for key, expected in unsupported.items():
            if key in raw and raw[key] is not None and raw[key] != expected:
                raise CheckpointError(
                    f"{source}: {key}={raw[key]!r} is not supported (expected {expected!r}); "
                    "this is not a LLaDA-family checkpoint evalsuite can run natively"
                )
        required = ("d_model", "n_heads", "n_layers", "vocab_size")
        missing = [k for k in required if k not in raw]
        if missing:
            raise CheckpointError(
                f"{source}: missing key(s) {', '.join(missing)}; expected an official "
                "LLaDA config.json (OLMo-style keys d_model, n_heads, n_layers, ...)"
            )
        d_model = int(raw["d_model"])
        mlp = raw.get("mlp_hidden_size") or int(raw.get("mlp_ratio", 4)) * d_model
        n_heads = int(raw["n_heads"])
        n_kv = raw.get("n_kv_heads")
        if raw.get("multi_query_attention"):
            n_kv = 1
        n_kv = int(n_kv) if n_kv else n_heads
        if d_model % n_heads or n_heads % n_kv:
            raise CheckpointError(
                f"{source}: d_model {d_model}, n_heads {n_heads}, n_kv_heads {n_kv} are "
                "inconsistent (d_model % n_heads and n_heads % n_kv_heads must be 0)"
            )
        return cls(
            d_model=d_model,
            n_heads=n_heads,
            n_layers=int(raw["n_layers"]),
            mlp_hidden_size=int(mlp),
            vocab_size=int(raw["vocab_size"]),
            embedding_size=int(raw.get("embedding_size") or raw["vocab_size"]),
            n_kv_heads=n_kv,
            rope_theta=float(raw.get("rope_theta", 10000.0)),
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-5)),
            weight_tying=bool(raw.get("weight_tying", False)),
            mask_token_id=raw.get("mask_token_id"),
            eos_token_id=raw.get("eos_token_id"),
            pad_token_id=raw.get("pad_token_id"),
            max_sequence_length=int(raw.get("max_sequence_length", 4096)),
        )

    @classmethod
    def from_file(cls, path: Path) -> "LLaDAConfig":
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise CheckpointError(
                f"{path}: not found; a LLaDA checkpoint directory needs config.json"
            ) from None
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(raw, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class RMSNorm(nn.Module):
    """RMSNorm computed in float32, as the official implementation does."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def rotary_tables(
    length: int, head_dim: int, theta: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables ``[T, head_dim]`` in float32 (half-rotation layout)."""
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    )
    pos = torch.arange(length, device=device, dtype=torch.float32)
    freqs = torch.outer(pos, inv_freq)  # [T, head_dim/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [T, head_dim]
    return emb.cos(), emb.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``[B, H, T, D]`` in float32 and cast back."""
    dtype = x.dtype
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (xf * cos + rotated * sin).to(dtype)


class Block(nn.Module):
    """One pre-norm transformer block with bidirectional attention and SwiGLU."""

    def __init__(self, cfg: LLaDAConfig) -> None:
        super().__init__()
        self.cfg = cfg
        kv_dim = cfg.n_kv_heads * cfg.head_dim
        self.attn_norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, kv_dim, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, kv_dim, bias=False)
        self.attn_out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.ff_norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.ff_proj = nn.Linear(cfg.d_model, cfg.mlp_hidden_size, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.mlp_hidden_size, bias=False)
        self.ff_out = nn.Linear(cfg.mlp_hidden_size, cfg.d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,  # [B, T, d]
        cos: torch.Tensor,
        sin: torch.Tensor,
        attn_bias: torch.Tensor | None,  # [B, 1, 1, Tc + T] additive, or None
        cached: tuple[torch.Tensor, torch.Tensor] | None = None,  # K, V [B, Hkv, Tc, hd]
        keep: torch.Tensor | None = None,  # [T] bool: positions whose K, V to return
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Returns the new hidden states and, when ``keep`` is given, the kept K, V.

        ``cached`` K, V (rotary already applied) are attended to in front of this call's own
        keys, for the approximate KV cache of :meth:`LLaDAModel.forward_cached`."""
        cfg = self.cfg
        b, t, _ = x.shape
        h = self.attn_norm(x)
        q = self.q_proj(h).view(b, t, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(b, t, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(b, t, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        kept = None if keep is None else (k[:, :, keep], v[:, :, keep])
        if cached is not None:
            k, v = torch.cat([cached[0], k], dim=2), torch.cat([cached[1], v], dim=2)
        att = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_bias, is_causal=False,
            enable_gqa=cfg.n_kv_heads != cfg.n_heads,
        )  # [B, H, T, hd]
        x = x + self.attn_out(att.transpose(1, 2).reshape(b, t, cfg.d_model))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h)), kept


@dataclass
class KVCache:
    """K, V of the positions outside ``active`` for every layer (rotary applied)."""

    active: slice
    layers: list[tuple[torch.Tensor, torch.Tensor]]


class LLaDAModel(nn.Module):
    """The mask predictor p_theta(x_0 | x_t): token ids in, logits over the vocabulary out."""

    def __init__(self, cfg: LLaDAConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.embedding_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.ff_out = (
            None if cfg.weight_tying else nn.Linear(cfg.d_model, cfg.embedding_size, bias=False)
        )
        self._rope_cache: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.reference_padding = False
        """Ignore the attention mask, as the official ``modeling_llada.py`` does (its attention
        call passes no mask, so padding tokens are attended). Only for parity checks: with it,
        a padded batch gives other results than its rows run alone."""

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.wte.weight.dtype

    def _rope(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (length, str(device))
        if key not in self._rope_cache:
            self._rope_cache.clear()
            self._rope_cache[key] = rotary_tables(
                length, self.config.head_dim, self.config.rope_theta, device
            )
        return self._rope_cache[key]

    def _key_bias(self, attention_mask: torch.Tensor | None, dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor | None:
        """Additive key-padding bias ``[B, 1, 1, T]`` (None when nothing is padded)."""
        if attention_mask is None or self.reference_padding or bool(attention_mask.all()):
            return None
        keep = attention_mask.to(torch.bool)[:, None, None, :]
        bias = torch.zeros(keep.shape, dtype=dtype, device=device)
        return bias.masked_fill(~keep, torch.finfo(dtype).min)

    def hidden_states(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Final normalised hidden states ``[B, T, d]``."""
        _, t = input_ids.shape
        x = self.wte(input_ids)
        cos, sin = self._rope(t, input_ids.device)
        bias = self._key_bias(attention_mask, x.dtype, x.device)
        for block in self.blocks:
            x, _ = block(x, cos, sin, bias)
        return self.ln_f(x)

    @torch.no_grad()
    def forward_cached(
        self,
        input_ids: torch.Tensor,  # [B, T], the full current sequence
        attention_mask: torch.Tensor | None,
        active: slice,
        positions: slice,
        cache: "KVCache | None" = None,
    ) -> tuple[torch.Tensor, "KVCache"]:
        """Logits for ``positions`` with an approximate KV cache (Fast-dLLM).

        Without ``cache``: a full forward pass that also returns the K, V of every position
        outside ``active``. With it: only the ``active`` positions are computed, attending to
        the cached K, V of the others. Exact right after the cache is built; afterwards
        approximate, because in a bidirectional model the cached positions' K, V would change
        with the active tokens. ``positions`` must lie inside ``active``.
        """
        b, t = input_ids.shape
        cos, sin = self._rope(t, input_ids.device)
        outside = torch.ones(t, dtype=torch.bool, device=input_ids.device)
        outside[active] = False
        if cache is None:
            x = self.wte(input_ids)
            bias = self._key_bias(attention_mask, x.dtype, x.device)
            layers = []
            for block in self.blocks:
                x, kept = block(x, cos, sin, bias, keep=outside)
                layers.append(kept)
            hidden = self.ln_f(x)[:, positions]
            return self.head(hidden), KVCache(active=active, layers=layers)
        x = self.wte(input_ids[:, active])
        bias = None
        if attention_mask is not None:
            order = torch.cat([attention_mask[:, outside], attention_mask[:, active]], dim=1)
            bias = self._key_bias(order, x.dtype, x.device)
        for block, kv in zip(self.blocks, cache.layers):
            x, _ = block(x, cos[active], sin[active], bias, cached=kv)
        start = active.start or 0
        rel = slice(positions.start - start, positions.stop - start)
        return self.head(self.ln_f(x)[:, rel]), cache

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Project hidden states ``[..., d]`` to logits ``[..., V]``."""
        weight = self.wte.weight if self.ff_out is None else self.ff_out.weight
        return F.linear(hidden, weight)

    def forward(
        self,
        input_ids: torch.Tensor,  # [B, T]
        attention_mask: torch.Tensor | None = None,  # [B, T], 1 = token, 0 = padding
        positions: slice | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, T, V]``, or ``[B, len(positions), V]`` for a column slice only.

        Computing the head on the needed columns only saves memory and time: the vocabulary
        projection of a 126k-token vocabulary dominates memory for long sequences.
        """
        hidden = self.hidden_states(input_ids, attention_mask)
        if positions is not None:
            hidden = hidden[:, positions]
        return self.head(hidden)


def param_count(cfg: LLaDAConfig) -> int:
    """Number of parameters of a network with this config (no weights needed)."""
    kv = cfg.n_kv_heads * cfg.head_dim
    per_block = (
        2 * cfg.d_model
        + cfg.d_model * cfg.d_model * 2
        + 2 * cfg.d_model * kv
        + 3 * cfg.d_model * cfg.mlp_hidden_size
    )
    head = 0 if cfg.weight_tying else cfg.embedding_size * cfg.d_model
    return cfg.embedding_size * cfg.d_model + cfg.n_layers * per_block + cfg.d_model + head


