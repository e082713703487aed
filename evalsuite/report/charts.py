"""Chart geometry for inline SVG (pure). The template only draws what these records say.

Coordinates are SVG user units; labels are plain strings (the template escapes them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from evalsuite.report.layout import (
    AxisLabel,
    Box,
    PlacedLabel,
    axis_labels,
    fit_text,
    place_point_labels,
    text_box,
    wrap_text,
)

FONT = 11.0
"""Font size of chart labels (``svg text`` in the template)."""
TITLE_FONT = 13.0

PALETTE: tuple[str, ...] = (
    "#3366cc",
    "#dc3912",
    "#109618",
    "#ff9900",
    "#990099",
    "#0099c6",
    "#dd4477",
    "#66aa00",
)


def color(index: int) -> str:
    """A stable colour for the ``index``-th run."""
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class Bar:
    """One run's score on one task: bar, 95% whisker and published marker (all in x units)."""

    label: str
    """The label as drawn (cut with ``…`` to fit left of the plot)."""
    y: float
    width: float
    color: str
    value_text: str
    ci: tuple[float, float] | None
    published_x: float | None
    published_text: str | None
    full_label: str = ""
    """The whole label (tooltip)."""


@dataclass(frozen=True)
class BarChart:
    title: str
    width: float
    height: float
    left: float
    plot_width: float
    bar_height: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    axis_y: float
    full_title: str = ""
    reference_x: float | None = None
    """A vertical reference line (e.g. chance), in x units from ``left``."""
    reference_text: str | None = None


@dataclass(frozen=True)
class BarInput:
    """What a bar chart needs per run: label, value and 95% interval in display units."""

    label: str
    value: float | None
    ci: tuple[float, float] | None
    published: float | None
    color: str


def bar_chart(
    title: str,
    inputs: Sequence[BarInput],
    *,
    x_max: float = 100.0,
    width: float = 560.0,
    left: float = 210.0,
    reference: tuple[float, str] | None = None,
) -> BarChart:
    """Horizontal bars on a fixed ``0..x_max`` axis (percent by default).

    Labels are cut with ``…`` to fit left of the plot and the title to the chart's width
    (the whole text is the tooltip); ``reference`` draws a labelled vertical line (chance).
    """
    bar_h, gap, top = 18.0, 8.0, 8.0
    plot_w = width - left - 48.0
    observed = [v for b in inputs for v in (b.value, b.published) if v is not None]
    if observed and max(observed) > x_max:
        x_max = float(math.ceil(max(observed) / 10.0) * 10.0)

    def sx(v: float) -> float:
        return max(0.0, min(x_max, v)) / x_max * plot_w

    bars = []
    for i, b in enumerate(inputs):
        y = top + i * (bar_h + gap)
        bars.append(
            Bar(
                label=fit_text(b.label, left - 12.0, FONT),
                y=y,
                width=0.0 if b.value is None else sx(b.value),
                color=b.color,
                value_text="n/a" if b.value is None else f"{b.value:.1f}",
                ci=None if b.ci is None else (sx(b.ci[0]), sx(b.ci[1])),
                published_x=None if b.published is None else sx(b.published),
                published_text=None if b.published is None else f"published {b.published:.1f}",
                full_label=b.label,
            )
        )
    axis_y = top + len(inputs) * (bar_h + gap)
    ticks = tuple(Tick(sx(x_max * f), f"{x_max * f:g}") for f in (0, 0.25, 0.5, 0.75, 1.0))
    height = axis_y + 28.0
    ref_x = ref_text = None
    if reference is not None:
        ref_x, ref_text = sx(reference[0]), fit_text(reference[1], plot_w, FONT)
        height += 14.0
    return BarChart(
        fit_text(title, width - 4.0, TITLE_FONT, bold=True),
        width,
        height,
        left,
        plot_w,
        bar_h,
        tuple(bars),
        ticks,
        axis_y,
        full_title=title,
        reference_x=ref_x,
        reference_text=ref_text,
    )


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    color: str
    label: PlacedLabel | None
    """Where the point's label goes; ``None`` when every spot near it was taken."""
    tooltip: str


@dataclass(frozen=True)
class LegendItem:
    label: str
    color: str
    full: str = ""


@dataclass(frozen=True)
class ScatterChart:
    title: str
    x_title: str
    y_title: str
    width: float
    height: float
    left: float
    top: float
    plot_width: float
    plot_height: float
    points: tuple[Point, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    legend: tuple[LegendItem, ...]
    hidden_labels: int = 0
    """Points drawn without a label (no free spot; the tooltip still names them)."""
    x_tick_y: float = 0.0
    """Baseline of the x tick labels: low enough to clear the y axis's bottom label."""
    x_title_y: float = 0.0


@dataclass(frozen=True)
class ScatterInput:
    x: float
    y: float
    series: int
    label: str
    tooltip: str


def _nice_ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        start, stop = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        return [10.0**e for e in range(start, stop + 1)]
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / 4
    mag = 10 ** math.floor(math.log10(raw))
    step = min((s * mag for s in (1, 2, 5, 10) if s * mag >= raw), default=raw)
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(int(math.ceil((hi - first) / step)) + 1)]


def scatter_chart(
    title: str,
    x_title: str,
    y_title: str,
    inputs: Sequence[ScatterInput],
    series_labels: Sequence[str],
    *,
    width: float = 640.0,
    height: float = 360.0,
) -> ScatterChart:
    """Scatter with a log x axis when x spans more than 20x; y on 0..100 (percent)."""
    left, top, right, bottom = 64.0, 16.0, 180.0, 48.0
    pw, ph = width - left - right, height - top - bottom
    xs = [p.x for p in inputs if p.x > 0]
    log = bool(xs) and max(xs) / min(xs) > 20
    if xs:
        x_ticks_v = _nice_ticks(min(xs), max(xs), log) if log else _nice_ticks(0.0, max(xs), False)
    else:
        x_ticks_v = [0.0, 1.0]
    x_lo, x_hi = x_ticks_v[0], x_ticks_v[-1]
    if x_hi <= x_lo:
        x_hi = x_lo + 1.0

    def sx(v: float) -> float:
        if log:
            v = max(v, x_lo)
            return (math.log10(v) - math.log10(x_lo)) / (math.log10(x_hi) - math.log10(x_lo)) * pw
        return (v - x_lo) / (x_hi - x_lo) * pw

    y_max = max([100.0] + [p.y for p in inputs])

    def sy(v: float) -> float:
        return ph - max(0.0, v) / y_max * ph

    shown = [p for p in inputs if p.x > 0]
    xy = [(sx(p.x), sy(p.y)) for p in shown]
    y_ticks = tuple(Tick(sy(v), f"{v:g}") for v in (0, 25, 50, 75, 100) if v <= y_max)
    # labels stay inside the plot, clear of each other and of the points
    placed = place_point_labels(xy, [p.label for p in shown], Box(0.0, 0.0, pw, ph), FONT)
    points = tuple(
        Point(x, y, color(p.series), lbl, p.tooltip)
        for (x, y), p, lbl in zip(xy, shown, placed, strict=True)
    )
    legend_w = right - 28.0 - 4.0
    height = max(height, top + bottom + 18.0 * len(series_labels))
    return ScatterChart(
        title=fit_text(title, width - 4.0, TITLE_FONT, bold=True),
        x_title=x_title + (" (log scale)" if log else ""),
        y_title=y_title,
        width=width,
        height=height,
        left=left,
        top=top,
        plot_width=pw,
        plot_height=ph,
        points=points,
        x_ticks=tuple(Tick(sx(v), f"{v:g}") for v in x_ticks_v),
        y_ticks=y_ticks,
        legend=tuple(
            LegendItem(fit_text(lbl, legend_w, FONT), color(i), lbl)
            for i, lbl in enumerate(series_labels)
        ),
        hidden_labels=sum(lbl is None for lbl in placed),
        x_tick_y=ph + 18.0,
        x_title_y=ph + 36.0,
    )


def scatter_text_boxes(chart: ScatterChart) -> list[tuple[str, Box]]:
    """Every text of a scatter chart with its estimated box, in plot coordinates (for tests)."""
    out: list[tuple[str, Box]] = []
    for t in chart.y_ticks:
        out.append((t.label, text_box(-6.0, t.pos + 4.0, t.label, FONT, "end")))
    for t in chart.x_ticks:
        out.append((t.label, text_box(t.pos, chart.x_tick_y, t.label, FONT, "middle")))
    out.append((chart.x_title, text_box(chart.plot_width / 2, chart.x_title_y, chart.x_title,
                                        FONT, "middle")))
    rotated = text_box(0.0, 0.0, chart.y_title, FONT, "middle")  # drawn rotated by -90°
    out.append((chart.y_title, Box(-44.0 - 0.93 * FONT, chart.plot_height / 2 - rotated.w / 2,
                                   rotated.h, rotated.w)))
    for p in chart.points:
        if p.label is not None:
            out.append((p.label.text, p.label.box))
    for i, item in enumerate(chart.legend):
        out.append((item.label, text_box(chart.plot_width + 28.0, i * 18.0 + 9.0, item.label,
                                         FONT)))
    return out


# ---------------------------------------------------------------- grouped vertical bars


@dataclass(frozen=True)
class SeriesValue:
    """One bar of a group: value and 95% interval in display units (percent)."""

    value: float
    ci: tuple[float, float] | None
    tooltip: str


@dataclass(frozen=True)
class GroupInput:
    """One group (a model): its bars, one per series (``None``: not run), and a note."""

    label: str
    values: Sequence[SeriesValue | None]
    note: str | None = None


@dataclass(frozen=True)
class VBar:
    x: float
    y: float
    width: float
    height: float
    color: str
    ci: tuple[float, float] | None
    """Whisker ends as y coordinates (top, bottom)."""
    value_text: str
    value_y: float
    tooltip: str


@dataclass(frozen=True)
class GroupLabel:
    label: AxisLabel
    note_lines: tuple[str, ...]
    note_y: float
    """Baseline of the first note line."""
    missing: tuple[tuple[float, str], ...]
    """``(x, text)`` of series not run in this group (drawn at the axis)."""


@dataclass(frozen=True)
class SwatchItem:
    x: float
    y: float
    label: str
    full: str
    color: str


@dataclass(frozen=True)
class GroupedChart:
    """Vertical bars grouped by model, one colour per series, on a 0-100 axis."""

    title: str
    full_title: str
    width: float
    height: float
    left: float
    top: float
    plot_width: float
    plot_height: float
    bars: tuple[VBar, ...]
    groups: tuple[GroupLabel, ...]
    y_ticks: tuple[Tick, ...]
    legend: tuple[SwatchItem, ...]
    line_height: float


def grouped_bar_chart(
    title: str,
    groups: Sequence[GroupInput],
    series: Sequence[tuple[str, str]],
    *,
    plot_height: float = 200.0,
    bar_width: float = 34.0,
    bar_gap: float = 6.0,
    group_gap: float = 40.0,
    legend_width: float = 250.0,
) -> GroupedChart:
    """Bars per group and series (``series``: ``(name, colour)``), whiskers, values, legend.

    Every text is laid out here: value labels sit above the bar or its whisker (bars are
    ``bar_width + bar_gap`` apart, wider than any ``100.0``), group labels wrap inside their
    slot, notes below them, the legend to the right of the plot.
    """
    n_series = max(1, len(series))
    lh = FONT * 1.25
    left, top = 40.0, 22.0 + FONT + 8.0  # title, then room for a value label at 100%
    group_w = n_series * (bar_width + bar_gap) - bar_gap
    slot = group_w + group_gap
    plot_w = max(slot * len(groups), slot)
    ph = plot_height

    def sy(v: float) -> float:
        return ph - max(0.0, min(100.0, v)) / 100.0 * ph

    bars: list[VBar] = []
    centers: list[float] = []
    missing_of: list[list[tuple[float, str]]] = []
    for g_i, g in enumerate(groups):
        x0 = g_i * slot + group_gap / 2
        centers.append(x0 + group_w / 2)
        missing: list[tuple[float, str]] = []
        for s_i, sv in enumerate(g.values):
            bx = x0 + s_i * (bar_width + bar_gap)
            if sv is None:
                missing.append((bx + bar_width / 2, "—"))
                continue
            y = sy(sv.value)
            ci = None if sv.ci is None else (sy(sv.ci[1]), sy(sv.ci[0]))
            top_of = min(y, ci[0]) if ci is not None else y
            bars.append(
                VBar(
                    bx, y, bar_width, ph - y, series[s_i][1], ci, f"{sv.value:.1f}",
                    top_of - 4.0, sv.tooltip,
                )
            )
        missing_of.append(missing)

    labels = axis_labels(
        centers, [g.label for g in groups], slot, ph + 4.0, FONT, line_height=lh, bold=True
    )
    group_labels = []
    bottom = ph + 4.0
    for g, lbl, missing in zip(groups, labels, missing_of, strict=True):
        note_lines = tuple(wrap_text(g.note, slot - 8.0, FONT, 2)) if g.note else ()
        note_y = lbl.y + len(lbl.lines) * lh
        group_labels.append(GroupLabel(lbl, note_lines, note_y, tuple(missing)))
        last = (note_y + (len(note_lines) - 1) * lh + 0.3 * FONT) if note_lines else 0.0
        bottom = max(bottom, lbl.box.bottom, last)

    legend_x = plot_w + 16.0
    legend = tuple(
        SwatchItem(legend_x, i * 18.0, fit_text(name, legend_width - 16.0, FONT), name, col)
        for i, (name, col) in enumerate(series)
    )
    width = left + legend_x + legend_width
    height = top + max(bottom, len(series) * 18.0) + 8.0
    return GroupedChart(
        title=fit_text(title, width - 4.0, TITLE_FONT, bold=True),
        full_title=title,
        width=width,
        height=height,
        left=left,
        top=top,
        plot_width=plot_w,
        plot_height=ph,
        bars=tuple(bars),
        groups=tuple(group_labels),
        y_ticks=tuple(Tick(sy(v), f"{v:g}") for v in (0, 25, 50, 75, 100)),
        legend=legend,
        line_height=lh,
    )


def grouped_text_boxes(chart: GroupedChart) -> list[tuple[str, Box]]:
    """Every text of a grouped chart with its estimated box, in plot coordinates (for tests)."""
    out: list[tuple[str, Box]] = []
    for b in chart.bars:
        out.append((b.value_text, text_box(b.x + b.width / 2, b.value_y, b.value_text, FONT,
                                           "middle", bold=True)))
    for g in chart.groups:
        out.append((g.label.full, g.label.box))
        for i, line in enumerate(g.note_lines):
            out.append((line, text_box(g.label.x, g.note_y + i * chart.line_height, line, FONT,
                                       "middle")))
    for item in chart.legend:
        out.append((item.label, text_box(item.x + 16.0, item.y + 9.0, item.label, FONT)))
    for t in chart.y_ticks:
        out.append((t.label, text_box(-6.0, t.pos + 4.0, t.label, FONT, "end")))
    return out
