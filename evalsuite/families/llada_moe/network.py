"""Native LLaDA-MoE network (no remote code).

Per layer (pre-norm): ``x + o_proj(attn(input_layernorm(x)))``, then
``h + mlp(post_attention_layernorm(h)) [+ shared_expert(...)]``. Attention: q/k/v projections
(bias per ``attention_bias``), RMSNorm over each head of q and k (``qk_layernorm``, weight of
size head_dim, BEFORE RoPE), optional ``clip_qkv`` clamp, RoPE on the first
``head_dim * partial_rotary_factor`` features, bidirectional scaled dot-product attention.

MoE routing, exactly the official ``LLaDAMoESparseMoeBlock``: ``softmax(gate(h))`` in float32;
``+ expert_bias`` (when ``moe_router_enable_expert_bias``) added to the probabilities and kept
in the weights; ``topk``; NO renormalisation (the official block hard-codes
``norm_topk_prob = False`` whatever the config says); weights cast to the hidden dtype; output
``sum_k w_k expert_k(h)``. The shared expert (when configured, MoE layers only) is added
unweighted.

Padding: the key padding mask is honoured by default, so a padded batch gives each row its solo
logits. ``reference_padding = True`` ignores the mask as the hub forward does (it sets
``attention_mask = None`` in every layer; padding tokens are attended) for parity checks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from evalsuite.families.common import (
    SwiGLU,
    additive_bias,
    apply_rotary,
    key_padding_allowed,
    rotary_cos_sin,
)
from evalsuite.families.llada_moe.config import LLaDAMoEConfig
from evalsuite.models.llada import KVCache, RMSNorm

KV = tuple[torch.Tensor, torch.Tensor]


class Attention(nn.Module):
    def __init__(self, cfg: LLaDAMoEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        hd, bias = cfg.head_dim, cfg.attention_bias
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.num_attention_heads * hd, bias=bias)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads * hd, bias=bias)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads * hd, bias=bias)
        self.o_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=bias)
        if cfg.qk_layernorm:
            self.q_norm = RMSNorm(hd, cfg.rms_norm_eps)
            self.k_norm = RMSNorm(hd, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                bias: torch.Tensor | None, cached: KV | None = None,
                keep: torch.Tensor | None = None) -> tuple[torch.Tensor, KV | None]:
        """Output ``[B, T, d]`` and, when ``keep`` ``[T]`` is given, the kept K, V. ``cached``
        K, V (RoPE applied) are attended in front of this call's own keys."""
        cfg = self.cfg
        b, t, _ = x.shape
        hd = cfg.head_dim
        q = self.q_proj(x).view(b, t, -1, hd)
        k = self.k_proj(x).view(b, t, -1, hd)
        v = self.v_proj(x).view(b, t, -1, hd)
        if cfg.qk_layernorm:
            q, k = self.q_norm(q), self.k_norm(k)
        if cfg.clip_qkv is not None:
            q, k, v = (z.clamp(-cfg.clip_qkv, cfg.clip_qkv) for z in (q, k, v))
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        kept = None if keep is None else (k[:, :, keep], v[:, :, keep])
        if cached is not None:
            k, v = torch.cat([cached[0], k], dim=2), torch.cat([cached[1], v], dim=2)
        att = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, is_causal=False,
            enable_gqa=cfg.num_key_value_heads != cfg.num_attention_heads)
        return self.o_proj(att.transpose(1, 2).reshape(b, t, cfg.hidden_size)), kept


class SparseMoe(nn.Module):
    """Softmax top-k router over ``num_experts`` SwiGLU experts (official routing)."""

    def __init__(self, cfg: LLaDAMoEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.gate = nn.Linear(cfg.hidden_size, cfg.num_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(cfg.hidden_size, cfg.expert_intermediate_size)
                                     for _ in range(cfg.num_experts))
        if cfg.moe_router_enable_expert_bias:
            self.register_buffer("expert_bias", torch.zeros(cfg.num_experts))
        else:
            self.expert_bias = None

    def route(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weights [N, k], experts [N, k])`` for flat hidden states ``h`` ``[N, d]``."""
        probs = F.softmax(self.gate(h), dim=1, dtype=torch.float32)
        if self.expert_bias is not None:
            probs = probs + self.expert_bias
        weights, chosen = torch.topk(probs, self.cfg.num_experts_per_tok, dim=-1)
        return weights.to(h.dtype), chosen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        h = x.reshape(-1, shape[-1])
        weights, chosen = self.route(h)
        out = torch.zeros_like(h)
        for e in torch.unique(chosen).tolist():
            token, slot = torch.where(chosen == e)
            out.index_add_(0, token, self.experts[e](h[token]) * weights[token, slot, None])
        return out.view(shape)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LLaDAMoEConfig, index: int) -> None:
        super().__init__()
        self.self_attn = Attention(cfg)
        moe = cfg.is_moe(index)
        self.mlp: nn.Module = (SparseMoe(cfg) if moe
                               else SwiGLU(cfg.hidden_size, cfg.dense_intermediate_size))
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.shared_expert = (SwiGLU(cfg.hidden_size, cfg.shared_expert_intermediate_size)
                              if moe and cfg.shared_expert_intermediate_size is not None
                              else None)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                bias: torch.Tensor | None, cached: KV | None = None,
                keep: torch.Tensor | None = None) -> tuple[torch.Tensor, KV | None]:
        att, kept = self.self_attn(self.input_layernorm(x), cos, sin, bias, cached, keep)
        x = x + att
        h = self.post_attention_layernorm(x)
        out = self.mlp(h)
        if self.shared_expert is not None:
            out = out + self.shared_expert(h)
        return x + out, kept


class Backbone(nn.Module):
    """``model.*`` of the checkpoint: embeddings, layers, final norm."""

    def __init__(self, cfg: LLaDAMoEConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class LLaDAMoEModel(nn.Module):
    """The mask predictor: ids ``[B, T]`` in, logits ``[B, T, V]`` out (LLaDA's interface)."""

    def __init__(self, cfg: LLaDAMoEConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = Backbone(cfg)
        self.lm_head = (None if cfg.tie_word_embeddings
                        else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False))
        self.reference_padding = False
        """Ignore the attention mask, as the hub forward does (padding tokens are attended).
        Only for parity checks: a padded batch then differs from its rows run alone."""

    @property
    def device(self) -> torch.device:
        return self.model.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    def hidden_states(self, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Final normalised hidden states ``[B, T, d]``."""
        b, t = input_ids.shape
        x = self.model.embed_tokens(input_ids)
        positions = torch.arange(t, device=input_ids.device)[None].expand(b, -1)
        cos, sin = rotary_cos_sin(positions, self.config.rotary_dim, self.config.rope_theta)
        bias = self._key_bias(attention_mask, t, x.dtype)
        for layer in self.model.layers:
            x, _ = layer(x, cos, sin, bias)
        return self.model.norm(x)

    def _key_bias(self, attention_mask: torch.Tensor | None, queries: int,
                  dtype: torch.dtype) -> torch.Tensor | None:
        if attention_mask is None or self.reference_padding or bool(attention_mask.all()):
            return None
        return additive_bias(key_padding_allowed(attention_mask, queries), dtype)

    @torch.no_grad()
    def forward_cached(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                       active: slice, positions: slice, cache: KVCache | None = None
                       ) -> tuple[torch.Tensor, KVCache]:
        """Logits for ``positions`` with the approximate (Fast-dLLM) KV cache of LLaDA's
        sampler (``cache="prefix"``/``"dual"``), the interface of
        :meth:`evalsuite.models.llada.LLaDAModel.forward_cached`: without ``cache`` a full pass
        that also returns the K, V of every column outside ``active``; with it only the
        ``active`` columns are computed against the cached K, V. Approximate after the first
        pass (the cached columns' K, V would change with the active tokens)."""
        b, t = input_ids.shape
        device = input_ids.device
        cols = torch.arange(t, device=device)[None].expand(b, -1)
        cos, sin = rotary_cos_sin(cols, self.config.rotary_dim, self.config.rope_theta)
        outside = torch.ones(t, dtype=torch.bool, device=device)
        outside[active] = False
        if cache is None:
            x = self.model.embed_tokens(input_ids)
            bias = self._key_bias(attention_mask, t, x.dtype)
            layers = []
            for layer in self.model.layers:
                x, kept = layer(x, cos, sin, bias, keep=outside)
                layers.append(kept)
            return self.head(self.model.norm(x)[:, positions]), KVCache(active, layers)
        x = self.model.embed_tokens(input_ids[:, active])
        bias = None
        if attention_mask is not None:
            order = torch.cat([attention_mask[:, outside], attention_mask[:, active]], dim=1)
            bias = self._key_bias(order, x.shape[1], x.dtype)
        for layer, kv in zip(self.model.layers, cache.layers):
            x, _ = layer(x, cos[:, active], sin[:, active], bias, cached=kv)
        start = active.start or 0
        rel = slice(positions.start - start, positions.stop - start)
        return self.head(self.model.norm(x)[:, rel]), cache

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits ``[..., V]`` of hidden states ``[..., d]``."""
        weight = (self.model.embed_tokens.weight if self.lm_head is None
                  else self.lm_head.weight)
        return F.linear(hidden, weight)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                positions: slice | None = None) -> torch.Tensor:
        """Logits ``[B, T, V]``, or of the column slice ``positions`` only."""
        hidden = self.hidden_states(input_ids, attention_mask)
        if positions is not None:
            hidden = hidden[:, positions]
        return self.head(hidden)
