"""Task name resolution and the TaskManager over the packaged suite (evalsuite/tasks/yaml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from evalsuite.errors import EvalsuiteError, UnknownNameError
from evalsuite.tasks import registry
from evalsuite.tasks.registry import SHORT_NAMES, resolve_tasks, task_manager

REPO = Path(__file__).resolve().parents[1]


def test_short_names_resolve_to_the_suite_tasks() -> None:
    names = ["gsm8k", "mmlu", "piqa", "math", "bbh", "poem_forward", "poem_backward"]
    assert resolve_tasks(names, "base") == [SHORT_NAMES[n] for n in names]


def test_full_names_and_subtasks_pass_through() -> None:
    assert resolve_tasks(["llada_gsm8k", "llada_mmlu_anatomy"], "base") == ["llada_gsm8k", "llada_mmlu_anatomy"]


def test_instruct_family_picks_instruct_variants() -> None:
    got = resolve_tasks(["gsm8k", "mmlu", "llada_mmlu_anatomy", "piqa", "bbh", "poem_forward"], "instruct")
    assert got == [
        "llada_gsm8k_instruct",
        "llada_mmlu_instruct",
        "llada_mmlu_instruct_anatomy",
        "llada_piqa",
        "llada_bbh",
        "llada_poem_forward",
    ]


def test_explicit_instruct_name_is_kept_for_base_family() -> None:
    assert resolve_tasks(["llada_mmlu_instruct"], "base") == ["llada_mmlu_instruct"]


def test_duplicates_are_dropped_in_order() -> None:
    assert resolve_tasks(["math", "gsm8k", "llada_math"], "base") == ["llada_math", "llada_gsm8k"]


def test_unknown_task_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown task 'gsm8kk'; did you mean 'gsm8k'") as info:
        resolve_tasks(["gsm8kk"], "base")
    assert isinstance(info.value, EvalsuiteError)


def test_unknown_family_is_rejected() -> None:
    with pytest.raises(UnknownNameError, match="model family"):
        resolve_tasks(["gsm8k"], "chat")  # type: ignore[arg-type]


def test_empty_task_list_is_rejected() -> None:
    with pytest.raises(UnknownNameError, match="no task given"):
        resolve_tasks([], "base")


def test_short_name_without_yaml_names_the_tasks_dir(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("task: llada_gsm8k\n", encoding="utf-8")
    with pytest.raises(UnknownNameError, match="llada_piqa"):
        resolve_tasks(["piqa"], "base", root=tmp_path)
    assert resolve_tasks(["gsm8k"], "base", root=tmp_path) == ["llada_gsm8k"]


def test_the_suite_is_package_data_and_no_environment_variable_moves_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The YAMLs ship inside the package (not at the repository root, where an installed wheel
    has nothing), and the suite directory is not read from the environment."""
    import evalsuite

    package = Path(evalsuite.__file__).resolve().parent
    assert registry.tasks_dir() == package / "tasks" / "yaml"
    assert (registry.tasks_dir() / "llada_gsm8k" / "llada_gsm8k.yaml").is_file()
    monkeypatch.setenv("EVALSUITE_TASKS_DIR", str(tmp_path))
    assert registry.tasks_dir() == package / "tasks" / "yaml"


def test_resolving_imports_no_heavy_module() -> None:
    heavy = ("torch", "transformers", "datasets", "lm_eval.tasks", "lm_eval.evaluator")
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from evalsuite.tasks import resolve_tasks\n"
        "resolve_tasks(['gsm8k', 'mmlu'], 'instruct')\n"
        "try:\n    resolve_tasks(['nope'], 'base')\nexcept Exception:\n    pass\n"
        f"print(sorted(m for m in {heavy!r} if m in set(sys.modules) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_task_manager_indexes_only_the_suite() -> None:
    manager = task_manager()
    names = set(manager.all_tasks)
    assert {"llada_gsm8k", "llada_mmlu", "llada_piqa", "llada_math", "llada_bbh"} <= names
    assert {"llada_poem_forward", "llada_poem_backward", "llada_mmlu_instruct"} <= names
    assert "gsm8k" not in names and "mmlu" not in names
    assert registry.known_task_names() <= names


def test_plain_lm_eval_task_manager_finds_the_suite() -> None:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(REPO / "evalsuite" / "tasks" / "yaml"), include_defaults=False)
    assert set(SHORT_NAMES.values()) - {"llada_humaneval"} <= set(manager.all_tasks)


def test_unknown_task_suggests_the_miniature_study_tasks():
    with pytest.raises(UnknownNameError, match=r"did you mean 'llada_arith'") as info:
        resolve_tasks(["llada_arth"], "base")
    assert "llada_sum_choice" in str(info.value) and "llada_poem_backward_heldout" in str(info.value)
    assert resolve_tasks(["llada_sum_choice"], "base") == ["llada_sum_choice"]
