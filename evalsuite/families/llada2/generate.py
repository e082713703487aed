"""LLaDA2 block-diffusion generation, token for token the official ``generate`` (greedy
variant), with an exact block-level KV cache.

Official algorithm (``LLaDA2MoeModelLM.generate``; golden/llada2/README.md): the sequence is
the prompt followed by mask ids up to a whole number of blocks of ``block_length`` counted from
position 0; blocks are filled left to right from the one holding the first generated position;
the network sees the sequence up to the end of the current block under the block-causal mask
(causal across blocks, bidirectional inside one). Per step, with ``k = schedule[step]``
(``block_length // steps``, the first ``block_length % steps`` steps one more; ``steps`` capped
at ``gen_length // minimal_topk``): predict every position of the block, confidence = the
probability of the prediction on still-masked positions; when at least ``k`` confidences are
above ``threshold`` commit all of those, else the ``min(k, masked)`` most confident. A block ends
when no mask is left or its steps are spent; generation stops after a block when an EOS is in
the generated part; the answer is cut after its first EOS.

Differences on purpose (documented):

* temperature 0 takes the argmax; the hub code samples with ``torch.multinomial`` even then
  (its outputs differ between seeds). The golden ``output_greedy`` cases come from the argmax.
  The hub's temperature-0 behaviour is ``temperature=1.0`` here (the hub divides by neither)
  with a generator seeded as ``torch.manual_seed(seed)`` was: one ``multinomial`` over the
  block's rows per step draws the same numbers, so the golden ``output_official_seed*``
  outputs are reproduced too (batch of one; tests).
* The hub's ``eos_early_stop`` looks for the first EOS in the whole sequence, prompt included
  (a prompt holding the EOS id returns a truncated prompt); here only the answer is searched.
* ``.tokens`` is ``[B, P + gen_length]``: the prompt as given, then the answer; positions after
  the answer's first EOS are filled with EOS (the official return stops there, including the
  EOS). The official ``eos_early_stop`` return includes the prompt; here it only stops a row
  (which every row does once its answer up to the first EOS is committed: exact, since
  committed tokens never change and later blocks cannot reach back).
* Batches: each row keeps its own block grid counted from its own position 0 (rows are
  re-aligned to a common grid by a left offset of whole blocks, with key padding and per-row
  positions), so a padded batch gives each row its solo tokens. A row whose answer is final
  leaves the batch (and the cache); a row draws random numbers only while its own block has
  masks, so with one generator per request sampled rows are batch-invariant too.

KV cache (``cache=True``, the default): under the block-causal mask the keys and values of a
finished block never change, so the prompt's complete blocks and every finished block are run
once (folded into the first step of the next block) and each step runs only the current block
against the cached keys/values. ``cache=False`` is the official full recompute of
``x[:, :block_end]`` at every step (reference mode). Both give the same logits up to float
rounding and the same tokens (tests).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from evalsuite.diffusion.sampler import GenerationResult
from evalsuite.diffusion.stopping import StopRule
from evalsuite.errors import ConfigError
from evalsuite.families.common import additive_bias
from evalsuite.families.llada2.network import KVCache, LLaDA2Model, layout_allowed
from evalsuite.families.llada2.settings import LLaDA2Settings
from evalsuite.settings.config import SamplerConfig

Generators = torch.Generator | Sequence[torch.Generator] | None
#: ``(row, row_tokens [P + gen_length], nfe, nonfinite, exited)``: a row is final.
RowCallback = Callable[[int, torch.Tensor, int, bool, bool], None]


def transfer_schedule(block_length: int, steps: int) -> list[int]:
    """Tokens to commit per step of a block (official ``_get_num_transfer_tokens``)."""
    base, rem = divmod(block_length, steps)
    return [base + (1 if i < rem else 0) for i in range(steps)]


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Official top-k then top-p filtering (-inf outside), over the last dimension."""
    if top_k:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        ordered, order = torch.sort(logits, descending=True, dim=-1)
        cum = torch.cumsum(F.softmax(ordered, dim=-1), dim=-1)
        drop = cum > top_p
        drop[..., 1:] = drop[..., :-1].clone()
        drop[..., 0] = False
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop),
                                    float("-inf"))
    return logits


def choose_tokens(logits: torch.Tensor, settings: LLaDA2Settings, generator: Generators
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions ``[B, L]`` and their probabilities (the confidences) from ``[B, L, V]``."""
    logits = logits.float()
    t = settings.temperature
    if t > 0 and t != 1.0:
        logits = logits / t
    probs = F.softmax(filter_logits(logits, settings.top_k, settings.top_p), dim=-1)
    if t == 0:
        x0 = probs.argmax(dim=-1)
    elif generator is None or isinstance(generator, torch.Generator):
        b, n, v = probs.shape
        x0 = torch.multinomial(probs.reshape(-1, v), 1, generator=generator).view(b, n)
    else:
        x0 = torch.stack([torch.multinomial(p, 1, generator=g)[:, 0]
                          for p, g in zip(probs, generator)])
    return x0, probs.gather(-1, x0[..., None])[..., 0]


def select_transfer(conf: torch.Tensor, active: torch.Tensor, k: int, threshold: float
                    ) -> torch.Tensor:
    """``[B, L]`` positions to commit: all above ``threshold`` when there are at least ``k``,
    else the ``min(k, masked)`` most confident (ties to the leftmost)."""
    conf = conf.masked_fill(~active, float("-inf"))
    high = conf > threshold
    enough = high.sum(dim=1) >= k
    order = torch.sort(conf, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(conf.shape[1], device=conf.device).expand_as(order))
    top = (ranks < k) & active
    return torch.where(enough[:, None], high, top) & active


class _Layout:
    """Rows re-aligned so that every row's own block grid is the batch's grid."""

    def __init__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                 s: LLaDA2Settings, mask_id: int, pad_id: int) -> None:
        device = input_ids.device
        b, p = input_ids.shape
        keep = (torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None
                else attention_mask.to(device=device, dtype=torch.bool))
        lengths = keep.sum(dim=1).tolist()
        bl = s.block_length
        blocks = [-(-(n + s.gen_length) // bl) for n in lengths]
        self.blocks = max(blocks)
        width = self.blocks * bl
        self.offset = [(self.blocks - nb) * bl for nb in blocks]
        self.start = [o + n for o, n in zip(self.offset, lengths)]
        self.x = torch.full((b, width), mask_id, dtype=torch.long, device=device)
        cols = torch.arange(width, device=device)
        off = torch.tensor(self.offset, device=device)
        self.valid = cols[None, :] >= off[:, None]
        self.x[~self.valid] = pad_id
        for r in range(b):
            self.x[r, self.offset[r]:self.start[r]] = input_ids[r][keep[r]]
        self.positions = (cols[None, :] - off[:, None]).clamp_min(0)
        self.first_block = min(st // bl for st in self.start)


def _bias(valid: torch.Tensor, q_lo: int, q_hi: int, k_hi: int, bl: int,
          dtype: torch.dtype) -> torch.Tensor | None:
    """Additive bias ``[R, 1, q_hi - q_lo, k_hi]`` for queries ``q_lo..q_hi-1`` over keys
    ``0..k_hi-1`` (block-causal, padding keys masked); None when everything is allowed."""
    device = valid.device
    q = torch.arange(q_lo, q_hi, device=device)
    k = torch.arange(k_hi, device=device)
    allowed = layout_allowed("block_causal", q, k, bl)[None, None] \
        & valid[:, None, None, :k_hi]
    if bool(allowed.all()):
        return None
    return additive_bias(allowed, dtype)


def _block_logits(network: LLaDA2Model, layout: _Layout, block: int, bl: int,
                  cache: KVCache | None, rows: torch.Tensor) -> torch.Tensor:
    """Logits ``[R, bl, V]`` of block ``block`` for ``rows`` (cached or full recompute; the
    cache holds exactly these rows)."""
    lo, hi = block * bl, (block + 1) * bl
    x, positions, valid = layout.x[rows], layout.positions[rows], layout.valid[rows]
    if cache is None:  # official: recompute x[:, :hi] under the block-causal mask
        bias = _bias(valid, 0, hi, hi, bl, network.dtype)
        hidden, _ = network.extend(x[:, :hi], positions[:, :hi], bias)
        return network.head(hidden[:, lo:])
    c0 = cache.length
    bias = _bias(valid, c0, hi, hi, bl, network.dtype)
    hidden, new = network.extend(x[:, c0:hi], positions[:, c0:hi], bias, cache)
    if c0 < lo:  # finished blocks (or the prompt's) join the cache, computed this once
        cache.append([(k[:, :, :lo - c0], v[:, :, :lo - c0]) for k, v in new])
    return network.head(hidden[:, lo - c0:])


def _answers(layout: _Layout, input_ids: torch.Tensor, s: LLaDA2Settings,
             eos_id: int | None, which: Sequence[int] | None = None) -> torch.Tensor:
    """``[B, P + gen_length]``: the prompt as given, the answer cut after its first EOS
    (``which``: these rows only)."""
    which = range(len(layout.start)) if which is None else which
    rows = []
    for r in which:
        st = layout.start[r]
        ans = layout.x[r, st:st + s.gen_length].clone()
        if eos_id is not None:
            hits = (ans == eos_id).nonzero()
            if hits.numel():
                ans[int(hits[0, 0]) + 1:] = eos_id
        rows.append(ans)
    return torch.cat([input_ids[list(which)], torch.stack(rows)], dim=1)


def _decided(layout: _Layout, r: int, s: LLaDA2Settings, mask_id: int,
             eos_id: int | None, rule: StopRule | None = None) -> bool:
    """Is row r's answer final: committed up to its first EOS (or entirely), or, with a stop
    rule (early exit), is the caller's cut already fixed by the committed prefix?"""
    ans = layout.x[r, layout.start[r]:layout.start[r] + s.gen_length].tolist()
    cut = ans.index(eos_id) if eos_id is not None and eos_id in ans else len(ans)
    if mask_id not in ans[:cut]:
        return True
    if rule is None:
        return False
    prefix = ans[:ans.index(mask_id)]
    return rule.decided(prefix)


def _exited(layout: _Layout, r: int, s: LLaDA2Settings, mask_id: int) -> bool:
    """Whether row r stopped with masks left in its answer (after its cut)."""
    st = layout.start[r]
    return bool((layout.x[r, st:st + s.gen_length] == mask_id).any())


@torch.no_grad()
def block_diffusion_generate(network: LLaDA2Model, input_ids: torch.Tensor,
                             attention_mask: torch.Tensor | None = None, *,
                             settings: LLaDA2Settings, mask_id: int, eos_id: int | None,
                             pad_id: int | None = None, generator: Generators = None,
                             stop: Sequence[StopRule] | None = None,
                             on_finish: RowCallback | None = None) -> GenerationResult:
    """Generate ``settings.gen_length`` tokens after each (padded) prompt of ``input_ids``.

    ``stop`` (one rule per row, early exit): a row also stops once its committed prefix fixes
    the caller's cut (a stop string or token); its later positions keep mask ids (``exited``).
    ``on_finish`` hears of each row as soon as it is final."""
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    n = int(input_ids.shape[0])
    if generator is not None and not isinstance(generator, torch.Generator) \
            and len(generator) != n:
        raise ValueError(f"{len(generator)} generators for a batch of {n} rows")
    s, bl = settings, settings.block_length
    pad = pad_id if pad_id is not None else (eos_id if eos_id is not None else mask_id)
    layout = _Layout(input_ids, attention_mask, s, mask_id, pad)
    schedule = transfer_schedule(bl, s.effective_steps)
    alive = [True] * n
    row_nfe, nonfinite = [0] * n, [False] * n
    cache = KVCache() if s.cache else None
    cached_rows: list[int] = list(range(n))  # the rows the cache holds, in order
    if stop is not None and len(stop) != n:
        raise ValueError(f"{len(stop)} stop rules for a batch of {n} rows")
    rules = list(stop) if stop is not None else [None] * n
    reported = [False] * n

    def report(rows: Sequence[int]) -> None:
        if on_finish is None:
            return
        for r in rows:
            if not reported[r]:
                reported[r] = True
                row = _answers(layout, input_ids, s, eos_id, [r])[0]
                on_finish(r, row, row_nfe[r], nonfinite[r], _exited(layout, r, s, mask_id))

    nfe = 0
    device = layout.x.device
    for block in range(layout.first_block, layout.blocks):
        lo, hi = block * bl, (block + 1) * bl
        for step in range(s.effective_steps):
            rows = [r for r in range(n) if alive[r]]  # finished rows leave the batch
            if not rows:
                break
            rows_t = torch.tensor(rows, dtype=torch.long, device=device)
            active = layout.x[rows_t, lo:hi] == mask_id  # [R, bl]
            if not bool(active.any()):
                break
            if cache is not None and rows != cached_rows:
                keep = torch.tensor([cached_rows.index(r) for r in rows], device=device)
                cache.layers = [(k[keep], v[keep]) for k, v in cache.layers]
                cached_rows = rows
            logits = _block_logits(network, layout, block, bl, cache, rows_t)  # [R, bl, V]
            nfe += 1
            bad = (~torch.isfinite(logits)).flatten(1).any(dim=1).tolist()
            for r, is_bad in zip(rows, bad):
                row_nfe[r] += 1
                nonfinite[r] = nonfinite[r] or is_bad
            # only rows with masked positions in this block draw (a row waiting for its first
            # block or done with this one consumes no random numbers, as when run alone)
            drawing = active.any(dim=1).nonzero()[:, 0]
            draw_rows = [rows[i] for i in drawing.tolist()]
            gens = (generator if generator is None or isinstance(generator, torch.Generator)
                    else [generator[r] for r in draw_rows])
            x0, conf = choose_tokens(logits[drawing], s, gens)
            commit = select_transfer(conf, active[drawing], schedule[step], s.threshold)
            target = torch.tensor(draw_rows, dtype=torch.long, device=device)
            block_x = layout.x[target, lo:hi]
            layout.x[target, lo:hi] = torch.where(commit, x0, block_x)
            for r in draw_rows:
                if _decided(layout, r, s, mask_id, eos_id, rules[r]):
                    alive[r] = False
                    report([r])
        for r in range(n):  # official: stop after a block with an EOS in the generated part
            if alive[r] and eos_id is not None and \
                    bool((layout.x[r, layout.start[r]:hi] == eos_id).any()):
                alive[r] = False
                report([r])
        if not any(alive):
            break
    report(range(n))
    exited = tuple(_exited(layout, r, s, mask_id) for r in range(n))
    return GenerationResult(tokens=_answers(layout, input_ids, s, eos_id), nfe=nfe,
                            prompt_length=int(input_ids.shape[1]), nonfinite=tuple(nonfinite),
                            row_nfe=tuple(row_nfe), exited=exited)


def sample(network: torch.nn.Module, input_ids: torch.Tensor,
           attention_mask: torch.Tensor | None = None, *, config: SamplerConfig, mask_id: int,
           eos_id: int | None = None, eot_id: int | None = None, generator: Generators = None,
           stop: StopRule | Sequence[StopRule] | None = None, batch_size: int | None = None,
           on_finish: RowCallback | None = None, logit_shift: int = 0,
           pad_id: int | None = None) -> GenerationResult:
    """The LLaDA2 family's ``sample`` (:mod:`evalsuite.families`), called by the engine and
    :func:`evalsuite.generate` with the signature of
    :func:`~evalsuite.diffusion.sampler.diffusion_generate`: ``batch_size`` rows at a time
    (each chunk with its own exact block cache), early exit at the caller's stop rules when
    ``config.early_exit`` (and the draws are per row), ``on_finish`` per row as soon as it is
    final. ``eot_id`` is not a stop of LLaDA2's own algorithm (the caller's stop rule holds
    it)."""
    from evalsuite.diffusion.sampler import early_exit_applies

    del eot_id
    if not isinstance(network, LLaDA2Model):
        raise ConfigError(f"LLaDA2 generation needs a LLaDA2 network, got "
                          f"{type(network).__name__}")
    if logit_shift:
        raise ConfigError("LLaDA2 predicts each position from itself (logit_shift 0)")
    s = LLaDA2Settings.from_config(config)
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    n = int(input_ids.shape[0])
    rules: list[StopRule] | None = None
    if early_exit_applies(config, stop, generator):
        rules = [stop] * n if isinstance(stop, StopRule) else list(stop or [])
        if len(rules) != n:
            raise ValueError(f"{len(rules)} stop rules for {n} rows")
    input_ids = input_ids.to(network.device)
    if attention_mask is not None:
        attention_mask = attention_mask.to(network.device)
    slots = max(1, batch_size or n)
    per_row = generator is not None and not isinstance(generator, torch.Generator)
    parts: list[GenerationResult] = []
    for lo in range(0, n, slots):
        hi = min(n, lo + slots)
        gens = list(generator[lo:hi]) if per_row else generator  # type: ignore[index]
        done = None if on_finish is None else (
            lambda r, row, nfe, bad, exited, lo=lo: on_finish(lo + r, row, nfe, bad, exited))
        parts.append(block_diffusion_generate(
            network, input_ids[lo:hi],
            None if attention_mask is None else attention_mask[lo:hi], settings=s,
            mask_id=mask_id, eos_id=eos_id, pad_id=pad_id, generator=gens,
            stop=None if rules is None else rules[lo:hi], on_finish=done))
    if len(parts) == 1:
        return parts[0]
    return GenerationResult(
        tokens=torch.cat([p.tokens for p in parts]), nfe=sum(p.nfe for p in parts),
        prompt_length=parts[0].prompt_length,
        nonfinite=tuple(v for p in parts for v in p.nonfinite),
        row_nfe=tuple(v for p in parts for v in p.row_nfe),
        exited=tuple(v for p in parts for v in p.exited))
