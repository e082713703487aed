"""The report's study section (pure parts): intervals, couplet pairing and McNemar, the study
and pipeline models, and the label layout that keeps chart texts apart."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import pytest
from results_builder import GEN_TASK, MC_TASK, couplet, flags, make_run

from evalsuite.report import build_report, render_html
from evalsuite.report.charts import (
    FONT,
    BarInput,
    GroupInput,
    ScatterInput,
    SeriesValue,
    bar_chart,
    grouped_bar_chart,
    grouped_text_boxes,
    scatter_chart,
    scatter_text_boxes,
)
from evalsuite.report.layout import (
    Box,
    axis_labels,
    fit_text,
    place_point_labels,
    text_box,
    text_width,
    wrap_text,
)
from evalsuite.report.study import (
    BACKWARD,
    FORWARD,
    SUM_CHOICE,
    TRAIN_FORWARD,
    estimate,
    reversal_test,
    same_couplet,
    wilson_interval,
)
from evalsuite.results import read_run, read_runs
from evalsuite.results.schema import SampleRecord
from evalsuite.results.stats import mcnemar_exact

LONG = [
    "llada_bbh_boolean_expressions",
    "llada_mmlu_high_school_macroeconomics",
    "a-model-preset-with-a-very-long-name-indeed ·abcdef",
    "WWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWW",
    "llada_poem_backward_heldout",
    "模型的名字很长很长很长很长很长很长",
]


# ---------------------------------------------------------------- intervals


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson_interval(0, 94)  # all wrong: not the [0, 0] of value ± 1.96 s.e.
    assert lo == 0.0 and hi == pytest.approx(1.96**2 / (94 + 1.96**2), abs=1e-4)
    lo, hi = wilson_interval(94, 94)
    assert hi == 1.0 and lo == pytest.approx(1 - 1.96**2 / (94 + 1.96**2), abs=1e-4)
    for k in range(0, 21):
        lo, hi = wilson_interval(k, 20)
        assert 0.0 <= lo <= k / 20 <= hi <= 1.0
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_estimate_uses_counts_else_the_recorded_stderr(tmp_path: Path) -> None:
    run = read_run(make_run(tmp_path, {SUM_CHOICE: flags(40, 30), GEN_TASK: flags(8, 3)}))
    e = estimate(run, SUM_CHOICE, "acc,none")
    assert e.method == "wilson" and (e.k, e.n) == (30, 40) and e.value == pytest.approx(0.75)
    assert (e.lo, e.hi) == pytest.approx(wilson_interval(30, 40))
    assert estimate(run, TRAIN_FORWARD, "acc,none") is None
    bare = dataclasses.replace(run, samples=())  # no per-document scores: normal interval
    e = estimate(bare, SUM_CHOICE, "acc,none")
    se = run.record.tasks[SUM_CHOICE].metrics["acc,none"].stderr
    assert e.method == "normal" and e.k is None
    assert (e.lo, e.hi) == pytest.approx((0.75 - 1.96 * se, 0.75 + 1.96 * se), abs=1e-4)
    run_all = read_run(make_run(tmp_path, {SUM_CHOICE: flags(10, 10)}, preset="perfect"))
    assert estimate(dataclasses.replace(run_all, samples=()), SUM_CHOICE, "acc,none").hi == 1.0


# ---------------------------------------------------------------- couplets and McNemar


def _poem(
    task: str, i: int, ok: bool, *, c: int | None = None, hashed: bool = True
) -> SampleRecord:
    doc = couplet(i if c is None else c)
    backward = "backward" in task
    given, gold = (doc["second"], doc["first"]) if backward else (doc["first"], doc["second"])
    return SampleRecord(
        task=task, doc_id=i, prompt=f"{given}的{'上' if backward else '下'}一句是什么？",
        output=gold if ok else "x", extracted={"none": ""}, target=gold,
        scores={"acc,none": 1.0 if ok else 0.0}, nfe=None, seconds=None, generated_tokens=None,
        doc_hash=json.dumps(doc, sort_keys=True) if hashed else None,
    )


def test_reversal_test_counts_pairs_and_is_mcnemar() -> None:
    fwd = [_poem(FORWARD, i, i < 7) for i in range(10)]  # right on 0..6
    bwd = [_poem(BACKWARD, i, 5 <= i <= 7) for i in range(10)]  # right on 5..7
    res = reversal_test(fwd, bwd)
    assert (res.both, res.forward_only, res.backward_only, res.neither) == (2, 5, 1, 2)
    assert res.n_pairs == 10 and res.unpaired == 0
    assert res.p_value == pytest.approx(2 * (1 + 6) / 2**6)  # exact binomial tail, by hand
    assert res.p_value == mcnemar_exact(5, 1) and res.delta == pytest.approx(0.4)
    # order of the records does not matter
    assert reversal_test(fwd[::-1], bwd[::-1]) == res


@pytest.mark.parametrize("hashed", [True, False])
def test_pairs_are_checked_to_be_the_same_couplet(hashed: bool) -> None:
    fwd = [_poem(FORWARD, i, True, hashed=hashed) for i in range(6)]
    same = [_poem(BACKWARD, i, False, hashed=hashed) for i in range(6)]
    shifted = [_poem(BACKWARD, i, False, c=i + 1, hashed=hashed) for i in range(6)]
    assert all(same_couplet(f, b) for f, b in zip(fwd, same))
    assert not any(same_couplet(f, b) for f, b in zip(fwd, shifted))
    assert reversal_test(fwd, same).n_pairs == 6
    assert reversal_test(fwd, shifted) is None  # no document is the same couplet
    partly = same[:4] + shifted[4:]
    res = reversal_test(fwd + [_poem(FORWARD, 6, True, hashed=hashed)], partly)
    assert res.n_pairs == 4 and res.unpaired == 2 * 2 + 1


def test_reversal_test_needs_pass_fail_scores() -> None:
    fwd = [_poem(FORWARD, i, True) for i in range(3)]
    bwd = [dataclasses.replace(_poem(BACKWARD, i, False), scores={"acc,none": 0.5})
           for i in range(3)]
    assert reversal_test(fwd, bwd) is None


def test_heldout_tasks_read_the_same_couplets_in_the_same_order() -> None:
    """What the pairing relies on, through lm-eval itself: document i of both held-out tasks
    is the same couplet, with the same recorded hash (lm-eval's own doc_hash recipe)."""
    from lm_eval.utils import handle_non_serializable, hash_string

    from evalsuite.tasks import task_manager

    tasks = task_manager().load([FORWARD, BACKWARD])["tasks"]

    def hashes(name: str) -> list[str]:
        return [hash_string(json.dumps(d, indent=2, default=handle_non_serializable,
                                       ensure_ascii=False)) for d in tasks[name].eval_docs]

    forward, backward = hashes(FORWARD), hashes(BACKWARD)
    assert forward == backward and len(set(forward)) == len(forward) > 0


# ---------------------------------------------------------------- study and pipeline models


def _study_runs(root: Path) -> list:
    def study(tf: int, f: int, b: int, a: int, s: int) -> dict:
        return {TRAIN_FORWARD: flags(40, tf), FORWARD: flags(30, f), BACKWARD: flags(30, b, 3),
                "llada_arith": flags(50, a), SUM_CHOICE: flags(60, s), MC_TASK: flags(4, 2)}

    make_run(root, study(30, 12, 2, 5, 33), preset="llada-tiny")
    make_run(root, study(38, 20, 0, 30, 40), preset="arm-tiny")
    make_run(root, {GEN_TASK: flags(1, 0)}, preset="llada-tiny")
    make_run(root, {GEN_TASK: flags(1, 1)}, preset="arm-tiny")
    runs, skipped = read_runs([root])
    assert not skipped and len(runs) == 4
    return runs


def test_study_model_rows_charts_and_pipeline(tmp_path: Path) -> None:
    runs = _study_runs(tmp_path / "runs")
    report = build_report(runs, generated_utc="now")
    study = report.study
    assert study is not None
    by = {r.label: r for r in study.rows}
    assert set(by) == {"llada-tiny", "arm-tiny"}
    arm = by["arm-tiny"]
    assert (arm.forward.k, arm.backward.k, arm.train_forward.k) == (20, 0, 38)
    assert arm.reversal.forward_only == 20 and arm.reversal.backward_only == 0
    assert arm.reversal.p_value == pytest.approx(mcnemar_exact(20, 0))
    assert arm.arith.k == 30 and arm.sum_choice.k == 40
    assert study.reversal_chart is not None and len(study.reversal_chart.groups) == 2
    assert len(study.reversal_chart.bars) == 6
    assert [report.tasks[j].name for j in study.pipeline_columns] == [GEN_TASK, MC_TASK]
    # one pipeline column per model: its study run's piqa and its pipeline run's gsm8k
    assert [c.label for c in study.pipeline] == list(
        dict.fromkeys(r.record.model.preset for r in runs))
    for col in study.pipeline:
        assert all(i is not None for i in col.cells) and len(col.run_ids) == 2
    # each model keeps one colour in the study table, the charts and the pipeline table
    colour = {c.label: c.color for c in study.pipeline}
    assert all(r.color == colour[r.label] for r in study.rows)

    # the pipeline runs' outputs side by side, though the baseline (a study run) lacks the task
    gsm = [c for c in report.comparisons if c.task == GEN_TASK]
    assert len(gsm) == 1 and not gsm[0].single and gsm[0].n_shared == 1
    assert {gsm[0].base_label.split()[0], gsm[0].cand_label.split()[0]} == {"llada-tiny",
                                                                           "arm-tiny"}
    html = render_html(report)
    assert html.index('id="study"') < html.index('id="pipeline"') < html.index('id="scores"')
    assert "McNemar p = " + arm.reversal.p_text in html
    assert "not comparable" in html


def test_no_study_section_without_study_tasks(tmp_path: Path) -> None:
    a = make_run(tmp_path, {GEN_TASK: flags(6, 3), MC_TASK: flags(6, 2)})
    report = build_report([read_run(a)])
    assert report.study is None
    html = render_html(report)
    assert 'id="study"' not in html and 'id="pipeline"' not in html
    assert '<h2 id="scores">Scores</h2>' in html


def test_study_without_poems_shows_the_other_charts(tmp_path: Path) -> None:
    a = make_run(tmp_path, {"llada_arith": flags(20, 3), SUM_CHOICE: flags(20, 11)})
    report = build_report([read_run(a)])
    study = report.study
    assert study.reversal_chart is None and study.arith_chart and study.sum_chart
    assert study.rows[0].reversal is None and study.pipeline == ()
    html = render_html(report)
    assert 'id="study"' in html and "couplets" not in html and 'id="pipeline"' not in html


# ---------------------------------------------------------------- label layout


def _disjoint(boxes: list[Box]) -> list[tuple[int, int]]:
    return [(i, j) for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2)
            if a.intersects(b)]


def test_fit_and_wrap_keep_within_width() -> None:
    for text, width, bold in itertools.product(LONG, (40.0, 90.0, 200.0), (False, True)):
        fitted = fit_text(text, width, FONT, bold)
        assert text_width(fitted, FONT, bold) <= width
        assert fitted == text or fitted.endswith("…")
        lines = wrap_text(text, width, FONT, max_lines=3, bold=bold)
        assert 1 <= len(lines) <= 3
        assert all(text_width(line, FONT, bold) <= width for line in lines), lines
    assert text_width("llada", FONT, bold=True) > text_width("llada", FONT)
    assert fit_text("short", 200.0, FONT) == "short"
    wrapped = wrap_text("llada_poem_backward_heldout", 125.0, FONT)
    assert wrapped == ["llada_poem_", "backward_heldout"]


def test_axis_labels_do_not_overlap_for_long_names() -> None:
    slot = 80.0
    labels = axis_labels([slot / 2 + i * slot for i in range(len(LONG))], LONG, slot, 100.0, FONT)
    assert _disjoint([lbl.box for lbl in labels]) == []
    for i, lbl in enumerate(labels):
        assert i * slot < lbl.box.x and lbl.box.right < (i + 1) * slot


def test_point_labels_do_not_overlap_each_other_or_points() -> None:
    # a crowd: every point near the same spot, like many tasks scoring 0 at the same speed
    pts = [(200.0 + (i % 4) * 3, 150.0 + (i % 3) * 2) for i in range(24)]
    texts = [LONG[i % len(LONG)] for i in range(24)]
    bounds = Box(0, 0, 400, 300)
    placed = place_point_labels(pts, texts, bounds, FONT)
    boxes = [p.box for p in placed if p is not None]
    assert 1 <= len(boxes) < len(pts)  # some fit, the rest are left out, none overlaps
    assert _disjoint(boxes) == []
    assert all(b.inside(bounds) for b in boxes)
    markers = [Box(x - 5, y - 5, 10, 10) for x, y in pts]
    assert not any(b.intersects(m) for b in boxes for m in markers)
    spread = place_point_labels([(50.0, 50.0), (300.0, 250.0)], ["a", "b"], bounds, FONT)
    assert all(p is not None for p in spread)


def test_charts_texts_stay_apart() -> None:
    groups = [
        GroupInput(name, [SeriesValue(100.0, (90.0, 100.0), "t"), SeriesValue(99.0, None, "t"),
                          SeriesValue(0.0, (0.0, 4.0), "t")], "McNemar p = 1.91e-06 (n=94)")
        for name in LONG
    ]
    chart = grouped_bar_chart("t", groups, [("reference bar with a long legend entry", "#000"),
                                            ("forward", "#111"), ("backward", "#222")])
    texts = grouped_text_boxes(chart)
    assert _disjoint([b for _, b in texts]) == [], texts
    assert all(b.x >= -chart.left and b.right <= chart.width - chart.left for _, b in texts)
    bars = bar_chart("title " * 40, [BarInput(t, 50.0, (40.0, 60.0), None, "#000") for t in LONG])
    assert len(bars.title) < len(bars.full_title)
    for b in bars.bars:  # each label ends left of the plot, rows 26 units apart
        assert text_width(b.label, FONT) <= bars.left - 12
    scatter = scatter_chart("s", "x", "y",
                            [ScatterInput(0.1 + i * 0.001, 0.0, i % 2, LONG[i % 6], "")
                             for i in range(12)], LONG)
    shown = [text_box(p.label.x, p.label.y, p.label.text, FONT, p.label.anchor)
             for p in scatter.points if p.label is not None]
    assert _disjoint(shown) == [] and scatter.hidden_labels == 12 - len(shown) > 0
    assert scatter.height >= 16 + 48 + 18 * len(LONG)
    assert math.isfinite(scatter.points[0].x)
    for xs in ([0.00005, 0.002, 5.0], [0.1, 0.25, 0.3], [1.0, 200.0]):  # log and linear axes
        chart = scatter_chart("s", "seconds per sample", "score (%)",
                              [ScatterInput(x, 100.0 * (i % 2), 0, LONG[i], "")
                               for i, x in enumerate(xs)], ["run"])
        boxes = scatter_text_boxes(chart)
        assert _disjoint([b for _, b in boxes]) == [], [(boxes[i], boxes[j]) for i, j in
                                                       _disjoint([b for _, b in boxes])]


def test_reference_bar_and_column_only_when_training_couplets_ran(tmp_path: Path) -> None:
    a = make_run(tmp_path, {FORWARD: flags(10, 4), BACKWARD: flags(10, 1)})
    report = build_report([read_run(a)])
    chart = report.study.reversal_chart
    assert [item.full for item in chart.legend] == ["held-out couplets, forward",
                                                    "held-out couplets, backward"]
    assert len(chart.bars) == 2
    html = render_html(report)
    assert "training couplets" not in html and "held-out couplets" in html
