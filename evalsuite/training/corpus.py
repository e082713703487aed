"""The miniature study's data: seeded arithmetic, a sum-choice task, the held-out poem split.

Everything is a pure function of a seed, so ``make tiny-models`` regenerates byte-identical
files. Three kinds of text exist:

* Pre-training documents (:func:`pretraining_documents`): every couplet in its natural order
  only (``<first>，<second>。``), the arithmetic training problems in GSM8K's layout and the
  sum facts of the sum-choice training split.
* SFT examples (:func:`sft_examples`): (prompt, answer) pairs. The poem question format in
  both directions on the training couplets only (the reversal-curse protocol: a held-out
  couplet is seen only forwards, in pre-training), the arithmetic problems as
  ``Question: ...\\nAnswer:`` -> solution, and the training sum facts in the sum-choice
  layout.
* Test documents: the held-out couplets, the arithmetic test split and the sum-choice test
  split, which the task YAMLs of ``evalsuite/tasks/yaml/llada_miniature`` read.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

FORWARD_PROMPT: Final = "{first}的下一句是什么？直接输出句子即可。"
"""LLaDA's ``eval_reverse.py`` prompt, forward direction (predict the next line)."""
BACKWARD_PROMPT: Final = "{second}的上一句是什么？直接输出句子即可。"
"""The reversal direction (predict the previous line)."""

NAMES: Final = ("Tom", "Mia", "Sam", "Ava", "Leo", "Zoe", "Ben", "Amy", "Max", "Eva", "Jack", "Lily")
ITEMS: Final = ("apples", "books", "coins", "cards", "pens", "eggs", "shells", "stamps", "cups", "toys")


@dataclass(frozen=True)
class Problem:
    """One arithmetic word problem in GSM8K's fields."""

    question: str
    answer: str
    """Worked solution ending with ``#### N``."""
    key: tuple[object, ...]
    """Template and operands: equal keys are the same problem (used to keep splits apart)."""

    def as_dict(self) -> dict[str, str]:
        return {"question": self.question, "answer": self.answer}


def _problem(rng: random.Random) -> Problem:
    """One seeded problem: one or two operations on small numbers."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    kind = rng.randrange(4)
    if kind == 0:
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        q = f"{name} has {a} {item}. {name} gets {b} more. How many {item} does {name} have now?"
        s = f"{name} has {a} + {b} = {a + b} {item}.\n#### {a + b}"
        return Problem(q, s, ("add", name, item, a, b))
    if kind == 1:
        a = rng.randint(5, 30)
        b = rng.randint(1, a - 1)
        q = f"{name} has {a} {item}. {name} gives away {b}. How many {item} are left?"
        s = f"{name} has {a} - {b} = {a - b} {item} left.\n#### {a - b}"
        return Problem(q, s, ("sub", name, item, a, b))
    if kind == 2:
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        q = f"{name} has {a} boxes with {b} {item} in each box. How many {item} does {name} have?"
        s = f"{name} has {a} * {b} = {a * b} {item}.\n#### {a * b}"
        return Problem(q, s, ("mul", name, item, a, b))
    a, b = rng.randint(2, 20), rng.randint(2, 20)
    c = rng.randint(1, a + b - 1)
    q = (f"{name} has {a} {item} and gets {b} more. Then {name} gives away {c}. "
         f"How many {item} does {name} have now?")
    s = f"{name} has {a} + {b} = {a + b} {item}. Then {a + b} - {c} = {a + b - c}.\n#### {a + b - c}"
    return Problem(q, s, ("addsub", name, item, a, b, c))


def arithmetic_splits(seed: int, n_train: int, n_test: int) -> tuple[list[Problem], list[Problem]]:
    """Train and test problems; no test problem (same template and numbers) is in train."""
    rng = random.Random(f"arith-{seed}")
    test: list[Problem] = []
    keys: set[tuple[object, ...]] = set()
    while len(test) < n_test:
        p = _problem(rng)
        if p.key not in keys:
            keys.add(p.key)
            test.append(p)
    train: list[Problem] = []
    while len(train) < n_train:
        p = _problem(rng)
        if p.key not in keys:
            train.append(p)
    return train, test


def arith_pair(problem: dict[str, str]) -> tuple[str, str]:
    """Prompt and answer of a problem in ``llada_arith``'s layout: ``Question: ...\nAnswer:``
    and ``" "`` + the worked solution (joined, the pre-training text of the problem)."""
    return f"Question: {problem['question']}\nAnswer:", " " + problem["answer"]


def sum_fact(a: int, b: int) -> tuple[str, str]:
    """Prompt and answer of the sum-choice format: ``Question: What is a + b?\\nAnswer:`` ``" s"``."""
    return f"Question: What is {a} + {b}?\nAnswer:", f" {a + b}"


def sum_choice_splits(seed: int, n_test: int, top: int = 30) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Sum-choice documents over pairs a, b in 1..top: which of two numbers is a + b.

    Test pairs are drawn without replacement; every other pair is a training fact. A
    distractor differs from the sum by 1 to 10 (never negative); the gold position is random.
    """
    rng = random.Random(f"sum-choice-{seed}")
    pairs = [(a, b) for a in range(1, top + 1) for b in range(1, top + 1)]
    rng.shuffle(pairs)

    def doc(a: int, b: int) -> dict[str, Any]:
        s = a + b
        wrong = s + rng.choice([d for d in range(-10, 11) if d and s + d > 0])
        gold = rng.randrange(2)
        choices = [s, wrong] if gold == 0 else [wrong, s]
        return {"a": a, "b": b, "choices": [str(c) for c in choices], "label": gold}

    test = [doc(a, b) for a, b in pairs[:n_test]]
    train = [doc(a, b) for a, b in sorted(pairs[n_test:])]
    return train, test


def poem_split(poems: list[dict[str, str]], seed: int, heldout_fraction: float = 0.2) -> list[int]:
    """Sorted indices of the held-out couplets: a seeded ``heldout_fraction`` of all couplets,
    drawn among those whose lines occur in no other couplet (the file repeats one couplet and
    pairs two lines with two different partners), so no held-out line is ever in SFT."""
    lines = Counter(line for p in poems for line in (p["first"], p["second"]))
    unique = [i for i, p in enumerate(poems) if lines[p["first"]] == 1 and lines[p["second"]] == 1]
    rng = random.Random(f"poems-{seed}")
    return sorted(rng.sample(unique, round(len(poems) * heldout_fraction)))


def couplet_text(poem: dict[str, str]) -> str:
    """A couplet in its natural order, as pre-training sees it."""
    return f"{poem['first']}，{poem['second']}。"


POEM_REPEATS: Final = 4
"""Copies of every couplet per pre-training epoch: the couplets are a small part of the text,
and a tiny model must see each one often to memorise it in a few hundred steps."""


def pretraining_documents(poems: list[dict[str, str]], arith_train: list[dict[str, str]],
                          sums_train: list[dict[str, Any]]) -> list[str]:
    """Every couplet forwards (:data:`POEM_REPEATS` times), the arithmetic training problems,
    the training sum facts."""
    docs = [couplet_text(p) for p in poems] * POEM_REPEATS
    docs += ["".join(arith_pair(p)) for p in arith_train]
    docs += ["".join(sum_fact(d["a"], d["b"])) for d in sums_train]
    return docs


def sft_examples(poems: list[dict[str, str]], heldout: list[int],
                 arith_train: list[dict[str, str]],
                 sums_train: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(prompt, answer) pairs: both poem directions on the training couplets, the arithmetic
    problems, the training sum facts. Held-out couplets and test sums never appear."""
    skip = set(heldout)
    out: list[tuple[str, str]] = []
    for i, p in enumerate(poems):
        if i in skip:
            continue
        out.append((FORWARD_PROMPT.format(**p), p["second"]))
        out.append((BACKWARD_PROMPT.format(**p), p["first"]))
    out += [arith_pair(p) for p in arith_train]
    out += [sum_fact(d["a"], d["b"]) for d in sums_train]
    return out
