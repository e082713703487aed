"""The embedded default (``make eval`` with no MODEL): the miniature study through the harness.

Evaluates both trained tiny models, ``llada-tiny`` on our ``llada`` backend and ``arm-tiny`` on
lm-eval's own ``hf`` backend, on the study's tasks (the training couplets forwards, the
held-out couplets in both directions, the arithmetic problems, the sum-choice likelihood
task; every document) and on a few
documents of every paper task (the subsets in tests/fixtures/data; HumanEval's programs run in
evalsuite's sandbox), writes one run per model under ``--output`` and the HTML comparison
report, and prints the report's path.

Usage: python scripts/miniature_eval.py [--output results/runs] [--report reports/miniature.html]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evalsuite.report.study import STUDY_TASKS  # the task names the report opens with

ROOT = Path(__file__).resolve().parents[1]
SHORT_PAPER_TASKS = ("llada_piqa", "llada_mmlu_anatomy", "llada_humaneval")
LONG_PAPER_TASKS = ("llada_gsm8k", "llada_math_algebra", "llada_bbh_boolean_expressions")
RUNS = ((STUDY_TASKS + SHORT_PAPER_TASKS, ()), (LONG_PAPER_TASKS, ("--limit", "1")))
DIFFUSION_ARGS = ("--gen-length", "32", "--steps", "32", "--block-length", "32", "--mc-num", "32")
"""The diffusion model's sampler for every generation task (answers here are short: a couplet
line is 4-7 tokens, an arithmetic solution under 32) and Monte Carlo samples for PIQA; MMLU
and the sum choice have one-token answers, where Eq. 6 is exact."""
MODELS = (("llada-tiny", DIFFUSION_ARGS), ("arm-tiny", ()))


def run_model(model: str, tasks: tuple[str, ...], extra: tuple[str, ...],
              args: argparse.Namespace) -> Path:
    """One ``evalsuite run``; returns the new run directory."""
    from evalsuite.cli import main

    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    code = main(["run", "--model", model, "--tasks", ",".join(tasks),
                 "--data-dir", str(args.data_dir), "--batch-size", str(args.batch_size),
                 "--output", str(out), "--allow-code-execution", *extra])
    new = sorted(p for p in set(out.iterdir()) - before if p.is_dir())
    if code != 0 or len(new) != 1:
        raise SystemExit(code or 2)
    return new[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=ROOT / "results" / "runs")
    ap.add_argument("--report", type=Path, default=ROOT / "reports" / "miniature.html")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "tests" / "fixtures" / "data")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args(argv)
    from evalsuite.cli import main as cli

    runs = [run_model(model, tasks, model_args + run_args, args)
            for tasks, run_args in RUNS for model, model_args in MODELS]
    code = cli(["report", *map(str, runs), "-o", str(args.report),
                "--title", "The miniature study: llada-tiny (diffusion) vs arm-tiny (autoregressive)"])
    if code == 0:
        print(f"report: {args.report}")
    return code


if __name__ == "__main__":
    sys.exit(main())
