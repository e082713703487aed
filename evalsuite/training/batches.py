"""The token stream both tiny models train on, identical for the two.

Pre-training rows: the documents, shuffled per epoch (seeded), each followed by EOS,
concatenated and cut into rows of ``seq_len`` tokens (packing, as LLaDA and Llama pre-train).
SFT rows: ``prompt + answer``, padded with EOS to ``sft_len`` (LLaDA's SFT padding), with the
prompt length alongside and a seeded *visible length* per row: the prompt, the answer and a
uniform number (0 up to all) of the EOS padding tokens. The diffusion model attends only to the
visible part (the rest is key padding), so it learns answers followed by nothing, as the
likelihood protocol scores them, and by long EOS tails, as the sampler generates them; the
autoregressive model is causal and never sees what follows. The stream depends only on the
token ids and the seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SftBatch:
    """SFT rows ``[B, sft_len]``, the prompt length of each row, its answer length (answer
    tokens plus the first EOS, the part an autoregressive model is trained on) and its visible
    length (prompt + answer + the EOS padding the diffusion model attends to)."""

    ids: torch.Tensor
    prompt_len: torch.Tensor
    answer_len: torch.Tensor
    visible_len: torch.Tensor


def pretraining_rows(docs: Sequence[Sequence[int]], eos: int, seq_len: int, seed: int) -> Iterator[list[int]]:
    """Endless packed rows of ``seq_len`` tokens over seeded per-epoch shuffles of docs."""
    rng = random.Random(f"pretrain-{seed}")
    buffer: list[int] = []
    while True:
        order = list(range(len(docs)))
        rng.shuffle(order)
        for i in order:
            buffer.extend(docs[i])
            buffer.append(eos)
            while len(buffer) >= seq_len:
                yield buffer[:seq_len]
                buffer = buffer[seq_len:]


def pretraining_batches(docs: Sequence[Sequence[int]], eos: int, seq_len: int, batch_size: int,
                        seed: int) -> Iterator[torch.Tensor]:
    """Endless ``[batch_size, seq_len]`` long tensors of packed rows."""
    rows = pretraining_rows(docs, eos, seq_len, seed)
    while True:
        yield torch.tensor([next(rows) for _ in range(batch_size)], dtype=torch.long)


def sft_row(prompt: Sequence[int], answer: Sequence[int], eos: int, sft_len: int) -> list[int]:
    """``prompt + answer + EOS...`` of exactly ``sft_len`` tokens (at least one EOS)."""
    row = [*prompt, *answer]
    if len(row) >= sft_len:
        raise ValueError(f"SFT example of {len(row)} tokens does not fit sft_len {sft_len}")
    return row + [eos] * (sft_len - len(row))


def sft_batches(examples: Sequence[tuple[Sequence[int], Sequence[int]]], eos: int, sft_len: int,
                batch_size: int, seed: int) -> Iterator[SftBatch]:
    """Endless SFT batches over seeded per-epoch shuffles of (prompt ids, answer ids)."""
    rng = random.Random(f"sft-{seed}")
    pending: list[int] = []
    while True:
        if len(pending) < batch_size:
            order = list(range(len(examples)))
            rng.shuffle(order)
            pending.extend(order)
        chosen, pending = pending[:batch_size], pending[batch_size:]
        rows = [sft_row(*examples[i], eos, sft_len) for i in chosen]
        lengths = [len(examples[i][0]) + len(examples[i][1]) for i in chosen]
        yield SftBatch(
            ids=torch.tensor(rows, dtype=torch.long),
            prompt_len=torch.tensor([len(examples[i][0]) for i in chosen]),
            answer_len=torch.tensor([len(examples[i][1]) + 1 for i in chosen]),
            visible_len=torch.tensor([n + rng.randint(0, sft_len - n) for n in lengths]),
        )
