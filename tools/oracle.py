"""Oracle and adversarial lm-eval models that prove the tasks' scoring.

* :class:`ScriptedLM` with ``policy="oracle"`` gives the gold continuation of a multiple-choice
  request the highest log-likelihood and answers a generation request with the reference
  answer written the way a model following the prompt would write it (GSM8K's gold solution
  ending ``#### 42``, MATH's reference solution then the Minerva closing line, ...). A task
  whose oracle scores below 100% has a bug in its prompt, filters or metric.
* ``policy="adversarial"`` ranks the gold continuation last and writes wrong answers (even
  documents) or malformed ones (odd documents): a task that scores it above chance rewards
  something other than the answer.

Generations are cut at the request's ``until`` strings, as a real adapter does, so the test
also covers the stop strings. The models do no computation; the writers are pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from evalsuite.tasks.math_answers import last_boxed
from evalsuite.settings.paper import benchmark_of, is_instruct_variant

Policy = Literal["oracle", "adversarial"]

_GOOD_LL = 0.0
_BAD_LL = -20.0
_LETTERS = "ABCD"


def gold_choice(task_name: str, doc: Mapping[str, Any]) -> int:
    """Index of the correct continuation of a multiple-choice document (MMLU, PIQA)."""
    benchmark = benchmark_of(task_name)
    if benchmark == "mmlu":
        return int(doc["answer"])
    if benchmark == "piqa":
        return int(doc["label"])
    raise ValueError(f"no multiple-choice gold known for task {task_name!r}")


def _gsm8k_number(doc: Mapping[str, Any]) -> str:
    return str(doc["answer"]).split("####")[-1].strip()


def reference_output(task_name: str, doc: Mapping[str, Any]) -> str:
    """What a model that solves ``doc`` writes, in the format the task's prompt asks for."""
    benchmark = benchmark_of(task_name)
    instruct = is_instruct_variant(task_name)
    if benchmark == "gsm8k":
        if instruct:
            reasoning = str(doc["answer"]).rsplit("####", 1)[0].rstrip()
            return f" {reasoning}\nThe answer is {_gsm8k_number(doc)}."
        return " " + str(doc["answer"])
    if benchmark == "math":
        answer = " ".join(str(last_boxed(doc["solution"])).split())  # one line, as a model writes it
        return f" {doc['solution']}\nFinal Answer: The final answer is ${answer}$. I hope it is correct."
    if benchmark == "bbh":
        return f"So the answer is {doc['target']}."
    if benchmark == "mmlu":
        return f" {_LETTERS[int(doc['answer'])]}."
    if benchmark == "poem":
        return (doc["first"] if "backward" in task_name else doc["second"]) + "。"
    if benchmark == "humaneval":
        solution = str(doc["canonical_solution"])
        return solution + "```\n" if instruct else solution
    raise ValueError(f"no reference output known for task {task_name!r}")


def wrong_output(task_name: str, doc: Mapping[str, Any], doc_id: int) -> str:
    """A wrong answer in the task's format (even ``doc_id``) or a malformed one (odd)."""
    benchmark = benchmark_of(task_name)
    if doc_id % 2:
        return {"humaneval": "    pass\n", "mmlu": " E"}.get(benchmark or "", " I do not know")
    if benchmark == "gsm8k":
        number = _gsm8k_number(doc).replace(",", "")
        wrong = int(float(number)) + 1 if number.lstrip("-").replace(".", "").isdigit() else 7
        return f" So the total is {wrong}.\n#### {wrong}"
    if benchmark == "math":
        return " The answer is $\\boxed{-987654321}$.\nFinal Answer: The final answer is $-987654321$. I hope it is correct."
    if benchmark == "bbh":
        return "So the answer is none of the above."
    if benchmark == "mmlu":
        return f" {_LETTERS[(int(doc['answer']) + 1) % 4]}."
    if benchmark == "poem":
        # repeat the given line: never the gold one
        return doc["second"] if "backward" in task_name else doc["first"]
    if benchmark == "humaneval":
        return "    return None\n"
    raise ValueError(f"no wrong output known for task {task_name!r}")


def cut_at_stops(text: str, until: list[str] | tuple[str, ...]) -> str:
    """Text up to the first occurrence of any stop string (lm-eval's generate_until contract)."""
    cut = len(text)
    for stop in until:
        if stop:
            at = text.find(stop)
            if 0 <= at < cut:
                cut = at
    return text[:cut]


class ScriptedLM(LM):
    """An lm-eval model that answers from the documents: oracle or adversarial."""

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy: Policy = policy

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """Gold choice 0.0 and others -20 (oracle); the reverse (adversarial)."""
        out = []
        for request in requests:
            is_gold = request.idx == gold_choice(request.task_name, request.doc)
            good = is_gold if self.policy == "oracle" else not is_gold
            out.append((_GOOD_LL if good else _BAD_LL, good))
        return out

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Not used by the suite's tasks."""
        raise NotImplementedError("the LLaDA task suite has no rolling-likelihood task")

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Reference (oracle) or wrong/malformed (adversarial) answers, cut at ``until``."""
        out = []
        for request in requests:
            _context, gen_kwargs = request.args
            if self.policy == "oracle":
                text = reference_output(request.task_name, request.doc)
            else:
                text = wrong_output(request.task_name, request.doc, request.doc_id)
            out.append(cut_at_stops(text, gen_kwargs.get("until") or []))
        return out
