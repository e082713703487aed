"""MATH answer extraction and equivalence (evalsuite.tasks.math_answers)."""

from __future__ import annotations

import pytest

from evalsuite.tasks.math_answers import (
    equivalent,
    final_answer_line,
    gold_answer,
    last_boxed,
    normalize_answer,
    process_results,
)


@pytest.mark.parametrize(
    ("text", "boxed"),
    [
        ("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("\\boxed{1} then \\boxed{x^{2}}", "x^{2}"),
        ("\\fbox{7}", "7"),
        ("$\\boxed 5$", "5"),
        ("no box", None),
        ("\\boxed{unclosed", None),
    ],
)
def test_last_boxed(text: str, boxed: str | None) -> None:
    assert last_boxed(text) == boxed


def test_final_answer_line_tolerates_a_cut_closing_phrase() -> None:
    assert final_answer_line("Final Answer: The final answer is $3.5$. I hope it is correct.") == "$3.5$"
    assert final_answer_line("...\nFinal Answer: The final answer is $16$.") == "$16$"
    assert final_answer_line("The answer is 16.") is None


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("$1,000$", "1000"),
        ("x = 5", "5"),
        ("\\text{(C)}", "(C)"),
        ("10 \\text{ cm}", "10"),
        ("\\frac12", "\\frac{1}{2}"),
        ("\\sqrt3", "\\sqrt{3}"),
        ("(0,1)", "(0,1)"),
        ("90^\\circ", "90"),
    ],
)
def test_normalize(raw: str, normal: str) -> None:
    assert normalize_answer(raw) == normal


def test_equivalence_uses_math_verify() -> None:
    assert equivalent("0.5", "\\frac{1}{2}")
    assert equivalent("\\frac{2}{4}", "\\frac{1}{2}")
    assert not equivalent("0.6", "\\frac{1}{2}")
    assert not equivalent("", "1")


def test_process_results() -> None:
    doc = {"solution": "Thus the value is $\\boxed{\\frac{3}{4}}$."}
    good = "It is $\\frac34$.\nFinal Answer: The final answer is $\\frac{3}{4}$. I hope it is correct."
    assert process_results(doc, [good]) == {"exact_match": 1, "math_verify": 1}
    boxed_only = "It is $\\boxed{0.75}$."
    assert process_results(doc, [boxed_only]) == {"exact_match": 0, "math_verify": 1}
    wrong = "Final Answer: The final answer is $\\boxed{5}$. I hope it is correct."
    assert process_results(doc, [wrong]) == {"exact_match": 0, "math_verify": 0}
    assert gold_answer(doc["solution"]) == "\\frac{3}{4}"
