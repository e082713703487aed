"""The report's typed model, built from loaded runs (pure). The template only lays it out.

Scores are shown in percent (lm-eval's 0-1 metrics × 100), as the paper prints them; deltas
are in points. The baseline is the ``--baseline`` run, else the first run given.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from evalsuite.report.charts import (
    BarChart,
    BarInput,
    ScatterChart,
    ScatterInput,
    bar_chart,
    color,
    scatter_chart,
)
from evalsuite.report.published import Published, lookup
from evalsuite.report.study import Study, build_study
from evalsuite.results.compare import (
    higher_is_better,
    pair_scores,
    primary_metric,
    settings_table,
)
from evalsuite.results.stats import paired_test
from evalsuite.results.store import Run, Skipped

SCALE = 100.0
ALPHA = 0.05
MAX_SAMPLE_ROWS = 300
"""Per-sample rows per comparison: every disagreement first, then agreements, up to this many."""


@dataclass(frozen=True)
class Delta:
    """Candidate minus baseline on the shared documents, in points, with a paired test."""

    points: float
    p_value: float
    test: str
    n_shared: int
    significant: bool
    better: bool


@dataclass(frozen=True)
class Cell:
    """One run × task entry of the score table (display units: percent)."""

    metric: str
    value: float
    stderr: float | None
    ci: tuple[float, float] | None
    n: int
    published: Published | None
    delta: Delta | None


@dataclass(frozen=True)
class Row:
    """One run: its cells (``None`` where the run lacks the task) and speed columns."""

    index: int
    label: str
    short: str
    """``preset ·abc123`` (last 6 characters of the run id), for charts and column headers."""
    model: str
    resolved_id: str
    run_id: str
    is_baseline: bool
    color: str
    cells: tuple[Cell | None, ...]
    nfe_per_sample: float | None
    tokens_per_s: float | None
    """Generated tokens per second of generation."""
    wall_time_s: float | None
    seconds_per_sample: float | None
    failed: str | None = None
    """The runner's failure message when the run stopped early (finished tasks were kept)."""
    tokens_per_nfe: float | None = None
    """Generated tokens per forward pass of generation (hardware-independent efficiency)."""
    tokens_counted_to_cut: bool = True
    """False for records before schema v2, whose token counts were answer slots."""
    architecture: str | None = None
    """The network family that ran (``llada``, ``dream``); None for an autoregressive model
    on lm-eval's ``backend`` (shown as ``ARM``)."""
    backend: str = ""


@dataclass(frozen=True)
class TaskColumn:
    name: str
    alias: str
    metric: str
    higher_is_better: bool


@dataclass(frozen=True)
class SampleRow:
    """One document in a side-by-side comparison."""

    task: str
    doc_id: int
    prompt: str
    target: str
    base_output: str
    base_extracted: str
    base_score: float | None
    cand_output: str
    cand_extracted: str
    cand_score: float | None
    disagree: bool


@dataclass(frozen=True)
class Comparison:
    """Per-sample view of one task for baseline vs one other run."""

    anchor: str
    task: str
    metric: str
    base_label: str
    cand_label: str
    rows: tuple[SampleRow, ...]
    n_shared: int
    n_disagree: int
    single: bool = False
    """True when only one run was given: the view lists its outputs without a second column."""


@dataclass(frozen=True)
class SettingRow:
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    """Everything the template shows."""

    title: str
    generated_utc: str
    runs: tuple[Row, ...]
    tasks: tuple[TaskColumn, ...]
    baseline_label: str
    charts: tuple[BarChart, ...]
    speed_chart: ScatterChart
    settings: tuple[SettingRow, ...]
    comparisons: tuple[Comparison, ...]
    skipped: tuple[Skipped, ...]
    sources: tuple[str, ...]
    study: Study | None = None
    """The miniature study's section, when the runs hold its tasks (shown first)."""


def _short(run: Run) -> str:
    return f"{run.record.model.preset} ·{run.record.run_id[-6:]}"


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _seconds_per_sample(run: Run, unit: str | None = None) -> float | None:
    samples = run.samples_of(unit) if unit else list(run.samples)
    secs = [s.seconds for s in samples if s.seconds is not None]
    if secs:
        return _mean(secs)
    if unit is None and run.record.speed.wall_time_s and run.samples:
        return run.record.speed.wall_time_s / len(run.samples)
    return None


def _nfe_per_sample(run: Run) -> float | None:
    nfes = [s.nfe for s in run.samples if s.nfe is not None]
    if nfes:
        return _mean([float(n) for n in nfes])
    if run.record.speed.nfe is not None and run.samples:
        return run.record.speed.nfe / len(run.samples)
    return None


def _comparison(base: Run, cand: Run, task: TaskColumn, anchor: str) -> Comparison:
    b_by = {(s.task, s.doc_id): s for s in base.samples_of(task.name)}
    c_by = {(s.task, s.doc_id): s for s in cand.samples_of(task.name)}
    shared = sorted(b_by.keys() & c_by.keys())
    rows: list[SampleRow] = []
    for key in shared:
        b, c = b_by[key], c_by[key]
        bs, cs = b.scores.get(task.metric), c.scores.get(task.metric)
        filt = task.metric.partition(",")[2]
        be = b.extracted.get(filt, next(iter(b.extracted.values()), ""))
        ce = c.extracted.get(filt, next(iter(c.extracted.values()), ""))
        rows.append(
            SampleRow(
                task=b.task,
                doc_id=b.doc_id,
                prompt=b.prompt,
                target=b.target,
                base_output=b.output,
                base_extracted=be,
                base_score=bs,
                cand_output=c.output,
                cand_extracted=ce,
                cand_score=cs,
                disagree=(bs != cs) or (be.strip() != ce.strip()),
            )
        )
    disagreeing = [r for r in rows if r.disagree]
    agreeing = [r for r in rows if not r.disagree]
    shown = disagreeing[:MAX_SAMPLE_ROWS]
    shown += agreeing[: max(0, MAX_SAMPLE_ROWS - len(shown))]
    shown.sort(key=lambda r: (r.task, r.doc_id))
    return Comparison(
        anchor,
        task.name,
        task.metric,
        _short(base),
        _short(cand),
        tuple(shown),
        len(rows),
        len(disagreeing),
        single=base is cand,
    )


def build_report(
    runs: Sequence[Run],
    *,
    baseline: Run | None = None,
    skipped: Sequence[Skipped] = (),
    title: str = "evalsuite report",
    generated_utc: str = "",
    bootstrap_iters: int = 2000,
    seed: int = 1234,
) -> Report:
    """Build the report model. ``baseline`` (if given) is shown first; deltas are against it."""
    ordered = list(runs)
    if baseline is not None:
        ordered = [baseline] + [r for r in ordered if r.path != baseline.path]
    if not ordered:
        raise ValueError("build_report needs at least one run")
    base = ordered[0]

    columns: list[TaskColumn] = []
    seen: set[str] = set()
    for run in ordered:
        for unit in run.record.units():
            if unit.name in seen:
                continue
            metric = primary_metric(unit)
            if metric is None:
                continue
            seen.add(unit.name)
            columns.append(
                TaskColumn(unit.name, unit.alias, metric, higher_is_better(unit, metric))
            )
    columns.sort(key=lambda c: c.name)

    rows: list[Row] = []
    for i, run in enumerate(ordered):
        rec = run.record
        cells: list[Cell | None] = []
        for col in columns:
            task = rec.tasks.get(col.name)
            if task is None or col.metric not in task.metrics:
                cells.append(None)
                continue
            mv = task.metrics[col.metric]
            ci = mv.ci95()
            if ci is not None and 0.0 <= mv.value <= 1.0:
                ci = (max(0.0, ci[0]), min(1.0, ci[1]))  # a 0-1 score's interval stays in range
            delta = None
            if i > 0 and col.name in base.record.tasks:
                paired = pair_scores(base, run, col.name, col.metric)
                if paired.keys:
                    res = paired_test(
                        paired.baseline, paired.candidate, iters=bootstrap_iters, seed=seed
                    )
                    gain = res.delta if col.higher_is_better else -res.delta
                    delta = Delta(
                        res.delta * SCALE,
                        res.p_value,
                        res.test,
                        res.n,
                        res.p_value < ALPHA,
                        gain > 0,
                    )
            cells.append(
                Cell(
                    metric=col.metric,
                    value=mv.value * SCALE,
                    stderr=None if mv.stderr is None else mv.stderr * SCALE,
                    ci=None if ci is None else (ci[0] * SCALE, ci[1] * SCALE),
                    n=task.n_samples,
                    published=lookup((rec.model.preset, rec.model.resolved_id), col.name),
                    delta=delta,
                )
            )
        rows.append(
            Row(
                index=i,
                label=run.label,
                short=_short(run),
                model=rec.model.preset,
                resolved_id=rec.model.resolved_id,
                run_id=rec.run_id,
                is_baseline=i == 0,
                color=color(i),
                cells=tuple(cells),
                nfe_per_sample=_nfe_per_sample(run),
                tokens_per_s=rec.speed.tokens_per_s,
                wall_time_s=rec.speed.wall_time_s,
                seconds_per_sample=_seconds_per_sample(run),
                failed=rec.failure if rec.status == "failed" else None,
                tokens_per_nfe=rec.speed.tokens_per_nfe,
                tokens_counted_to_cut=rec.speed.tokens_counted_to_cut,
                # records written before the field: the native backend ran LLaDA only
                architecture=rec.model.architecture or (
                    "llada" if rec.model.backend == "llada" else None),
                backend=rec.model.backend,
            )
        )

    charts = []
    for j, col in enumerate(columns):
        inputs = []
        for row in rows:
            cell = row.cells[j]
            if cell is None:
                continue
            inputs.append(
                BarInput(
                    label=row.short,
                    value=cell.value,
                    ci=cell.ci,
                    published=None if cell.published is None else cell.published.value,
                    color=row.color,
                )
            )
        charts.append(bar_chart(f"{col.alias} ({col.metric})", inputs))

    points = []
    for row, run in zip(rows, ordered, strict=True):
        for j, col in enumerate(columns):
            cell = row.cells[j]
            sps = _seconds_per_sample(run, col.name)
            if cell is None or sps is None or not math.isfinite(sps) or sps <= 0:
                continue
            points.append(
                ScatterInput(
                    x=sps,
                    y=cell.value,
                    series=row.index,
                    label=col.alias,
                    tooltip=f"{row.short} · {col.alias}: {cell.value:.1f} at {sps:.3g} s/sample",
                )
            )
    speed_chart = scatter_chart(
        "Speed vs accuracy (one point per run × task)",
        "seconds per sample",
        "score (%)",
        points,
        [r.short for r in rows],
    )

    comparisons = []
    for row, run in zip(rows[1:], ordered[1:], strict=True):
        for col in columns:
            if col.name in base.record.tasks and col.name in run.record.tasks:
                comparisons.append(
                    _comparison(base, run, col, f"cmp-{row.index}-{len(comparisons)}")
                )
    if len(ordered) == 1:
        for col in columns:
            comparisons.append(_comparison(base, base, col, f"cmp-0-{len(comparisons)}"))
    # a task the baseline did not run (make eval's pipeline run): the first run holding it is
    # the reference of its side-by-side views, or its outputs are listed alone
    for col in columns:
        if col.name in base.record.tasks:
            continue
        holders = [(row, run) for row, run in zip(rows, ordered, strict=True)
                   if col.name in run.record.tasks]
        if not holders:
            continue
        ref_row, ref = holders[0]
        if len(holders) == 1:
            comparisons.append(
                _comparison(ref, ref, col, f"cmp-{ref_row.index}-{len(comparisons)}"))
        for row, run in holders[1:]:
            comparisons.append(_comparison(ref, run, col, f"cmp-{row.index}-{len(comparisons)}"))

    sources = sorted(
        {
            c.published.source
            for r in rows
            for c in r.cells
            if c is not None and c.published is not None
        }
    )
    return Report(
        title=title,
        generated_utc=generated_utc,
        runs=tuple(rows),
        tasks=tuple(columns),
        baseline_label=base.label,
        charts=tuple(charts),
        speed_chart=speed_chart,
        settings=tuple(SettingRow(k, tuple(v)) for k, v in settings_table(ordered)),
        comparisons=tuple(comparisons),
        skipped=tuple(skipped),
        sources=tuple(sources),
        study=build_study(
            ordered, [r.short for r in rows], [r.color for r in rows], [c.name for c in columns]
        ),
    )
