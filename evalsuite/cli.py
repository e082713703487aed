"""Command line: ``evalsuite run | tasks | models | report | gate``.

Thin over the Python API; heavy imports happen inside the commands. User errors print one
message (no traceback) and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalsuite.errors import EvalsuiteError

if TYPE_CHECKING:
    from evalsuite.runner import Plan, RunSpec



def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def add_run_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="evaluate a model on tasks and store the result",
                       description="Evaluate a model on tasks through lm-eval; writes a run "
                       "directory under --output.")
    p.add_argument("--model", required=True, help="preset name (see `evalsuite models`), "
                   "local checkpoint directory or hub id")
    p.add_argument("--tasks", required=True, type=_csv, help="comma-separated task names, "
                   "short (gsm8k) or full (llada_gsm8k); see `evalsuite tasks`")
    p.add_argument("--limit", type=int, default=None, help="documents per task")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--output", type=Path, default=Path("results/runs"))
    p.add_argument("--data-dir", type=Path, default=None,
                   help="offline data directory in the layout of shared/data "
                   "(default: $EVALSUITE_DATA_DIR, else the hub datasets)")
    p.add_argument("--seed", type=int, default=1234, help="run seed: lm-eval's seeds and the base "
                   "of the per-request generators (request, settings, repeat index)")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16")
    p.add_argument("--backend", choices=("llada", "hf", "vllm"), default=None)
    p.add_argument("--revision", default=None, help="hub revision of the weights")
    fam = p.add_mutually_exclusive_group()
    fam.add_argument("--instruct", dest="family", action="store_const", const="instruct",
                     help="instruct protocol (chat template, Instruct settings)")
    fam.add_argument("--base", dest="family", action="store_const", const="base")
    p.add_argument("--num-fewshot", type=int, default=None, help="few-shot examples (lm-eval's "
                   "--num_fewshot; default: the task's)")
    p.add_argument("--system-instruction", default=None, help="system message (lm-eval's "
                   "--system_instruction)")
    p.add_argument("--gen-kwargs", default=None, help="generation kwargs added to every "
                   "generation task, lm-eval syntax: max_gen_toks=64,temperature=0.5")
    p.add_argument("--apply-chat-template", action=argparse.BooleanOptionalAction, default=None,
                   help="apply the tokenizer's chat template (default: for instruct models)")
    p.add_argument("--fewshot-as-multiturn", action=argparse.BooleanOptionalAction, default=None,
                   help="few-shot examples as chat turns (default: with the chat template)")
    p.add_argument("--predict-only", action="store_true", help="generate and store the outputs "
                   "without scoring (lm-eval's --predict_only)")
    p.add_argument("--wandb-args", default=None, help="log to Weights & Biases through lm-eval's "
                   "WandbLogger (project=...,name=...); needs `pip install wandb`")
    p.add_argument("--allow-code-execution", action="store_true",
                   help="confirm running model-written code (HumanEval) in the sandbox")
    p.add_argument("--include-path", type=Path, action="append", default=[],
                   help="extra lm-eval task directory (repeatable)")
    c = p.add_mutually_exclusive_group()
    c.add_argument("--cache-dir", type=Path, default=None,
                   help="request cache: finished requests are kept here, so re-running a "
                   "killed command computes only what is missing (default: "
                   "$EVALSUITE_CACHE_DIR, else results/cache)")
    c.add_argument("--no-cache", action="store_true", help="run without the request cache")
    from evalsuite.settings.knobs import add_flags

    add_flags(p.add_argument_group("diffusion settings (override the task's; see docs/usage.md "
                                   "'Settings')"))
    p.set_defaults(func=cmd_run)


def _env_data_dir(flag: Path | None) -> Path | None:
    """``--data-dir``, else ``$EVALSUITE_DATA_DIR``, else None (the hub)."""
    from evalsuite.tasks.data import DATA_DIR_ENV

    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return flag or (Path(value) if value else None)


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The :class:`~evalsuite.runner.RunSpec` of ``evalsuite run``. The environment is read
    here, once (``EVALSUITE_DATA_DIR``, ``EVALSUITE_ALLOW_CODE_EXECUTION``,
    ``EVALSUITE_CACHE_DIR``); the library below takes parameters."""
    from evalsuite.models.request_cache import CACHE_DIR_ENV, DEFAULT_CACHE_DIR
    from evalsuite.runner import RunSpec
    from evalsuite.sandbox import ALLOW_ENV
    from evalsuite.settings.knobs import from_namespace

    overrides = from_namespace(args)
    data_dir = _env_data_dir(args.data_dir)
    allow_code = args.allow_code_execution or os.environ.get(ALLOW_ENV, "").strip() == "1"
    return RunSpec(
        model=args.model, tasks=args.tasks, limit=args.limit, device=args.device,
        batch_size=args.batch_size, output=args.output, data_dir=data_dir, seed=args.seed,
        overrides=overrides, backend=args.backend, family=args.family, dtype=args.dtype,
        revision=args.revision, num_fewshot=args.num_fewshot,
        allow_code_execution=allow_code, include_path=tuple(args.include_path),
        cache_dir=None if args.no_cache else (
            args.cache_dir or Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)),
        gen_kwargs=_gen_kwargs(args.gen_kwargs), system_instruction=args.system_instruction,
        apply_chat_template=args.apply_chat_template,
        fewshot_as_multiturn=args.fewshot_as_multiturn, predict_only=args.predict_only,
        wandb_args=args.wandb_args,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from evalsuite.runner import evaluate, plan

    p = plan(spec_from_args(args))
    # under `accelerate launch` / `torchrun` every rank runs this command; rank 0 alone talks
    if _launch_rank() == 0:
        _announce(p, verbose=args.verbose)
    run_dir = evaluate(p)
    if run_dir is not None:  # rank 0 (or a single process) wrote the run
        _print_summary(run_dir)
    return 0


def _launch_rank() -> int:
    """This process's rank as the launcher (``torchrun``, ``accelerate launch``) set it in
    ``RANK``; 0 when run plainly."""
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def _announce(p: Plan, *, verbose: bool) -> None:
    """What will run: model, tasks, family, warnings (stderr)."""
    kind = p.architecture if p.preset.backend == "llada" else f"ARM, {p.preset.backend}"
    print(f"evalsuite: {p.preset.name} ({kind}, {p.preset.dtype}) on "
          f"{', '.join(p.task_names)}", file=sys.stderr)
    print(f"evalsuite: family {p.preset.family} ({p.preset.family_reason}); chat template "
          f"{'on' if p.apply_chat_template else 'off'}", file=sys.stderr)
    if verbose:
        from evalsuite.settings import describe

        for task in p.tasks:
            print(f"evalsuite: {task.name}: {describe(task.config, task.provenance)}",
                  file=sys.stderr)
    for task in p.tasks:
        if task.provenance.ignored_gen_kwargs:
            print(f"evalsuite: warning: {task.name}: generation kwargs "
                  f"{', '.join(sorted(task.provenance.ignored_gen_kwargs))} are not supported by "
                  "the diffusion sampler and are ignored (recorded in the run)", file=sys.stderr)


def _gen_kwargs(text: str | None) -> dict[str, Any]:
    """lm-eval's ``--gen_kwargs`` syntax (``k=v,k=v``), parsed the way lm-eval parses it."""
    if not text:
        return {}
    from evalsuite.errors import ConfigError

    hint = (f"--gen-kwargs {text!r}: expected key=value pairs separated by commas, "
            "e.g. --gen-kwargs max_gen_toks=64,temperature=0.5")
    if any("=" not in part for part in text.split(",") if part.strip()):
        raise ConfigError(hint)
    try:
        from lm_eval.utils import simple_parse_args_string

        return dict(simple_parse_args_string(text))
    except (ValueError, IndexError):
        raise ConfigError(hint) from None


def _print_summary(run_dir: Path) -> None:
    import json

    record = json.loads((run_dir / "run.json").read_text())
    print(f"run written to {run_dir}")
    tasks = record.get("tasks") or {}
    requested = [t for t in record.get("requested_tasks") or [] if t in tasks]
    for task, info in ((t, tasks[t]) for t in (requested or sorted(tasks))):
        metrics = info.get("metrics") or {}
        shown = ", ".join(
            f"{m}={v['value']:.4f}±{v.get('stderr') or 0:.4f}" if isinstance(v, dict) else f"{m}={v}"
            for m, v in metrics.items()
        )
        print(f"  {task}: {shown}")


def add_tasks_parser(sub: Any) -> None:
    p = sub.add_parser("tasks", help="list every task and group",
                       description="List every task and group of the suite: kind, documents "
                       "where the data is local, and where its diffusion settings come from.")
    p.add_argument("--filter", default=None, metavar="SUBSTRING",
                   help="only names containing SUBSTRING (case-insensitive)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="offline data directory (layout of shared/data) to count documents in "
                   "(default: $EVALSUITE_DATA_DIR; without one only the tasks whose data ships "
                   "in the package are counted)")
    p.add_argument("--path", action="store_true",
                   help="print the directory of the task YAMLs (for lm_eval --include_path)")
    p.set_defaults(func=cmd_tasks)


def cmd_tasks(args: argparse.Namespace) -> int:
    from evalsuite.errors import ConfigError
    from evalsuite.tasks.catalog import build_catalog, documents, settings_source
    from evalsuite.tasks.data import DATA_DIR_ENV
    from evalsuite.tasks.registry import SHORT_NAMES, tasks_dir

    if args.path:
        print(tasks_dir())
        return 0
    data_dir = _env_data_dir(args.data_dir)
    if data_dir is not None and not data_dir.is_dir():
        raise ConfigError(f"data directory {data_dir} does not exist; pass a directory in the "
                          "layout of shared/data or omit --data-dir")
    catalog = build_catalog()
    entries = catalog.select(args.filter)
    if not entries:
        import difflib

        close = difflib.get_close_matches(args.filter or "", catalog.entries, n=3, cutoff=0.5)
        print(f"no task or group name contains {args.filter!r}"
              + ("; did you mean " + " or ".join(map(repr, close)) + "?" if close else ""))
        return 0
    width = max(len(e.name) for e in entries)
    memo: dict[str, int | str | None] = {}
    print(f"{'name':{width}s}  {'kind':5s}  {'docs':>7s}  settings")
    for entry in entries:
        docs = documents(catalog, entry.name, data_dir, memo)
        print(f"{entry.name:{width}s}  {entry.kind:5s}  {'-' if docs is None else docs!s:>7s}  "
              f"{settings_source(catalog, entry.name)}")
    groups = sum(e.kind == "group" for e in entries)
    print(f"{len(entries)} names ({len(entries) - groups} tasks, {groups} groups) in {tasks_dir()}")
    print("docs: documents of the evaluation split where the data is local ("
          + (f"{data_dir}" if data_dir else "none given: --data-dir or $" + DATA_DIR_ENV)
          + ", or shipped in the package); -: read from the hub at run time")
    print("settings: where gen_length (generation) or mc_num (likelihood) comes from without "
          "flags: the paper table, the task YAML, or the default")
    print("short names: " + ", ".join(f"{short} -> {full}" for short, full in SHORT_NAMES.items()))
    return 0


def add_models_parser(sub: Any) -> None:
    p = sub.add_parser("models", help="list the model presets")
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from evalsuite.presets import PRESETS

    rows = [("preset", "backend", "architecture", "family", "dtype", "weights")]
    for preset in PRESETS.values():
        architecture = preset.architecture or ("llada" if preset.backend == "llada" else "arm")
        rows.append((preset.name, preset.backend, architecture, preset.family, preset.dtype,
                     preset.hub_id if not preset.hub_id.startswith("/") else "bundled"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evalsuite",
        description="Evaluate masked diffusion LMs (LLaDA, Dream, LLaDA-MoE, LLaDA2) and ARM baselines.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    add_run_parser(sub)
    add_tasks_parser(sub)
    add_models_parser(sub)
    from evalsuite.report.cli import add_gate_parser, add_report_parser

    add_report_parser(sub)
    add_gate_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except EvalsuiteError as exc:
        print(f"evalsuite: error: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", ()):
            print(f"evalsuite: {note}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("evalsuite: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped (`evalsuite tasks | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
