"""``evalsuite report`` and ``evalsuite gate``: thin commands over the report and gate APIs.

The lead's ``evalsuite/cli.py`` calls :func:`add_report_parser` and :func:`add_gate_parser`;
``python -m evalsuite.report.cli {report,gate} ...`` runs them standalone. Each command
returns an exit code: 0 ok/pass, 1 regression (gate), 2 unusable input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalsuite.errors import EXIT_OK, EXIT_USAGE, EvalsuiteError

DEFAULT_POLICY = Path("gate-policy.json")


def _err(message: str) -> None:
    print(f"evalsuite: {message}", file=sys.stderr)


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``report RUN_OR_DIR... [--baseline RUN] -o FILE``."""
    p = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report over runs",
        description="Write one self-contained HTML report (opens offline) comparing runs. "
        "Inputs that cannot be read are listed in the report and on stderr (exit 2).",
    )
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_OR_DIR",
        help="run directories, or directories of runs (e.g. results/runs)",
    )
    p.add_argument(
        "--baseline",
        metavar="RUN",
        help="run to compare the others against (default: the first run)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default="reports/report.html",
        help="HTML file to write (default: reports/report.html)",
    )
    p.add_argument("--title", default="evalsuite report", help="report title")
    p.set_defaults(func=run_report)
    return p


def run_report(args: argparse.Namespace) -> int:
    """Command body of ``evalsuite report``."""
    from evalsuite.report.render import write_html
    from evalsuite.report.table import build_report
    from evalsuite.results.convert import utc_now_iso
    from evalsuite.results.store import read_run, read_runs

    baseline = None
    if args.baseline:
        baseline = read_run(args.baseline)
    runs, skipped = read_runs(args.runs, on_error="skip")
    for s in skipped:
        _err(f"skipped {s.message}")
    if baseline is not None:
        runs = [r for r in runs if r.path.resolve() != baseline.path.resolve()]
    if not runs and baseline is None:
        _err("no readable run among the inputs; nothing to report")
        return EXIT_USAGE
    report = build_report(
        runs if baseline is None else [baseline, *runs],
        baseline=baseline,
        skipped=skipped,
        title=args.title,
        generated_utc=utc_now_iso(),
    )
    out = write_html(report, args.output)
    total = len(report.runs)
    print(f"wrote {out} ({total} run(s), {len(skipped)} skipped)")
    return EXIT_USAGE if skipped else EXIT_OK


def add_gate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``gate --baseline RUN --candidate RUN [--policy FILE] ...``."""
    p = subparsers.add_parser(
        "gate",
        help="fail on a significant regression of a candidate run against a baseline run",
        description="Compare a candidate run with a baseline run task by task (paired tests on "
        "shared samples). Exit 0 pass, 1 regression, 2 unusable input.",
    )
    p.add_argument("--baseline", required=True, metavar="RUN")
    p.add_argument("--candidate", required=True, metavar="RUN")
    p.add_argument(
        "--policy",
        metavar="FILE",
        help=f"policy JSON (default: ./{DEFAULT_POLICY} if present, else built-in "
        "defaults: allowed drop 0.02, alpha 0.05, test auto)",
    )
    p.add_argument(
        "--allow-setting-changes",
        action="store_true",
        help="compare even when task versions or settings differ (listed in output)",
    )
    p.add_argument("--markdown", metavar="FILE", help="also write the Markdown summary here")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML here")
    p.set_defaults(func=run_gate)
    return p


def run_gate(args: argparse.Namespace) -> int:
    """Command body of ``evalsuite gate``."""
    from evalsuite.errors import ResultsError
    from evalsuite.gate import GateDecision, GatePolicy, decide, load_policy, to_junit, to_markdown
    from evalsuite.results.store import read_run

    if args.policy:
        policy = load_policy(args.policy)
    elif DEFAULT_POLICY.exists():
        policy = load_policy(DEFAULT_POLICY)
    else:
        policy = GatePolicy()
    try:
        baseline = read_run(args.baseline)
        candidate = read_run(args.candidate)
        decision = decide(
            baseline, candidate, policy, allow_setting_changes=args.allow_setting_changes
        )
    except ResultsError as exc:
        _err(str(exc))
        decision = GateDecision(
            str(args.baseline), str(args.candidate), (), (str(exc),), args.allow_setting_changes
        )
    markdown = to_markdown(decision)
    print(markdown, end="")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(markdown, encoding="utf-8")
    if args.junit:
        Path(args.junit).parent.mkdir(parents=True, exist_ok=True)
        Path(args.junit).write_text(to_junit(decision), encoding="utf-8")
    for t in decision.tasks:
        if t.status in ("missing", "incomparable"):
            _err(f"{t.task}: {t.reason}")
    return decision.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m evalsuite.report.cli {report,gate} ...``."""
    parser = argparse.ArgumentParser(prog="evalsuite")
    sub = parser.add_subparsers(dest="command", required=True)
    add_report_parser(sub)
    add_gate_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except EvalsuiteError as exc:
        _err(str(exc))
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
