"""Chart geometry for inline SVG (pure). The template only draws what these records say.

Coordinates are SVG user units; labels are plain strings (the template escapes them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
    y: float
    width: float
    color: str
    value_text: str
    ci: tuple[float, float] | None
    published_x: float | None
    published_text: str | None


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
) -> BarChart:
    """Horizontal bars on a fixed ``0..x_max`` axis (percent by default)."""
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
                label=b.label,
                y=y,
                width=0.0 if b.value is None else sx(b.value),
                color=b.color,
                value_text="n/a" if b.value is None else f"{b.value:.1f}",
                ci=None if b.ci is None else (sx(b.ci[0]), sx(b.ci[1])),
                published_x=None if b.published is None else sx(b.published),
                published_text=None if b.published is None else f"published {b.published:.1f}",
            )
        )
    axis_y = top + len(inputs) * (bar_h + gap)
    ticks = tuple(Tick(sx(x_max * f), f"{x_max * f:g}") for f in (0, 0.25, 0.5, 0.75, 1.0))
    return BarChart(title, width, axis_y + 28.0, left, plot_w, bar_h, tuple(bars), ticks, axis_y)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    color: str
    label: str
    tooltip: str


@dataclass(frozen=True)
class LegendItem:
    label: str
    color: str


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

    points = tuple(
        Point(sx(p.x), sy(p.y), color(p.series), p.label, p.tooltip) for p in inputs if p.x > 0
    )
    return ScatterChart(
        title=title,
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
        y_ticks=tuple(Tick(sy(v), f"{v:g}") for v in (0, 25, 50, 75, 100) if v <= y_max),
        legend=tuple(LegendItem(lbl, color(i)) for i, lbl in enumerate(series_labels)),
    )
