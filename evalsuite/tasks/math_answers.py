"""MATH answer extraction and scoring (the Minerva 4-shot protocol of ``minerva_math``).

A model prompted with the Minerva examples ends its solution with
``Final Answer: The final answer is $<answer>$. I hope it is correct.`` Two metrics, as in
lm-eval's ``minerva_math`` task:

* ``exact_match``: the answer on that line, normalised as in Lewkowycz et al. (2022),
  appendix D, is equivalent to the gold answer (the last ``\\boxed{}`` of the reference
  solution, normalised the same way): equal strings, or equal for math-verify. lm-eval
  compares with sympy's ``parse_latex`` instead, which needs antlr4 4.11 while math-verify
  needs 4.13, so lm-eval's own MATH task cannot run beside math-verify; see README-tasks.
* ``math_verify``: math-verify's extraction from the whole output against the whole
  reference solution (lm-eval 0.4.13's definition).
"""

from __future__ import annotations

import re
from typing import Any, Final

_FINAL_ANSWER = re.compile(r"Final Answer: The final answer is\s*(.*?)\.?\s*I hope it is correct")

#: Text substitutions of Minerva's normaliser (appendix D), applied in order.
_SUBSTITUTIONS: Final = (
    ("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), (r"\ ", ""), (" ", ""),
    ("mbox", "text"), (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"),
)
#: Unit words and decorations Minerva's normaliser deletes.
_REMOVED: Final = (
    "square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units",
    "\\ldots", "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm",
    "pounds", "meters", "meals", "edges", "students", "childrentickets", "multiples",
    "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3", "\\text{\n}",
    "\\text{}", r"\mathrm{th}", r"^\circ", r"^{\circ}", r"\;", r",\!", "{,}", '"', "\\dots",
)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in text, braces balanced;
    ``\\boxed 5`` (no braces) gives the token after the space; None when there is none."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    head = text[start:]
    if head.startswith("\\boxed "):
        return head[len("\\boxed ") :].split("$")[0].strip()
    open_at = head.find("{")
    if open_at < 0:
        return None
    depth = 0
    for i in range(open_at, len(head)):
        depth += {"{": 1, "}": -1}.get(head[i], 0)
        if depth == 0:
            return head[open_at + 1 : i]
    return None


def final_answer_line(text: str) -> str | None:
    """The answer of the Minerva closing line ("Final Answer: The final answer is X. I hope it
    is correct."); the closing phrase may be cut off by a stop sequence. None when absent."""
    match = _FINAL_ANSWER.search(text + " I hope it is correct")
    return match.group(1).strip() if match else None


def _strip_unit_words(answer: str) -> str:
    for word in _REMOVED:
        if word.isalpha():
            answer = re.sub(rf"(?<!\\)\b{word}\b", "", answer)
    return answer


def normalize_answer(answer: str) -> str:
    """Minerva's normalisation of a final answer (Lewkowycz et al. 2022, appendix D): keep
    the right-hand side of an equation, drop units, spaces, ``$``, ``\\text{}`` wrappers and
    thousands separators, and expand ``\\fracab`` / ``\\sqrta`` shorthand."""
    answer = _strip_unit_words(answer.split("=")[-1])
    for before, after in _SUBSTITUTIONS:
        answer = answer.replace(before, after)
    for expr in _REMOVED:
        if expr.isalpha():
            # only outside LaTeX command names, so that "ft" cannot eat into "\left"
            parts = re.split(r"(\\[a-zA-Z]+)", answer)
            answer = "".join(p if i % 2 else p.replace(expr, "") for i, p in enumerate(parts))
        else:
            answer = answer.replace(expr, "")
    answer = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", answer)
    for command in ("text", "textbf", "overline"):
        answer = re.sub(rf"(\\{command}\{{)(.*?)(\}})", "\\2", answer)
    answer = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", answer)
    answer = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", answer)
    answer = re.sub(r"(sqrt)(\[[^\]]*\])(\w)", "\\1\\2{\\3}", answer)
    answer = re.sub(r"(sqrt)(?!\[)([^{])", "sqrt{\\2}", answer)
    answer = answer.replace("$", "")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+", answer):
        answer = answer.replace(",", "")
    return answer


def equivalent(prediction: str, gold: str) -> bool:
    """Whether two normalised answers agree: equal strings, or equal for math-verify."""
    if prediction == gold:
        return True
    if not prediction or not gold:
        return False
    from math_verify import parse, verify

    return bool(verify(parse(f"${gold}$"), parse(f"${prediction}$")))


def gold_answer(solution: str) -> str:
    """Normalised gold answer of a MATH reference solution: its last boxed expression,
    normalised as if written on the closing line (``$...$``), like a prediction. lm-eval
    normalises the bare boxed text instead, which keeps a period typed inside the box
    (``\\boxed{\\frac{7}{5} + \\frac{1}{5} i.}``) that no prediction can match."""
    boxed = last_boxed(solution)
    return normalize_answer(f"${boxed}$") if boxed is not None else ""


def process_results(doc: dict[str, str], results: list[str]) -> dict[str, int]:
    """lm-eval ``process_results`` of the MATH tasks: ``exact_match`` and ``math_verify``
    (0 or 1 each) for one generated solution ``results[0]``."""
    from math_verify import parse, verify

    output = results[0]
    line = final_answer_line(output)
    exact = line is not None and equivalent(normalize_answer(line), gold_answer(doc["solution"]))
    verified = bool(verify(gold=parse(doc["solution"]), target=parse(output)))
    return {"exact_match": int(exact), "math_verify": int(verified)}


def process_docs(dataset: Any) -> Any:
    """lm-eval ``process_docs`` of the MATH tasks: add ``answer``, the normalised gold answer
    (logged as the target; scoring recomputes it from ``solution``)."""
    return dataset.map(lambda doc: {"answer": gold_answer(doc["solution"])})
