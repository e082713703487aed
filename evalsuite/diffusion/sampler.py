"""Diffusion sampling with low-confidence or random remasking (LLaDA paper, Algorithms 4-5).

The answer region of ``gen_length`` mask tokens is filled block by block, left to right
(semi-autoregressive when ``block_length < gen_length``). Within a block, ``n`` masked tokens
are committed over ``s`` steps on the linear schedule: ``n // s`` per step plus one for the
first ``n % s`` steps. Committed tokens are never remasked.

With ``decoding="threshold"`` (Fast-dLLM's confidence-aware parallel decoding, a
training-free acceleration), each pass instead commits every masked position of the block whose
confidence reaches ``threshold``, and at least one, until the block is full.

Every random draw comes from explicit ``torch.Generator`` objects (one per row when a list
is given), so a request can be reproduced independently of how it was batched: each pass
draws, for each row, noise of that row's own shape from that row's generator.

The same loop runs Dream's sampler (``config.alg``, Dream's ``diffusion_generate``): the
family's network gives raw logits and the loop reads token i from the output at i - 1
(``logit_shift=1``, position 0 from itself); one block over the whole answer; the *schedule*
is Dream's timesteps ``linspace(1, 1e-3, steps + 1)`` with ``int(n_masked * (1 - s / t))``
commits per step (every remaining one on the last step), ``n_masked`` being the row's own
count (``batch_schedule="per_row"``, batch-invariant) or the batch mean as in the official code
(``"batch_mean"``); the *token choice* is Dream's ``sample_tokens`` (``temperature``,
``top_p``, ``top_k``; argmax at temperature 0); the *confidence* is the chosen token's
probability (``maskgit_plus``), the top-1 minus top-2 margin (``topk_margin``) or the negative
entropy (``entropy``), committed by ``topk`` over the whole row (-inf off masks) or drawn from
``softmax(confidence / alg_temp)``; ``origin`` transfers each mask with probability
``1 - s / t``. Dream's random draws are made in the official order and shapes, from one
generator per row (or the shared one), so a row with its own generator seeded like
``torch.manual_seed`` reproduces the official batch-of-one run. A step that would commit
nothing for a row (no masks left, or a count of 0) is skipped without a forward pass.

Rows stream through a fixed number of batch slots, each slot at its own block and step. With a
:class:`~evalsuite.diffusion.stopping.StopRule` and ``early_exit``, a row leaves as soon as
its answer is fixed (exact early exit) and the next waiting row takes its slot. The commit
step is vectorised (one stable sort per pass, float32 confidences, ties to the leftmost
position); host transfers are one per pass at most (block completion under threshold
decoding, committed prefixes under early exit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from evalsuite.settings.config import SamplerConfig
from evalsuite.diffusion.stopping import StopRule

Generators = torch.Generator | Sequence[torch.Generator] | None
#: ``on_finish(row, tokens, nfe, nonfinite, exited)``: called once per row as soon as it is
#: final (``tokens``: the row's ``[P + gen_length]`` ids), before the call returns.
RowCallback = Callable[[int, torch.Tensor, int, bool, bool], None]

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
    """``[B, P + gen_length]``: the (left-padded) prompt followed by the generated tokens. A row
    stopped by early exit keeps mask ids after its cut (those positions do not reach the
    answer)."""
    nfe: int
    """Number of network forward passes (a CFG step is one pass over 2B rows)."""
    prompt_length: int
    """P, the padded prompt length."""
    nonfinite: tuple[bool, ...] = ()
    """Per row: True when any logit of that row was NaN or infinite during sampling."""
    row_nfe: tuple[int, ...] = ()
    """Per row: forward passes the row took part in (early exit makes them differ)."""
    exited: tuple[bool, ...] = ()
    """Per row: True when early exit stopped the row before its last block was filled."""
    history: tuple[tuple[torch.Tensor, ...], ...] = ()
    """Per row (only with ``history=True``): the row's ``[P + gen_length]`` ids after each of
    its schedule steps (a skipped step repeats the previous state), as Dream's
    ``output_history``."""

    def __post_init__(self) -> None:
        rows = int(self.tokens.shape[0])
        for name, fill in (("nonfinite", False), ("row_nfe", self.nfe), ("exited", False)):
            if not getattr(self, name):
                object.__setattr__(self, name, (fill,) * rows)

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


def _guided_inputs(x: torch.Tensor, attention_mask: torch.Tensor | None, cfg_scale: float,
                   prompt_index: torch.Tensor, mask_id: int
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The rows to run: ``x``, plus its prompt-masked copy under CFG (``[2B, T]``)."""
    if cfg_scale <= 0:
        return x, attention_mask
    inputs = torch.cat([x, x.masked_fill(prompt_index, mask_id)], dim=0)
    mask = None if attention_mask is None else torch.cat([attention_mask] * 2, dim=0)
    return inputs, mask


def _guide(logits: torch.Tensor, cfg_scale: float) -> torch.Tensor:
    """Unsupervised CFG: ``un + (w + 1) * (cond - un)`` over the two halves of the rows."""
    if cfg_scale <= 0:
        return logits
    cond, uncond = logits.chunk(2, dim=0)
    return uncond + (cfg_scale + 1) * (cond - uncond)


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
    inputs, mask = _guided_inputs(x, attention_mask, cfg_scale, prompt_index, mask_id)
    if cache is None:
        logits = model(inputs, attention_mask=mask, positions=cols)
    else:
        logits, cache.kv = model.forward_cached(  # type: ignore[attr-defined]
            inputs, mask, active=cache.active(cols), positions=cols, cache=cache.kv)
    return _guide(logits, cfg_scale)


def _block_logits(
    model: MaskPredictor,
    x: torch.Tensor,  # [A, T]
    attention_mask: torch.Tensor | None,
    starts: list[int],
    length: int,
    cfg_scale: float,
    prompt_index: torch.Tensor,
    mask_id: int,
    shift: int = 0,
) -> torch.Tensor:
    """Logits ``[A, length, V]`` of each row's own block, starting at ``starts[a]``.

    ``shift``: the family's logit shift; position i is read from the output at ``i - shift``
    (clamped at 0, so Dream's position 0 reads its own output). Rows in the same block take
    the column-slice path; rows in different blocks (a refilled slot) gather each row's
    columns from the final hidden states before the vocabulary head, or, for a network
    without ``hidden_states``/``head``, from the logits of the columns the blocks span."""
    if len(set(starts)) == 1 and starts[0] - shift >= 0:
        lo = starts[0] - shift
        return _forward(model, x, attention_mask, slice(lo, lo + length),
                        cfg_scale, prompt_index, mask_id)
    inputs, mask = _guided_inputs(x, attention_mask, cfg_scale, prompt_index, mask_id)
    first = torch.tensor(starts, device=x.device)
    if cfg_scale > 0:
        first = torch.cat([first, first])
    cols = first[:, None] + torch.arange(length, device=x.device)[None, :]  # [A', L]
    cols = (cols - shift).clamp_min(0)
    if hasattr(model, "hidden_states") and hasattr(model, "head"):
        hidden = model.hidden_states(inputs, mask)  # type: ignore[attr-defined]
        picked = hidden.gather(1, cols[..., None].expand(-1, -1, hidden.shape[-1]))
        logits = model.head(picked)  # type: ignore[attr-defined]
    else:
        lo, hi = int(cols.min()), int(cols.max()) + 1
        span = model(inputs, attention_mask=mask, positions=slice(lo, hi))
        logits = span.gather(1, (cols - lo)[..., None].expand(-1, -1, span.shape[-1]))
    return _guide(logits, cfg_scale)


def commit_mask(conf: torch.Tensor, masked: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Positions to commit: the ``k[a]`` most confident masked positions of each row.

    ``conf`` ``[A, L]``, ``masked`` ``[A, L]`` bool, ``k`` ``[A]``. One vectorised stable sort,
    no host synchronisation; ties go to the leftmost position (a deterministic order, where
    ``torch.topk`` leaves it unspecified).
    """
    conf = conf.masked_fill(~masked, float("-inf"))
    order = torch.sort(conf, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(conf.shape[1], device=conf.device).expand_as(order))
    return (ranks < k[:, None]) & masked


def _confidence(
    logits: torch.Tensor,  # [A, L, V]
    x0: torch.Tensor,  # [A, L]
    masked: torch.Tensor,  # [A, L]
    config: SamplerConfig,
    generators: Generators,
    last_ids: torch.Tensor | None,
) -> torch.Tensor:
    """float32 confidences ``[A, L]`` of the predictions, -inf where nothing can be committed.

    ``confidence_eos_eot_inf`` ranks EOS/EoT predictions after every other one. Under the
    linear schedule they get :data:`LAST_CONFIDENCE`, as in the reference. Under threshold
    decoding (the combined rule) they get :data:`LAST_CONFIDENCE` only while another masked
    position of the block predicts something else; once only EOS/EoT predictions remain, the
    threshold applies to their own confidences, so a run of trailing EOS is committed in one
    pass rather than one pass each.
    """
    if config.remasking == "low_confidence":
        probs = F.softmax(logits.float(), dim=-1)
        conf = probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    else:
        conf = _rand(tuple(x0.shape), generators, x0.device, torch.float32)
    if last_ids is not None:
        is_last = torch.isin(x0, last_ids)
        demote = is_last
        if config.decoding == "threshold":
            demote = is_last & (masked & ~is_last).any(dim=1, keepdim=True)
        conf = conf.masked_fill(demote, LAST_CONFIDENCE)
    return conf.masked_fill(~masked, float("-inf"))


def _commit_counts(conf: torch.Tensor, masked: torch.Tensor, config: SamplerConfig,
                   scheduled: list[int]) -> torch.Tensor:
    """``[A]`` tokens to commit this pass: the schedule's, or every confident one (>= 1)."""
    if config.decoding == "threshold":
        return torch.maximum((conf >= config.threshold).sum(dim=1), masked.any(dim=1).long())
    return torch.tensor(scheduled, dtype=torch.long, device=conf.device)


def _rows_of(generator: Generators, rows: list[int]) -> Generators:
    """The generators of ``rows`` (a per-row list), or the shared one."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    return [generator[r] for r in rows]


def _stop_rules(stop: StopRule | Sequence[StopRule] | None, rows: int) -> list[StopRule] | None:
    if stop is None:
        return None
    rules = [stop] * rows if isinstance(stop, StopRule) else list(stop)
    if len(rules) != rows:
        raise ValueError(f"{len(rules)} stop rules for {rows} rows")
    return rules if any(r.active for r in rules) else None


def early_exit_applies(config: SamplerConfig, stop: object, generator: Generators) -> bool:
    """Whether rows may stop early: enabled, a stop rule given, and draws independent per row.

    With random sampling and one shared generator the draws of a row depend on the batch's
    shape, so removing a row would change the others: exact early exit then needs one
    generator per row, and is not applied without.
    """
    if not config.early_exit or stop is None or config.batch_schedule == "batch_mean":
        return False  # under batch_mean a row's commits depend on its batch-mates
    random = (config.temperature > 0 or config.remasking == "random" or config.alg == "origin"
              or (config.alg is not None and config.alg_temp > 0))
    shared = generator is None or isinstance(generator, torch.Generator)
    return not (random and shared)


#: Dream's final timestep (``eps`` of ``diffusion_generate``; the eval scripts keep it).
DREAM_EPS = 1e-3


def dream_timesteps(steps: int, eps: float = DREAM_EPS) -> torch.Tensor:
    """Dream's timesteps ``linspace(1, eps, steps + 1)`` in float32 (on the host)."""
    return torch.linspace(1, eps, steps + 1)


def dream_commit_count(masked_total: int, rows: int, step: int, timesteps: torch.Tensor) -> int:
    """Tokens to commit at ``step`` as Dream counts them, in float32 as the official code:
    ``int(n * (1 - s / t))`` with ``n = masked_total / rows``, and ``int(n)`` on the last step.
    ``rows`` is 1 for the per-row count, the batch size for the official batch mean."""
    n = torch.tensor(masked_total) / rows  # float32, as mask_index.sum() / batch
    if step == timesteps.numel() - 2:
        return int(n)
    return int(n * (1 - timesteps[step + 1] / timesteps[step]))


def _top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Dream's nucleus filter: drop tokens once the sorted cumulative probability exceeds
    ``top_p``, keeping the first one past it (set to the dtype's minimum)."""
    ordered, order = torch.sort(logits, descending=True)
    drop = torch.cumsum(F.softmax(ordered, dim=-1), dim=-1) > top_p
    drop[..., 1:] = drop[..., :-1].clone()
    drop[..., 0] = False
    remove = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, order, drop)
    return logits.masked_fill(remove, torch.finfo(logits.dtype).min)


def _top_k_filter(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Dream's top-k filter: logits below the k-th largest set to the dtype's minimum."""
    k = min(top_k, logits.shape[-1])
    kth = torch.topk(logits, k)[0][..., -1, None]
    return logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)


def dream_sample_tokens(logits: torch.Tensor, config: SamplerConfig,
                        generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Dream's ``sample_tokens`` on ``[N, V]`` float32 logits: ``(confidence [N], token [N])``.

    Temperature divides the logits, then ``top_p`` and ``top_k`` filter them (also at
    temperature 0, where they still shape the confidence); temperature 0 takes the argmax,
    otherwise one categorical draw per position (``multinomial`` on the normalised
    probabilities, as ``Categorical.sample`` does). Confidence per ``config.alg``.
    """
    if config.temperature > 0:
        logits = logits / config.temperature
    if config.top_p is not None and config.top_p < 1:
        logits = _top_p_filter(logits, config.top_p)
    if config.top_k is not None:
        logits = _top_k_filter(logits, config.top_k)
    probs = torch.softmax(logits, dim=-1)
    if config.temperature > 0 and probs.shape[0] > 0:
        normed = probs / probs.sum(-1, keepdim=True)
        token = torch.multinomial(normed, 1, True, generator=generator).squeeze(-1)
        confidence = probs.gather(-1, token[:, None]).squeeze(-1)
    else:
        confidence, token = probs.max(dim=-1)
    if config.alg == "topk_margin":
        top2 = torch.topk(probs, 2, dim=-1).values if probs.shape[-1] > 1 else probs
        confidence = top2[:, 0] - top2[:, -1]
    elif config.alg == "entropy":
        confidence = torch.sum(probs * torch.log(probs + 1e-10), dim=-1)
    return confidence, token


def _draw_groups(generators: Generators, rows: int, random: bool
                 ) -> list[tuple[list[int], torch.Generator | None]]:
    """Rows that draw together: all rows from a shared generator (or when nothing is random),
    else each row from its own, in row order (the official code's batch is one group)."""
    if not random or generators is None or isinstance(generators, torch.Generator):
        shared = None if isinstance(generators, (list, tuple)) else generators
        return [(list(range(rows)), shared)]
    return [([a], g) for a, g in enumerate(generators)]


def _dream_commit(x: torch.Tensor, logits: torch.Tensor, p: int, mask_id: int,
                  config: SamplerConfig, gens: Generators, steps_of: list[int],
                  counts: list[int], timesteps: torch.Tensor,
                  pads: list[int] | None = None) -> torch.Tensor:
    """One step of Dream's ``_sample`` on the rows ``x`` ``[A, T]`` (answer from column p),
    ``logits`` ``[A, T - p, V]`` already shifted; returns the new rows. ``steps_of[a]``: the
    row's step; ``counts[a]``: tokens it commits (unused by ``origin``). ``pads[a]``: the
    row's left padding; under ``per_row`` an ``alg_temp`` draw covers the row's own columns
    only (as its solo run), under ``batch_mean`` the whole padded row (as the official batch)."""
    a_rows, width = x.shape
    block = x[:, p:]
    masked = block == mask_id
    last = timesteps.numel() - 2
    random = (config.temperature > 0 or config.alg == "origin" or config.alg_temp > 0)
    x = x.clone()
    for rows, gen in _draw_groups(gens, a_rows, random):
        sub_masked = masked[rows]
        sub_logits = logits[rows][sub_masked].float()  # [N, V], row-major as logits[mask_index]
        where = sub_masked.nonzero(as_tuple=True)
        if config.alg == "origin":
            chance = torch.ones(len(rows))
            for j, r in enumerate(rows):
                if steps_of[r] < last:
                    chance[j] = 1 - timesteps[steps_of[r] + 1] / timesteps[steps_of[r]]
            u = torch.rand(sub_logits.shape[0], generator=gen, device=x.device)
            move = u < chance.to(x.device)[where[0]]
            picked = torch.full((sub_logits.shape[0],), mask_id, dtype=torch.long, device=x.device)
            if bool(move.any()):
                picked[move] = dream_sample_tokens(sub_logits[move], config, gen)[1]
            sub = x[rows]
            sub_block = sub[:, p:]
            sub_block[sub_masked] = picked
            sub[:, p:] = sub_block
            x[rows] = sub
            continue
        confidence, token = dream_sample_tokens(sub_logits, config, gen)
        full_conf = torch.full((len(rows), width), float("-inf"), device=x.device)
        proposal = torch.full((len(rows), width), mask_id, dtype=torch.long, device=x.device)
        conf_block = full_conf[:, p:]
        conf_block[sub_masked] = confidence.float()
        prop_block = proposal[:, p:]
        prop_block[sub_masked] = token
        by_count: dict[int, list[int]] = {}
        for j, r in enumerate(rows):
            if counts[r] > 0:
                by_count.setdefault(counts[r], []).append(j)
        for k, members in by_count.items():
            conf_k = full_conf[members]
            if config.alg_temp > 0 and config.batch_schedule == "per_row" and pads:
                chosen = torch.cat([
                    pads[rows[j]] + torch.multinomial(
                        F.softmax(full_conf[j:j + 1, pads[rows[j]]:] / config.alg_temp, dim=-1),
                        num_samples=k, generator=gen)
                    for j in members])
            elif config.alg_temp > 0:
                weights = F.softmax(conf_k / config.alg_temp, dim=-1)
                chosen = torch.multinomial(weights, num_samples=k, generator=gen)
            else:
                chosen = torch.topk(conf_k, k).indices
            targets = torch.tensor([rows[j] for j in members], device=x.device)
            row_idx = targets[:, None].expand_as(chosen)
            x[row_idx, chosen] = proposal[members][torch.arange(len(members),
                                                                device=x.device)[:, None], chosen]
    return x


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
    stop: StopRule | Sequence[StopRule] | None = None,
    batch_size: int | None = None,
    on_finish: RowCallback | None = None,
    logit_shift: int = 0,
    history: bool = False,
) -> GenerationResult:
    """Sample ``config.gen_length`` tokens after each prompt of ``input_ids`` ``[N, P]``.

    ``attention_mask`` ``[N, P]`` marks left padding with 0. With ``temperature=0`` the output
    is deterministic and token for token the reference's. ``logits_eos_inf`` needs ``eos_id``;
    ``confidence_eos_eot_inf`` uses ``eos_id`` and ``eot_id`` (either may be None).

    ``batch_size`` (default N) rows are sampled at a time; a row that finishes hands its slot
    to the next waiting row. ``stop`` (one rule, or one per row) says where the caller cuts
    the answer; with ``config.early_exit`` a row stops as soon as its answer is fixed
    (:mod:`evalsuite.diffusion.stopping`). Without ``stop`` every position is filled.
    ``on_finish`` hears of each row as soon as it is final (the request cache stores it then).
    ``logit_shift``: the family's (Dream 1: token i read from the output at i - 1).
    ``history``: also return each row's ids after every step (``GenerationResult.history``).
    """
    if config.logits_eos_inf and eos_id is None:
        raise ValueError("logits_eos_inf needs the EOS id (none in the model config or tokenizer)")
    n = int(input_ids.shape[0])
    if generator is not None and not isinstance(generator, torch.Generator) \
            and len(generator) != n:
        raise ValueError(f"{len(generator)} generators for a batch of {n} rows")
    rules = _stop_rules(stop, n) if early_exit_applies(config, stop, generator) else None
    ids = [i for i in (eos_id, eot_id) if i is not None]
    last_ids = (torch.tensor(ids, device=input_ids.device)
                if config.confidence_eos_eot_inf and ids else None)
    if config.cache != "none":
        if not hasattr(model, "forward_cached"):
            raise ValueError(f"cache={config.cache!r} needs a model with forward_cached "
                             "(LLaDAModel)")
        return _sample_lockstep(model, input_ids, attention_mask, config, mask_id, eos_id,
                                last_ids, generator, rules, batch_size or n, on_finish)
    return _sample_slots(model, input_ids, attention_mask, config, mask_id, eos_id, last_ids,
                         generator, rules, batch_size or n, on_finish, logit_shift, history)


def _initial(input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
             config: SamplerConfig, mask_id: int
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Prompts followed by ``gen_length`` mask ids, and the extended attention mask."""
    n, p = input_ids.shape
    device = input_ids.device
    x = torch.full((n, p + config.gen_length), mask_id, dtype=torch.long, device=device)
    x[:, :p] = input_ids
    if attention_mask is None:
        return x, None
    ones = torch.ones((n, config.gen_length), dtype=attention_mask.dtype, device=device)
    return x, torch.cat([attention_mask.to(device), ones], dim=1)


def _decided_rows(x: torch.Tensor, rows: list[int], p: int, mask_id: int,
                  rules: list[StopRule], known: list[int]) -> list[bool]:
    """For each active row: is its answer fixed? One device-to-host transfer for the batch.

    ``known[r]`` is the committed-prefix length already checked for request r, negative once
    decided (a rule is re-evaluated only when the prefix grew)."""
    generated = x[:, p:].tolist()
    out = []
    for r, row in zip(rows, generated):
        if known[r] < 0:
            out.append(True)
            continue
        length = row.index(mask_id) if mask_id in row else len(row)
        if length > known[r]:
            known[r] = -1 if rules[r].decided(row[:length]) else length
        out.append(known[r] < 0)
    return out


def _sample_slots(model: MaskPredictor, input_ids: torch.Tensor,
                  attention_mask: torch.Tensor | None, config: SamplerConfig, mask_id: int,
                  eos_id: int | None, last_ids: torch.Tensor | None, generator: Generators,
                  rules: list[StopRule] | None, slots: int,
                  on_finish: RowCallback | None = None, shift: int = 0,
                  keep_history: bool = False) -> GenerationResult:
    """Rows stream through ``slots`` batch slots; each slot keeps its own block and step.

    The schedule is LLaDA's linear one per block, or Dream's timesteps (``config.alg``)."""
    n, p = input_ids.shape
    dream = config.alg is not None
    length, blocks = config.block_length, config.num_blocks
    out, full_mask = _initial(input_ids, attention_mask, config, mask_id)
    device = out.device
    if dream:
        timesteps = dream_timesteps(config.steps)
        counts: list[int] = []
        n_steps = config.steps
    else:
        # The linear schedule of a block (every block starts fully masked); steps that commit
        # nothing are skipped, as they change nothing.
        counts = [c for c in transfer_schedule(torch.tensor([length]), config.steps_per_block)[0]
                  .tolist() if c > 0]
        n_steps = len(counts)
    slots = max(1, min(slots, n))
    x = out[:slots].clone()
    amask = None if full_mask is None else full_mask[:slots].clone()
    pidx = x != mask_id
    slot_row, blk, pas = [-1] * slots, [0] * slots, [0] * slots
    waiting = list(range(n))[::-1]
    nonfinite = torch.zeros(n, dtype=torch.bool, device=device)
    row_nfe, exited, known = [0] * n, [False] * n, [0] * n
    steps_seen: list[list[torch.Tensor]] = [[] for _ in range(n)]
    nfe = 0

    def load(s: int) -> None:
        r = waiting.pop()
        slot_row[s], blk[s], pas[s] = r, 0, 0
        x[s] = out[r]
        pidx[s] = out[r] != mask_id
        if amask is not None and full_mask is not None:
            amask[s] = full_mask[r]

    def advance(s: int, block_full: bool, stop_now: bool) -> None:
        """Move slot s past one step; a finished row leaves and the next one loads."""
        r = slot_row[s]
        if keep_history:
            steps_seen[r].append(x[s].clone())
        if block_full:
            blk[s], pas[s] = blk[s] + 1, 0
        else:
            pas[s] += 1
        if blk[s] < blocks and not stop_now:
            return
        out[r] = x[s]
        exited[r] = blk[s] < blocks
        slot_row[s] = -1
        if on_finish is not None:
            on_finish(r, out[r], row_nfe[r], bool(nonfinite[r]), exited[r])
        if waiting:
            load(s)

    for s in range(slots):
        load(s)
    while True:
        act = [s for s in range(slots) if slot_row[s] >= 0]
        if not act:
            break
        rows = [slot_row[s] for s in act]
        whole = len(act) == slots
        sel = None if whole else torch.tensor(act, device=device)
        xa = x if sel is None else x[sel]
        step_counts: list[int] = []
        if dream:  # Dream's counts come from the masks left now (one host transfer)
            left = (xa[:, p:] == mask_id).sum(dim=1).tolist()
            mean_rows = len(act) if config.batch_schedule == "batch_mean" else 1
            for a, s in enumerate(act):
                total = sum(left) if mean_rows > 1 else left[a]
                step_counts.append(dream_commit_count(total, mean_rows, pas[s], timesteps))
            # A step that commits nothing is skipped when that draws nothing either (the
            # official code consumes random numbers for the token choice at temperature > 0).
            idle = [s for a, s in enumerate(act) if left[a] == 0 or (
                config.alg != "origin" and step_counts[a] == 0 and config.temperature == 0)]
            if config.batch_schedule == "batch_mean" and len(idle) < len(act):
                idle = []  # the batch moves in lockstep, as the official batch does
            if idle:  # nothing to commit this step: no forward pass
                for s in idle:
                    advance(s, pas[s] + 1 >= n_steps, False)
                continue
        ma = amask if (amask is None or sel is None) else amask[sel]
        pa = pidx if sel is None else pidx[sel]
        starts = [p + blk[s] * length for s in act]
        logits = _block_logits(model, xa, ma, starts, length, config.cfg_scale, pa, mask_id,
                               shift)
        nfe += 1
        for r in rows:
            row_nfe[r] += 1
        rows_t = torch.tensor(rows, device=device)
        nonfinite[rows_t] |= ~torch.isfinite(logits).flatten(1).all(dim=1)
        gens = _rows_of(generator, rows)
        if dream:
            pads = None if ma is None else (ma[:, :p] == 0).sum(dim=1).tolist()
            new_x = _dream_commit(xa, logits, p, mask_id, config, gens, [pas[s] for s in act],
                                  step_counts, timesteps, pads)
            if sel is None:
                x.copy_(new_x)
            else:
                x[sel] = new_x
            full = [pas[s] + 1 >= n_steps for s in act]
        else:
            if config.logits_eos_inf:
                logits[:, :, eos_id] = float("-inf")
            x0 = gumbel_perturb(logits, config.temperature, gens).argmax(dim=-1)  # [A, L]
            cols = torch.tensor(starts, device=device)[:, None] + torch.arange(length,
                                                                                device=device)
            block_x = xa.gather(1, cols)
            masked = block_x == mask_id
            conf = _confidence(logits, x0, masked, config, gens, last_ids)
            k = _commit_counts(conf, masked, config, [] if config.decoding == "threshold"
                               else [counts[pas[s]] for s in act])
            new_block = torch.where(commit_mask(conf, masked, k), x0, block_x)
            if sel is None:
                x.scatter_(1, cols, new_block)
            else:
                x[sel] = xa.scatter(1, cols, new_block)
            if config.decoding == "threshold":
                full = (~(new_block == mask_id).any(dim=1)).tolist()  # the pass's one transfer
            else:
                full = [pas[s] + 1 >= n_steps for s in act]
        decided = (_decided_rows(x if sel is None else x[sel], rows, p, mask_id, rules, known)
                   if rules is not None else [False] * len(act))
        for s, block_full, stop_now in zip(act, full, decided):
            advance(s, block_full, stop_now)
    return GenerationResult(tokens=out, nfe=nfe, prompt_length=p,
                            nonfinite=tuple(nonfinite.tolist()), row_nfe=tuple(row_nfe),
                            exited=tuple(exited),
                            history=tuple(tuple(h) for h in steps_seen) if keep_history else ())


def _sample_lockstep(model: MaskPredictor, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor | None, config: SamplerConfig, mask_id: int,
                     eos_id: int | None, last_ids: torch.Tensor | None, generator: Generators,
                     rules: list[StopRule] | None, slots: int,
                     on_finish: RowCallback | None = None) -> GenerationResult:
    """The approximate KV-cache modes: chunks of ``slots`` rows move block by block together
    (the cache covers one block window for the whole chunk). Early exit stops a chunk once
    every row's answer is fixed."""
    n, p = input_ids.shape
    out, full_mask = _initial(input_ids, attention_mask, config, mask_id)
    nonfinite = torch.zeros(n, dtype=torch.bool, device=out.device)
    row_nfe, exited, known = [0] * n, [False] * n, [0] * n
    total = 0
    for first in range(0, n, slots):
        rows = list(range(first, min(first + slots, n)))
        x = out[rows[0]:rows[-1] + 1]  # a view: updates land in ``out``
        amask = None if full_mask is None else full_mask[rows[0]:rows[-1] + 1]
        nfe, done = _lockstep_chunk(model, x, amask, config, mask_id, eos_id, last_ids,
                                    _rows_of(generator, rows), rules, rows, p, known,
                                    nonfinite)
        total += nfe
        for r in rows:
            row_nfe[r] = nfe
            exited[r] = done
            if on_finish is not None:
                on_finish(r, out[r], nfe, bool(nonfinite[r]), done)
    return GenerationResult(tokens=out, nfe=total, prompt_length=p,
                            nonfinite=tuple(nonfinite.tolist()), row_nfe=tuple(row_nfe),
                            exited=tuple(exited))


def _lockstep_chunk(model: MaskPredictor, x: torch.Tensor, amask: torch.Tensor | None,
                    config: SamplerConfig, mask_id: int, eos_id: int | None,
                    last_ids: torch.Tensor | None, generator: Generators,
                    rules: list[StopRule] | None, rows: list[int], p: int, known: list[int],
                    nonfinite: torch.Tensor) -> tuple[int, bool]:
    """Sample one chunk in place; returns its passes and whether early exit ended it."""
    prompt_index = x != mask_id
    cache = _BlockCache(config.cache, x.shape[1])
    nfe, steps = 0, config.steps_per_block
    rows_t = torch.tensor(rows, device=x.device)
    for block in range(config.num_blocks):
        start = p + block * config.block_length
        cols = slice(start, start + config.block_length)
        cache.reset()  # refreshed by the first pass of every block
        if config.decoding == "threshold":
            schedule, budget = None, config.block_length  # at least one commit per pass
        else:
            schedule = transfer_schedule((x[:, cols] == mask_id).sum(dim=1), steps).tolist()
            budget = steps
        for step in range(budget):
            block_x = x[:, cols]
            masked = block_x == mask_id  # [B, L]
            if not bool(masked.any()):
                break
            if schedule is not None and max(row[step] for row in schedule) == 0:
                continue
            logits = _forward(model, x, amask, cols, config.cfg_scale, prompt_index, mask_id,
                              cache)
            nfe += 1
            nonfinite[rows_t] |= ~torch.isfinite(logits).flatten(1).all(dim=1)
            if config.logits_eos_inf:
                logits[:, :, eos_id] = float("-inf")
            x0 = gumbel_perturb(logits, config.temperature, generator).argmax(dim=-1)
            conf = _confidence(logits, x0, masked, config, generator, last_ids)
            k = _commit_counts(conf, masked, config,
                               [] if schedule is None else [row[step] for row in schedule])
            x[:, cols] = torch.where(commit_mask(conf, masked, k), x0, block_x)
            if rules is not None and all(_decided_rows(x, rows, p, mask_id, rules, known)):
                return nfe, block < config.num_blocks - 1 or bool((x[:, p:] == mask_id).any())
    return nfe, False
