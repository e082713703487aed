"""Generated task YAMLs are up to date, and BBH prompt files parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite.tasks.bbh_prompts import parse_cot_prompt
from tools.generate_tasks import main, render_files
from evalsuite.tasks.registry import tasks_dir

PROMPTS = Path(__file__).parent / "fixtures" / "data" / "bbh" / "cot-prompts"


def _read(name: str) -> str:
    return (PROMPTS / f"{name}.txt").read_text(encoding="utf-8")


def test_generated_yamls_are_current() -> None:
    stale = [
        str(rel)
        for rel, text in render_files(_read).items()
        if not (tasks_dir() / rel).is_file() or (tasks_dir() / rel).read_text(encoding="utf-8") != text
    ]
    assert not stale, f"run `python -m tools.generate_tasks`: stale {stale[:5]}"


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    data_dir = PROMPTS.parents[1]
    assert main(["--data-dir", str(data_dir), "--tasks-dir", str(tmp_path)]) == 0
    assert main(["--data-dir", str(data_dir), "--tasks-dir", str(tmp_path), "--check"]) == 0
    victim = tmp_path / "llada_bbh" / "llada_bbh_navigate.yaml"
    victim.write_text(victim.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert main(["--data-dir", str(data_dir), "--tasks-dir", str(tmp_path), "--check"]) == 1


def test_parse_cot_prompt() -> None:
    text = "canary\n-----\nDo the thing.\n\nQ: one?\nA: Let's think step by step.\nBecause. So the answer is 1.\n\nQ: two?\nA: Let's think step by step. So the answer is 2.\n"
    prompt = parse_cot_prompt(text)
    assert prompt.description == "Do the thing."
    assert prompt.samples == (
        {"input": "one?", "target": "Because. So the answer is 1."},
        {"input": "two?", "target": "So the answer is 2."},
    )


@pytest.mark.parametrize("text", ["no header", "c\n-----\nDescription only", "c\n-----\nD\n\nQ: x\nA: y"])
def test_parse_cot_prompt_rejects_other_layouts(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cot_prompt(text)
