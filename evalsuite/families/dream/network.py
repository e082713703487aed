"""Dream's network: a Qwen2-style decoder run bidirectionally (no remote code).

RMSNorm (float32 inside), rotary embeddings on ``position_ids`` (half rotation, applied in the
model dtype as the official code does), q/k/v projections with bias and o_proj without,
grouped-query attention, SwiGLU, final norm, tied or untied head. Attention is never causal.

The forward returns the official forward's RAW logits: the output at position i is *not*
shifted. Dream's protocol reads token i from the output at i - 1 (position 0 from itself);
that shift belongs to the sampler and the estimator (``logit_shift`` of the family).

Masks: ``attention_mask`` may be None (full attention), a 2-D padding mask ``[B, T]`` (1 =
token; keys at 0 are ignored and, unless ``position_ids`` is given, positions are
``cumsum(mask) - 1`` with padding at 1, as Dream's ``diffusion_generate`` numbers them), or a
4-D mask ``[B, 1, T, T]`` (bool, or additive float) passed to attention as it is, with the
``position_ids`` that go with it (the form ``diffusion_generate`` builds).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from evalsuite.families.dream.config import DreamConfig
from evalsuite.models.llada import RMSNorm


def padded_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Dream's position ids for a left-padded 2-D mask: ``cumsum(mask) - 1``, padding at 1."""
    mask = attention_mask.long()
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


class DreamAttention(nn.Module):
    def __init__(self, cfg: DreamConfig) -> None:
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.num_attention_heads * hd, bias=True)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads * hd, bias=True)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads * hd, bias=True)
        self.o_proj = nn.Linear(cfg.num_attention_heads * hd, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        cfg = self.cfg
        b, t, _ = x.shape
        hd = cfg.head_dim
        q = self.q_proj(x).view(b, t, cfg.num_attention_heads, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, cfg.num_key_value_heads, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, cfg.num_key_value_heads, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        groups = cfg.num_attention_heads // cfg.num_key_value_heads
        if groups > 1:  # repeat each KV head for its query heads, as the official repeat_kv
            shape = (b, cfg.num_key_value_heads, groups, t, hd)
            k = k[:, :, None].expand(shape).reshape(b, -1, t, hd)
            v = v[:, :, None].expand(shape).reshape(b, -1, t, hd)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=False)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class DreamMLP(nn.Module):
    def __init__(self, cfg: DreamConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DreamLayer(nn.Module):
    def __init__(self, cfg: DreamConfig) -> None:
        super().__init__()
        self.self_attn = DreamAttention(cfg)
        self.mlp = DreamMLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class DreamBody(nn.Module):
    """``model.*`` of the checkpoint: embeddings, layers, final norm."""

    def __init__(self, cfg: DreamConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DreamLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class DreamModel(nn.Module):
    """Dream's mask predictor: ids in, raw (unshifted) logits out."""

    logit_shift = 1
    """Dream's protocol reads token i from the output at i - 1 (position 0 from itself)."""

    def __init__(self, cfg: DreamConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = DreamBody(cfg)
        self.lm_head = (None if cfg.tie_word_embeddings
                        else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False))

    @property
    def device(self) -> torch.device:
        return self.model.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    def _rotary(self, position_ids: torch.Tensor, dtype: torch.dtype
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin ``[B, 1, T, head_dim]`` in ``dtype`` for ``position_ids`` ``[B, T]``."""
        hd = self.config.head_dim
        inv_freq = 1.0 / (self.config.rope_theta ** (
            torch.arange(0, hd, 2, dtype=torch.int64, device=position_ids.device).float() / hd))
        freqs = position_ids[..., None].float() * inv_freq  # [B, T, hd/2], float32
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos().to(dtype)[:, None], emb.sin().to(dtype)[:, None]

    def _attention_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                          position_ids: torch.Tensor | None, dtype: torch.dtype
                          ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The mask given to attention and the position ids (see the module docstring)."""
        b, t = input_ids.shape
        mask: torch.Tensor | None = None
        if attention_mask is not None and attention_mask.dim() == 4:
            mask = attention_mask
            if mask.dtype != torch.bool:
                mask = mask.to(dtype)
        elif attention_mask is not None:
            if attention_mask.shape != (b, t):
                raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, "
                                 f"input_ids {(b, t)}")
            if not bool(attention_mask.all()):
                keep = attention_mask.to(torch.bool)[:, None, None, :]
                mask = torch.zeros(keep.shape, dtype=dtype, device=input_ids.device)
                mask = mask.masked_fill(~keep, torch.finfo(dtype).min)
                if position_ids is None:
                    position_ids = padded_positions(attention_mask)
        if position_ids is None:
            position_ids = torch.arange(t, device=input_ids.device)[None].expand(b, t)
        return mask, position_ids.to(input_ids.device)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Final normalised hidden states ``[B, T, hidden]``."""
        x = self.model.embed_tokens(input_ids)
        mask, pos = self._attention_inputs(input_ids, attention_mask, position_ids, x.dtype)
        cos, sin = self._rotary(pos, x.dtype)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        return self.model.norm(x)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits ``[..., vocab]`` of hidden states ``[..., hidden]``."""
        weight = self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(hidden, weight)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                positions: slice | None = None, position_ids: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Raw logits ``[B, T, V]`` (or of the columns ``positions`` only)."""
        hidden = self.hidden_states(input_ids, attention_mask, position_ids)
        if positions is not None:
            hidden = hidden[:, positions]
        return self.head(hidden)
