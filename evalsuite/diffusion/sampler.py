"""Diffusion sampling with low-confidence or random remasking (LLaDA paper, Algorithms 4-5).

The answer region of ``gen_length`` mask tokens is filled block by block, left to right
(semi-autoregressive when ``block_length < gen_length``). Within a block, ``n`` masked tokens
are committed over ``s`` steps on the linear schedule: ``n // s`` per step plus one for the
first ``n % s`` steps. Committed tokens are never remasked.

With ``decoding="threshold"`` (Fast-dLLM's confidence-aware parallel decoding, a
training-free acceleration), each pass instead commits every masked position of the block whose
confidence reaches ``threshold``, and at least one, until the block is full.

Every random draw comes from explicit ``torch.Generator`` objects (one per row when a list
is given), so a request can be reproduced independently of how it was batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from evalsuite.config import SamplerConfig

Generators = torch.Generator | Sequence[torch.Generator] | None

#: Confidence given to EOS/EoT predictions under ``confidence_eos_eot_inf``: below every
#: probability, above the -inf of positions that cannot be committed, so they go last.
LAST_CONFIDENCE = -1.0


class MaskPredictor(Protocol):
    """A network mapping ids ``[B, T]`` to logits ``[B, T', V]`` for the column slice asked."""

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        positions: slice | None = None,
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class GenerationResult:
    """Output of :func:`diffusion_generate`."""

    tokens: torch.Tensor
    """``[B, P + gen_length]``: the (left-padded) prompt followed by the generated tokens."""
    nfe: int
    """Number of network forward passes (a CFG step is one pass over 2B rows)."""
    prompt_length: int
    """P, the padded prompt length."""
    nonfinite: tuple[bool, ...] = ()
    """Per row: whether any logits computed for it were NaN or infinite (empty: not checked)."""

    @property
    def generated(self) -> torch.Tensor:
        """``[B, gen_length]``: the generated tokens only."""
        return self.tokens[:, self.prompt_length:]


def transfer_schedule(masked: torch.Tensor, steps: int) -> torch.Tensor:
    """Tokens to commit per step: ``[B]`` masked counts -> ``[B, steps]`` (linear schedule)."""
    base = masked // steps  # [B]
    rem = masked % steps  # [B]
    counts = base[:, None].expand(-1, steps).clone()
    counts += (torch.arange(steps, device=masked.device)[None, :] < rem[:, None]).to(counts.dtype)
    return counts


def _rand(shape: tuple[int, ...], generators: Generators, device: torch.device,
          dtype: torch.dtype) -> torch.Tensor:
    """Uniform [0, 1) noise of ``shape`` ``[B, ...]``, row b from ``generators[b]``."""
    if generators is None or isinstance(generators, torch.Generator):
        return torch.rand(shape, generator=generators, device=device, dtype=dtype)
    if len(generators) != shape[0]:
        raise ValueError(f"{len(generators)} generators for a batch of {shape[0]} rows")
    return torch.stack([
        torch.rand(shape[1:], generator=g, device=device, dtype=dtype) for g in generators
    ])


def gumbel_perturb(logits: torch.Tensor, temperature: float, generators: Generators) -> torch.Tensor:
    """Perturb logits so that their argmax samples from ``softmax(logits / temperature)``.

    The reference computes ``exp(l) / (-log u) ** T`` in float64; its argmax equals that of
    ``l - T * log(-log u)``, computed here in float64 without overflow. ``T = 0``: no noise.
    """
    if temperature == 0:
        return logits
    u = _rand(tuple(logits.shape), generators, logits.device, torch.float64)
    u = u.clamp_min(torch.finfo(torch.float64).tiny)
    return logits.to(torch.float64) - temperature * torch.log(-torch.log(u))


class _BlockCache:
    """Holds the KV cache of the current block for ``cache="prefix"`` or ``"dual"``."""

    def __init__(self, mode: str, total: int) -> None:
        self.mode, self.total, self.kv = mode, total, None

    def reset(self) -> None:
        self.kv = None

    def active(self, cols: slice) -> slice:
        return slice(cols.start, self.total) if self.mode == "prefix" else cols


def _forward(
    model: MaskPredictor,
    x: torch.Tensor,  # [B, T]
    attention_mask: torch.Tensor | None,
    cols: slice,
    cfg_scale: float,
    prompt_index: torch.Tensor,  # [B, T] bool
    mask_id: int,
    cache: _BlockCache | None = None,
) -> torch.Tensor:
    """Logits ``[B, len(cols), V]``, guided with unsupervised CFG when ``cfg_scale > 0``."""
    inputs, mask = x, attention_mask
    if cfg_scale > 0:
        inputs = torch.cat([x, x.masked_fill(prompt_index, mask_id)], dim=0)
        mask = None if attention_mask is None else torch.cat([attention_mask] * 2, dim=0)
    if cache is None:
        logits = model(inputs, attention_mask=mask, positions=cols)
    else:
        logits, cache.kv = model.forward_cached(  # type: ignore[attr-defined]
            inputs, mask, active=cache.active(cols), positions=cols, cache=cache.kv)
    if cfg_scale <= 0:
        return logits
    cond, uncond = logits.chunk(2, dim=0)
    return uncond + (cfg_scale + 1) * (cond - uncond)


@torch.no_grad()
def diffusion_generate(
    model: MaskPredictor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    config: SamplerConfig,
    mask_id: int,
    eos_id: int | None = None,
    eot_id: int | None = None,
    generator: Generators = None,
) -> GenerationResult:
    """Sample ``config.gen_length`` tokens after each prompt of ``input_ids`` ``[B, P]``.

    ``attention_mask`` ``[B, P]`` marks left padding with 0. With ``temperature=0`` the output
    is deterministic and token for token the reference's. ``logits_eos_inf`` needs ``eos_id``;
    ``confidence_eos_eot_inf`` uses ``eos_id`` and ``eot_id`` (either may be None).
    """
    if config.logits_eos_inf and eos_id is None:
        raise ValueError("logits_eos_inf needs the EOS id (none in the model config or tokenizer)")
    b, p = input_ids.shape
    device = input_ids.device
    x = torch.full((b, p + config.gen_length), mask_id, dtype=torch.long, device=device)
    x[:, :p] = input_ids
    full_mask = None
    if attention_mask is not None:
        ones = torch.ones((b, config.gen_length), dtype=attention_mask.dtype, device=device)
        full_mask = torch.cat([attention_mask.to(device), ones], dim=1)  # [B, T]
    prompt_index = x != mask_id  # [B, T]
    last_ids = [i for i in (eos_id, eot_id) if i is not None]
    nfe = 0
    bad = torch.zeros(b, dtype=torch.bool, device=device)
    steps = config.steps_per_block
    cache = None if config.cache == "none" else _BlockCache(config.cache, x.shape[1])
    if cache is not None and not hasattr(model, "forward_cached"):
        raise ValueError(f"cache={config.cache!r} needs a model with forward_cached (LLaDAModel)")
    for block in range(config.num_blocks):
        start = p + block * config.block_length
        cols = slice(start, start + config.block_length)
        if cache is not None:
            cache.reset()  # refreshed by the first pass of every block
        if config.decoding == "threshold":
            schedule = None
            budget = config.block_length  # at least one commit per pass
        else:
            schedule = transfer_schedule((x[:, cols] == mask_id).sum(dim=1), steps)  # [B, steps]
            budget = steps
        for step in range(budget):
            block_x = x[:, cols]
            masked = block_x == mask_id  # [B, L]
            if not bool(masked.any()):
                break
            if schedule is not None and int(schedule[:, step].max()) == 0:
                continue
            logits = _forward(model, x, full_mask, cols, config.cfg_scale, prompt_index, mask_id,
                              cache)
            nfe += 1  # logits: [B, block_length, V]
            bad |= ~torch.isfinite(logits).reshape(b, -1).all(dim=1)
            if config.logits_eos_inf:
                logits[:, :, eos_id] = float("-inf")
            x0 = gumbel_perturb(logits, config.temperature, generator).argmax(dim=-1)  # [B, L]
            if config.remasking == "low_confidence":
                probs = F.softmax(logits, dim=-1)
                conf = probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)  # [B, L]
            else:
                conf = _rand(tuple(x0.shape), generator, device, torch.float32)
            conf = conf.to(torch.float64)
            if config.confidence_eos_eot_inf and last_ids:
                is_last = torch.zeros_like(x0, dtype=torch.bool)
                for token in last_ids:
                    is_last |= x0 == token
                conf = conf.masked_fill(is_last, LAST_CONFIDENCE)
            conf = conf.masked_fill(~masked, float("-inf"))
            if schedule is None:
                k = torch.maximum((conf >= config.threshold).sum(dim=1), masked.any(dim=1).long())
            else:
                k = schedule[:, step]
            commit = torch.zeros_like(masked)
            for row in range(b):
                if int(k[row]) > 0:
                    commit[row, torch.topk(conf[row], int(k[row])).indices] = True
            x[:, cols] = torch.where(commit, x0, block_x)
    return GenerationResult(tokens=x, nfe=nfe, prompt_length=p,
                            nonfinite=tuple(bool(v) for v in bad.tolist()))
