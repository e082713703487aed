"""The loss-curve picture of the training logs: a self-contained SVG (no plotting library).

``svg_loss_curves`` is a pure function of the per-step losses; ``scripts/plot_training.py``
writes it next to the README and renders a PNG with headless Chromium.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def read_log(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``training_log.jsonl``."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over up to ``window`` values (same length as the input)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def svg_loss_curves(series: Mapping[str, Sequence[float]], *, phase_change: int | None = None,
                    width: int = 760, height: int = 380, window: int = 20,
                    title: str = "Training loss per optimizer step") -> str:
    """Raw (faint) and smoothed (``window``-step mean) loss of every series on shared axes;
    a dashed line where SFT starts."""
    left, right, top, bottom = 60, 20, 40, 50
    steps = max(len(v) for v in series.values())
    hi = max(max(v) for v in series.values())
    lo = min(0.0, min(min(v) for v in series.values()))
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(i: int, v: float) -> str:
        x = left + plot_w * i / max(1, steps - 1)
        y = top + plot_h * (1 - (v - lo) / (hi - lo or 1))
        return f"{x:.1f},{y:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="22" font-size="15">{title}</text>']
    for k in range(6):
        v = lo + (hi - lo) * k / 5
        y = xy(0, v).split(",")[1]
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y}" y2="{y}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 8}" y="{float(y) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    for k in range(6):
        i = round((steps - 1) * k / 5)
        x = xy(i, lo).split(",")[0]
        parts.append(f'<text x="{x}" y="{height - bottom + 18}" text-anchor="middle">{i}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">step</text>')
    if phase_change is not None and 0 < phase_change < steps:
        x = xy(phase_change, lo).split(",")[0]
        parts.append(f'<line x1="{x}" x2="{x}" y1="{top}" y2="{top + plot_h}" stroke="#888" '
                     'stroke-dasharray="4 4"/>')
        parts.append(f'<text x="{float(x) + 4:.1f}" y="{top + plot_h - 8}" fill="#555">SFT (+ replay)</text>')
    for n, (name, values) in enumerate(series.items()):
        color = COLORS[n % len(COLORS)]
        raw = " ".join(xy(i, v) for i, v in enumerate(values))
        smooth = " ".join(xy(i, v) for i, v in enumerate(moving_average(values, window)))
        parts.append(f'<polyline points="{raw}" fill="none" stroke="{color}" stroke-opacity="0.25"/>')
        parts.append(f'<polyline points="{smooth}" fill="none" stroke="{color}" stroke-width="2"/>')
        ly = top + 16 + 18 * n
        parts.append(f'<line x1="{width - right - 340}" x2="{width - right - 320}" y1="{ly}" '
                     f'y2="{ly}" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{width - right - 314}" y="{ly + 4}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
