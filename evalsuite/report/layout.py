"""Label layout for the inline SVG charts (pure): text widths, fitting, wrapping, placement.

The report has no font metrics at build time, so widths are *estimated* per character class
for a wide sans-serif (DejaVu Sans, the widest of the usual fallbacks of ``system-ui``):
the estimate errs on the wide side, so labels laid out apart here stay apart in a browser.
``tests/test_report_browser.py`` checks the real boxes in headless Chromium.

Everything is in SVG user units (CSS pixels at scale 1); a :class:`Box` is axis-aligned.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

ELLIPSIS = "…"
_NARROW = set("iljfI.,:;'|!()[]· ")  # DejaVu Sans: 0.28-0.40 em
_SYMBOL = set("#+=<>~&±−→")  # 0.78-0.84 em
_WIDE = set("mwMW@%…")  # 0.8-1.0 em
BOLD = 1.1
"""Bold (font-weight 600) text is up to 10% wider than regular in DejaVu Sans."""


def char_width(ch: str, font_size: float) -> float:
    """Estimated advance width of one character (wide estimate, DejaVu Sans-like).

    Lower case and digits are at most 0.64 em in DejaVu Sans, upper case at most 0.8 em.
    """
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return font_size * 1.0
    if ch in _NARROW:
        return font_size * 0.40
    if ch in _WIDE:
        return font_size * 1.0
    if ch in _SYMBOL:
        return font_size * 0.84
    if ch.isupper():
        return font_size * 0.8
    return font_size * 0.64


def text_width(text: str, font_size: float, bold: bool = False) -> float:
    """Estimated width of ``text`` set in one line at ``font_size`` (wider when ``bold``)."""
    return sum(char_width(ch, font_size) for ch in text) * (BOLD if bold else 1.0)


def fit_text(text: str, max_width: float, font_size: float, bold: bool = False) -> str:
    """``text`` when it fits in ``max_width``, else its longest prefix + ``…`` that does."""
    scale = BOLD if bold else 1.0
    if text_width(text, font_size, bold) <= max_width:
        return text
    budget = max_width - char_width(ELLIPSIS, font_size) * scale
    used, cut = 0.0, 0
    for ch in text:
        w = char_width(ch, font_size) * scale
        if used + w > budget:
            break
        used += w
        cut += 1
    head = text[:cut].rstrip()
    return head + ELLIPSIS if head else ""


_BREAK_AFTER = set("_-/ ·,")


def _tokens(text: str) -> list[str]:
    """Split after break characters (``_``, ``-``, ``/``, space, ``·``, ``,``), keeping them."""
    out, cur = [], ""
    for ch in text:
        cur += ch
        if ch in _BREAK_AFTER:
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def wrap_text(
    text: str, max_width: float, font_size: float, max_lines: int = 3, bold: bool = False
) -> list[str]:
    """Greedy wrap at break characters into lines of at most ``max_width``.

    A token longer than a line is cut with ``fit_text``; past ``max_lines`` the last line
    ends in ``…``. Lines never exceed ``max_width`` (by the estimate).
    """
    lines: list[str] = []
    cur = ""
    for tok in _tokens(text):
        if text_width(cur + tok, font_size, bold) <= max_width:
            cur += tok
            continue
        if cur:
            lines.append(cur.rstrip())
        cur = tok
        while text_width(cur, font_size, bold) > max_width:  # one token wider than a line
            head = fit_text(cur, max_width, font_size, bold)[:-1]
            if not head:
                break
            lines.append(head)
            cur = cur[len(head):]
    if cur.strip():
        lines.append(cur.rstrip())
    if len(lines) > max_lines:
        rest = "".join(lines[max_lines - 1:])
        lines = lines[: max_lines - 1] + [fit_text(rest, max_width, font_size, bold)]
    return [fit_text(line, max_width, font_size, bold) for line in lines] or [""]


@dataclass(frozen=True)
class Box:
    """Axis-aligned rectangle: top-left ``(x, y)``, size ``w`` × ``h``."""

    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def intersects(self, other: Box, pad: float = 0.0) -> bool:
        """True when the boxes overlap (touching edges do not; ``pad`` widens ``self``)."""
        return (
            self.x - pad < other.right
            and other.x < self.right + pad
            and self.y - pad < other.bottom
            and other.y < self.bottom + pad
        )

    def inside(self, outer: Box) -> bool:
        return (
            self.x >= outer.x
            and self.y >= outer.y
            and self.right <= outer.right
            and self.bottom <= outer.bottom
        )


def text_box(
    x: float, baseline: float, text: str, font_size: float, anchor: str = "start",
    bold: bool = False,
) -> Box:
    """The box a one-line text occupies when drawn at ``(x, baseline)`` with ``anchor``."""
    w = text_width(text, font_size, bold)
    left = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
    # ascent ~0.93 em above the baseline, descent ~0.24 em below (DejaVu Sans)
    return Box(left, baseline - 0.93 * font_size, w, 1.17 * font_size)


@dataclass(frozen=True)
class AxisLabel:
    """A category label under a vertical-bar chart: centred lines and the box they occupy."""

    x: float
    y: float
    """Baseline of the first line."""
    lines: tuple[str, ...]
    full: str
    box: Box


def axis_labels(
    centers: Sequence[float],
    texts: Sequence[str],
    slot_width: float,
    top: float,
    font_size: float,
    *,
    max_lines: int = 3,
    line_height: float | None = None,
    bold: bool = False,
) -> tuple[AxisLabel, ...]:
    """Category labels centred under ``centers``, each wrapped into its own slot.

    Each label's lines fit in ``slot_width - 8`` (so two neighbours, ``slot_width`` apart,
    keep a gap of 8 units); the first baseline sits ``top + font_size``.
    """
    lh = line_height or font_size * 1.25
    width = max(slot_width - 8.0, font_size)
    out = []
    for cx, text in zip(centers, texts, strict=True):
        lines = tuple(wrap_text(text, width, font_size, max_lines, bold))
        w = max(text_width(line, font_size, bold) for line in lines)
        baseline = top + font_size
        h = (len(lines) - 1) * lh + 1.17 * font_size
        box = Box(cx - w / 2, baseline - 0.93 * font_size, w, h)
        out.append(AxisLabel(cx, baseline, lines, text, box))
    return tuple(out)


@dataclass(frozen=True)
class PlacedLabel:
    """A point label placed by :func:`place_point_labels`: where to draw it and its box."""

    x: float
    y: float
    anchor: str
    text: str
    box: Box


def place_point_labels(
    points: Sequence[tuple[float, float]],
    texts: Sequence[str],
    bounds: Box,
    font_size: float,
    *,
    radius: float = 5.0,
    obstacles: Sequence[Box] = (),
) -> tuple[PlacedLabel | None, ...]:
    """Greedy, collision-free labels for scatter points (``None``: no free spot, not drawn).

    Candidate spots around each point (right above, right below, left above, left below,
    above, below) are tried in order; a spot is taken when its box lies inside ``bounds`` and
    meets no placed label, no point marker and no ``obstacles``. Points are labelled in the
    given order, so callers put the points whose labels matter most first.
    """
    markers = [Box(px - radius, py - radius, 2 * radius, 2 * radius) for px, py in points]
    taken: list[Box] = list(obstacles)
    out: list[PlacedLabel | None] = []
    gap = radius + 2.0
    for (px, py), text in zip(points, texts, strict=True):
        placed = None
        for dx, dy, anchor in (
            (gap, -gap * 0.6, "start"),
            (gap, gap + font_size * 0.9, "start"),
            (-gap, -gap * 0.6, "end"),
            (-gap, gap + font_size * 0.9, "end"),
            (0.0, -gap - 2.0, "middle"),
            (0.0, gap + font_size + 1.0, "middle"),
        ):
            box = text_box(px + dx, py + dy, text, font_size, anchor)
            if not box.inside(bounds):
                continue
            if any(box.intersects(o, pad=1.0) for o in taken):
                continue
            if any(box.intersects(m) for m in markers):
                continue
            placed = PlacedLabel(px + dx, py + dy, anchor, text, box)
            taken.append(box)
            break
        out.append(placed)
    return tuple(out)
