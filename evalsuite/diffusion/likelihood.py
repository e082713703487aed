"""Monte Carlo estimate of log p(answer | prompt) for masked diffusion LMs (LLaDA Eq. 6).

For a prompt p (never masked) and an answer r of L tokens the paper's lower-variance bound is

    log p(r | p) >= E_{l ~ U{1..L}} E_{S, |S| = l} [ (L / l) * sum_{i in S} log p(r_i | p, r_S masked) ]

Each row masks a set S of answer positions and contributes ``(L / l) * sum log p`` over them.
Which rows, and how they combine, is the *design* (:mod:`evalsuite.diffusion.designs`), chosen
by ``EstimatorConfig.estimator``:

- ``auto`` (default): exact enumeration when ``2^L - 1 <= mc_num`` (standard error 0);
  otherwise strata by mask count with small strata enumerated, Neyman allocation, balanced
  subsets within a stratum and a cross-fitted control variate for the position effect
  (:func:`~evalsuite.diffusion.designs.control_variate_values`). Requests of one *CRN
  group* (the choices of one question) share
  their random numbers, so the differences between choices, which decide accuracy, vary less.
- ``stratified``: the previous evalsuite design (groups with ``floor((u + j) L / b) + 1``).
- ``reference``: the official algorithm exactly (``torch.round`` spread of the counts).

A single-token answer (L = 1) is exact in one pass under every design. With
``target_se`` rows are spent in rounds (the first of at most 32 rows, then doubling) until the
standard error reaches the target or ``mc_num`` rows are used; each round is an independent
replicate of the design and rounds combine weighted by their rows.

Rows of many requests are packed into forward passes of up to ``max_rows`` sequences,
right-padded with an attention mask; rotary attention is relative, so packing does not change
a row's logits. The vocabulary head is applied only at masked positions, log-softmax runs in
float32 whatever the model dtype, and each forward pass makes one device-to-host transfer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from evalsuite.settings.config import EstimatorConfig
from evalsuite.diffusion.designs import (
    Design,
    auto_design,
    combine,
    control_variate_values,
    exact_design,
    random_subsets,
    reference_design,
    stratified_design,
    stratified_mask_counts,
)

__all__ = ["LikelihoodResult", "estimate_loglikelihood", "random_subsets",
           "stratified_mask_counts"]
FIRST_ROUND_ROWS = 32


@dataclass(frozen=True)
class LikelihoodResult:
    """Estimate of the Eq. 6 bound on log p(answer | prompt), in nats."""

    value: float
    """An unbiased estimate of the bound (the bound itself when ``exact``)."""
    stderr: float
    """Standard error of ``value`` (0 when exact)."""
    nfe: int
    """Sequence evaluations spent on this request (a CFG row counts twice). A row shared by
    several requests (identical masked input) is charged to the first, so the sum over
    requests is the work actually done."""
    samples: int
    """Rows of the design used (1 for a single-token answer)."""
    exact: bool
    """True when the bound was computed exactly (single-token answer, or every masked input
    enumerated because ``2^L - 1 <= mc_num`` under the ``auto`` design)."""
    greedy: bool | None = None
    """For single-token answers: whether the answer token is the argmax (lm-eval's is_greedy)."""
    nonfinite: bool = False
    """True when any logit used for this request was NaN or infinite."""
    design: str = "auto"
    """Design that produced the rows: exact, auto, stratified or reference."""
    rounds: int = 1
    """Rounds of rows spent (more than one only with ``target_se``)."""


@dataclass(frozen=True)
class _Round:
    value: float
    stderr: float
    rows: int


def _round_budget(config: EstimatorConfig, length: int, used: int) -> int:
    """Rows of the next round: everything at once without a target; else 32, then doubling."""
    left = config.mc_num - used
    if config.target_se is None or (config.estimator == "auto" and 2 ** min(length, 62) - 1
                                    <= config.mc_num):
        return left
    step = config.batch_size if config.estimator != "auto" else 1
    first = max(step, (min(FIRST_ROUND_ROWS, config.mc_num) // step) * step)
    return min(left, first if used == 0 else used)


def _design(config: EstimatorConfig, length: int, budget: int, seed: int, round_index: int,
            generator: torch.Generator | None) -> Design:
    if length == 1:
        return exact_design(1)
    if config.estimator == "reference":
        return reference_design(length, budget, config.batch_size, generator)
    if config.estimator == "stratified":
        return stratified_design(length, budget, config.batch_size, generator)
    return auto_design(length, budget, seed + 1_000_003 * round_index)


@dataclass(frozen=True)
class _Row:
    request: int
    tokens: torch.Tensor  # [T] with mask ids at the masked answer positions
    masked: torch.Tensor  # [T] bool
    target: torch.Tensor  # [T] the unmasked sequence
    prompt_len: int
    scored: torch.Tensor | None = None
    """[T] bool: the positions whose log p is summed, when not every masked one (Dream's
    ``ar_ftb`` scores one position of a row that masks several)."""

    @property
    def scored_mask(self) -> torch.Tensor:
        return self.masked if self.scored is None else self.scored


def _rows(index: int, seq: torch.Tensor, prompt_len: int, design: Design, mask_id: int) -> list[_Row]:
    full = torch.zeros((design.masks.shape[0], seq.numel()), dtype=torch.bool)
    full[:, prompt_len:] = design.masks
    tokens = seq.expand_as(full).masked_fill(full, mask_id)
    return [_Row(index, tokens[r], full[r], seq, prompt_len) for r in range(full.shape[0])]


def _score_chunk(
    model: torch.nn.Module, rows: Sequence[_Row], members: Sequence[Sequence[_Row]],
    cfg_scale: float, mask_id: int, device: torch.device, shift: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass over distinct rows. Returns ``[3, M]`` (float64, on the host) over the
    members of every row in order: sum of log p(target) over the scored (masked) positions,
    number of them whose target is not the argmax, number of non-finite logit vectors; and
    the log p(target) of every scored position of every member, concatenated. ``shift``: the
    family's logit shift (Dream: position i is read from the output at i - 1, 0 from 0)."""
    width = max(int(r.tokens.numel()) for r in rows)
    n = len(rows)
    x = torch.full((n, width), mask_id, dtype=torch.long)
    keep = torch.zeros((n, width), dtype=torch.long)
    masked = torch.zeros((n, width), dtype=torch.bool)
    prompt = torch.zeros(n, dtype=torch.long)
    for i, row in enumerate(rows):
        t = int(row.tokens.numel())
        x[i, :t], keep[i, :t], masked[i, :t], prompt[i] = (row.tokens, 1, row.scored_mask,
                                                           row.prompt_len)
    counts = masked.sum(dim=1)
    offsets = torch.cumsum(counts, 0) - counts
    positions, gold, segment = [], [], []
    m = 0
    for i, group in enumerate(members):
        where = torch.arange(int(offsets[i]), int(offsets[i] + counts[i]))
        for member in group:
            positions.append(where)
            gold.append(member.target[member.scored_mask])
            segment.append(torch.full((where.numel(),), m, dtype=torch.long))
            m += 1
    positions_d = torch.cat(positions).to(device)
    gold_d = torch.cat(gold).to(device)
    segment_d = torch.cat(segment).to(device)
    x, keep, masked = x.to(device), keep.to(device), masked.to(device)
    where = masked.nonzero(as_tuple=True)  # row-major, the order of hidden[masked]
    read = (where[0], (where[1] - shift).clamp_min(0))  # the outputs that predict them
    if cfg_scale > 0:
        un_x = x.masked_fill(torch.arange(width, device=device)[None, :] < prompt.to(device)[:, None],
                             mask_id)
        hidden = model.hidden_states(torch.cat([x, un_x]), torch.cat([keep, keep]))
        cond = model.head(hidden[:n][read]).float()  # [N, V] float32
        uncond = model.head(hidden[n:][read]).float()
        logits = uncond + (cfg_scale + 1) * (cond - uncond)
        bad = ~(torch.isfinite(cond).all(-1) & torch.isfinite(uncond).all(-1))
    else:
        hidden = model.hidden_states(x, keep)
        logits = model.head(hidden[read]).float()  # [N, V] over the scored positions of all rows
        bad = ~torch.isfinite(logits).all(-1)
    logp = F.log_softmax(logits, dim=-1)
    best = logp.argmax(dim=-1)
    picked = logp[positions_d, gold_d].double()
    out = torch.zeros((3, m), dtype=torch.float64, device=device)
    out[0].index_add_(0, segment_d, picked)
    out[1].index_add_(0, segment_d, (best[positions_d] != gold_d).double())
    out[2].index_add_(0, segment_d, bad[positions_d].double())
    host = torch.cat([out.reshape(-1), picked]).cpu()  # the one device-to-host transfer
    return host[:3 * m].reshape(3, m), host[3 * m:]


def _score(model: torch.nn.Module, rows: Sequence[_Row], cfg_scale: float, mask_id: int,
           max_rows: int, shift: int = 0) -> tuple[torch.Tensor, list[bool], list[torch.Tensor]]:
    """Score every row; identical masked inputs are evaluated once. Returns ``[3, R]`` in row
    order, per row whether it was evaluated for itself (the first of its identical rows), and
    per row the log-probabilities of its scored positions (in position order)."""
    distinct: dict[tuple[bytes, int, bytes], list[int]] = {}
    for r, row in enumerate(rows):
        key = (row.tokens.numpy().tobytes(), row.prompt_len,
               b"" if row.scored is None else row.scored.numpy().tobytes())
        distinct.setdefault(key, []).append(r)
    groups = sorted(distinct.values(), key=lambda g: int(rows[g[0]].tokens.numel()))
    scores = torch.zeros((3, len(rows)), dtype=torch.float64)
    owner = [False] * len(rows)
    per_position: list[torch.Tensor] = [torch.empty(0)] * len(rows)
    device = next(model.parameters()).device
    for start in range(0, len(groups), max_rows):
        chunk = groups[start:start + max_rows]
        out, picked = _score_chunk(model, [rows[g[0]] for g in chunk],
                                   [[rows[r] for r in g] for g in chunk], cfg_scale, mask_id, device,
                                   shift)
        flat = [r for g in chunk for r in g]
        scores[:, flat] = out
        sizes = [int(rows[r].scored_mask.sum()) for r in flat]
        for r, part in zip(flat, torch.split(picked, sizes)):
            per_position[r] = part
        for g in chunk:
            owner[g[0]] = True
    return scores, owner, per_position


def _seeds(n: int, generators: Sequence[torch.Generator | None],
           crn_groups: Sequence[int] | None) -> list[int]:
    """One design seed per request, drawn from its generator (from the generator of the first
    request of its CRN group when groups are given)."""
    seeds: list[int] = []
    leader_seed: dict[int, int] = {}
    for i in range(n):
        key = crn_groups[i] if crn_groups is not None else None
        if key is not None and key in leader_seed:
            seeds.append(leader_seed[key])
            continue
        seed = int(torch.randint(0, 2 ** 62, (), generator=generators[i]))
        if key is not None:
            leader_seed[key] = seed
        seeds.append(seed)
    return seeds


@torch.no_grad()
def estimate_loglikelihood(
    model: torch.nn.Module,
    requests: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    config: EstimatorConfig,
    mask_id: int,
    generators: Sequence[torch.Generator | None] | None = None,
    max_rows: int = 32,
    crn_groups: Sequence[int] | None = None,
) -> list[LikelihoodResult]:
    """Estimate the bound for each ``(prompt_ids [P], answer_ids [L])`` pair.

    ``generators[i]`` drives every random draw of request i, so its estimate does not depend
    on the other requests. ``crn_groups[i]`` (optional): requests with equal group ids share
    the random numbers of the ``auto`` design (taken from the group's first generator), e.g.
    the choices of one question. ``max_rows`` distinct sequences go through the network per
    forward pass; identical masked sequences are evaluated once (the one-token choices of a
    question share ``prompt + [M]`` and cost one row).
    """
    n = len(requests)
    if generators is None:
        generators = [None] * n
    if crn_groups is not None and len(crn_groups) != n:
        raise ValueError(f"crn_groups has {len(crn_groups)} entries for {n} requests")
    seqs, prompt_lens, lengths = [], [], []
    for i, (prompt, answer) in enumerate(requests):
        prompt, answer = prompt.reshape(-1).long().cpu(), answer.reshape(-1).long().cpu()
        if answer.numel() == 0:
            raise ValueError(f"request {i}: the answer has no tokens")
        seqs.append(torch.cat([prompt, answer]))
        prompt_lens.append(int(prompt.numel()))
        lengths.append(int(answer.numel()))
    seeds = _seeds(n, generators, crn_groups) if config.estimator == "auto" else [0] * n
    rounds: list[list[_Round]] = [[] for _ in range(n)]
    used, nfe = [0] * n, [0] * n
    greedy: list[bool | None] = [None] * n
    nonfinite = [False] * n
    names = [""] * n
    active = list(range(n))
    per_pass = 2 if config.cfg_scale > 0 else 1
    round_index = 0
    while active:
        designs: dict[int, Design] = {}
        rows: list[_Row] = []
        for i in active:
            budget = _round_budget(config, lengths[i], used[i])
            designs[i] = _design(config, lengths[i], budget, seeds[i], round_index, generators[i])
            rows += _rows(i, seqs[i], prompt_lens[i], designs[i], mask_id)
        scores, owner, per_position = _score(model, rows, config.cfg_scale, mask_id, max_rows)
        by_request: dict[int, list[int]] = {}
        for r, row in enumerate(rows):
            by_request.setdefault(row.request, []).append(r)
        still: list[int] = []
        for i in active:
            mine = torch.tensor(by_request[i])
            design = designs[i]
            values = design.weights * scores[0, mine]
            if design.kind == "strata" and not design.exact:
                logp = torch.zeros(design.masks.shape, dtype=torch.float64)
                for k, r in enumerate(by_request[i]):
                    logp[k, design.masks[k]] = per_position[r]
                values = control_variate_values(design, logp)
            value, se = combine(design, values)
            rounds[i].append(_Round(value, se, int(mine.numel())))
            used[i] += int(mine.numel()) if lengths[i] > 1 else config.mc_num
            nfe[i] += sum(owner[r] for r in by_request[i]) * per_pass
            nonfinite[i] = nonfinite[i] or bool(scores[2, mine].sum() > 0)
            names[i] = design.name
            if lengths[i] == 1:
                greedy[i] = bool(scores[1, mine[0]] == 0)
            combined_se = _combine_rounds(rounds[i])[1]
            if (config.target_se is not None and used[i] < config.mc_num and not design.exact
                    and combined_se > config.target_se):
                still.append(i)
        active = still
        round_index += 1
    results: list[LikelihoodResult] = []
    for i in range(n):
        value, se = _combine_rounds(rounds[i])
        exact = len(rounds[i]) == 1 and names[i] == "exact"
        results.append(LikelihoodResult(
            value=value, stderr=0.0 if exact else se, nfe=nfe[i],
            samples=sum(r.rows for r in rounds[i]), exact=exact,
            greedy=greedy[i] if lengths[i] == 1 else None, nonfinite=nonfinite[i],
            design=names[i],
            rounds=len(rounds[i]),
        ))
    return results


def _combine_rounds(rounds: Sequence[_Round]) -> tuple[float, float]:
    """Rounds are independent unbiased replicates: weight them by their rows."""
    total = sum(r.rows for r in rounds)
    value = sum(r.value * r.rows for r in rounds) / total
    se = math.sqrt(sum((r.rows / total) ** 2 * r.stderr ** 2 for r in rounds))
    return value, se
