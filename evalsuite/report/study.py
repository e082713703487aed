"""The miniature study's result, read off runs that hold its tasks (pure).

The study (``docs/miniature-study.md``) asks the LLaDA paper's reversal question in miniature:
couplets seen only forwards in training, asked forwards and backwards
(``llada_poem_forward_heldout`` / ``llada_poem_backward_heldout``, with the training couplets
asked forwards, ``llada_poem_train_forward``, as a reference), then arithmetic
(``llada_arith``, strict-match) and a likelihood choice (``llada_sum_choice``, acc). When the
runs of a report hold any of these tasks, the report opens with this section; every other task
of those runs is a *pipeline check* (a few documents of a paper task).

Intervals are 95%: the Wilson score interval from the counts (``k`` of ``n`` documents right)
when every per-document score is pass/fail and the counts reproduce the recorded score, else
the recorded standard error (``value ± 1.96 s.e.``, kept within [0, 1]). Wilson's interval is
the honest one at the study's sizes: 0 of 94 is [0, 3.9%], not the [0, 0] of ``± 1.96 s.e.``.

Forward vs backward is a paired comparison: both held-out tasks read the same couplets
(``evalsuite.tasks.miniature.heldout_poems``) in the same order, so document ``i`` of one is
couplet ``i`` of the other. :func:`same_couplet` checks it per pair (same document hash, or,
for records without hashes, each task's gold line appearing in the other's prompt) and
:func:`reversal_test` runs the exact McNemar test on the pairs that pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from evalsuite.report.charts import (
    BarChart,
    BarInput,
    GroupedChart,
    GroupInput,
    SeriesValue,
    bar_chart,
    grouped_bar_chart,
)
from evalsuite.results.schema import SampleRecord
from evalsuite.results.stats import is_binary, mcnemar_exact
from evalsuite.results.store import Run

TRAIN_FORWARD = "llada_poem_train_forward"
FORWARD = "llada_poem_forward_heldout"
BACKWARD = "llada_poem_backward_heldout"
ARITH = "llada_arith"
SUM_CHOICE = "llada_sum_choice"
POEM_METRIC = "acc,none"
ARITH_METRIC = "exact_match,strict-match"
SUM_METRIC = "acc,none"
STUDY_TASKS: tuple[str, ...] = (TRAIN_FORWARD, FORWARD, BACKWARD, ARITH, SUM_CHOICE)
"""Task names that make a run part of the study (every other task is a pipeline check)."""

Z95 = 1.959963984540054

SERIES = (
    ("training couplets, forward", "#9aa3b2"),
    ("held-out couplets, forward", "#3366cc"),
    ("held-out couplets, backward", "#dc3912"),
)


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (0-1 units)."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    if k == 0:
        lo = 0.0
    if k == n:
        hi = 1.0
    return lo, hi


def normal_interval(value: float, stderr: float) -> tuple[float, float]:
    """``value ± 1.96 stderr``, clipped to [0, 1] (a 0-1 score's interval stays in range)."""
    return max(0.0, value - Z95 * stderr), min(1.0, value + Z95 * stderr)


@dataclass(frozen=True)
class Estimate:
    """One score of the study in 0-1 units, its 95% interval, and how it was computed."""

    value: float
    lo: float
    hi: float
    n: int
    k: int | None
    """Documents right (pass/fail scores); ``None`` when the interval is the normal one."""
    method: Literal["wilson", "normal", "none"]

    @property
    def text(self) -> str:
        counts = f"{self.k}/{self.n}" if self.k is not None else f"n={self.n}"
        if self.method == "none":
            return f"{self.value * 100:.1f} ({counts})"
        return f"{self.value * 100:.1f} [{self.lo * 100:.1f}, {self.hi * 100:.1f}] ({counts})"


def estimate(run: Run, task: str, metric: str) -> Estimate | None:
    """The run's score on ``task``/``metric`` with its 95% interval; ``None`` if not run."""
    record = run.record.tasks.get(task)
    if record is None or metric not in record.metrics:
        return None
    mv = record.metrics[metric]
    scores = [s.scores[metric] for s in run.samples_of(task) if metric in s.scores]
    if scores and is_binary(scores) and math.isclose(
        sum(scores) / len(scores), mv.value, abs_tol=1e-9
    ):
        k = int(sum(scores))
        lo, hi = wilson_interval(k, len(scores))
        return Estimate(mv.value, lo, hi, len(scores), k, "wilson")
    n = len(scores) or record.n_samples
    if mv.stderr is not None:
        lo, hi = normal_interval(mv.value, mv.stderr)
        return Estimate(mv.value, lo, hi, n, None, "normal")
    return Estimate(mv.value, mv.value, mv.value, n, None, "none")


def same_couplet(forward: SampleRecord, backward: SampleRecord) -> bool:
    """Whether a forward and a backward document ask about the same couplet.

    Both tasks' documents are the couplet itself (``first``, ``second``, ``source``), so the
    recorded document hashes agree when both are present. Without hashes: the forward gold
    (second line) must occur in the backward prompt and the backward gold (first line) in the
    forward prompt.
    """
    if forward.doc_hash and backward.doc_hash:
        return forward.doc_hash == backward.doc_hash
    f_gold, b_gold = forward.target.strip(), backward.target.strip()
    return bool(f_gold and b_gold) and f_gold in backward.prompt and b_gold in forward.prompt


@dataclass(frozen=True)
class ReversalTest:
    """Forward vs backward on the same couplets: the 2×2 counts and McNemar's exact p."""

    n_pairs: int
    both: int
    forward_only: int
    backward_only: int
    neither: int
    p_value: float
    unpaired: int
    """Documents of either task without a matching document of the other (left out)."""

    @property
    def p_text(self) -> str:
        return format_p(self.p_value)

    @property
    def delta(self) -> float:
        """Forward minus backward accuracy on the pairs (0-1 units)."""
        return (self.forward_only - self.backward_only) / self.n_pairs if self.n_pairs else 0.0


def reversal_test(
    forward: Sequence[SampleRecord], backward: Sequence[SampleRecord], metric: str = POEM_METRIC
) -> ReversalTest | None:
    """Exact McNemar test of forward vs backward, paired by couplet (document index, checked).

    ``None`` when no pair is left or a score is not pass/fail (McNemar needs 0/1 scores).
    """
    f_by = {s.doc_id: s for s in forward if metric in s.scores}
    b_by = {s.doc_id: s for s in backward if metric in s.scores}
    unpaired = len(f_by.keys() ^ b_by.keys())
    pairs: list[tuple[float, float]] = []
    for doc_id in sorted(f_by.keys() & b_by.keys()):
        f, b = f_by[doc_id], b_by[doc_id]
        if same_couplet(f, b):
            pairs.append((f.scores[metric], b.scores[metric]))
        else:
            unpaired += 2
    if not pairs or not is_binary([v for pair in pairs for v in pair]):
        return None
    both = sum(1 for f, b in pairs if f and b)
    f_only = sum(1 for f, b in pairs if f and not b)
    b_only = sum(1 for f, b in pairs if b and not f)
    return ReversalTest(
        n_pairs=len(pairs),
        both=both,
        forward_only=f_only,
        backward_only=b_only,
        neither=len(pairs) - both - f_only - b_only,
        p_value=mcnemar_exact(f_only, b_only),
        unpaired=unpaired,
    )


def format_p(p: float) -> str:
    """A p-value for display: three significant digits, ``< 1e-300`` for an underflow."""
    return "< 1e-300" if p == 0.0 else f"{p:.3g}"


@dataclass(frozen=True)
class StudyRow:
    """One run of the study (a model)."""

    label: str
    run_id: str
    color: str
    train_forward: Estimate | None
    forward: Estimate | None
    backward: Estimate | None
    reversal: ReversalTest | None
    arith: Estimate | None
    sum_choice: Estimate | None


@dataclass(frozen=True)
class PipelineColumn:
    """One model's column of the pipeline table: the runs whose pipeline tasks it shows."""

    label: str
    color: str
    run_ids: tuple[str, ...]
    cells: tuple[int | None, ...]
    """Per pipeline task (in ``Study.pipeline_columns`` order): the index of the run that
    holds it (into the report's runs), ``None`` when none of this model's runs does."""


def pipeline_columns(
    runs: Sequence[Run], colors: Sequence[str], shorts: Sequence[str], tasks: Sequence[str]
) -> tuple[PipelineColumn, ...]:
    """One column per model over its runs' pipeline tasks (a study run and a pipeline run of
    the same model share a column); a model with two runs of the same task gets a column per
    run, labelled with the run's short label."""
    by_preset: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        if any(t in run.record.tasks for t in tasks):
            by_preset.setdefault(run.record.model.preset, []).append(i)
    columns = []
    for preset, idx in by_preset.items():
        held = [t for i in idx for t in tasks if t in runs[i].record.tasks]
        groups = [idx] if len(held) == len(set(held)) else [[i] for i in idx]
        for group in groups:
            cells = tuple(next((i for i in group if t in runs[i].record.tasks), None)
                          for t in tasks)
            label = preset if len(groups) == 1 else shorts[group[0]]
            columns.append(PipelineColumn(label, colors[group[0]],
                                          tuple(runs[i].record.run_id for i in group), cells))
    return tuple(columns)


@dataclass(frozen=True)
class Study:
    """The study section: a row per model and its three charts (``None``: task not run)."""

    rows: tuple[StudyRow, ...]
    reversal_chart: GroupedChart | None
    arith_chart: BarChart | None
    sum_chart: BarChart | None
    pipeline_columns: tuple[int, ...]
    """Indices (into the report's task columns) of the tasks that are not the study's."""
    pipeline: tuple[PipelineColumn, ...]
    """The pipeline table's columns (one per model)."""
    normal_intervals: bool = False
    """Whether some interval is the normal one (no per-document counts)."""


def is_study_run(run: Run) -> bool:
    return any(t in run.record.tasks for t in STUDY_TASKS)


def _series(e: Estimate | None, what: str, label: str) -> SeriesValue | None:
    if e is None:
        return None
    ci = None if e.method == "none" else (e.lo * 100, e.hi * 100)
    return SeriesValue(e.value * 100, ci, f"{label} · {what}: {e.text}")


def _bars(rows: Sequence[StudyRow], pick: str) -> list[BarInput]:
    out = []
    for r in rows:
        e: Estimate | None = getattr(r, pick)
        if e is None:
            continue
        ci = None if e.method == "none" else (e.lo * 100, e.hi * 100)
        out.append(BarInput(r.label, e.value * 100, ci, None, r.color))
    return out


def build_study(
    runs: Sequence[Run], labels: Sequence[str], colors: Sequence[str], all_tasks: Sequence[str]
) -> Study | None:
    """The study over the runs that hold a study task (``None`` when none does).

    ``labels``/``colors`` are the report's per-run ones; a model run more than once keeps the
    report's short label (preset and run id), otherwise the preset names the group.
    """
    # one colour per model (its first run's), so a model looks the same in every table,
    # unless a model has two study runs (then each run keeps its own)
    study_presets = [r.record.model.preset for r in runs if is_study_run(r)]
    if len(study_presets) == len(set(study_presets)):
        first: dict[str, str] = {}
        for run, col in zip(runs, colors, strict=True):
            first.setdefault(run.record.model.preset, col)
        colors = [first[r.record.model.preset] for r in runs]
    chosen = [(r, lbl, c) for r, lbl, c in zip(runs, labels, colors, strict=True)
              if is_study_run(r)]
    if not chosen:
        return None
    presets = [r.record.model.preset for r, _, _ in chosen]
    rows = []
    for run, short, col in chosen:
        preset = run.record.model.preset
        label = preset if presets.count(preset) == 1 else short
        rows.append(
            StudyRow(
                label=label,
                run_id=run.record.run_id,
                color=col,
                train_forward=estimate(run, TRAIN_FORWARD, POEM_METRIC),
                forward=estimate(run, FORWARD, POEM_METRIC),
                backward=estimate(run, BACKWARD, POEM_METRIC),
                reversal=reversal_test(run.samples_of(FORWARD), run.samples_of(BACKWARD))
                if FORWARD in run.record.tasks and BACKWARD in run.record.tasks
                else None,
                arith=estimate(run, ARITH, ARITH_METRIC),
                sum_choice=estimate(run, SUM_CHOICE, SUM_METRIC),
            )
        )
    reversal = None
    poem_rows = [r for r in rows if r.forward or r.backward or r.train_forward]
    if poem_rows:
        series = SERIES if any(r.train_forward for r in poem_rows) else SERIES[1:]
        groups = []
        for r in poem_rows:
            values = [
                _series(r.train_forward, "training couplets, forward", r.label),
                _series(r.forward, "held-out, forward", r.label),
                _series(r.backward, "held-out, backward", r.label),
            ][3 - len(series):]
            note = None
            if r.reversal is not None:
                note = f"McNemar p = {r.reversal.p_text} (n={r.reversal.n_pairs})"
            groups.append(GroupInput(r.label, values, note))
        reversal = grouped_bar_chart(
            "Couplets: forward vs backward (accuracy %, 95% intervals)", groups, series
        )
    arith = _bars(rows, "arith")
    sums = _bars(rows, "sum_choice")
    return Study(
        rows=tuple(rows),
        reversal_chart=reversal,
        arith_chart=bar_chart("Arithmetic: llada_arith, strict-match (%)", arith, left=130.0,
                              width=520.0)
        if arith else None,
        sum_chart=bar_chart("Sum choice: llada_sum_choice, acc (%)", sums, left=130.0, width=520.0,
                            reference=(50.0, "dashed line: chance (50%)"))
        if sums else None,
        pipeline_columns=tuple(i for i, t in enumerate(all_tasks) if t not in STUDY_TASKS),
        pipeline=pipeline_columns(
            runs, colors, labels, [t for t in all_tasks if t not in STUDY_TASKS]
        ),
        normal_intervals=any(
            e is not None and e.method == "normal"
            for r in rows
            for e in (r.train_forward, r.forward, r.backward, r.arith, r.sum_choice)
        ),
    )
