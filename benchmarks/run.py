"""`make bench`: evalsuite against a reference mode of the official algorithm; writes bench.json.

Every speed figure is a ratio measured in this one process against a *reference mode*
implemented to follow the official LLaDA code exactly (one request at a time, whole-sequence
logits every step, no early exit; for likelihoods the round-spread estimator with every choice
scored separately), on random networks with LLaDA-8B's proportions (vocabulary head ~7% of the
multiply-adds) and on the bundled llada-tiny. Exact modes are asserted to return the reference's
outputs; approximate modes report their agreement.

- Generation (benchmarks/generation_bench.py): tokens/s at identical outputs, forward passes
  per request, early-exit savings; threshold decoding and the prefix/dual KV cache with speedup
  and agreement.
- Likelihood (benchmarks/likelihood_bench.py, when present): requests/s at equal precision,
  forward passes, the estimator's standard-deviation ratio.
- LLaDA2 (benchmarks/llada2_cache_bench.py): the exact block KV cache against the official
  full-recompute algorithm, forward FLOPs and wall time, on a random network with
  LLaDA2-mini's proportions (tokens asserted identical).
- Dream (benchmarks/dream_bench.py): Dream's reference mode (its sampler and estimator as its
  code runs them, one request at a time) against evalsuite's engine path, on a random network
  with Dream-7B's proportions (vocabulary head 7.7% of the multiply-adds): generation speed-up
  at identical outputs, likelihood requests/s at the same ``mc_num``.
- On a CUDA device (full runs only): a random full-size LLaDA-8B in bf16
  (benchmarks/llada8b_speed.py): tokens/s at batch 1, 8 and 32, likelihood requests/s, peak
  memory and the fraction of the device's bf16 peak.

Usage: python benchmarks/run.py [--quick] [--json bench.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

HERE = Path(__file__).resolve().parent


def _module(name: str) -> ModuleType | None:
    """Import benchmarks/<name>.py when the file exists (None otherwise)."""
    path = HERE / f"{name}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"evalsuite_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "platform": platform.platform(), "processor": platform.processor(),
                            "torch_threads": torch.get_num_threads(),
                            "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def generation_targets(generation: dict) -> dict[str, Any]:
    """Issue 9's generation targets as ratios from this run."""
    out: dict[str, Any] = {}
    for case in generation["cases"]:
        modes = {m["mode"]: m for m in case["modes"]}
        exact = modes["evalsuite exact, early exit on"]
        entry = {"exact_speedup_wall": exact["speedup"], "exact_speedup_cpu": exact["cpu_speedup"],
                 "exact_target": 2.0, "early_exit_nfe_saved": case["early_exit_nfe_saved"]}
        for name, mode in modes.items():
            if "approximate" in name:
                entry[name] = {"nfe_vs_exact": mode["nfe_vs_exact"],
                               "speedup_vs_reference": mode["speedup"],
                               "token_agreement": mode["token_agreement"],
                               "answer_agreement": mode["answer_agreement"]}
        out[case["case"]] = entry
    return out


def markdown(generation: dict) -> str:
    """The README's generation table, rendered from a bench.json's ``generation`` part."""
    lines = []
    for case in generation["cases"]:
        cfg = case["config"]
        lines += [f"**{case['case']}**: {case['requests']} requests, prompts "
                  f"{min(case['prompt_lengths'])}-{max(case['prompt_lengths'])} tokens, answers "
                  f"{min(case['answer_lengths'])}-{max(case['answer_lengths'])} tokens, "
                  f"gen_length {cfg['gen_length']}, blocks of {cfg['block_length']}, "
                  f"{cfg['steps']} steps, batch {case['batch_size']}; early exit saves "
                  f"{case['early_exit_nfe_saved']:.0%} of the passes.", "",
                  "| mode | tokens/s | NFE / request | speed-up (wall) | speed-up (CPU time) "
                  "| token agreement | same answer |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for m in case["modes"]:
            agree = (f"{m['token_agreement']:.0%} | {m['answer_agreement']:.0%}"
                     if "token_agreement" in m else "identical | identical"
                     if m.get("identical_to_reference") else "- | -")
            lines.append(f"| {m['mode']} | {m['tokens_per_s']:.1f} | {m['nfe_per_request']:.1f} "
                         f"| {m['speedup']:.2f}x | {m['cpu_speedup']:.2f}x | {agree} |")
        lines.append("")
    return "\n".join(lines)


def cuda_llada8b(json_path: Path) -> dict[str, Any]:
    """The full-size random LLaDA-8B on the GPU, in a subprocess (own memory accounting)."""
    cmd = [sys.executable, str(HERE / "llada8b_speed.py"), "--device", "cuda", "--dtype",
           "bfloat16", "--batches", "1,8,32", "--json", str(json_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(json_path.read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes (the test's smoke run)")
    ap.add_argument("--json", type=Path, default=Path("bench.json"))
    ap.add_argument("--skip-likelihood", action="store_true")
    ap.add_argument("--skip-dream", action="store_true")
    ap.add_argument("--markdown", type=Path, default=None,
                    help="only render the README table from an existing bench.json")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: on a shared machine more threads wait "
                    "on each other; both sides of every comparison use the same)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text())["generation"]))
        return 0
    t0 = time.perf_counter()
    result: dict[str, Any] = {"quick": args.quick, "machine": machine()}
    generation = _module("generation_bench")
    assert generation is not None, "benchmarks/generation_bench.py is missing"
    result["generation"] = generation.run_generation_bench(quick=args.quick)
    result["targets"] = {"generation": generation_targets(result["generation"])}
    likelihood = None if args.skip_likelihood else _module("likelihood_bench")
    if likelihood is None:
        result["likelihood"] = {"skipped": "benchmarks/likelihood_bench.py not present"
                                if not args.skip_likelihood else "--skip-likelihood"}
    else:
        print("\nlikelihood")
        result["likelihood"] = likelihood.run_likelihood_bench(quick=args.quick)
    llada2 = _module("llada2_cache_bench")
    if llada2 is not None:
        print("\nLLaDA2 block KV cache")
        result["llada2_cache"] = llada2.run(quick=args.quick)
    dream = None if args.skip_dream else _module("dream_bench")
    if dream is not None:
        print("\nDream")
        result["dream"] = dream.run_dream_bench(quick=args.quick)
    if torch.cuda.is_available() and not args.quick:
        print("\nCUDA: random full-size LLaDA-8B, bf16")
        result["llada8b_cuda"] = cuda_llada8b(args.json.with_name("bench_llada8b.json"))
    result["seconds"] = time.perf_counter() - t0
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
