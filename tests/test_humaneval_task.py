"""llada_humaneval through lm-eval's real simple_evaluate, with an oracle model.

The oracle writes a fixed completion per problem (canonical solution or a wrong one) and
honours the stop strings like a real model, so the task's prompt, stop strings, filters,
sandboxed tests and metric all run for real.
"""

from __future__ import annotations

import gzip
import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from lm_eval.api.model import LM
from lm_eval.evaluator import simple_evaluate
from lm_eval.tasks import TaskManager

from evalsuite.tasks import humaneval
from evalsuite.sandbox import (
    ALLOW_ENV,
    CodeExecutionNotAllowedError,
    confirmed_for_run,
    require_code_execution_opt_in,
)
from evalsuite.tasks.humaneval import canonical_completion, check_program, pass_at_k_estimate

REPO = Path(__file__).resolve().parents[1]
TASKS = REPO / "evalsuite" / "tasks" / "yaml" / "llada_humaneval"
FIXTURE_DATA = REPO / "tests" / "fixtures" / "data"
SHARED_DATA = REPO.parent / "shared" / "data"

Doc = Mapping[str, Any]


def _read(data_dir: Path) -> list[dict[str, Any]]:
    with gzip.open(data_dir / "humaneval" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


class OracleLM(LM):
    """Generation-only LM: ``write(doc)`` for the problem whose prompt the context holds,
    cut at the first stop string as lm-eval's models do."""

    def __init__(self, docs: list[dict[str, Any]], write: Callable[[Doc], str]) -> None:
        super().__init__()
        self._docs = docs
        self._write = write
        self.contexts: list[str] = []

    def _doc_for(self, context: str) -> Doc:
        (doc,) = [
            d
            for d in self._docs
            if context.endswith(d["prompt"]) or f"{d['prompt']}\n```" in context
        ]
        return doc

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        out = []
        for request in requests:
            context, gen_kwargs = request.args
            self.contexts.append(context)
            text = self._write(self._doc_for(context))
            for stop in gen_kwargs["until"]:
                text = text.split(stop, 1)[0]
            out.append(text)
        return out

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        raise NotImplementedError

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        raise NotImplementedError


@pytest.fixture
def fixture_docs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.setenv("EVALSUITE_DATA_DIR", str(FIXTURE_DATA))
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    return _read(FIXTURE_DATA)


def _evaluate(lm: LM, task: str, *, confirm: bool = True) -> dict[str, Any]:
    manager = TaskManager(include_path=str(TASKS), include_defaults=False)
    result = simple_evaluate(
        model=lm,
        tasks=[task],
        task_manager=manager,
        confirm_run_unsafe_code=confirm,
        log_samples=True,
        bootstrap_iters=0,
    )
    assert result is not None
    return result


def _outcomes(result: dict[str, Any], task: str) -> dict[str, dict[str, Any]]:
    return {s["doc"]["task_id"]: s["filtered_resps"][0][0] for s in result["samples"][task]}


def test_fixture_has_five_problems_in_the_shared_format(fixture_docs: list[dict[str, Any]]) -> None:
    assert len(fixture_docs) == 5
    for doc in fixture_docs:
        assert set(doc) == {"task_id", "prompt", "entry_point", "canonical_solution", "test"}


def test_canonical_solutions_pass_through_lm_eval(fixture_docs: list[dict[str, Any]]) -> None:
    lm = OracleLM(fixture_docs, canonical_completion)
    result = _evaluate(lm, "llada_humaneval")
    assert result["results"]["llada_humaneval"]["pass@1,create_test"] == 1.0
    outcomes = _outcomes(result, "llada_humaneval")
    assert sorted(outcomes) == sorted(d["task_id"] for d in fixture_docs)
    assert all(o["passed"] and o["status"] == "passed" for o in outcomes.values())
    # 0-shot, the prompt verbatim (lm-eval's humaneval doc_to_text)
    assert sorted(lm.contexts) == sorted(d["prompt"] for d in fixture_docs)


def test_wrong_completions_fail(fixture_docs: list[dict[str, Any]]) -> None:
    lm = OracleLM(fixture_docs, lambda doc: "    return None\n")
    result = _evaluate(lm, "llada_humaneval")
    assert result["results"]["llada_humaneval"]["pass@1,create_test"] == 0.0
    assert all(o["status"] == "failed" for o in _outcomes(result, "llada_humaneval").values())


def test_score_is_the_share_of_passing_problems(fixture_docs: list[dict[str, Any]]) -> None:
    right = {fixture_docs[1]["task_id"], fixture_docs[3]["task_id"]}

    def write(doc: Doc) -> str:
        return canonical_completion(doc) if doc["task_id"] in right else "    pass\n"

    result = _evaluate(OracleLM(fixture_docs, write), "llada_humaneval")
    assert result["results"]["llada_humaneval"]["pass@1,create_test"] == pytest.approx(2 / 5)
    passed = {tid for tid, o in _outcomes(result, "llada_humaneval").items() if o["passed"]}
    assert passed == right


def test_stop_strings_cut_what_follows_the_function(fixture_docs: list[dict[str, Any]]) -> None:
    lm = OracleLM(
        fixture_docs,
        lambda d: canonical_completion(d) + "\n\ndef extra():\n    raise SystemExit(1)\n",
    )
    result = _evaluate(lm, "llada_humaneval")
    assert result["results"]["llada_humaneval"]["pass@1,create_test"] == 1.0


def test_hostile_completions_fail_and_the_run_goes_on(fixture_docs: list[dict[str, Any]]) -> None:
    attacks = [
        "    import os, signal; os.kill(os.getppid(), signal.SIGKILL)\n",
        "    import sys; sys.exit(0)\n",
        "    x = bytearray(64 * 1024 ** 3)\n",
    ]
    hostile = {
        doc["task_id"]: attack for doc, attack in zip(fixture_docs[:3], attacks, strict=True)
    }

    def write(doc: Doc) -> str:
        return hostile.get(doc["task_id"], canonical_completion(doc))

    result = _evaluate(OracleLM(fixture_docs, write), "llada_humaneval")
    assert result["results"]["llada_humaneval"]["pass@1,create_test"] == pytest.approx(2 / 5)
    outcomes = _outcomes(result, "llada_humaneval")
    assert {tid for tid, o in outcomes.items() if not o["passed"]} == set(hostile)


FORGED_PASSES = [
    # walk the stack for a report pipe and a nonce, write every candidate, exit "cleanly"
    "    import sys, os\n"
    "    frame = sys._getframe()\n"
    "    while frame is not None:\n"
    "        for v in list(frame.f_locals.values()) + list(frame.f_globals.values()):\n"
    "            if isinstance(v, (bytes, str)) and 8 <= len(v) <= 64:\n"
    "                for fd in range(3, 32):\n"
    "                    try:\n"
    "                        os.write(fd, (v if isinstance(v, bytes) else v.encode()) + b'\\n')\n"
    "                    except Exception:\n"
    "                        pass\n"
    "        frame = frame.f_back\n"
    "    os._exit(0)\n",
    "    import builtins\n    builtins.AssertionError = type('X', (BaseException,), {})\n",
    "    global check\n    check = lambda candidate: None\n    raise SystemExit(0)\n",
    "    print('{\"passed\": true}')\n    import os\n    os.write(4, b'{\"ok\": true}\\n')\n",
    "    class Eq:\n        def __eq__(self, other):\n            return True\n    return Eq()\n",
]


def test_forged_passes_score_zero(fixture_docs: list[dict[str, Any]]) -> None:
    attack = {d["task_id"]: a for d, a in zip(fixture_docs, FORGED_PASSES, strict=True)}
    result = _evaluate(OracleLM(fixture_docs, lambda d: attack[d["task_id"]]), "llada_humaneval")
    assert result["results"]["llada_humaneval"]["pass@1,create_test"] == 0.0
    assert all(not o["passed"] for o in _outcomes(result, "llada_humaneval").values())


def test_instruct_variant_prompt_and_fence_cut(fixture_docs: list[dict[str, Any]]) -> None:
    lm = OracleLM(fixture_docs, lambda d: canonical_completion(d) + "```\nThis solution is O(n).\n")
    result = _evaluate(lm, "llada_humaneval_instruct")
    assert result["results"]["llada_humaneval_instruct"]["pass@1,create_test"] == 1.0
    for context in lm.contexts:
        assert context.startswith(
            "Write a solution to the following problem and make sure that it passes the tests:"
            "\n```python\n"
        )
        assert "```\nHere is the completed function:\n```python\n" in context
    sample = result["samples"]["llada_humaneval_instruct"][0]
    assert sample["arguments"][0][1]["max_gen_toks"] == 512


def test_without_opt_in_lm_eval_refuses_before_generating(
    fixture_docs: list[dict[str, Any]],
) -> None:
    lm = OracleLM(fixture_docs, canonical_completion)
    with pytest.raises(ValueError, match="unsafe"):
        _evaluate(lm, "llada_humaneval", confirm=False)
    assert lm.contexts == []


def test_preflight_names_the_flag(fixture_docs: list[dict[str, Any]]) -> None:
    manager = TaskManager(include_path=str(TASKS), include_defaults=False)
    tasks = manager.load(["llada_humaneval", "llada_humaneval_instruct"])["tasks"]
    with pytest.raises(CodeExecutionNotAllowedError, match="--allow-code-execution") as err:
        require_code_execution_opt_in(tasks, confirmed=False)
    assert err.value.exit_code == 2
    assert "llada_humaneval" in str(err.value) and "llada_humaneval_instruct" in str(err.value)
    require_code_execution_opt_in(tasks, confirmed=True)


def test_tests_do_not_run_outside_a_confirmed_run(
    fixture_docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = fixture_docs[:1]
    code = humaneval.build_predictions([[canonical_completion(docs[0])]], docs)
    with pytest.raises(CodeExecutionNotAllowedError, match=ALLOW_ENV):
        humaneval.execute_tests(code, docs)
    with confirmed_for_run(True):
        ((outcome,),) = humaneval.execute_tests(code, docs)
    assert outcome["passed"]


def test_check_program_layout(fixture_docs: list[dict[str, Any]]) -> None:
    doc = fixture_docs[0]
    program = check_program(doc, "    return False\n")
    assert program.startswith(doc["prompt"] + "    return False\n\n" + doc["test"])
    assert program.rstrip().endswith(f"check({doc['entry_point']})")


@pytest.mark.parametrize(
    ("n", "c", "k"), [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (20, 0, 7), (20, 15, 7)]
)
def test_pass_at_k_estimator_matches_the_binomial_formula(n: int, c: int, k: int) -> None:
    exact = 1.0 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k_estimate(n, c, k) == pytest.approx(exact)


def test_pass_at_k_metric_skips_k_larger_than_n() -> None:
    outcomes = [{"passed": True}, {"passed": False}]
    assert humaneval.pass_at_k(["test"], [outcomes], k=[1, 2, 5]) == {"pass@1": 0.5, "pass@2": 1.0}


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED_DATA / "humaneval" / "HumanEval.jsonl.gz").is_file(), reason="../shared absent"
)
def test_all_164_canonical_solutions_pass(
    monkeypatch: pytest.MonkeyPatch, record_property: Any
) -> None:
    monkeypatch.setenv("EVALSUITE_DATA_DIR", str(SHARED_DATA))
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    docs = _read(SHARED_DATA)
    assert len(docs) == 164
    started = time.monotonic()
    result = _evaluate(OracleLM(docs, canonical_completion), "llada_humaneval")
    seconds = time.monotonic() - started
    record_property("seconds", round(seconds, 2))
    print(f"\n164 canonical HumanEval solutions through llada_humaneval: {seconds:.1f} s")
    failed = {
        tid: o["detail"]
        for tid, o in _outcomes(result, "llada_humaneval").items()
        if not o["passed"]
    }
    assert failed == {}
    assert result["results"]["llada_humaneval"]["pass@1,create_test"] == 1.0
