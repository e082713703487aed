"""The miniature study's tasks (evalsuite/tasks/yaml/llada_miniature) through lm-eval's real TaskManager:
data, prompts, stop sequences, and the gsm8k-style answer extraction on the gold answers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from evalsuite.tasks import task_manager
from evalsuite.tasks.miniature import MINIATURE_DIR, heldout_poems, training_poems

NAMES = ["llada_poem_train_forward", "llada_poem_forward_heldout", "llada_poem_backward_heldout", "llada_arith", "llada_sum_choice"]


@pytest.fixture(scope="module")
def tasks() -> dict[str, Any]:
    return dict(task_manager().load(NAMES)["tasks"])


def test_heldout_poem_tasks_ask_the_official_questions_over_the_heldout_split(tasks):
    forward, backward = tasks["llada_poem_forward_heldout"], tasks["llada_poem_backward_heldout"]
    docs = list(forward.eval_docs)
    poems = json.loads((MINIATURE_DIR / "poem_data.json").read_text())
    held = json.loads((MINIATURE_DIR / "poem_heldout.json").read_text())
    assert len(docs) == len(held) == 94
    assert [d["first"] for d in docs] == [poems[i]["first"] for i in held] == [p["first"] for p in heldout_poems()]
    doc = docs[0]
    assert forward.fewshot_context(doc, 0) == f"{doc['first']}的下一句是什么？直接输出句子即可。"
    assert backward.fewshot_context(doc, 0) == f"{doc['second']}的上一句是什么？直接输出句子即可。"
    assert backward.doc_to_target(doc) == doc["first"]
    assert forward.process_results(doc, [f"x{doc['second']}y"]) == {"acc": 1}
    assert backward.process_results(doc, [doc["second"]]) == {"acc": 0}


def test_training_poem_task_asks_the_forward_question_over_the_other_couplets(tasks):
    task = tasks["llada_poem_train_forward"]
    docs = list(task.eval_docs)
    poems = json.loads((MINIATURE_DIR / "poem_data.json").read_text())
    held = set(json.loads((MINIATURE_DIR / "poem_heldout.json").read_text()))
    assert len(docs) == len(poems) - len(held) == 375
    assert [d["first"] for d in docs] == [p["first"] for i, p in enumerate(poems) if i not in held]
    assert docs == training_poems()
    assert not {d["first"] for d in docs} & {p["first"] for p in heldout_poems()}
    doc = docs[0]
    assert task.fewshot_context(doc, 0) == f"{doc['first']}的下一句是什么？直接输出句子即可。"
    assert task.process_results(doc, [doc["second"]]) == {"acc": 1}


def test_arith_is_gsm8k_shaped_with_real_stop_sequences(tasks):
    task = tasks["llada_arith"]
    task.set_fewshot_seed(1234)
    docs = list(task.eval_docs)
    assert len(docs) == 200
    ctx = task.fewshot_context(docs[0], 2)
    assert ctx.count("Question: ") == 3 and ctx.endswith(f"Question: {docs[0]['question']}\nAnswer:")
    assert re.search(r"Answer: .*\n#### \d+\n\nQuestion: ", ctx)
    assert task.config.generation_kwargs["until"] == ["Question:"]
    strict = re.compile(task.config.filter_list[0]["filter"][0]["regex_pattern"])
    for doc in docs:
        gold = doc["answer"].rsplit("#### ", 1)[1]
        assert strict.search(task.doc_to_target(doc)).group(1) == gold


def test_sum_choice_is_a_two_way_likelihood_task(tasks):
    task = tasks["llada_sum_choice"]
    docs = list(task.eval_docs)
    assert len(docs) == 200 and task.OUTPUT_TYPE == "multiple_choice"
    doc = docs[0]
    assert task.fewshot_context(doc, 0) == f"Question: What is {doc['a']} + {doc['b']}?\nAnswer:"
    choices = task.doc_to_choice(doc)
    assert int(choices[task.doc_to_target(doc)]) == doc["a"] + doc["b"]
    assert sum(d["label"] for d in docs) not in (0, len(docs))


def test_a_missing_data_file_names_it(monkeypatch, tmp_path):
    from evalsuite.errors import ConfigError
    from evalsuite.tasks import miniature

    monkeypatch.setattr(miniature, "MINIATURE_DIR", Path(tmp_path))
    with pytest.raises(ConfigError, match=str(tmp_path / "arith_train.jsonl")):
        miniature.load_arith()
