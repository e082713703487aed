"""Designs of the Eq. 6 Monte Carlo estimator: which answer positions each row masks.

For an answer of L tokens write ``g(S) = sum_{i in S} log p(r_i | prompt, r with S masked)``.
The bound is ``E_{l ~ U{1..L}} E_{|S| = l} [(L / l) g(S)]``. Every design here produces rows
(a mask over the L answer positions each) and a rule that turns the row values
``y = (L / l) g(S)`` into an unbiased estimate of the bound and its standard error:

- :func:`exact_design`: every non-empty subset once (``2^L - 1`` rows); standard error 0.
- :func:`auto_design` (the default): strata by mask count l, with small strata enumerated
  exactly, rows allocated in proportion to each stratum's expected spread (Neyman
  allocation under a model in which the L/l weight makes small l the noisiest), subsets inside
  a stratum drawn as consecutive cyclic windows of a random permutation (a balanced design:
  every position is masked equally often, no subset repeats within a cycle),
  and strata of neighbouring counts merged when there are more counts than rows; a
  cross-fitted control variate (:func:`control_variate_values`) then removes the spread due
  to which positions a row masked.
- :func:`stratified_design`: the previous evalsuite estimator, groups of b rows with
  ``l_j = floor((u + j) L / b) + 1``.
- :func:`reference_design`: the official algorithm exactly (per group one offset k in 1..L,
  ``l_j = ((round(k + j L / b) - 1) mod L) + 1`` with round half to even, a random permutation
  picks the positions).

All functions are pure given their seeds/generators. :func:`combine` evaluates a design.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import torch

Kind = Literal["strata", "replicates"]
KEY_CHUNK = 64  # keys are drawn in fixed chunks so that a shorter answer sees a prefix of them


@dataclass(frozen=True)
class Stratum:
    """Mask counts ``lo..hi`` sampled with ``rows`` rows; ``exhaustive``: every subset once."""

    lo: int
    hi: int
    rows: int
    exhaustive: bool = False


@dataclass(frozen=True)
class Design:
    """Rows of one request and how their values combine.

    ``kind == "strata"``: estimate ``sum_b mass_b * mean(y over rows of stratum b)``, variance
    ``sum_b mass_b^2 (1 - n_b / N_b) s_b^2 / n_b``. ``kind == "replicates"``: the groups are
    i.i.d. replicates; estimate = mean of all rows, standard error from the group means.
    """

    length: int
    masks: torch.Tensor  # [R, L] bool
    group: torch.Tensor  # [R] long: stratum or replicate of each row
    masses: tuple[float, ...]
    populations: tuple[float, ...]  # subsets in each stratum (inf when l varies in it)
    kind: Kind
    name: str

    @property
    def counts(self) -> torch.Tensor:
        return self.masks.sum(dim=1)

    @property
    def weights(self) -> torch.Tensor:
        """``L / l`` per row, float64."""
        return self.length / self.counts.double()

    @property
    def exact(self) -> bool:
        return self.kind == "strata" and all(
            int((self.group == b).sum()) >= pop for b, pop in enumerate(self.populations))


def exact_design(length: int) -> Design:
    """Every non-empty subset of the L positions once, one exhaustive stratum per count."""
    strata = tuple(Stratum(l, l, math.comb(length, l), True) for l in range(1, length + 1))
    return _materialise(length, strata, seed=0, name="exact")


def allocate(length: int, budget: int) -> tuple[Stratum, ...]:
    """Strata of mask counts and their rows for an answer of ``length`` tokens, ``budget`` rows.

    Exhaustive enumeration when ``2^L - 1 <= budget``. Otherwise Neyman allocation with the
    spread of stratum l modelled as ``sqrt((L - l) / l)`` (the mean log-probability of l of L
    tokens drawn without replacement, times L): counts are taken alone while their share is at
    least two rows, merged with their neighbours above that; a stratum whose share reaches its
    number of subsets is enumerated and its surplus is reallocated. Uses at most ``budget`` rows
    and every count 1..L belongs to exactly one stratum with at least one row.
    """
    if length < 1 or budget < 1:
        raise ValueError(f"length and budget must be positive, got {length}, {budget}")
    if length == 1 or (length < 63 and 2 ** length - 1 <= budget):
        return tuple(Stratum(l, l, math.comb(length, l), True) for l in range(1, length + 1))
    if budget < 4:  # too few rows to stratify: one stratum over every count
        return (Stratum(1, length, budget),)
    fixed: dict[int, Stratum] = {}  # exhaustive singletons, by count
    while True:
        rest = budget - sum(s.rows for s in fixed.values())
        free = [l for l in range(1, length + 1) if l not in fixed]
        strata = _neyman_bins(length, free, rest)
        grown = [s for s in strata if s.lo == s.hi and s.rows >= math.comb(length, s.lo)]
        if not grown:
            return tuple(sorted([*fixed.values(), *strata], key=lambda s: s.lo))
        for s in grown:
            fixed[s.lo] = Stratum(s.lo, s.lo, math.comb(length, s.lo), True)


def _neyman_bins(length: int, free: list[int], budget: int) -> list[Stratum]:
    """Bins of consecutive free counts with Neyman shares >= 2 rows, integer rows summing to
    ``budget`` (largest remainders); the count L (one subset, spread 0) costs one row alone
    while the budget allows, otherwise it joins its neighbours."""
    spread = {l: math.sqrt((length - l) / l) for l in free}
    alone_last = length in free and budget >= 2 * len(free)
    pool = [l for l in free if not (alone_last and l == length)]
    share_budget = budget - (1 if alone_last else 0)
    total = sum(spread[l] for l in pool) or 1.0
    bins: list[list[int]] = []
    shares: list[float] = []
    current: list[int] = []
    acc = 0.0
    for l in pool:
        if current and l != current[-1] + 1:  # keep bins contiguous around fixed counts
            bins.append(current)
            shares.append(acc)
            current, acc = [], 0.0
        current.append(l)
        acc += share_budget * spread[l] / total
        if acc >= 2.0:
            bins.append(current)
            shares.append(acc)
            current, acc = [], 0.0
    if current:
        if bins and acc < 2.0 and bins[-1][-1] + 1 == current[0]:
            bins[-1] += current
            shares[-1] += acc
        else:
            bins.append(current)
            shares.append(acc)
    rows = _integerise(shares, share_budget, minimum=1)
    out = [Stratum(b[0], b[-1], n) for b, n in zip(bins, rows)]
    if alone_last:
        out.append(Stratum(length, length, 1, True))
    return out


def _integerise(shares: list[float], total: int, minimum: int) -> list[int]:
    """Integers >= ``minimum`` summing to ``total``, close to ``shares`` (largest remainders)."""
    rows = [max(minimum, math.floor(s)) for s in shares]
    while sum(rows) > total:  # take from the largest
        i = max(range(len(rows)), key=lambda k: rows[k])
        if rows[i] <= minimum:
            break
        rows[i] -= 1
    order = sorted(range(len(shares)), key=lambda k: shares[k] - math.floor(shares[k]), reverse=True)
    k = 0
    while sum(rows) < total:
        rows[order[k % len(order)]] += 1
        k += 1
    return rows


def _seed(seed: int, *parts: int) -> int:
    """Deterministic 63-bit mix of a seed and small integers (splitmix64 steps)."""
    x = seed & 0xFFFFFFFFFFFFFFFF
    for p in parts:
        x = (x + 0x9E3779B97F4A7C15 + (p & 0xFFFFFFFF)) & 0xFFFFFFFFFFFFFFFF
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x >> 1


def _keys(seed: int, length: int) -> torch.Tensor:
    """``[length]`` uniform keys; the first n are the same for every length >= n."""
    gen = torch.Generator().manual_seed(seed)
    chunks = [torch.rand(KEY_CHUNK, generator=gen) for _ in range(-(-length // KEY_CHUNK))]
    return torch.cat(chunks)[:length]


def _stratum_masks(length: int, stratum: Stratum, seed: int) -> tuple[torch.Tensor, float]:
    """``[rows, L]`` masks of one stratum and its number of subsets (inf when l varies)."""
    lo, hi, n = stratum.lo, stratum.hi, stratum.rows
    if stratum.exhaustive:
        rows = torch.zeros((math.comb(length, lo), length), dtype=torch.bool)
        for r, subset in enumerate(itertools.combinations(range(length), lo)):
            rows[r, list(subset)] = True
        return rows, float(rows.shape[0])
    if lo == hi:  # cyclic windows over random permutations: every position equally often
        cycle = length // math.gcd(length, lo)  # rows before a window repeats
        out = []
        for k in range(n):
            p, slot = divmod(k, cycle)
            if slot == 0:
                perm = _keys(_seed(seed, lo, hi, p), length).argsort()
            out.append(_window(length, perm, slot * lo, lo))
        return torch.stack(out), float(math.comb(length, lo))
    # several counts: systematic draw of l over the bin, consecutive cyclic windows of one
    # random permutation (each window is a uniform subset of its size given the counts)
    width = hi - lo + 1
    u = float(_keys(_seed(seed, lo, hi, -1), 1)[0])
    counts = [lo + min(width - 1, math.floor((u + k) * width / n)) for k in range(n)]
    perm = _keys(_seed(seed, lo, hi, 0), length).argsort()
    out, start = [], 0
    for count in counts:
        out.append(_window(length, perm, start, count))
        start += count
    return torch.stack(out), math.inf


def _window(length: int, perm: torch.Tensor, start: int, size: int) -> torch.Tensor:
    """``[L]`` bool mask of ``perm[start : start + size]`` taken cyclically."""
    mask = torch.zeros(length, dtype=torch.bool)
    mask[perm[(torch.arange(size) + start) % length]] = True
    return mask


def _materialise(length: int, strata: tuple[Stratum, ...], seed: int, name: str) -> Design:
    masks, group, masses, pops = [], [], [], []
    for b, stratum in enumerate(strata):
        rows, pop = _stratum_masks(length, stratum, seed)
        masks.append(rows)
        group.append(torch.full((rows.shape[0],), b, dtype=torch.long))
        masses.append((stratum.hi - stratum.lo + 1) / length)
        pops.append(pop)
    return Design(length, torch.cat(masks), torch.cat(group), tuple(masses), tuple(pops),
                  "strata", name)


def auto_design(length: int, budget: int, seed: int) -> Design:
    """The default design (see the module docstring); exact when ``2^L - 1 <= budget``.

    The random draws depend only on ``seed`` and the stratum (its counts and pass), not on
    other requests, so requests given the same seed share mask counts and position ranks
    wherever their lengths allow (common random numbers across the choices of a question).
    """
    strata = allocate(length, budget)
    name = "exact" if all(s.exhaustive for s in strata) else "auto"
    return _materialise(length, strata, seed, name)


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


def stratified_design(length: int, budget: int, group_size: int,
                      generator: torch.Generator | None) -> Design:
    """The previous evalsuite design: ``budget / group_size`` i.i.d. stratified groups."""
    groups = budget // group_size
    masks = []
    for _ in range(groups):
        counts = stratified_mask_counts(length, group_size, generator)
        masks.append(random_subsets(length, counts, generator))
    group = torch.arange(groups).repeat_interleave(group_size)
    return Design(length, torch.cat(masks), group, (1.0 / groups,) * groups,
                  (math.inf,) * groups, "replicates", "stratified")


def reference_mask_counts(length: int, group_size: int, offset: int) -> torch.Tensor:
    """The official spread of mask counts for offset k: ((round(k + j L / b) - 1) mod L) + 1,
    the linspace in float32 and ``torch.round`` (half to even) as the official code has them."""
    line = torch.linspace(float(offset), offset + (group_size - 1) * (length / group_size),
                          steps=group_size)
    return ((torch.round(line).long() - 1) % length) + 1


def reference_design(length: int, budget: int, group_size: int,
                     generator: torch.Generator | None) -> Design:
    """The official algorithm: per group one k ~ U{1..L}, the counts of
    :func:`reference_mask_counts`, and per row a random permutation of the positions."""
    groups = budget // group_size
    masks = []
    for _ in range(groups):
        k = int(torch.randint(1, length + 1, (), generator=generator))
        counts = reference_mask_counts(length, group_size, k)
        base = torch.arange(length)[None, :] < counts[:, None]
        for j in range(group_size):
            masks.append(base[j][torch.randperm(length, generator=generator)])
    group = torch.arange(groups).repeat_interleave(group_size)
    return Design(length, torch.stack(masks), group, (1.0 / groups,) * groups,
                  (math.inf,) * groups, "replicates", "reference")


def combine(design: Design, values: torch.Tensor) -> tuple[float, float]:
    """Estimate and standard error from the row values ``y = (L / l) g(S)`` ([R], float64)."""
    values = values.double()
    groups = design.group
    if design.kind == "replicates":
        ids = groups.unique()
        means = torch.stack([values[groups == g].mean() for g in ids])
        value = float(values.mean())
        if means.numel() >= 2:
            return value, float(means.std(unbiased=True) / math.sqrt(means.numel()))
        if values.numel() >= 2:  # one group: the i.i.d. formula over rows is conservative
            return value, float(values.std(unbiased=True) / math.sqrt(values.numel()))
        return value, 0.0
    value, variance = 0.0, 0.0
    row_var: dict[int, float] = {}  # per-row variance of the strata with two rows or more
    lonely: list[int] = []
    for b, (mass, pop) in enumerate(zip(design.masses, design.populations)):
        y = values[groups == b]
        n = y.numel()
        value += mass * float(y.mean())
        if n >= pop:  # enumerated
            continue
        if n < 2:
            lonely.append(b)
            continue
        row_var[b] = float(y.var(unbiased=True))
        fpc = 1.0 - n / pop if math.isfinite(pop) else 1.0
        variance += mass * mass * fpc * row_var[b] / n
    for b in lonely:  # one row: borrow the per-row variance of the nearest stratum
        if row_var:
            near = min(row_var, key=lambda c: abs(c - b))
            variance += design.masses[b] ** 2 * row_var[near]
    return value, math.sqrt(variance)


def control_variate_values(design: Design, logp: torch.Tensor) -> torch.Tensor:
    """Row values with the position effect removed, still unbiased: ``[R]`` float64.

    ``logp[r, i]`` is log p of answer position i in row r (0 where not masked). For stratum b
    let ``a_i`` be the mean log p of position i over the rows of the *other* strata (drawn
    independently of b). Then ``c(S) = (L / l) sum_{i in S} a_i`` has the known expectation
    ``sum_i a_i`` over uniform subsets of any size, and ``y - c(S) + sum_i a_i`` has the same
    expectation as y given a; it removes the part of y's spread that comes from which
    positions (hard or easy tokens) a row happened to mask.
    """
    masks = design.masks
    length = design.length
    weights = design.weights
    values = weights * (logp * masks).sum(1)
    total = (logp * masks).sum(0)
    count = masks.sum(0).double()
    out = values.clone()
    for b, pop in enumerate(design.populations):
        rows = design.group == b
        n = int(rows.sum())
        if n >= pop:  # enumerated: already exact
            continue
        other_total = total - (logp[rows] * masks[rows]).sum(0)
        other_count = count - masks[rows].sum(0).double()
        seen = other_count > 0
        if not bool(seen.any()):
            continue
        a = torch.zeros(length, dtype=torch.float64)
        a[seen] = other_total[seen] / other_count[seen]
        a[~seen] = a[seen].mean()
        control = weights[rows] * (masks[rows].double() @ a)
        out[rows] = values[rows] - control + a.sum()
    return out

