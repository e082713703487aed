"""The miniature study's data: seeded arithmetic, a sum-choice task, the held-out poem split.

Everything is a pure function of a seed, so ``make tiny-models`` regenerates byte-identical
files. The training text is a set of pools of (prompt, answer) pairs
(:func:`training_pools`); a document is a pair with an empty prompt:

* couplet documents: every couplet in its natural order only (``<first>，<second>。``), the
  held-out ones included (the only place they occur);
* the poem question format in both directions on the training couplets only (the
  reversal-curse protocol: a held-out couplet is seen only forwards, as text);
* the arithmetic training problems as ``Question: ...\\nAnswer:`` -> solution, 0-shot and in
  ``llada_arith``'s 2-shot prompt layout (shots drawn among the other training problems);
* the training sum facts in the sum-choice layout.

Test documents (the held-out couplets, the arithmetic test split and the sum-choice test
split) are read by the task YAMLs of ``evalsuite/tasks/yaml/llada_miniature``.
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


def tokenizer_texts(arith_train: list[dict[str, str]], sums_train: list[dict[str, Any]]) -> list[str]:
    """The non-poem texts the shared tokenizer is trained on: every arithmetic training
    problem in ``llada_arith``'s layout and every training sum fact."""
    docs = ["".join(arith_pair(p)) for p in arith_train]
    docs += ["".join(sum_fact(d["a"], d["b"])) for d in sums_train]
    return docs


def pretraining_documents(poems: list[dict[str, str]], arith_train: list[dict[str, str]],
                          sums_train: list[dict[str, Any]]) -> list[str]:
    """The plain-text documents: every couplet forwards (held-out ones included; never
    backwards), the arithmetic training problems and the training sum facts."""
    return [couplet_text(p) for p in poems] + tokenizer_texts(arith_train, sums_train)


def fewshot_prompt(shots: list[dict[str, str]], problem: dict[str, str]) -> str:
    """``llada_arith``'s k-shot prompt as lm-eval renders it: each shot's question and answer
    (``target_delimiter`` ""), shots and the question joined by ``fewshot_delimiter`` "\\n\\n"."""
    parts = ["".join(arith_pair(s)) for s in shots]
    return "\n\n".join([*parts, arith_pair(problem)[0]])


FEWSHOT_K: Final = 2
"""Shots of ``llada_arith`` (its YAML's ``num_fewshot``)."""


def fewshot_examples(arith_train: list[dict[str, str]], seed: int,
                     k: int = FEWSHOT_K) -> list[tuple[str, str]]:
    """Every training problem once, as the last question of a k-shot prompt whose shots are
    k other training problems (seeded): the evaluation's prompt layout, on training data."""
    rng = random.Random(f"fewshot-{seed}")
    out: list[tuple[str, str]] = []
    for i, problem in enumerate(arith_train):
        others = rng.sample(range(len(arith_train) - 1), k)
        shots = [arith_train[j if j < i else j + 1] for j in others]
        out.append((fewshot_prompt(shots, problem), arith_pair(problem)[1]))
    return out


def poem_questions(poems: list[dict[str, str]], heldout: list[int],
                   direction: str = "both") -> list[tuple[str, str]]:
    """The poem question format on the *training* couplets only (held-out ones skipped):
    ``direction`` "forward" (first line -> second), "backward" or "both"."""
    skip = set(heldout)
    out: list[tuple[str, str]] = []
    for i, p in enumerate(poems):
        if i in skip:
            continue
        if direction in ("forward", "both"):
            out.append((FORWARD_PROMPT.format(**p), p["second"]))
        if direction in ("backward", "both"):
            out.append((BACKWARD_PROMPT.format(**p), p["first"]))
    return out


POOLS: Final = ("couplet", "poem", "arith", "fewshot", "sum")
"""The training pools, one (prompt, answer) list each (see :func:`training_pools`)."""


def training_pools(poems: list[dict[str, str]], heldout: list[int],
                   arith_train: list[dict[str, str]], sums_train: list[dict[str, Any]],
                   seed: int) -> dict[str, list[tuple[str, str]]]:
    """(prompt, answer) pairs of every pool; a document is a pair with an empty prompt.

    * ``couplet``: every couplet forwards as a document (the only place held-out couplets
      occur, and never backwards);
    * ``poem``: the question format in both directions on the training couplets;
    * ``arith``: the arithmetic training problems 0-shot (``Question: ...\\nAnswer:`` ->
      solution); ``fewshot``: the same problems in ``llada_arith``'s 2-shot prompt layout;
    * ``sum``: the training sum facts in the sum-choice layout.

    No held-out couplet's line, no test problem and no test sum appears in any pool but as
    the couplet documents (held-out couplets forwards only)."""
    return {
        "couplet": [("", couplet_text(p)) for p in poems],
        "poem": poem_questions(poems, heldout),
        "arith": [arith_pair(p) for p in arith_train],
        "fewshot": fewshot_examples(arith_train, seed),
        "sum": [sum_fact(d["a"], d["b"]) for d in sums_train],
    }


def sft_examples(poems: list[dict[str, str]], heldout: list[int],
                 arith_train: list[dict[str, str]],
                 sums_train: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Every (prompt, answer) pair with a non-empty prompt (the question formats): both poem
    directions on the training couplets, the arithmetic problems, the training sum facts."""
    out = poem_questions(poems, heldout)
    out += [arith_pair(p) for p in arith_train]
    out += [sum_fact(d["a"], d["b"]) for d in sums_train]
    return out
