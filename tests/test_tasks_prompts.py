"""The suite's prompts equal lm-eval's built-in tasks' prompts, document by document.

The built-in tasks load their data from the hub (unreachable here), so each is constructed
from lm-eval's installed YAML with its data pointed at the fixture subsets (through the same
loaders, which return the hub datasets' fields). lm-eval's MATH task module cannot be
imported beside math-verify (it asserts antlr4 4.11), so its prompt function and few-shot
examples are read from the installed source with ``ast``.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import lm_eval
import pytest
from lm_eval.api.task import ConfigurableTask
from lm_eval.tasks._yaml_loader import load_yaml

from evalsuite.tasks import data, task_manager
from evalsuite.tasks.subjects import BBH_TASKS, MMLU_SUBJECTS

FIXTURES = Path(__file__).parent / "fixtures" / "data"
BUILTIN = Path(lm_eval.__file__).parent / "tasks"
N_DOCS = 3
FEWSHOT_SEED = 1234


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.DATA_DIR_ENV, str(FIXTURES))


@pytest.fixture(scope="module")
def ours() -> Any:
    import os

    old = os.environ.get(data.DATA_DIR_ENV)
    os.environ[data.DATA_DIR_ENV] = str(FIXTURES)
    try:
        manager = task_manager()
        names = ["llada_gsm8k", "llada_gsm8k_instruct", "llada_piqa", "llada_math_algebra"]
        names += ["llada_poem_forward", "llada_poem_backward"]
        names += [f"llada_mmlu_{s}" for s in MMLU_SUBJECTS] + [f"llada_mmlu_instruct_{s}" for s in MMLU_SUBJECTS]
        names += [f"llada_bbh_{t}" for t in BBH_TASKS]
        loaded = manager.load(names)["tasks"]
        return {name: task for name, task in loaded.items()}
    finally:
        if old is None:
            os.environ.pop(data.DATA_DIR_ENV, None)
        else:
            os.environ[data.DATA_DIR_ENV] = old


def _builtin(rel: str, loader: Any, **dataset_kwargs: str) -> ConfigurableTask:
    config = load_yaml(BUILTIN / rel)
    config["custom_dataset"] = loader
    config["dataset_kwargs"] = dataset_kwargs or None
    return ConfigurableTask(config=config)


def _contexts(task: Any, num_fewshot: int) -> list[tuple[Any, ...]]:
    task.set_fewshot_seed(FEWSHOT_SEED)
    docs = list(task.eval_docs)[:N_DOCS]
    assert docs, "no documents"
    rows = []
    for doc in docs:
        choices = task.doc_to_choice(doc) if task.config.doc_to_choice is not None else None
        rows.append((task.fewshot_context(doc, num_fewshot), task.doc_to_target(doc), choices))
    return rows


def test_gsm8k_prompts_equal_builtin(ours: dict[str, Any]) -> None:
    builtin = _builtin("gsm8k/gsm8k.yaml", data.load_gsm8k)
    for name in ("llada_gsm8k", "llada_gsm8k_instruct"):
        mine = ours[name]
        assert mine.config.num_fewshot == builtin.config.num_fewshot == 5
        assert _contexts(mine, 5) == _contexts(builtin, 5)
        assert mine.config.filter_list == builtin.config.filter_list
        assert mine.config.metric_list == builtin.config.metric_list
    assert ours["llada_gsm8k"].config.generation_kwargs == builtin.config.generation_kwargs


def test_piqa_prompts_equal_builtin(ours: dict[str, Any]) -> None:
    builtin = _builtin("piqa/piqa.yaml", data.load_piqa)
    mine = ours["llada_piqa"]
    assert _contexts(mine, 0) == _contexts(builtin, 0)
    assert mine.config.metric_list == builtin.config.metric_list


@pytest.mark.parametrize("subject", sorted(MMLU_SUBJECTS))
def test_mmlu_prompts_equal_builtin(ours: dict[str, Any], subject: str) -> None:
    builtin = _builtin(f"mmlu/default/mmlu_{subject}.yaml", data.load_mmlu, subset=subject)
    expected = _contexts(builtin, 5)
    assert _contexts(ours[f"llada_mmlu_{subject}"], 5) == expected
    instruct = _contexts(ours[f"llada_mmlu_instruct_{subject}"], 5)
    assert [row[0] for row in instruct] == [row[0] for row in expected]
    assert [row[1] for row in instruct] == ["ABCD"[row[1]] for row in expected]


@pytest.mark.parametrize("name", BBH_TASKS)
def test_bbh_prompts_equal_builtin(ours: dict[str, Any], name: str) -> None:
    builtin = _builtin(f"bbh/cot_fewshot/{name}.yaml", data.load_bbh, subset=name)
    mine = ours[f"llada_bbh_{name}"]
    assert _contexts(mine, 3) == _contexts(builtin, 3)
    assert mine.config.filter_list == builtin.config.filter_list
    theirs_kwargs = dict(builtin.config.generation_kwargs)
    theirs_kwargs["until"] = ["Q:" if s == "Q" else s for s in theirs_kwargs["until"]]
    assert mine.config.generation_kwargs == theirs_kwargs  # the one deliberate difference


def _minerva_source() -> tuple[Any, list[dict[str, str]]]:
    """lm-eval's minerva_math doc_to_text (compiled alone) and few-shot examples."""
    tree = ast.parse((BUILTIN / "minerva_math" / "utils.py").read_text(encoding="utf-8"))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    module = ast.Module(body=[functions["doc_to_text"]], type_ignores=[])
    namespace: dict[str, Any] = {}
    exec(compile(module, "minerva_doc_to_text", "exec"), namespace)  # noqa: S102
    samples_node = functions["list_fewshot_samples"].body[-1]
    assert isinstance(samples_node, ast.Return) and samples_node.value is not None
    return namespace["doc_to_text"], ast.literal_eval(samples_node.value)


def test_math_prompts_equal_builtin(ours: dict[str, Any]) -> None:
    doc_to_text, samples = _minerva_source()
    config = load_yaml(BUILTIN / "minerva_math" / "minerva_math_algebra.yaml", resolve_func=False)
    mine = ours["llada_math_algebra"]
    assert mine.config.fewshot_config.samples == samples
    assert mine.config.num_fewshot == config["num_fewshot"] == 4
    assert mine.config.generation_kwargs["until"] == config["generation_kwargs"]["until"]
    fewshot = "\n\n".join(f"{doc_to_text(s)} {s['solution']}" for s in samples)
    for doc in list(mine.eval_docs)[:N_DOCS]:
        assert mine.fewshot_context(doc, 4) == f"{fewshot}\n\n{doc_to_text(doc)}"


def test_poem_prompts_are_the_official_scripts(ours: dict[str, Any]) -> None:
    """eval_reverse.py's prompts (REFERENCE.md), 0-shot, 28 tokens, no stop string."""
    forward, backward = ours["llada_poem_forward"], ours["llada_poem_backward"]
    doc = list(forward.eval_docs)[0]
    assert forward.fewshot_context(doc, 0) == "窈窕淑女的下一句是什么？直接输出句子即可。"
    assert backward.fewshot_context(doc, 0) == "君子好逑的上一句是什么？直接输出句子即可。"
    assert (forward.doc_to_target(doc), backward.doc_to_target(doc)) == ("君子好逑", "窈窕淑女")
    for task in (forward, backward):
        assert task.config.generation_kwargs["until"] == []
        assert task.config.generation_kwargs["max_gen_toks"] == 28
