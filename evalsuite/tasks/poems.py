"""Scoring of LLaDA's reversal-poem test (``eval_reverse.py``).

A generation is a hit when the gold line occurs anywhere in it (after the adapter has
decoded it without special tokens), so a model that repeats the question or adds
punctuation still counts, as in the official script.
"""

from __future__ import annotations


def is_hit(output: str, gold: str) -> bool:
    """Whether the gold line occurs in the decoded output (an empty gold never hits)."""
    return bool(gold) and gold in output


def score_forward(doc: dict[str, str], results: list[str]) -> dict[str, int]:
    """lm-eval ``process_results`` of llada_poem_forward: the gold is the second line."""
    return {"acc": int(is_hit(results[0], doc["second"]))}


def score_backward(doc: dict[str, str], results: list[str]) -> dict[str, int]:
    """lm-eval ``process_results`` of llada_poem_backward: the gold is the first line."""
    return {"acc": int(is_hit(results[0], doc["first"]))}
