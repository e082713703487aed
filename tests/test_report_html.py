"""The report model and HTML (without a browser): content, escaping, skipped inputs, CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
from results_builder import GEN_TASK, MC_TASK, flags, make_run

from evalsuite.report import build_report, render_html
from evalsuite.report.published import canonical_task, lookup
from evalsuite.report.render import environment
from evalsuite.results import SCHEMA_VERSION, read_run, read_runs

REPO = Path(__file__).resolve().parents[1]
EVIL = '<script>alert("x")</script><a href="https://example.com">link</a>'


@pytest.fixture
def two_runs(tmp_path: Path):
    a = make_run(
        tmp_path / "runs",
        {GEN_TASK: flags(20, 15), MC_TASK: flags(20, 10)},
        outputs={GEN_TASK: {3: EVIL}},
    )
    b = make_run(
        tmp_path / "runs",
        {GEN_TASK: flags(20, 5), MC_TASK: flags(20, 11)},
        preset="llada-8b",
        settings={GEN_TASK: {"gen_length": 256}},
        seconds=2.0,
    )
    return read_run(a), read_run(b)


def test_table_has_scores_deltas_published_and_speed(two_runs) -> None:
    a, b = two_runs
    report = build_report([a, b])
    assert [t.name for t in report.tasks] == [GEN_TASK, MC_TASK]
    base_row, cand_row = report.runs
    assert base_row.is_baseline and base_row.cells[0].delta is None
    gsm = cand_row.cells[0]
    assert gsm.value == pytest.approx(25.0)
    assert gsm.ci == pytest.approx((25.0 - 1.96 * gsm.stderr, 25.0 + 1.96 * gsm.stderr))
    assert gsm.delta.points == pytest.approx(-50.0) and gsm.delta.significant
    assert gsm.delta.test == "mcnemar" and gsm.delta.n_shared == 20
    assert gsm.published is not None and gsm.published.value == 70.3
    assert base_row.cells[0].published is None  # no published number for llada-tiny
    assert cand_row.seconds_per_sample == pytest.approx(2.0)
    assert cand_row.nfe_per_sample == pytest.approx(32.0)
    keys = {s.key for s in report.settings}
    assert "task.llada_gsm8k.settings.gen_length" in keys and "model.preset" in keys
    assert "seeds.seed" not in keys  # identical settings are not listed
    cmp = next(c for c in report.comparisons if c.task == GEN_TASK)
    assert cmp.n_shared == 20 and cmp.n_disagree == 10
    assert sum(r.disagree for r in cmp.rows) == 10


def test_html_escapes_outputs_and_is_self_contained(two_runs) -> None:
    html = render_html(build_report(list(two_runs), generated_utc="now"))
    assert EVIL not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert len(re.findall(r"<script\b", html)) == 1
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_baseline_option_reorders_and_deltas_follow(two_runs) -> None:
    a, b = two_runs
    report = build_report([a, b], baseline=b)
    assert report.runs[0].run_id == b.record.run_id and report.runs[1].cells[0].delta.points > 0


def test_template_is_strict() -> None:
    env = environment()
    assert env.autoescape is True or env.autoescape(None)
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ nothing.here }}").render()


def test_published_lookup() -> None:
    assert canonical_task("llada_gsm8k_instruct") == "gsm8k"
    assert canonical_task("minerva_math") == "math"
    assert lookup(["llada-8b-instruct"], "llada_gsm8k").value == 69.4
    assert lookup(["GSAI-ML/LLaDA-8B-Base"], "llada_piqa").value == 73.6
    assert lookup(["llada-tiny"], "llada_gsm8k") is None


def report_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalsuite", "report", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_cli_renders_good_runs_and_lists_skipped_ones(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    good = make_run(root, {MC_TASK: flags(8, 4)})
    make_run(root, {MC_TASK: flags(8, 5)}, preset="second")
    truncated = make_run(root, {MC_TASK: flags(8, 4)}, preset="truncated")
    (truncated / "run.json").write_text('{"schema_version": 1,')
    empty = make_run(root, {MC_TASK: flags(8, 4)}, preset="nosamples")
    (empty / "samples.jsonl").write_text("")
    future = make_run(root, {MC_TASK: flags(8, 4)}, preset="future")
    text = (future / "run.json").read_text().replace(f'"schema_version": {SCHEMA_VERSION}',
                                                      '"schema_version": 7')
    (future / "run.json").write_text(text)
    out = tmp_path / "r.html"
    res = report_cli(str(root), "--baseline", str(good), "-o", str(out))
    assert res.returncode == 2
    assert out.exists() and "(2 run(s), 3 skipped)" in res.stdout
    for path, problem in (
        (truncated / "run.json", "not valid JSON"),
        (empty / "samples.jsonl", "empty"),
        (future / "run.json", "unknown schema_version 7"),
    ):
        assert f"{path}: {problem}" in res.stderr
    html = out.read_text()
    assert "3 input(s) skipped" in html and str(truncated) in html
    assert "second" in html


def test_cli_with_nothing_readable(tmp_path: Path) -> None:
    bad = make_run(tmp_path, {MC_TASK: flags(4, 2)})
    (bad / "run.json").write_text("")
    res = report_cli(str(bad), "-o", str(tmp_path / "r.html"))
    assert res.returncode == 2 and "nothing to report" in res.stderr
    assert not (tmp_path / "r.html").exists()


def test_report_over_every_fixture_version(tmp_path: Path) -> None:
    fixtures = REPO / "tests" / "fixtures" / "results"
    runs, skipped = read_runs([fixtures / "v0" / "toy-model", fixtures / "v1"])
    assert not skipped
    html = render_html(build_report(runs))
    assert "toy_gen" in html and "llada_gsm8k" in html


def test_chart_geometry() -> None:
    from evalsuite.report.charts import BarInput, ScatterInput, bar_chart, scatter_chart

    chart = bar_chart(
        "t",
        [BarInput("a", 50.0, (40.0, 60.0), 70.0, "#000"), BarInput("b", None, None, None, "#111")],
    )
    a, b = chart.bars
    assert a.width == pytest.approx(chart.plot_width / 2)
    assert a.ci == pytest.approx((0.4 * chart.plot_width, 0.6 * chart.plot_width))
    assert a.published_x == pytest.approx(0.7 * chart.plot_width)
    assert b.width == 0 and b.value_text == "n/a" and b.y > a.y
    assert [t.label for t in chart.ticks] == ["0", "25", "50", "75", "100"]
    wide = scatter_chart(
        "s",
        "x",
        "y",
        [ScatterInput(0.01, 10, 0, "p", ""), ScatterInput(5.0, 90, 1, "q", "")],
        ["r0", "r1"],
    )
    assert wide.x_title.endswith("(log scale)")
    p, q = wide.points
    assert p.x < q.x and p.y > q.y  # higher score is drawn higher up (smaller y)
    assert 0 <= p.x and q.x <= wide.plot_width
