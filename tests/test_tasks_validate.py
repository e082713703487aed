"""Oracle and adversarial models through lm-eval's real simple_evaluate on the fixtures.

The oracle must score 100% on every task (MATH: 99.5%) and the adversary at most chance; a
sabotaged copy of a task must be caught.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evalsuite.tasks import data, registry
from tools import validate_tasks as validate

FIXTURES = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.DATA_DIR_ENV, str(FIXTURES))


def _rows(tasks: list[str], root: Path | None = None) -> list[validate.Row]:
    validate.cache_prompt_templates()
    oracle = validate._evaluate("oracle", tasks, limit=None, root=root)
    adversarial = validate._evaluate("adversarial", tasks, limit=None, root=root)
    return validate.build_rows(oracle, adversarial, tasks)


def test_every_task_scores_oracle_full_and_adversary_at_most_chance(offline: None) -> None:
    tasks = [t for t in validate.DEFAULT_TASKS if t in registry.known_task_names()]
    assert {"llada_gsm8k", "llada_mmlu", "llada_piqa", "llada_math", "llada_bbh"} <= set(tasks)
    rows = _rows(tasks)
    assert {row.task for row in rows} == set(tasks), "a task reported no metric"
    failing = [row for row in rows if not row.ok]
    assert not failing, validate.format_table(failing)
    checked = [row for row in rows if row.oracle_min is not None]
    assert all(row.n > 0 for row in checked)
    assert all(row.oracle == 1.0 for row in checked)  # the fixtures have no MATH edge case
    assert all(row.adversarial == 0.0 for row in checked)
    sizes = {row.task: row.n for row in rows}
    assert sizes["llada_mmlu"] == sizes["llada_mmlu_instruct"] == 57 * 3
    assert (sizes["llada_gsm8k"], sizes["llada_bbh"], sizes["llada_math"]) == (8, 27 * 3, 7 * 3)


def test_a_broken_filter_is_caught(offline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "tasks"
    shutil.copytree(registry.tasks_dir() / "llada_gsm8k", broken / "llada_gsm8k")
    yaml_path = broken / "llada_gsm8k" / "llada_gsm8k.yaml"
    text = yaml_path.read_text(encoding="utf-8")
    assert '"#### (\\\\-?[0-9\\\\.\\\\,]+)"' in text
    yaml_path.write_text(text.replace('"#### (\\\\-?[0-9\\\\.\\\\,]+)"', '"### ([0-9])"'), encoding="utf-8")
    rows = {row.metric: row for row in _rows(["llada_gsm8k"], root=broken)}
    assert not rows["exact_match,strict-match"].ok
    assert rows["exact_match,flexible-extract"].ok


def test_table_marks_failures() -> None:
    good = validate.Row("t", "acc,none", 10, 1.0, 0.0, 1.0, 0.25)
    bad = validate.Row("t", "acc,none", 10, 0.9, 0.5, 1.0, 0.25)
    table = validate.format_table([good, bad])
    assert good.ok and not bad.ok
    assert "| ok |" in table and "| FAIL |" in table


def test_math_misses_with_several_boxes_are_explained() -> None:
    doc = {"solution": "So $x=\\boxed{-2}$ or $x=\\boxed{1}$."}
    assert "2 boxed answers" in validate.explain_miss("llada_math_algebra", "math_verify", doc)
    assert validate.explain_miss("llada_math_algebra", "exact_match", doc) == ""
    assert validate.explain_miss("llada_math_algebra", "math_verify", {"solution": "\\boxed{1}"}) == ""
