"""Dream's likelihood protocol (DreamLM/Dream ``eval/eval.py``), exact where it can be.

A request ``(prompt, answer)`` is scored as the sequence ``prompt + answer + [EOS]`` (the EOS
is appended here, as Dream's ``_encode_pair`` does; ``answer`` never includes it). Position 0
and the last position (the EOS) are never masked, so the ``n`` maskable positions are the
answer tokens (minus position 0 when the prompt is empty). Logits are read one position to the
left (``logit_shift``). ``nll_type``:

- ``mc`` (Dream's default): the official estimator draws per row ``t ~ U[0, 1)`` (stratified
  ``(u0 + i / b) % 1`` within a batch of ``b`` rows), ``p = (1 - eps) t + eps``, masks each
  maskable position with probability ``p`` and scores ``(1 / p) * sum log p(token)`` over the
  masked ones. Integrating ``t`` out, its expectation is

      sum_{k=1..n} m_k * E_{|S| = k}[ g(S) ],   m_k = P(Binomial(n, eps) <= k - 1) / (k (1 - eps))

  with ``g(S)`` the summed log-probabilities of the subset ``S`` masked (``C(n, k)`` times the
  Beta integral of ``p^(k-1) (1-p)^(n-k)`` over ``[eps, 1]`` is that ``m_k``). ``estimator``:
  ``auto`` (default) enumerates every subset when ``2^n - 1 <= mc_num`` (the expectation
  exactly, standard error 0) and otherwise uses the project's count strata (rows weighted
  ``n * m_k``, unbiased for the same expectation, lower variance than Bernoulli masks);
  ``stratified`` uses the replicate groups of stratified counts; ``reference`` runs the
  official algorithm itself (same random calls in the same order, so a generator seeded like
  ``torch.manual_seed`` reproduces the official values).
- ``ar_ftb``: Dream's deterministic left-to-right unmasking: row j masks answer+EOS positions
  j.. and scores position j (``len(answer) + 1`` rows, EOS included).

Classifier-free guidance (``cfg_scale = w``, the project's convention
``un + (w + 1) (cond - un)``, prompt positions masked in the unconditional row) works here;
Dream's own wrapper crashes on it (it reads a missing ``self.cfg``). Dream's
``classifier_free_guidance = c`` corresponds to ``cfg_scale = c - 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch

from evalsuite.settings.config import EstimatorConfig
from evalsuite.diffusion.designs import auto_design, combine, stratified_design
from evalsuite.diffusion.likelihood import LikelihoodResult, _Row, _score, _seeds

#: Dream's ``sampling_eps``: the smallest masking probability.
SAMPLING_EPS = 1e-3


@lru_cache(maxsize=256)
def subset_masses(n: int, eps: float = SAMPLING_EPS) -> tuple[float, ...]:
    """``(m_1, ..., m_n)``: the weight of the mean over k-subsets in the official estimator's
    expectation, ``m_k = P(Binomial(n, eps) <= k - 1) / (k (1 - eps))``."""
    log_eps, log_rest = math.log(eps), math.log1p(-eps)
    out, below = [], 0.0
    for k in range(1, n + 1):
        j = k - 1  # P(Binomial = j), added to the cumulative probability
        below += math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                          + j * log_eps + (n - j) * log_rest)
        out.append(min(below, 1.0) / (k * (1.0 - eps)))
    return tuple(out)


def subset_mass(n: int, k: int, eps: float = SAMPLING_EPS) -> float:
    """``m_k`` of :func:`subset_masses`."""
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    return subset_masses(n, eps)[k - 1]


def maskable_positions(prompt_len: int, total_len: int) -> torch.Tensor:
    """Positions the official estimator may mask: the answer, never position 0 nor the last
    (the appended EOS)."""
    return torch.arange(max(prompt_len, 1), total_len - 1)


def _design_rows(index: int, seq: torch.Tensor, prompt_len: int, masks: torch.Tensor,
                 positions: torch.Tensor, mask_id: int) -> list[_Row]:
    full = torch.zeros((masks.shape[0], seq.numel()), dtype=torch.bool)
    full[:, positions] = masks
    tokens = seq.expand_as(full).masked_fill(full, mask_id)
    return [_Row(index, tokens[r], full[r], seq, prompt_len) for r in range(full.shape[0])]


def _reference_rows(index: int, seq: torch.Tensor, prompt_len: int, config: EstimatorConfig,
                    generator: torch.Generator | None, mask_id: int
                    ) -> tuple[list[_Row], torch.Tensor, torch.Tensor]:
    """The official ``_forward_process`` draws, in its order: per batch ``u0`` then the
    ``[b, T]`` uniforms. Returns the rows, each row's ``1 / p`` (float32 as the official) and
    its replicate group."""
    b, t = config.batch_size, seq.numel()
    rows, inv_p, group = [], [], []
    for g in range(max(config.mc_num // b, 1)):
        u0 = torch.rand(1, generator=generator, dtype=torch.float32)
        frac = (u0 + torch.arange(b).float() / b) % 1
        p_mask = (1 - SAMPLING_EPS) * frac + SAMPLING_EPS
        masked = torch.rand((b, t), generator=generator) < p_mask[:, None]
        masked[:, 0] = False
        masked[:, -1] = False
        masked[:, :prompt_len] = False  # ftb: only the target part is perturbed
        tokens = seq.expand(b, t).masked_fill(masked, mask_id)
        for r in range(b):
            rows.append(_Row(index, tokens[r], masked[r], seq, prompt_len))
        inv_p.append(1.0 / p_mask.double())
        group.append(torch.full((b,), g))
    return rows, torch.cat(inv_p), torch.cat(group)


def _ar_rows(index: int, seq: torch.Tensor, prompt_len: int, mask_id: int) -> list[_Row]:
    """``ar_ftb``: row j masks target positions j.. and scores position j."""
    rows = []
    for pos in range(prompt_len, seq.numel()):
        masked = torch.zeros(seq.numel(), dtype=torch.bool)
        masked[pos:] = True
        scored = torch.zeros(seq.numel(), dtype=torch.bool)
        scored[pos] = True
        rows.append(_Row(index, seq.masked_fill(masked, mask_id), masked, seq, prompt_len,
                         scored))
    return rows


@torch.no_grad()
def estimate_dream_loglikelihood(
    model: torch.nn.Module,
    requests: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    config: EstimatorConfig,
    mask_id: int,
    eos_id: int,
    generators: Sequence[torch.Generator | None] | None = None,
    max_rows: int = 32,
    crn_groups: Sequence[int] | None = None,
) -> list[LikelihoodResult]:
    """Dream's log-likelihood of each ``(prompt_ids, answer_ids)`` (see the module docstring).

    ``generators[i]`` drives request i's draws; ``crn_groups`` share the design's random
    numbers between requests (the choices of one question), as in LLaDA's estimator.
    """
    n_req = len(requests)
    generators = list(generators) if generators is not None else [None] * n_req
    shift = int(getattr(model, "logit_shift", 1))
    seqs, prompt_lens = [], []
    for i, (prompt, answer) in enumerate(requests):
        prompt, answer = prompt.reshape(-1).long().cpu(), answer.reshape(-1).long().cpu()
        if answer.numel() == 0:
            raise ValueError(f"request {i}: the answer has no tokens")
        seqs.append(torch.cat([prompt, answer, torch.tensor([eos_id])]))
        prompt_lens.append(int(prompt.numel()))
    auto = config.nll_type == "mc" and config.estimator == "auto"
    seeds = _seeds(n_req, generators, crn_groups) if auto else [0] * n_req
    rows: list[_Row] = []
    counts: list[int] = []
    plans: list[tuple[str, object]] = []
    for i in range(n_req):
        seq, plen = seqs[i], prompt_lens[i]
        positions = maskable_positions(plen, seq.numel())
        n = int(positions.numel())
        if config.nll_type == "ar_ftb":
            mine = _ar_rows(i, seq, plen, mask_id)
            plans.append(("ar", None))
        elif n == 0:  # nothing maskable: the official loss is 0
            mine = []
            plans.append(("empty", None))
        elif config.estimator == "reference":
            mine, inv_p, group = _reference_rows(i, seq, plen, config, generators[i], mask_id)
            plans.append(("reference", (inv_p, group)))
        else:
            design = (auto_design(n, config.mc_num, seeds[i]) if config.estimator == "auto"
                      else stratified_design(n, config.mc_num, config.batch_size, generators[i]))
            mine = _design_rows(i, seq, plen, design.masks, positions, mask_id)
            weight = n * torch.tensor(subset_masses(n), dtype=torch.float64)
            plans.append(("design", (design, weight[design.counts - 1])))
        counts.append(len(mine))
        rows += mine
    scorable = [r for r in rows if bool(r.scored_mask.any())]
    scores, owner, _ = (_score(model, scorable, config.cfg_scale, mask_id, max_rows, shift)
                        if scorable else (torch.zeros((3, 0), dtype=torch.float64), [], []))
    position = {id(r): k for k, r in enumerate(scorable)}
    per_pass = 2 if config.cfg_scale > 0 else 1
    results = []
    start = 0
    for i in range(n_req):
        mine = rows[start:start + counts[i]]
        start += counts[i]
        idx = [position.get(id(r)) for r in mine]
        logp = torch.tensor([0.0 if k is None else float(scores[0, k]) for k in idx],
                            dtype=torch.float64)
        nfe = sum(owner[k] for k in idx if k is not None) * per_pass
        bad = any(k is not None and scores[2, k] > 0 for k in idx)
        kind, plan = plans[i]
        if kind == "ar":
            value, se, exact, name = float(logp.sum()), 0.0, True, "ar_ftb"
        elif kind == "empty":
            value, se, exact, name = 0.0, 0.0, True, "exact"
        elif kind == "reference":
            inv_p, group = plan  # type: ignore[misc]
            values = logp * inv_p
            value = float(values.mean())
            means = torch.stack([values[group == g].mean() for g in group.unique()])
            spread = means if means.numel() >= 2 else values
            se = float(spread.std(unbiased=True) / math.sqrt(spread.numel())) \
                if spread.numel() >= 2 else 0.0
            exact, name = False, "reference"
        else:
            design, weights = plan  # type: ignore[misc]
            value, se = combine(design, weights * logp)
            exact, name = design.exact, design.name
            se = 0.0 if exact else se
        results.append(LikelihoodResult(value=value, stderr=se, nfe=nfe, samples=len(mine),
                                        exact=exact, greedy=None, nonfinite=bad, design=name))
    return results
