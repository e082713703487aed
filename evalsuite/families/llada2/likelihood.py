"""log p(answer | prompt) for LLaDA2: the block-diffusion bound (THIS PROJECT'S DEFINITION).

No official LLaDA2 likelihood estimator exists. LLaDA2 is trained as a block diffusion model
(causal across blocks of ``block_length`` counted from position 0, bidirectional inside one), so
evalsuite scores an answer with the block-diffusion evidence lower bound: blocks are factorised
left to right, and within a block the answer positions are masked with ratio t over the CLEAN
earlier context, seen through the block-causal mask, each masked token weighted 1/t:

    log p(r | p) >= sum_b E_{t ~ U(0,1)} E_{S ~ Bernoulli(t) over A_b} [ (1/t) sum_{i in S}
                        log p(r_i | clean tokens before block b, block b with S masked) ]

where ``A_b`` are the answer positions in block b (prompt positions of a block are never
masked; later blocks are invisible under the block-causal mask). Integrating t out, each
block's term is LLaDA's Eq. 6 on the ``n_b = |A_b|`` positions of the block,
``E_{l ~ U{1..n_b}} E_{|S| = l} [(n_b / l) sum_{i in S} log p]`` (a subset S of size l gets
weight ``(l-1)! (n_b-l)! / n_b!`` either way), so the designs of :mod:`evalsuite.diffusion.
designs` apply per block: every subset enumerated (exact) when ``2^n_b - 1`` fits the block's
share of ``mc_num``, otherwise unbiased stratified Monte Carlo with the control variate.

Cost: one pass over the clean sequence under the block-causal mask gives the keys/values of
every context; each row then runs only its own block against them (the exact block KV cache).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from evalsuite.diffusion.designs import auto_design, combine, control_variate_values, exact_design
from evalsuite.diffusion.likelihood import LikelihoodResult
from evalsuite.errors import ConfigError
from evalsuite.families.common import additive_bias
from evalsuite.families.llada2.network import KVCache, LLaDA2Model, layout_allowed
from evalsuite.models.tokens import SpecialTokens
from evalsuite.settings.config import EstimatorConfig


def answer_blocks(prompt_len: int, answer_len: int, block_length: int
                  ) -> list[tuple[int, int, int]]:
    """``(block_start, first_answer_col, block_end)`` of every block holding answer tokens."""
    total = prompt_len + answer_len
    out = []
    for b in range(prompt_len // block_length, -(-total // block_length)):
        lo = b * block_length
        out.append((lo, max(lo, prompt_len), min(lo + block_length, total)))
    return out


def block_shares(sizes: list[int], mc_num: int) -> list[int]:
    """Rows per block: proportional to its answer tokens, at least 1 (2 when Monte Carlo)."""
    total = sum(sizes)
    shares = []
    for n in sizes:
        share = max(1, round(mc_num * n / total))
        if share < 2 ** n - 1:
            share = max(2, share)
        shares.append(share)
    return shares


@torch.no_grad()
def block_diffusion_loglikelihood(network: LLaDA2Model, prompt_ids: torch.Tensor,
                                  answer_ids: torch.Tensor, *, mask_id: int, block_length: int,
                                  mc_num: int = 128, batch_size: int = 16, seed: int = 0
                                  ) -> LikelihoodResult:
    """The block-diffusion bound of one request (see the module docstring)."""
    device = network.device
    prompt = prompt_ids.reshape(-1).long().to(device)
    answer = answer_ids.reshape(-1).long().to(device)
    if answer.numel() == 0:
        raise ValueError("the answer has no tokens")
    seq = torch.cat([prompt, answer])
    p, total = int(prompt.numel()), int(seq.numel())
    blocks = answer_blocks(p, int(answer.numel()), block_length)
    context_end = blocks[-1][0]
    cache = KVCache()
    nfe = 0
    if context_end > 0:  # the clean contexts of every block in one block-causal pass
        cols = torch.arange(context_end, device=device)
        bias = additive_bias(layout_allowed("block_causal", cols, cols, block_length),
                             network.dtype)[None, None]
        _, kv = network.extend(seq[None, :context_end], cols[None], bias)
        cache.append(kv)
        nfe += 1
    sizes = [hi - first for _, first, hi in blocks]
    shares = block_shares(sizes, mc_num)
    value, variance, rows_used, exact, nonfinite = 0.0, 0.0, 0, True, False
    greedy: bool | None = None
    for index, ((lo, first, hi), n, share) in enumerate(zip(blocks, sizes, shares)):
        design = exact_design(1) if n == 1 else auto_design(n, share, seed + 7919 * index)
        masks = design.masks.to(device)  # [R, n]
        r = int(masks.shape[0])
        full = torch.zeros((r, hi - lo), dtype=torch.bool, device=device)
        full[:, first - lo:] = masks
        rows = seq[lo:hi].expand(r, -1).masked_fill(full, mask_id)
        positions = torch.arange(lo, hi, device=device)
        logp = torch.zeros((r, n), dtype=torch.float64)
        for start in range(0, r, batch_size):
            chunk = rows[start:start + batch_size]
            c = int(chunk.shape[0])
            past = None
            if lo > 0:
                past = KVCache([(k[:, :, :lo].expand(c, -1, -1, -1),
                                 v[:, :, :lo].expand(c, -1, -1, -1)) for k, v in cache.layers])
            hidden, _ = network.extend(chunk, positions[None].expand(c, -1), None, past)
            logits = network.head(hidden[:, first - lo:])  # [c, n, V] float32
            nonfinite = nonfinite or not bool(torch.isfinite(logits).all())
            lp = F.log_softmax(logits, dim=-1)
            target = seq[first:hi]
            picked = lp.gather(-1, target.expand(c, -1)[..., None])[..., 0].double().cpu()
            logp[start:start + c] = picked * masks[start:start + c].cpu()
            if total - p == 1:
                greedy = bool(lp[0, 0].argmax() == target[0])
            nfe += 1
        rows_used += r
        host_masks = design.masks
        if design.kind == "strata" and not design.exact:
            values = control_variate_values(design, logp)
        else:
            values = design.weights * (logp * host_masks).sum(dim=1)
        v, se = combine(design, values)
        value += v
        variance += se * se
        exact = exact and design.exact
    return LikelihoodResult(value=value, stderr=0.0 if exact else math.sqrt(variance), nfe=nfe,
                            samples=rows_used, exact=exact, greedy=greedy, nonfinite=nonfinite,
                            design="block-exact" if exact else "block-auto")


def estimate(network: torch.nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]], *,
             config: EstimatorConfig, tokens: SpecialTokens,
             generators: list[torch.Generator], max_rows: int) -> list[LikelihoodResult]:
    """The LLaDA2 family's ``estimate`` (:mod:`evalsuite.families`), for the engine and
    :func:`evalsuite.loglikelihood`: the block-diffusion bound of each pair with the
    estimator's ``block_length``, ``mc_num`` rows at most and at most ``min(mc_batch_size,
    max_rows)`` rows per forward pass; each request's design seed is drawn from its own
    generator."""
    if not isinstance(network, LLaDA2Model):
        raise ConfigError(f"LLaDA2's likelihood needs a LLaDA2 network, got "
                          f"{type(network).__name__}")
    rows = max(1, min(config.batch_size, max_rows))
    out = []
    for (prompt, answer), gen in zip(pairs, generators):
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=gen))
        out.append(block_diffusion_loglikelihood(
            network, prompt, answer, mask_id=tokens.mask_id, block_length=config.block_length,
            mc_num=config.mc_num, batch_size=rows, seed=seed))
    return out
