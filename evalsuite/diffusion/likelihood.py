"""Monte Carlo estimate of log p(answer | prompt) for masked diffusion LMs (LLaDA Eq. 6).

For a prompt p (never masked) and an answer r of L tokens the paper's lower-variance bound is

    log p(r | p) >= E_{l ~ U{1..L}} E_{S, |S| = l} [ (L / l) * sum_{i in S} log p(r_i | p, r_S masked) ]

Each Monte Carlo row masks l answer positions chosen uniformly at random and contributes
``(L / l) * sum log p`` over them. Rows come in groups of ``batch_size`` with *stratified*
mask counts: one uniform offset u per group and ``l_j = floor((u + j) L / b) + 1`` for row j,
so every row's l is marginally uniform on 1..L and the estimator is unbiased for the bound.
(The reference spreads l with ``torch.round`` over a linspace, which is not exactly uniform
and slightly biased; see shared/golden.) A single-token answer (L = 1) is exact in one pass.

Rows of many requests are packed into forward passes of up to ``max_rows`` sequences,
right-padded with an attention mask; rotary attention is relative, so packing does not change
a row's logits. The vocabulary head is applied only at masked positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from evalsuite.config import EstimatorConfig


@dataclass(frozen=True)
class LikelihoodResult:
    """Estimate of the Eq. 6 bound on log p(answer | prompt), in nats."""

    value: float
    """Mean of the Monte Carlo rows: an unbiased estimate of the bound (exact when L = 1)."""
    stderr: float
    """Standard error of ``value`` (0 when exact)."""
    nfe: int
    """Sequence evaluations spent on this request (a CFG row counts twice). A row shared by
    several requests (identical masked input) is charged to the first, so the sum over
    requests is the work actually done."""
    samples: int
    """Monte Carlo rows used (1 when exact)."""
    exact: bool
    """True when the bound was computed exactly (single-token answer)."""
    greedy: bool | None = None
    """For exact results: whether the answer token is the argmax (lm-eval's is_greedy)."""
    nonfinite: bool = False
    """Some logits of this request's rows were NaN or infinite: ``value`` is not trustworthy."""


@dataclass(frozen=True)
class _Row:
    request: int
    group: int
    tokens: torch.Tensor  # [T] with mask ids at masked answer positions
    masked: torch.Tensor  # [T] bool
    weight: float  # L / l


def stratified_mask_counts(length: int, rows: int, generator: torch.Generator | None) -> torch.Tensor:
    """``[rows]`` mask counts in 1..length, each marginally uniform: floor((u + j) L / b) + 1."""
    u = torch.rand((), generator=generator, dtype=torch.float64)
    j = torch.arange(rows, dtype=torch.float64)
    counts = torch.floor((u + j) * length / rows).long() + 1
    return counts.clamp_(1, length)


def random_subsets(length: int, counts: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``[rows, length]`` bool masks; row j has ``counts[j]`` positions chosen uniformly."""
    keys = torch.rand((counts.shape[0], length), generator=generator)
    ranks = keys.argsort(dim=1).argsort(dim=1)
    return ranks < counts[:, None]


def _build_rows(
    index: int, prompt: torch.Tensor, answer: torch.Tensor, config: EstimatorConfig,
    mask_id: int, generator: torch.Generator | None,
) -> list[_Row]:
    length = int(answer.numel())
    if length == 0:
        raise ValueError(f"request {index}: the answer has no tokens")
    seq = torch.cat([prompt, answer])
    p = int(prompt.numel())
    if length == 1:
        masked = torch.zeros_like(seq, dtype=torch.bool)
        masked[p] = True
        return [_Row(index, 0, seq.masked_fill(masked, mask_id), masked, 1.0)]
    rows: list[_Row] = []
    for group in range(config.mc_num // config.batch_size):
        counts = stratified_mask_counts(length, config.batch_size, generator)
        subsets = random_subsets(length, counts, generator)
        for count, subset in zip(counts.tolist(), subsets):
            masked = torch.zeros_like(seq, dtype=torch.bool)
            masked[p:] = subset
            rows.append(_Row(index, group, seq.masked_fill(masked, mask_id), masked, length / count))
    return rows


def _score_rows(
    model: torch.nn.Module, rows: Sequence[_Row], targets: Sequence[Sequence[torch.Tensor]],
    prompt_lengths: Sequence[int], cfg_scale: float, mask_id: int, device: torch.device,
) -> tuple[list[list[tuple[float, bool]]], list[bool]]:
    """One forward pass over distinct rows; for each row and each of its target sequences,
    the sum of log p(target) over the masked positions and whether every target is argmax;
    and for each row whether its logits held a NaN or an infinity."""
    width = max(int(r.tokens.numel()) for r in rows)
    n = len(rows)
    x = torch.full((n, width), mask_id, dtype=torch.long)
    keep = torch.zeros((n, width), dtype=torch.long)
    masked = torch.zeros((n, width), dtype=torch.bool)
    for i, row in enumerate(rows):
        t = int(row.tokens.numel())
        x[i, :t], keep[i, :t], masked[i, :t] = row.tokens, 1, row.masked
    x, keep, masked = x.to(device), keep.to(device), masked.to(device)
    if cfg_scale > 0:
        un_x = x.clone()
        for i, p in enumerate(prompt_lengths):
            un_x[i, :p] = mask_id
        hidden = model.hidden_states(torch.cat([x, un_x]), torch.cat([keep, keep]))
        cond = model.head(hidden[:n][masked]).float()  # [N, V]
        uncond = model.head(hidden[n:][masked]).float()
        logits = uncond + (cfg_scale + 1) * (cond - uncond)
    else:
        hidden = model.hidden_states(x, keep)
        logits = model.head(hidden[masked]).float()  # [N, V] over the masked positions of all rows
    bad = ~torch.isfinite(logits).all(dim=-1)  # [N]
    logp = F.log_softmax(logits, dim=-1)
    best = logp.argmax(dim=-1)  # [N]
    counts = masked.sum(dim=1).tolist()
    out: list[list[tuple[float, bool]]] = []
    nonfinite: list[bool] = []
    start = 0
    for i, row in enumerate(rows):
        span = slice(start, start + counts[i])
        start += counts[i]
        nonfinite.append(bool(bad[span].any()))
        scored = []
        for target in targets[i]:
            gold = target.to(device)[row.masked.to(device)]  # [n_i]
            lp = logp[span].gather(-1, gold[:, None]).squeeze(-1)
            scored.append((float(lp.double().sum()), bool((best[span] == gold).all())))
        out.append(scored)
    return out, nonfinite


@torch.no_grad()
def estimate_loglikelihood(
    model: torch.nn.Module,
    requests: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    config: EstimatorConfig,
    mask_id: int,
    generators: Sequence[torch.Generator | None] | None = None,
    max_rows: int = 32,
) -> list[LikelihoodResult]:
    """Estimate the bound for each ``(prompt_ids [P], answer_ids [L])`` pair.

    ``generators[i]`` drives every random draw of request i, so its estimate does not depend
    on the other requests. ``max_rows`` distinct sequences go through the network per forward
    pass. Identical masked sequences are evaluated once: the choices of a multiple-choice
    question with one-token answers share the input ``prompt + [M]`` and cost one row.
    """
    if generators is None:
        generators = [None] * len(requests)
    rows: list[_Row] = []
    targets: list[torch.Tensor] = []
    prompt_len: list[int] = []
    for i, ((prompt, answer), gen) in enumerate(zip(requests, generators)):
        prompt, answer = prompt.reshape(-1).long().cpu(), answer.reshape(-1).long().cpu()
        built = _build_rows(i, prompt, answer, config, mask_id, gen)
        seq = torch.cat([prompt, answer])
        rows += built
        targets += [seq] * len(built)
        prompt_len += [int(prompt.numel())] * len(built)
    distinct: dict[tuple[bytes, int], list[int]] = {}
    for r, row in enumerate(rows):
        key = (row.tokens.numpy().tobytes(), prompt_len[r])
        distinct.setdefault(key, []).append(r)
    groups = sorted(distinct.values(), key=lambda members: int(rows[members[0]].tokens.numel()))
    scores = [0.0] * len(rows)
    greedy = [False] * len(rows)
    bad = [False] * len(rows)
    device = next(model.parameters()).device
    for start in range(0, len(groups), max_rows):
        chunk = groups[start:start + max_rows]
        scored, chunk_bad = _score_rows(
            model, [rows[g[0]] for g in chunk], [[targets[r] for r in g] for g in chunk],
            [prompt_len[g[0]] for g in chunk], config.cfg_scale, mask_id, device,
        )
        for members, results, row_bad in zip(chunk, scored, chunk_bad):
            for r, (total, is_best) in zip(members, results):
                scores[r] = rows[r].weight * total
                greedy[r] = is_best
                bad[r] = row_bad
    per_pass = 2 if config.cfg_scale > 0 else 1
    owner = {members[0] for members in groups}  # a shared row is charged to its first user
    by_request: dict[int, list[int]] = {}
    for r, row in enumerate(rows):
        by_request.setdefault(row.request, []).append(r)
    results: list[LikelihoodResult] = []
    for i in range(len(requests)):
        mine = by_request[i]
        values = torch.tensor([scores[r] for r in mine], dtype=torch.float64)
        exact = len(mine) == 1 and int(rows[mine[0]].masked.sum()) == 1
        value = float(values.mean())
        results.append(LikelihoodResult(
            value=value,
            stderr=0.0 if exact else _stderr(values, [rows[r].group for r in mine]),
            nfe=sum(r in owner for r in mine) * per_pass,
            samples=len(mine),
            exact=exact,
            greedy=greedy[mine[0]] if exact else None,
            nonfinite=any(bad[r] for r in mine) or not math.isfinite(value),
        ))
    return results


def _stderr(values: torch.Tensor, groups: Sequence[int]) -> float:
    """Standard error from the group means (groups are i.i.d.; rows inside one are not)."""
    ids = torch.tensor(groups)
    means = torch.stack([values[ids == g].mean() for g in ids.unique()])
    if means.numel() >= 2:
        return float(means.std(unbiased=True) / math.sqrt(means.numel()))
    if values.numel() >= 2:  # one stratified group: the i.i.d. formula over rows is conservative
        return float(values.std(unbiased=True) / math.sqrt(values.numel()))
    return 0.0
