"""The rows both tiny models train on, identical for the two.

One example per row, never packed: ``prompt + answer`` followed by EOS padding, the batch
padded with EOS to its longest row. A document (a couplet) is an example with an empty
prompt. Each row carries a seeded *visible length*: the prompt, the answer and a tail of
EOS tokens, either up to the generation window (``fill`` tokens after the prompt, the
sampler's ``gen_length``) or none / one (see :func:`tail_lengths`). The diffusion model
attends only to the visible part (the rest is key padding), so it is trained on every layout
the harness evaluates with: the answer followed by nothing (the likelihood protocol scores
``prompt + answer``), and by the EOS fill of a generation window (the sampler's answer
region); the 2-shot prompts of ``llada_arith`` are a pool of their own. The autoregressive model is
causal and never sees what follows.

Batches come from one pool at a time, in a fixed cycle of pools (each pool with its own
number of rows per batch), each pool shuffled per epoch with its own seeded generator. The
stream depends only on the token ids, the cycle and the seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

Pair = tuple[Sequence[int], Sequence[int]]


@dataclass(frozen=True)
class SftBatch:
    """Rows ``[B, width]``, the prompt length of each row, its answer length (answer tokens
    plus the first EOS, the part an autoregressive model is trained on) and its visible
    length (prompt + answer + the EOS tail the diffusion model attends to)."""

    ids: torch.Tensor
    prompt_len: torch.Tensor
    answer_len: torch.Tensor
    visible_len: torch.Tensor


def sft_row(prompt: Sequence[int], answer: Sequence[int], eos: int, width: int) -> list[int]:
    """``prompt + answer + EOS...`` of exactly ``width`` tokens (at least one EOS)."""
    row = [*prompt, *answer]
    if len(row) >= width:
        raise ValueError(f"example of {len(row)} tokens does not fit a row of {width}")
    return row + [eos] * (width - len(row))


def tail_lengths(answer_lens: Sequence[int], fill: int, rng: random.Random) -> list[int]:
    """EOS tokens visible after each answer of one batch, in one of two layouts drawn per
    batch with equal odds: the *window* (each answer followed by EOS up to ``fill`` tokens
    after its prompt, as the sampler's answer region) or *bare* (each answer followed by
    nothing or by one EOS, as the likelihood protocol and a document's end). One layout per
    batch keeps bare batches narrow."""
    if rng.random() < 0.5:
        return [max(0, fill - n) for n in answer_lens]
    return [rng.randint(0, 1) for _ in answer_lens]


def pool_batches(examples: Sequence[Pair], eos: int, fill: int, batch_size: int,
                 seed: int, name: str = "") -> Iterator[SftBatch]:
    """Endless batches of one pool over seeded per-epoch shuffles of (prompt, answer) ids;
    each batch is as wide as its longest visible row plus one EOS."""
    if not examples:
        raise ValueError(f"pool {name!r} has no examples")
    rng = random.Random(f"pool-{name}-{seed}")
    pending: list[int] = []
    while True:
        while len(pending) < batch_size:
            order = list(range(len(examples)))
            rng.shuffle(order)
            pending.extend(order)
        chosen, pending = pending[:batch_size], pending[batch_size:]
        pairs = [examples[i] for i in chosen]
        tails = tail_lengths([len(a) for _, a in pairs], fill, rng)
        visible = [len(p) + len(a) + tail for (p, a), tail in zip(pairs, tails)]
        width = max(visible) + 1
        yield SftBatch(
            ids=torch.tensor([sft_row(p, a, eos, width) for p, a in pairs], dtype=torch.long),
            prompt_len=torch.tensor([len(p) for p, _ in pairs]),
            answer_len=torch.tensor([len(a) + 1 for _, a in pairs]),
            visible_len=torch.tensor(visible),
        )


def parse_cycle(cycle: str) -> list[str]:
    """``"poem,couplet,poem,arith"`` -> the pool of each step of one cycle."""
    return [name.strip() for name in cycle.split(",") if name.strip()]


def mixed_batches(pools: Mapping[str, Sequence[Pair]], rows: Mapping[str, int], cycle: str,
                  eos: int, fill: int, seed: int) -> Iterator[tuple[str, SftBatch]]:
    """Endless (pool name, batch): step ``i`` takes the next batch of the pool at position
    ``i mod len(cycle)`` of ``cycle``, with ``rows[pool]`` rows."""
    order = parse_cycle(cycle)
    unknown = sorted(set(order) - set(pools))
    if unknown or not order:
        raise ValueError(f"cycle {cycle!r}: unknown or no pools {unknown}; pools are {sorted(pools)}")
    streams = {name: pool_batches(pools[name], eos, fill, rows[name], seed, name)
               for name in sorted(set(order))}
    while True:
        for name in order:
            yield name, next(streams[name])
