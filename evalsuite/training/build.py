"""``python -m evalsuite.training`` (``make tiny-models``): data, tokenizer and both checkpoints.

Steps: check the inputs and outputs (exit 2 with the file named on a missing poem file, an
unwritable output directory or a corrupt existing checkpoint); write the miniature data to
``<out>/miniature``; train the shared tokenizer; train the diffusion model and the
autoregressive model on the same stream; write each checkpoint to a hidden
``.<name>.partial`` directory and rename it into place only when complete, with its
``training_log.jsonl`` (one line per optimizer step) and ``training.json`` (settings, time,
sizes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evalsuite.errors import CheckpointError, ConfigError, EvalsuiteError
from evalsuite.resources import package_path

ASSETS = package_path("assets")
DATA_NAME = "miniature"
POEM_FILE = "poem_data.json"
NAMES = {"llada": "llada-tiny", "arm": "arm-tiny"}
N_ARITH_TRAIN, N_ARITH_TEST, N_SUM_TEST = 1500, 200, 200
VOCAB_SIZE = 2048


@dataclass(frozen=True)
class MiniatureData:
    """The miniature study's text data, as written to ``<out>/miniature``."""

    poems: list[dict[str, str]]
    heldout: list[int]
    arith_train: list[dict[str, str]]
    arith_test: list[dict[str, str]]
    sums_train: list[dict[str, Any]]
    sums_test: list[dict[str, Any]]


def read_poems(path: Path) -> list[dict[str, str]]:
    """The couplets of ``poem_data.json``; a missing or malformed file raises ConfigError."""
    if not path.is_file():
        raise ConfigError(
            f"missing poem data {path}; copy shared/data/llada_poem/poem_data.json there "
            "(data/poem_data.json of github.com/ML-GSAI/LLaDA) or pass --poems FILE"
        )
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [{"first": r["first"], "second": r["second"], "source": r["source"]} for r in rows]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a list of {{first, second, source}} couplets ({exc})") from None


def make_data(poems: list[dict[str, str]], seed: int) -> MiniatureData:
    from evalsuite.training import corpus

    arith_train, arith_test = corpus.arithmetic_splits(seed, N_ARITH_TRAIN, N_ARITH_TEST)
    sums_train, sums_test = corpus.sum_choice_splits(seed, N_SUM_TEST)
    return MiniatureData(poems, corpus.poem_split(poems, seed),
                         [p.as_dict() for p in arith_train], [p.as_dict() for p in arith_test],
                         sums_train, sums_test)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_data(data: MiniatureData, directory: Path) -> None:
    """The generated splits and the held-out couplet list (the poems themselves are input)."""
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write(directory / "poem_heldout.json", json.dumps(data.heldout) + "\n")
    _atomic_write(directory / "arith_train.jsonl", _jsonl(data.arith_train))
    _atomic_write(directory / "arith_test.jsonl", _jsonl(data.arith_test))
    _atomic_write(directory / "sum_choice_train.jsonl", _jsonl(data.sums_train))
    _atomic_write(directory / "sum_choice_test.jsonl", _jsonl(data.sums_test))


def check_writable(directory: Path) -> None:
    """Raise ConfigError naming ``directory`` when files cannot be created in it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"output directory {directory} is not writable ({exc.strerror}); pass --out DIR "
            "with a writable directory"
        ) from None


def _corrupt(path: Path, directory: Path, exc: Exception) -> CheckpointError:
    return CheckpointError(f"{path}: corrupt existing checkpoint file ({exc}); delete {directory} "
                           "(or pass --force) and run make tiny-models again")


def check_existing(directory: Path) -> None:
    """An existing checkpoint must be readable before it is replaced: a truncated or corrupt
    file means something else went wrong (raise CheckpointError naming the file)."""
    if not directory.exists():
        return
    from safetensors import safe_open

    config = directory / "config.json"
    if config.exists():
        try:
            json.loads(config.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _corrupt(config, directory, exc) from None
    for path in sorted(directory.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():
                    handle.get_tensor(key)
        except Exception as exc:
            raise _corrupt(path, directory, exc) from None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_one(kind: str, cfg: Any, vocab: Any, stream: Any, tokenizer_dir: Path, out: Path,
              log: Any = print) -> dict[str, Any]:
    """Train one model and publish it to ``out/<name>``; returns its summary."""
    import torch

    from evalsuite.training import train

    name = NAMES[kind]
    final = out / name
    tmp = train.partial_dir(final)
    if tmp.exists():
        log(f"removing {tmp} left by an interrupted run")
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    started = time.time()
    with open(tmp / train.LOG_NAME, "w", encoding="utf-8") as f:
        def on_step(row: dict[str, Any]) -> None:
            f.write(json.dumps(row) + "\n")
            if row["step"] % 100 == 0:
                f.flush()
                log(f"{name} step {row['step']} {row['pool']} loss {row['loss']:.4f}")

        model, losses = train.step_losses(kind, cfg, vocab, stream, on_step=on_step)  # type: ignore[arg-type]
    seconds = time.time() - started
    if kind == "llada":
        train.save_llada(model, cfg, vocab, tmp)  # type: ignore[arg-type]
    else:
        train.save_llama(model, tmp)
    for f_name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tokenizer_dir / f_name, tmp / f_name)
    weights = tmp / "model.safetensors"
    summary = {
        "model": name, "kind": kind, "train_config": train.train_config_dict(cfg),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(seconds, 1), "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__, "final_loss": losses[-1],
        "checkpoint_bytes": weights.stat().st_size, "model_sha256": sha256(weights),
    }
    (tmp / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    train.publish(tmp, final)
    log(f"wrote {final} in {seconds:.0f} s ({summary['checkpoint_bytes'] / 2**20:.1f} MiB)")
    return summary


def build_stream(data: MiniatureData, tok: Any, seed: int = 0) -> Any:
    """Tokenize every training pool with the shared tokenizer."""
    from evalsuite.training import corpus
    from evalsuite.training.train import Stream

    def enc(text: str) -> list[int]:
        return list(tok.encode(text).ids)

    pools = corpus.training_pools(data.poems, data.heldout, data.arith_train, data.sums_train, seed)
    return Stream({name: [(enc(p), enc(a)) for p, a in pairs] for name, pairs in pools.items()})


def vocab_of(tok: Any) -> Any:
    from evalsuite.training import tokenizer
    from evalsuite.training.train import Vocab

    return Vocab(tok.get_vocab_size(), tok.token_to_id(tokenizer.EOS), tok.token_to_id(tokenizer.MASK))


def poem_texts(poems: list[dict[str, str]]) -> list[str]:
    from evalsuite.training import corpus

    return ([corpus.couplet_text(p) for p in poems] + [corpus.FORWARD_PROMPT.format(**p) for p in poems]
            + [corpus.BACKWARD_PROMPT.format(**p) for p in poems])


def run(args: argparse.Namespace, log: Any = print) -> list[dict[str, Any]]:
    import torch

    from evalsuite.training import corpus, tokenizer
    from evalsuite.training.train import TrainConfig

    out: Path = args.out
    poems = read_poems(args.poems)
    check_writable(out)
    kinds = ["llada", "arm"] if args.only is None else [args.only]
    if not args.force:
        for kind in kinds:
            check_existing(out / NAMES[kind])
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    data = make_data(poems, args.seed)
    write_data(data, out / DATA_NAME)
    other = corpus.tokenizer_texts(data.arith_train, data.sums_train)
    tok = tokenizer.train_tokenizer(poem_texts(poems), other, VOCAB_SIZE)
    split = tokenizer.multi_token_characters(tok, poem_texts(poems))
    if split:
        raise ConfigError(f"tokenizer splits poem characters {''.join(split[:10])}; raise VOCAB_SIZE")
    tok_dir = out / f".{DATA_NAME}-tokenizer.{os.getpid()}.partial"
    shutil.rmtree(tok_dir, ignore_errors=True)
    tok_dir.mkdir()
    tokenizer.write_tokenizer_files(tok, tok_dir)
    cfg = TrainConfig()
    if args.train_seed is not None:
        cfg = replace(cfg, seed=args.train_seed)
    if args.steps is not None:
        cfg = replace(cfg, steps=min(cfg.steps, args.steps))
    stream, vocab = build_stream(data, tok, args.seed), vocab_of(tok)
    try:
        if min(args.jobs, len(kinds)) <= 1:
            return [train_one(k, cfg, vocab, stream, tok_dir, out, log) for k in kinds]
        return train_parallel(kinds, cfg, vocab, stream, tok_dir, out, args.threads)
    finally:
        shutil.rmtree(tok_dir, ignore_errors=True)


def _train_in_worker(kind: str, cfg: Any, vocab: Any, stream: Any, tok_dir: Path, out: Path,
                     threads: int) -> dict[str, Any]:
    """One model in a worker process: the same thread count and deterministic kernels as a
    sequential run, so the loss values are identical either way."""
    import torch

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    return train_one(kind, cfg, vocab, stream, tok_dir, out, lambda msg: print(msg, flush=True))


def train_parallel(kinds: list[str], cfg: Any, vocab: Any, stream: Any, tok_dir: Path, out: Path,
                   threads: int) -> list[dict[str, Any]]:
    """Both models at once, one process each (a 2-core machine trains both in the time of one).

    The workers print their progress themselves (a ``log`` callable does not cross processes).
    The first failure is raised at once and the other worker is stopped; its partial directory
    stays hidden, as after an interrupted run."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(kinds), mp_context=context) as pool:
        futures = [pool.submit(_train_in_worker, k, cfg, vocab, stream, tok_dir, out, threads)
                   for k in kinds]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f.done() and f.exception() is not None]
        if failed:  # report at once; the other model's partial directory stays hidden
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            raise failed[0].exception()  # type: ignore[misc]
        return [f.result() for f in futures]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m evalsuite.training",
                                 description="Train the miniature study's llada-tiny and arm-tiny.")
    ap.add_argument("--poems", type=Path, default=ASSETS / DATA_NAME / POEM_FILE,
                    help="poem_data.json (default: the copy in evalsuite/assets/miniature)")
    ap.add_argument("--out", type=Path, default=ASSETS,
                    help="output directory for llada-tiny/, arm-tiny/, miniature/ (default: evalsuite/assets)")
    ap.add_argument("--only", choices=["llada", "arm"], help="train one of the two models")
    ap.add_argument("--seed", type=int, default=0,
                    help="data seed: the arithmetic and sum splits, the held-out couplets, the "
                    "2-shot training prompts (default 0: the task files in evalsuite/assets/miniature)")
    ap.add_argument("--train-seed", type=int,
                    help="training seed: initial weights, batch order, diffusion masks "
                    "(default: TrainConfig.seed, the committed checkpoints')")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (the committed logs used 1; more threads oversubscribe a "
                    "busy machine, and the loss values do not depend on it)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="models trained at once, one process each (default: 2 where the machine "
                    "has 2 cores; the losses do not depend on it)")
    ap.add_argument("--steps", type=int, help="stop after this many steps (smoke runs only)")
    ap.add_argument("--force", action="store_true", help="replace corrupt existing checkpoints")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        run(args)
    except EvalsuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0
