"""``evalsuite report`` and ``evalsuite gate``: thin commands over the report and gate APIs.

The lead's ``evalsuite/cli.py`` calls :func:`add_report_parser` and :func:`add_gate_parser`;
``python -m evalsuite.report.cli {report,gate} ...`` runs them standalone. Each command
returns an exit code: 0 ok/pass, 1 regression or changed outputs (gate only), 2 unusable input
or any unexpected error. An unexpected exception (a bug, a full disk, an unwritable output
path) is reported on stderr with its traceback and exits 2, never 1: a CI job reading 1 as
"the candidate regressed" must not be told so by a crash.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalsuite.errors import EXIT_OK, EXIT_USAGE, EvalsuiteError

DEFAULT_POLICY = Path("gate-policy.json")


def _err(message: str) -> None:
    print(f"evalsuite: {message}", file=sys.stderr)


def _internal_error(command: str, exc: BaseException) -> str:
    """Print an unexpected exception with its traceback; return the one-line message."""
    message = (
        f"{command}: unexpected error ({type(exc).__name__}: {exc}); exit 2, not a "
        "regression verdict. If this is not an unwritable path or a full disk, it is a bug "
        "in evalsuite: please report it with the traceback above"
    )
    traceback.print_exception(exc, file=sys.stderr)
    _err(message)
    return message


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
    """Command body of ``evalsuite report``; any unexpected error exits 2 with a message."""
    try:
        return _report(args)
    except EvalsuiteError:
        raise
    except Exception as exc:  # noqa: BLE001 - the exit-code contract covers every failure
        _internal_error("report", exc)
        return EXIT_USAGE


def _report(args: argparse.Namespace) -> int:
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
    p.add_argument(
        "--identity",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="turn identity mode on or off, overriding the policy's identity.enabled: with "
        "unchanged settings and deterministic requests every sample must equal the baseline's",
    )
    p.add_argument("--markdown", metavar="FILE", help="also write the Markdown summary here")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML here")
    p.set_defaults(func=run_gate)
    return p


def run_gate(args: argparse.Namespace) -> int:
    """Command body of ``evalsuite gate``; any unexpected error exits 2 with a message.

    The Markdown and JUnit files are still written on an unexpected error (as an unusable
    input naming the error), so a CI job shows why the gate did not decide.
    """
    from evalsuite.gate import GateDecision, to_junit, to_markdown

    try:
        return _gate(args)
    except EvalsuiteError:
        raise
    except Exception as exc:  # noqa: BLE001 - the exit-code contract covers every failure
        message = _internal_error("gate", exc)
        decision = GateDecision(
            str(args.baseline), str(args.candidate), (), (message,), args.allow_setting_changes
        )
        print(to_markdown(decision), end="")
        for path, render in ((args.markdown, to_markdown), (args.junit, to_junit)):
            if path:
                try:
                    _write_text(path, render(decision))
                except Exception as again:  # noqa: BLE001 - already failing; say so, exit 2
                    _err(f"gate: could not write {path} either ({again})")
        return EXIT_USAGE


def _write_text(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def _write_outputs(decision: Any, args: argparse.Namespace) -> str:
    """Write the Markdown/JUnit files the user asked for; return the Markdown."""
    from evalsuite.gate import to_junit, to_markdown

    markdown = to_markdown(decision)
    if args.markdown:
        _write_text(args.markdown, markdown)
    if args.junit:
        _write_text(args.junit, to_junit(decision))
    return markdown


def _gate(args: argparse.Namespace) -> int:
    import dataclasses

    from evalsuite.errors import ResultsError
    from evalsuite.gate import GateDecision, GatePolicy, decide, load_policy
    from evalsuite.gate_identity import describe_diffs
    from evalsuite.results.store import read_run

    if args.policy:
        policy = load_policy(args.policy)
    elif DEFAULT_POLICY.exists():
        policy = load_policy(DEFAULT_POLICY)
    else:
        policy = GatePolicy()
    if args.identity is not None:
        policy = dataclasses.replace(
            policy, identity=dataclasses.replace(policy.identity, enabled=args.identity)
        )
    try:
        baseline = read_run(args.baseline)
        candidate = read_run(args.candidate)
        decision = decide(
            baseline, candidate, policy, allow_setting_changes=args.allow_setting_changes
        )
    except ResultsError as exc:
        _err(str(exc))
        decision = GateDecision(
            str(args.baseline),
            str(args.candidate),
            (),
            (str(exc),),
            args.allow_setting_changes,
            policy.identity,
        )
    markdown = _write_outputs(decision, args)
    print(markdown, end="")
    for t in decision.tasks:
        if t.status in ("missing", "incomparable"):
            _err(f"{t.task}: {t.reason}")
        if t.identity is not None and t.identity.failed:
            _err(f"{t.task}: identity mode: {t.identity.reason}")
            for line in describe_diffs(t.identity.diffs):
                _err(f"  {line}")
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
