"""Draw the miniature study's loss curves: docs/miniature-loss.svg and, with Chromium, .png.

Usage: python scripts/plot_training.py [--assets evalsuite/assets] [--out docs/miniature-loss]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from evalsuite.training.plot import read_log, svg_loss_curves

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=Path, default=ROOT / "evalsuite" / "assets")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "miniature-loss")
    args = ap.parse_args(argv)
    series, sft_start = {}, None
    for name, label in (("llada-tiny", "llada-tiny (masked diffusion, 1/t-weighted CE)"),
                        ("arm-tiny", "arm-tiny (autoregressive, next-token CE)")):
        log = args.assets / name / "training_log.jsonl"
        if not log.is_file():
            print(f"error: missing training log {log}; run make tiny-models first", file=sys.stderr)
            return 2
        rows = read_log(log)
        series[label] = [r["loss"] for r in rows]
        sft_start = next((r["step"] for r in rows if r.get("phase") == "sft"), None)
    svg = svg_loss_curves(series, phase_change=sft_start)
    svg_path = args.out.with_suffix(".svg")
    svg_path.write_text(svg)
    print(svg_path)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium not found: PNG not rendered", file=sys.stderr)
        return 0
    png = args.out.with_suffix(".png").resolve()
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        f"--user-data-dir={profile}", "--hide-scrollbars",
                        f"--screenshot={png}", "--window-size=760,380", svg_path.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
