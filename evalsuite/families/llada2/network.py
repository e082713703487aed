"""Native LLaDA2 network (Ling / BailingMoE-v2 layout, no remote code).

Per layer (pre-norm): fused ``query_key_value`` projection (q | k | v, GQA), per-head RMSNorm of
q and k (``query_layernorm`` / ``key_layernorm``, size head_dim), RoPE on the first
``head_dim * partial_rotary_factor`` features, scaled dot-product attention, output ``dense``;
then a SwiGLU MLP (the first ``first_k_dense_replace`` layers) or a mixture of experts:

Routing (the official ``LLaDA2MoeGate``): router logits in float32, ``sigmoid`` scores; experts
are SELECTED on ``scores + expert_bias`` with group-limited top-k (``n_group`` groups, a group's
score is the sum of its top 2, keep ``topk_group`` groups, the others are -inf, then top-k); the
WEIGHTS are the unbiased sigmoid scores of the chosen experts normalised to sum 1 (``+1e-20``;
not when k = 1) times ``routed_scaling_factor``; the ``shared_experts`` MLP is added unweighted.

Attention layouts (:meth:`LLaDA2Model.forward` ``layout=``): ``bidirectional`` (the official
forward with ``attention_mask=None``), ``block_causal`` (causal across blocks of
``block_length`` counted from column 0, bidirectional inside one: what the official generate
passes as a 4-D mask) and ``causal`` (what the official forward makes of a 2-D mask, with the
mask as key padding). :meth:`LLaDA2Model.official_forward` maps a mask to the layout exactly as
the hub forward does. Masked entries get ``finfo.min`` (not -inf), as transformers builds them.

:meth:`LLaDA2Model.extend` runs new columns against cached keys/values of earlier columns: the
exact block-level KV cache (:mod:`evalsuite.families.llada2.generate`) rests on it, since under
the block-causal layout a finished block's keys and values never change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from evalsuite.families.common import SwiGLU, additive_bias, apply_rotary, rotary_cos_sin
from evalsuite.families.llada2.config import LLaDA2Config
from evalsuite.models.llada import RMSNorm

Layout = Literal["bidirectional", "block_causal", "causal"]
KV = tuple[torch.Tensor, torch.Tensor]


@dataclass
class KVCache:
    """Keys/values (RoPE applied) of columns ``0 .. length-1`` for every layer."""

    layers: list[KV] = field(default_factory=list)

    @property
    def length(self) -> int:
        return 0 if not self.layers else int(self.layers[0][0].shape[2])

    def append(self, new: list[KV]) -> None:
        """Add the keys/values of the next columns."""
        if not self.layers:
            self.layers = list(new)
            return
        self.layers = [(torch.cat([k, nk], dim=2), torch.cat([v, nv], dim=2))
                       for (k, v), (nk, nv) in zip(self.layers, new)]


def layout_allowed(layout: Layout, q_cols: torch.Tensor, k_cols: torch.Tensor,
                   block_length: int | None = None) -> torch.Tensor:
    """``[Tq, Tk]`` bool: may the query at column ``q_cols[i]`` attend the key at ``k_cols[j]``."""
    q, k = q_cols[:, None], k_cols[None, :]
    if layout == "bidirectional":
        return torch.ones((q_cols.numel(), k_cols.numel()), dtype=torch.bool,
                          device=q_cols.device)
    if layout == "causal":
        return k <= q
    if layout == "block_causal":
        if not block_length or block_length < 1:
            raise ValueError("layout 'block_causal' needs a positive block_length")
        return torch.div(k, block_length, rounding_mode="floor") <= \
            torch.div(q, block_length, rounding_mode="floor")
    raise ValueError(f"unknown attention layout {layout!r}")


class Attention(nn.Module):
    def __init__(self, cfg: LLaDA2Config) -> None:
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        width = (cfg.num_attention_heads + 2 * cfg.num_key_value_heads) * hd
        self.query_key_value = nn.Linear(cfg.hidden_size, width, bias=cfg.use_qkv_bias)
        if cfg.use_qk_norm:
            self.query_layernorm = RMSNorm(hd, cfg.rms_norm_eps)
            self.key_layernorm = RMSNorm(hd, cfg.rms_norm_eps)
        self.dense = nn.Linear(cfg.num_attention_heads * hd, cfg.hidden_size, bias=cfg.use_bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                bias: torch.Tensor | None, past: KV | None) -> tuple[torch.Tensor, KV]:
        cfg = self.cfg
        b, t, _ = x.shape
        h, kvh = cfg.num_attention_heads, cfg.num_key_value_heads
        qkv = self.query_key_value(x).view(b, t, h + 2 * kvh, cfg.head_dim)
        q, k, v = (z.transpose(1, 2) for z in qkv.split([h, kvh, kvh], dim=2))
        if cfg.use_qk_norm:
            q, k = self.query_layernorm(q), self.key_layernorm(k)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        new = (k, v)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=False,
                                             enable_gqa=kvh != h)
        return self.dense(att.transpose(1, 2).reshape(b, t, h * cfg.head_dim)), new


class Gate(nn.Module):
    """Sigmoid group-limited router (``mlp.gate.weight``, ``mlp.gate.expert_bias``)."""

    def __init__(self, cfg: LLaDA2Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.empty(cfg.num_experts, cfg.hidden_size))
        self.register_buffer("expert_bias", torch.zeros(cfg.num_experts))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weights [N, k] float32, experts [N, k])`` for flat hidden states ``[N, d]``."""
        cfg = self.cfg
        logits = F.linear(h.float(), self.weight.float())
        scores = torch.sigmoid(logits)
        choice = scores + self.expert_bias
        n = choice.shape[0]
        groups = choice.view(n, cfg.n_group, -1).topk(2, dim=-1).values.sum(dim=-1)
        kept = torch.topk(groups, k=cfg.topk_group, dim=-1, sorted=False).indices
        group_mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, kept, True)
        expert_mask = group_mask[:, :, None].expand(-1, -1, cfg.num_experts // cfg.n_group)
        masked = choice.masked_fill(~expert_mask.reshape(n, -1), float("-inf"))
        chosen = torch.topk(masked, k=cfg.num_experts_per_tok, dim=-1).indices
        weights = scores.gather(1, chosen)
        if cfg.num_experts_per_tok > 1:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return weights * cfg.routed_scaling_factor, chosen


class SparseMoe(nn.Module):
    """Routed experts plus the shared expert. Dispatch as the official ``moe_infer``
    (assignments sorted by expert, the k outputs of a token summed in float32 with their
    weights); after :meth:`fuse` (done by the loader) the experts' weights are stacked
    (``[E, I, d]``) and each hit expert runs as three ``F.linear`` on its slices, without the
    per-module overhead. (A padded batched-matmul variant was measured slower on the CPU, 25
    vs 22 ms per MoE layer at 32 tokens x top-8 of 256 experts, and was not kept.)"""

    def __init__(self, cfg: LLaDA2Config) -> None:
        super().__init__()
        self.gate = Gate(cfg)
        self.experts: nn.ModuleList | None = nn.ModuleList(
            SwiGLU(cfg.hidden_size, cfg.moe_intermediate_size) for _ in range(cfg.num_experts))
        self.num_experts = cfg.num_experts
        self.shared_experts = (
            SwiGLU(cfg.hidden_size, cfg.moe_intermediate_size * cfg.num_shared_experts)
            if cfg.num_shared_experts else None)
        self.fused: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @torch.no_grad()
    def fuse(self) -> None:
        """Stack the experts' weights (``[E, I, d]``, ``[E, I, d]``, ``[E, d, I]``) and drop the
        per-expert modules (no second copy is kept)."""
        if self.experts is None:
            return
        experts = self.experts
        fused = []
        for name in ("gate_proj", "up_proj", "down_proj"):
            fused.append(torch.stack([getattr(e, name).weight for e in experts]))
            for e in experts:
                getattr(e, name).weight = None  # free as we go
        self.experts = None
        self.fused = (fused[0], fused[1], fused[2])

    def _apply(self, fn, recurse: bool = True):  # keep the fused tensors on .to()/.half()
        out = super()._apply(fn, recurse)
        if self.fused is not None:
            self.fused = tuple(fn(w) for w in self.fused)  # type: ignore[assignment]
        return out

    def _expert(self, e: int, rows: torch.Tensor) -> torch.Tensor:
        if self.fused is None:
            assert self.experts is not None
            return self.experts[e](rows)
        g, u, d = (w[e] for w in self.fused)
        return F.linear(F.silu(F.linear(rows, g)) * F.linear(rows, u), d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        h = x.reshape(-1, shape[-1])  # [N, d]
        weights, chosen = self.gate(h)  # [N, k] float32, [N, k]
        n, k = chosen.shape
        flat = chosen.reshape(-1)  # [A = N k]
        order = flat.argsort(stable=True)  # assignments grouped by expert
        counts = torch.bincount(flat, minlength=self.num_experts).tolist()  # one host transfer
        grouped = h[order // k]  # [A, d]
        parts, start = [], 0
        for e, count in enumerate(counts):
            if count:
                parts.append(self._expert(e, grouped[start:start + count]))
                start += count
        outs = torch.cat(parts)
        per_slot = torch.empty_like(grouped)
        per_slot[order] = outs
        # weighted sum over the k slots in float32, as the official ``moe_infer``
        y = (per_slot.view(n, k, -1).to(weights.dtype) * weights[..., None]).sum(dim=1)
        y = y.to(h.dtype).view(shape)
        if self.shared_experts is not None:
            y = y + self.shared_experts(x)
        return y


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LLaDA2Config, index: int) -> None:
        super().__init__()
        self.attention = Attention(cfg)
        self.mlp: nn.Module = (SparseMoe(cfg) if cfg.is_moe(index)
                               else SwiGLU(cfg.hidden_size, cfg.intermediate_size))
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                bias: torch.Tensor | None, past: KV | None) -> tuple[torch.Tensor, KV]:
        att, new = self.attention(self.input_layernorm(x), cos, sin, bias, past)
        x = x + att
        return x + self.mlp(self.post_attention_layernorm(x)), new


class Backbone(nn.Module):
    def __init__(self, cfg: LLaDA2Config) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class LLaDA2Model(nn.Module):
    """The LLaDA2 mask predictor: ids in, logits out (no shift: position i predicts token i)."""

    def __init__(self, cfg: LLaDA2Config) -> None:
        super().__init__()
        self.config = cfg
        self.model = Backbone(cfg)
        self.lm_head = (None if cfg.tie_word_embeddings
                        else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False))

    def fuse_experts(self) -> "LLaDA2Model":
        """Stack every MoE layer's expert weights for batched expert matmuls (the loader does
        this after loading; the per-expert modules are dropped, so no second copy is kept)."""
        for layer in self.model.layers:
            if isinstance(layer.mlp, SparseMoe):
                layer.mlp.fuse()
        return self

    @property
    def device(self) -> torch.device:
        return self.model.word_embeddings.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.word_embeddings.weight.dtype

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """float32 logits ``[..., V]`` (the official LM casts its logits to float)."""
        weight = (self.model.word_embeddings.weight if self.lm_head is None
                  else self.lm_head.weight)
        return F.linear(hidden, weight).float()

    def extend(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
               bias: torch.Tensor | None, cache: KVCache | None = None
               ) -> tuple[torch.Tensor, list[KV]]:
        """Hidden states ``[B, T, d]`` of new columns and their keys/values per layer.

        ``bias`` ``[B or 1, 1, T, Tc + T]`` is additive over the cached columns then the new
        ones (None: attend everything)."""
        x = self.model.word_embeddings(input_ids)
        cos, sin = rotary_cos_sin(position_ids, self.config.rotary_dim, self.config.rope_theta)
        new: list[KV] = []
        pasts = cache.layers if cache is not None and cache.layers else \
            [None] * len(self.model.layers)
        for layer, past in zip(self.model.layers, pasts):
            x, kv = layer(x, cos, sin, bias, past)
            new.append(kv)
        return self.model.norm(x), new

    def layout_bias(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                    layout: Layout, block_length: int | None) -> torch.Tensor | None:
        """Additive ``[B, 1, T, T]`` bias of a layout plus key padding (None: attend all)."""
        b, t = input_ids.shape
        padded = attention_mask is not None and not bool(attention_mask.all())
        if layout == "bidirectional" and not padded:
            return None
        cols = torch.arange(t, device=input_ids.device)
        allowed = layout_allowed(layout, cols, cols, block_length)[None, None].expand(b, 1, t, t)
        if padded:
            allowed = allowed & attention_mask.to(torch.bool)[:, None, None, :]
        return additive_bias(allowed, self.dtype)

    def hidden_states(self, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor | None = None, *,
                      layout: Layout = "bidirectional", block_length: int | None = None
                      ) -> torch.Tensor:
        """Final normalised hidden states ``[B, T, d]`` (positions 0..T-1)."""
        b, t = input_ids.shape
        positions = torch.arange(t, device=input_ids.device)[None].expand(b, -1)
        bias = self.layout_bias(input_ids, attention_mask, layout, block_length)
        return self.extend(input_ids, positions, bias)[0]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                positions: slice | None = None, *, layout: Layout = "bidirectional",
                block_length: int | None = None) -> torch.Tensor:
        """Logits ``[B, T, V]`` (or of the column slice ``positions``). ``attention_mask``
        ``[B, T]`` is key padding on top of ``layout`` (default: bidirectional)."""
        hidden = self.hidden_states(input_ids, attention_mask, layout=layout,
                                    block_length=block_length)
        if positions is not None:
            hidden = hidden[:, positions]
        return self.head(hidden)

    def official_forward(self, input_ids: torch.Tensor,
                         attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits as the hub ``LLaDA2MoeModelLM.forward`` gives them for each kind of mask:
        None -> bidirectional; 2-D ``[B, T]`` -> CAUSAL plus key padding (transformers'
        ``_prepare_4d_causal_attention_mask_for_sdpa``); 4-D -> used as given (additive, or
        bool where True = attend)."""
        if attention_mask is None:
            return self.forward(input_ids)
        b, t = input_ids.shape
        cols = torch.arange(t, device=input_ids.device)
        if attention_mask.dim() == 2:
            allowed = (layout_allowed("causal", cols, cols)[None, None]
                       & attention_mask.to(torch.bool)[:, None, None, :])
            bias = additive_bias(allowed, self.dtype)
        elif attention_mask.dim() == 4:
            bias = (additive_bias(attention_mask, self.dtype)
                    if attention_mask.dtype == torch.bool else attention_mask.to(self.dtype))
        else:
            raise ValueError(f"attention_mask must be 2-D or 4-D, got {attention_mask.dim()}-D")
        return self.head(self.extend(input_ids, cols[None].expand(b, -1), bias)[0])
