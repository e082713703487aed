"""Dream next to LLaDA and an ARM: three real tiny runs through ``evalsuite run`` (llada-tiny
and dream-tiny on the native backend, arm-tiny through lm-eval's hf backend), one report, and
``evalsuite gate`` in identity mode on two dream-tiny runs. A few documents each."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite.cli import main
from evalsuite.presets import ASSETS
from evalsuite.report import build_report, render_html
from evalsuite.results import read_run

pytestmark = pytest.mark.slow

TASKS = "llada_arith,llada_sum_choice"  # a generation task and a likelihood (choice) task
DIFFUSION = ("--gen-length", "16", "--steps", "16", "--mc-num", "8")
MODELS = {
    "llada": ("llada-tiny", ("--block-length", "16", *DIFFUSION)),
    "dream": (str(ASSETS / "dream-tiny"), DIFFUSION),
    "arm": ("arm-tiny", ()),
}


def _run(out: Path, model: str, extra: tuple[str, ...]) -> Path:
    before = set(out.iterdir()) if out.exists() else set()
    code = main(["run", "--model", model, "--tasks", TASKS, "--limit", "3", "--batch-size", "2",
                 "--output", str(out), "--no-cache", *extra])
    assert code == 0, model
    (new,) = [p for p in set(out.iterdir()) - before if p.is_dir()]
    return new


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("runs")
    made = {name: _run(out, model, extra) for name, (model, extra) in MODELS.items()}
    made["dream_again"] = _run(out, *MODELS["dream"])
    return made


def test_report_shows_llada_dream_and_an_arm_side_by_side(runs, tmp_path):
    loaded = [read_run(runs[name]) for name in ("llada", "dream", "arm")]
    assert [r.record.model.architecture for r in loaded] == ["llada", "dream", None]
    dream_settings = loaded[1].record.tasks["llada_arith"].settings
    assert dream_settings["alg"] == "entropy" and "remasking" not in dream_settings
    assert "alg" not in loaded[0].record.tasks["llada_arith"].settings  # LLaDA's knobs only
    report = build_report(loaded, generated_utc="now")
    assert [row.architecture for row in report.runs] == ["llada", "dream", None]
    assert {t.name for t in report.tasks} >= {"llada_arith", "llada_sum_choice"}
    for row in report.runs:  # every model has a score on both tasks
        assert all(cell is not None for cell in row.cells), row.model
    html = render_html(report)
    for shown in ("architecture: llada", "architecture: dream", "architecture: ARM, hf"):
        assert shown in html
    # the same through the CLI
    target = tmp_path / "report.html"
    assert main(["report", *(str(runs[n]) for n in ("llada", "dream", "arm")),
                 "-o", str(target)]) == 0
    assert "architecture: dream" in target.read_text()


def test_gate_identity_mode_on_two_dream_runs(runs, tmp_path, capsys):
    md = tmp_path / "gate.md"
    code = main(["gate", "--baseline", str(runs["dream"]), "--candidate",
                 str(runs["dream_again"]), "--identity", "--markdown", str(md)])
    assert code == 0, capsys.readouterr().err
    text = md.read_text()
    assert "identity mode: on" in text
    # identity applied to both tasks (temperature 0 generation, seeded likelihood): every
    # sample compared and equal
    assert text.count("✅ 3 match") == 2, text
