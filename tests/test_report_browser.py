"""The HTML report in a real headless Chromium, driven over the DevTools protocol.

Checks: the page loads with no console error, no exception and no network request other than
the file itself; model outputs holding ``<script>``/HTML show as text and run nothing; the
"only disagreements" filter works. A report of the miniature study fits a 1280-pixel-wide
window (no element past the page's width outside a scroll box), opens with the study, and its
chart labels, as rendered, neither overlap nor leave their chart. Saves
``test-artifacts/report.png`` and ``test-artifacts/report-study-1280.png``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from results_builder import GEN_TASK, MC_TASK, flags, make_run

from evalsuite.report import build_report, write_html
from evalsuite.report.browser import (
    DevTools,
    chromium_page,
    find_chromium,
    label_problems,
    open_page,
    page_overflow,
    screenshot,
)
from evalsuite.results import read_runs

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SCRIPT_OUTPUT = "<script>window.__pwned=1</script><b>bold?</b>"
IMG_OUTPUT = '<img src="http://example.invalid/x.png" onerror="window.__pwned=2">'
REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        find_chromium() is None, reason="chromium is not installed (apt-get install chromium)"
    ),
]


@pytest.fixture
def page(tmp_path: Path):
    """A fresh headless Chromium (own profile) and a DevTools client on its blank page."""
    try:
        with chromium_page(tmp_path / "profile") as client:
            yield client
    except RuntimeError as exc:
        if "did not start" in str(exc):
            pytest.fail(str(exc))
        raise


def _report(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    make_run(
        root,
        {GEN_TASK: flags(12, 8), MC_TASK: flags(12, 7)},
        outputs={GEN_TASK: {0: SCRIPT_OUTPUT, 1: IMG_OUTPUT}},
    )
    make_run(
        root,
        {GEN_TASK: flags(12, 4), MC_TASK: flags(12, 9, 2)},
        preset="llada-8b",
        seconds=1.5,
        nfe=256,
    )
    bad = root / "zz-truncated"
    bad.mkdir()
    (bad / "run.json").write_text('{"schema_version": 1, "run_id": "x", "tas')
    runs, skipped = read_runs([root], on_error="skip")
    assert len(runs) == 2 and len(skipped) == 1
    return write_html(
        build_report(runs, skipped=skipped, generated_utc="test"), tmp_path / "report.html"
    )


def test_report_renders_offline_and_escapes_outputs(tmp_path: Path, page: DevTools) -> None:
    html = _report(tmp_path)
    open_page(page, html, width=1400)

    text = page.evaluate("document.body.innerText")
    assert SCRIPT_OUTPUT in text
    assert IMG_OUTPUT in text
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('script').length") == 1
    assert page.evaluate("document.querySelectorAll('img, b, iframe').length") == 0
    assert "zz-truncated" in page.evaluate("document.getElementById('skipped').innerText")
    assert page.evaluate("document.querySelectorAll('svg').length") >= 3

    visible = (
        "Array.from(document.querySelectorAll('section.comparison tbody tr'))"
        ".filter(r => r.offsetParent !== null).length"
    )
    before = page.evaluate(visible)
    disagreeing = page.evaluate(
        "document.querySelectorAll('section.comparison tr.disagree').length"
    )
    assert 0 < disagreeing < before
    page.evaluate("document.querySelectorAll('input.disagree-filter').forEach(b => b.click())")
    assert page.evaluate(visible) == disagreeing

    page.evaluate("document.querySelectorAll('input.disagree-filter').forEach(b => b.click())")
    screenshot(page, ARTIFACTS / "report.png", width=1400, max_height=6000)
    _assert_clean_load(page, html)
    assert os.path.getsize(ARTIFACTS / "report.png") > 10_000


def _assert_clean_load(page: DevTools, html: Path) -> None:
    """No console error or exception, and no request but the file itself."""
    page.call("Runtime.evaluate", expression="0")  # flush pending events
    errors = [
        e
        for e in page.events
        if e["method"] == "Runtime.exceptionThrown"
        or (
            e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert")
        )
        or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert errors == []
    requests = [
        e["params"]["request"]["url"]
        for e in page.events
        if e["method"] == "Network.requestWillBeSent"
    ]
    assert requests == [html.resolve().as_uri()], requests


LONG_SETTING = "x" * 300  # one unbreakable 300-character settings value
LONG_OUTPUT = "#" * 400  # an output without a single break opportunity


def _study_report(tmp_path: Path) -> Path:
    """Runs shaped like ``make eval``'s: per model a study run (the study tasks and a few
    documents of short paper tasks) and a pipeline run (long paper tasks, one document)."""
    root = tmp_path / "runs"
    study = {"llada_poem_train_forward": (40, 31), "llada_poem_forward_heldout": (30, 12),
             "llada_poem_backward_heldout": (30, 2), "llada_arith": (50, 5),
             "llada_sum_choice": (60, 33)}
    made: dict[str, list[Path]] = {"study": [], "pipeline": []}
    # seconds per document spanning four decades: the speed chart's x axis is logarithmic
    for preset, shift, secs in (("llada-tiny", 0, 0.02), ("arm-tiny", 7, 0.0004)):
        tasks = {t: flags(n, min(n, k + shift)) for t, (n, k) in study.items()}
        tasks |= {MC_TASK: flags(5, 2), "llada_mmlu_anatomy": flags(5, 1)}
        made["study"].append(make_run(
            root, tasks, preset=preset, outputs={"llada_arith": {0: LONG_OUTPUT + preset}},
            settings={"llada_arith": {"gen_length": 32, "note": LONG_SETTING + preset}},
            seconds=secs))
        made["pipeline"].append(make_run(
            root, {GEN_TASK: flags(1, 0), "llada_bbh_boolean_expressions": flags(1, 1),
                   "llada_math_algebra_with_an_unusually_long_task_name": flags(1, 0)},
            preset=preset, seconds=3.0))
    # in make eval's order: the study runs first (the baseline is llada-tiny's), then the rest
    runs, skipped = read_runs(made["study"] + made["pipeline"])
    assert len(runs) == 4 and not skipped
    report = build_report(runs, generated_utc="test",
                          title="The miniature study: llada-tiny (diffusion) vs arm-tiny")
    assert report.study is not None
    return write_html(report, tmp_path / "study.html")


def test_study_report_fits_1280px_and_opens_with_the_study(tmp_path: Path, page: DevTools) -> None:
    html = _study_report(tmp_path)
    text = html.read_text()
    assert LONG_SETTING in text and LONG_OUTPUT in text  # the wide content is on the page
    open_page(page, html, width=1280)
    overflow = page_overflow(page)
    assert overflow["clientWidth"] == 1280
    assert overflow["scrollWidth"] <= overflow["clientWidth"], overflow
    assert overflow["count"] == 0, overflow["offenders"]
    # the study comes first: the first heading after the title, above every other section
    first_h2 = page.evaluate("document.querySelector('main h2').id")
    assert first_h2 == "study"
    tops = page.evaluate(
        "['study', 'pipeline', 'scores', 'samples'].map("
        "id => document.getElementById(id).getBoundingClientRect().top)"
    )
    assert tops == sorted(tops), tops
    assert "not comparable" in page.evaluate("document.getElementById('pipeline').innerText")
    assert page.evaluate("document.querySelectorAll('#reversal-chart rect').length") >= 6
    # chart texts as rendered: none overlaps another, none is cut off at its chart's edge
    labels = label_problems(page)
    assert labels["checked"] > 50 and labels["count"] == 0, labels["problems"]
    # the folded settings value and the charts of every task open without widening the page
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    again = page_overflow(page)
    assert again["scrollWidth"] <= again["clientWidth"] and again["count"] == 0, again
    assert label_problems(page)["count"] == 0
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = false)")
    out = screenshot(page, ARTIFACTS / "report-study-1280.png", width=1280, max_height=8000)
    assert out.stat().st_size > 10_000
    _assert_clean_load(page, html)


def test_layout_checks_catch_a_wide_page_and_overlapping_labels(
    tmp_path: Path, page: DevTools
) -> None:
    """The two checks above can fail: a page wider than the viewport, labels on each other."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><body><div id="wide" style="width:1600px">wide</div>'
        '<svg width="300" height="100" aria-label="bad"><text x="10" y="20">overlapping</text>'
        '<text x="20" y="22">labels</text><text x="280" y="60">cut off at the edge</text></svg>'
        "</body></html>",
        encoding="utf-8",
    )
    open_page(page, bad, width=1280)
    overflow = page_overflow(page)
    assert overflow["scrollWidth"] > overflow["clientWidth"]
    assert any(o.startswith("div#wide") for o in overflow["offenders"])
    problems = label_problems(page)["problems"]
    assert any("overlaps" in p for p in problems) and any("cut off" in p for p in problems)


def test_screenshot_script(tmp_path: Path) -> None:
    html = _study_report(tmp_path)
    out = tmp_path / "shot.png"
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "screenshot_report.py"), str(html), str(out),
         "--width", "1280", "--max-height", "3000"],
        capture_output=True, text=True, timeout=180, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    missing = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "screenshot_report.py"),
         str(tmp_path / "nope.html"), str(out)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr
