"""Screenshot an HTML report in headless Chromium (for docs/images/miniature-report.png).

Usage: python scripts/screenshot_report.py REPORT.html OUT.png [--width 1280] [--max-height N]

Opens the report offline at a ``--width``-pixel-wide viewport, refuses (exit 1) when the page
is wider than the viewport or a chart's labels overlap, and writes the whole page (up to
``--max-height`` pixels) as a PNG. Needs chromium and the websocket-client package (dev extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="the HTML report")
    ap.add_argument("out", type=Path, help="PNG to write")
    ap.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels")
    ap.add_argument("--max-height", type=int, default=16000, help="cut the page at this height")
    args = ap.parse_args(argv)
    from evalsuite.report.browser import (
        chromium_page,
        label_problems,
        open_page,
        page_overflow,
        screenshot,
    )

    if not args.report.is_file():
        print(f"screenshot_report: no such file {args.report}", file=sys.stderr)
        return 2
    try:
        with chromium_page(width=args.width) as page:
            open_page(page, args.report, width=args.width)
            overflow, labels = page_overflow(page), label_problems(page)
            out = screenshot(page, args.out, width=args.width, max_height=args.max_height)
    except RuntimeError as exc:
        print(f"screenshot_report: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    ok = True
    if overflow["scrollWidth"] > overflow["clientWidth"] or overflow["count"]:
        ok = False
        print(f"page wider than {args.width}px: {overflow}", file=sys.stderr)
    if labels["count"]:
        ok = False
        print("overlapping or cut-off chart labels:\n  " + "\n  ".join(labels["problems"]),
              file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
