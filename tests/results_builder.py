"""Builds lm-eval-shaped outputs (as ``simple_evaluate(log_samples=True)`` returns them) and
writes them through the real store, for tests of the store, report and gate without models.

The shape follows lm-eval 0.4.13: per task, one sample entry per (document, filter) with
``doc_id``, ``doc``, ``target``, ``arguments``, ``resps``, ``filtered_resps``, ``filter``,
``metrics`` and the metric values; aggregated ``results`` with ``metric,filter`` keys and
standard errors computed from the same per-sample values.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evalsuite.results.convert import RunFacts, Totals
from evalsuite.results.schema import ModelInfo, Seeds
from evalsuite.results.store import write_run_from_lm_eval

GEN_TASK = "llada_gsm8k"
MC_TASK = "llada_piqa"
GROUP = "llada_mmlu"
GROUP_CHILDREN = ("llada_mmlu_anatomy", "llada_mmlu_astronomy")
ARITH_TASK = "llada_arith"
"""Scored like GEN_TASK (strict-match and flexible-extract)."""
POEM_PREFIX = "llada_poem"
"""Tasks named ``llada_poem*`` are couplet tasks (``acc``); ``backward`` in the name asks for
the first line, otherwise for the second."""


def couplet(i: int) -> dict[str, str]:
    """The ``i``-th synthetic couplet (fields of the held-out poem documents)."""
    return {"first": f"春风第{i}夜来", "second": f"秋月第{i}人归", "source": f"诗{i}"}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _agg(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


def gen_samples(
    task: str, correct: Sequence[bool], outputs: Mapping[int, str] | None = None, doc_salt: str = ""
) -> list[dict[str, Any]]:
    """Generation-task entries: two filters per document, like lm-eval's gsm8k."""
    outputs = outputs or {}
    entries = []
    for i, ok in enumerate(correct):
        answer = str(10 + i)
        question = f"What is {i} + 10?{doc_salt}"
        prompt = f"Question: {question}\nAnswer:"
        text = outputs.get(
            i, f" {i} plus ten is {answer if ok else 'unknown'}. #### {answer if ok else 0}"
        )
        doc = {"question": question, "answer": f"#### {answer}"}
        for filt in ("strict-match", "flexible-extract"):
            extracted = answer if ok else "0"
            entries.append(
                {
                    "doc_id": i,
                    "doc": doc,
                    "target": f"#### {answer}",
                    "arguments": [(prompt, {"until": ["Question:"], "max_gen_toks": 32})],
                    "resps": [[text]],
                    "filtered_resps": [extracted],
                    "filter": filt,
                    "metrics": ["exact_match"],
                    "doc_hash": _sha(str(doc)),
                    "prompt_hash": _sha(prompt),
                    "target_hash": _sha(answer),
                    "exact_match": 1.0 if ok else 0.0,
                }
            )
    return entries


def poem_samples(task: str, correct: Sequence[bool]) -> list[dict[str, Any]]:
    """Couplet-task entries like llada_poem_forward/backward(_heldout): one filter, ``acc``."""
    backward = "backward" in task
    entries = []
    for i, ok in enumerate(correct):
        doc = couplet(i)
        given, gold = (doc["second"], doc["first"]) if backward else (doc["first"], doc["second"])
        ask = "的上一句是什么？" if backward else "的下一句是什么？"
        prompt = f"{given}{ask}直接输出句子即可。"
        text = gold if ok else "明月几时有"
        entries.append(
            {
                "doc_id": i,
                "doc": doc,
                "target": gold,
                "arguments": [(prompt, {"until": [], "max_gen_toks": 28})],
                "resps": [[text]],
                "filtered_resps": [text],
                "filter": "none",
                "metrics": ["acc"],
                "doc_hash": _sha(str(doc)),
                "prompt_hash": _sha(prompt),
                "target_hash": _sha(gold),
                "acc": 1 if ok else 0,
            }
        )
    return entries


def mc_samples(task: str, correct: Sequence[bool]) -> list[dict[str, Any]]:
    """Multiple-choice entries (two choices), like lm-eval's piqa."""
    entries = []
    for i, ok in enumerate(correct):
        goal = f"Goal {i} of {task}"
        doc = {"goal": goal, "sol1": "do A", "sol2": "do B", "label": i % 2}
        lls = [-1.0, -2.0] if (i % 2 == 0) == ok else [-2.0, -1.0]
        entries.append(
            {
                "doc_id": i,
                "doc": doc,
                "target": i % 2,
                "arguments": [
                    (f"Question: {goal}\nAnswer:", " do A"),
                    (f"Question: {goal}\nAnswer:", " do B"),
                ],
                "resps": [[(lls[0], False)], [(lls[1], False)]],
                "filtered_resps": [(lls[0], False), (lls[1], False)],
                "filter": "none",
                "metrics": ["acc"],
                "doc_hash": _sha(str(doc)),
                "prompt_hash": _sha(goal),
                "target_hash": _sha(str(i % 2)),
                "acc": 1.0 if ok else 0.0,
            }
        )
    return entries


def lm_eval_output(
    correct: Mapping[str, Sequence[bool]],
    *,
    versions: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Mapping[int, str]] | None = None,
    with_group: bool = False,
) -> dict[str, Any]:
    """A full ``simple_evaluate`` result; tasks named like GEN_TASK are generation tasks.

    ``correct[task]`` gives per-document correctness. With ``with_group`` the GROUP_CHILDREN
    entries of ``correct`` form an aggregating group GROUP.
    """
    versions = dict(versions or {})
    outputs = outputs or {}
    results: dict[str, Any] = {}
    samples: dict[str, Any] = {}
    configs: dict[str, Any] = {}
    hib: dict[str, Any] = {}
    n_samples: dict[str, Any] = {}
    for task, flags in correct.items():
        if task.startswith(POEM_PREFIX):
            samples[task] = poem_samples(task, flags)
            mean, se = _agg([1.0 if f else 0.0 for f in flags])
            results[task] = {"alias": task, "acc,none": mean, "acc_stderr,none": se}
            configs[task] = {
                "task": task,
                "output_type": "generate_until",
                "generation_kwargs": {"until": [], "max_gen_toks": 28},
            }
            hib[task] = {"acc": True}
        elif task.startswith(GEN_TASK) or task == ARITH_TASK:
            samples[task] = gen_samples(task, flags, outputs.get(task))
            mean, se = _agg([1.0 if f else 0.0 for f in flags])
            results[task] = {
                "alias": task,
                "exact_match,strict-match": mean,
                "exact_match_stderr,strict-match": se,
                "exact_match,flexible-extract": mean,
                "exact_match_stderr,flexible-extract": se,
            }
            configs[task] = {
                "task": task,
                "output_type": "generate_until",
                "generation_kwargs": {"until": ["Question:"], "max_gen_toks": 32},
            }
            hib[task] = {"exact_match": True}
        else:
            samples[task] = mc_samples(task, flags)
            mean, se = _agg([1.0 if f else 0.0 for f in flags])
            results[task] = {"alias": task, "acc,none": mean, "acc_stderr,none": se}
            configs[task] = {"task": task, "output_type": "multiple_choice"}
            hib[task] = {"acc": True}
        versions.setdefault(task, 1.0)
        n_samples[task] = {"original": len(flags) + 5, "effective": len(flags)}
    group_subtasks: dict[str, list[str]] = {}
    if with_group:
        children = [c for c in GROUP_CHILDREN if c in correct]
        flat = [1.0 if f else 0.0 for c in children for f in correct[c]]
        mean, se = _agg(flat)
        results[GROUP] = {"alias": GROUP, "acc,none": mean, "acc_stderr,none": se}
        group_subtasks[GROUP] = children
        hib[GROUP] = {"acc": True}
        versions.setdefault(GROUP, 2)
    return {
        "results": results,
        "groups": {GROUP: results[GROUP]} if with_group else {},
        "group_subtasks": group_subtasks,
        "configs": configs,
        "versions": versions,
        "n-shot": {t: 0 for t in results},
        "higher_is_better": hib,
        "n-samples": n_samples,
        "samples": samples,
    }


def meta(
    preset: str = "llada-tiny", settings: Mapping[str, Any] | None = None, wall_time_s: float = 12.5
) -> RunFacts:
    """Typed run facts, as the runner builds them."""
    return RunFacts(
        model=ModelInfo(preset=preset, backend="llada", resolved_id=f"local/{preset}",
                        revision=None, dtype="float32", family="base", chat_template=False,
                        special_tokens={"mask_id": 5, "eos_id": 1}),
        settings=dict(
            settings
            or {
                GEN_TASK: {
                    "gen_length": 32,
                    "steps": 32,
                    "block_length": 32,
                    "temperature": 0.0,
                    "remasking": "low_confidence",
                }
            }
        ),
        seeds=Seeds(request_seed_base=1234),
        device="cpu",
        limit=20,
        wall_time_s=wall_time_s,
        argv=("evalsuite", "run", "--model", preset),
        environment={
            "python": "3.11",
            "packages": {"lm_eval": "0.4.13"},
            "git": {"revision": "abc123", "dirty": False},
        },
        totals=Totals(nfe=640, generated_tokens=320),
    )


def request_stats(output: Mapping[str, Any], nfe: int = 32, seconds: float = 0.25) -> dict:
    """Per-document stats for every sample in ``output``."""
    return {
        (task, e["doc_id"]): {"nfe": nfe, "seconds": seconds, "generated_tokens": 16}
        for task, entries in output["samples"].items()
        for e in entries
    }


def make_run(
    root: Path,
    correct: Mapping[str, Sequence[bool]],
    *,
    preset: str = "llada-tiny",
    settings: Mapping[str, Any] | None = None,
    versions: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Mapping[int, str]] | None = None,
    with_group: bool = False,
    seconds: float = 0.25,
    nfe: int = 32,
) -> Path:
    """Write a synthetic run through the real store and return its directory."""
    out = lm_eval_output(correct, versions=versions, outputs=outputs, with_group=with_group)
    return write_run_from_lm_eval(
        root, out, meta(preset, settings), request_stats(out, nfe=nfe, seconds=seconds)
    )


def flags(n: int, correct: int, offset: int = 0) -> list[bool]:
    """``n`` documents, ``correct`` of them right (starting at ``offset``, wrapping)."""
    out = [False] * n
    for k in range(correct):
        out[(offset + k) % n] = True
    return out
