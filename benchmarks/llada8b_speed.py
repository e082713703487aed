"""Speed and memory of the full-size LLaDA-8B architecture with random weights (no download).

For a GPU machine: `python benchmarks/llada8b_speed.py --device cuda --dtype bfloat16
--batches 1,8,32` (``make bench`` runs it so when CUDA is available). Prints forward latency,
generation throughput (tokens/s, NFE) at each batch size with the fraction of the device's
dense bf16 peak reached, a 4-choice MMLU-style likelihood batch, likelihood requests/s at
mc_num 128, and peak memory. `--tiny` runs the same code on a small config (the CPU smoke test
in tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from evalsuite.settings.config import EstimatorConfig, SamplerConfig
from evalsuite.diffusion.likelihood import estimate_loglikelihood
from evalsuite.diffusion.sampler import diffusion_generate
from evalsuite.models.checkpoint import parse_dtype
from evalsuite.models.llada import LLaDAConfig, LLaDAModel, param_count

LLADA_8B = dict(d_model=4096, n_heads=32, n_kv_heads=32, n_layers=32, mlp_hidden_size=12288,
                vocab_size=126464, embedding_size=126464, rope_theta=500000.0,
                mask_token_id=126336, eos_token_id=126081)
TINY = dict(d_model=64, n_heads=4, n_kv_heads=4, n_layers=2, mlp_hidden_size=192,
            vocab_size=1024, embedding_size=1024, rope_theta=500000.0,
            mask_token_id=1000, eos_token_id=999)


def build(cfg: LLaDAConfig, device: torch.device, dtype: torch.dtype) -> LLaDAModel:
    """Random weights straight on the device, in ``dtype`` (no full fp32 copy on the host)."""
    with torch.device("meta"):
        model = LLaDAModel(cfg)
    model = model.to_empty(device=device).to(dtype)
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=gen)
    return model.eval().requires_grad_(False)


#: Dense bf16 tensor-core peaks (FLOP/s) by device-name fragment, from the vendors' sheets.
BF16_PEAK = (("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L40S", 362e12),
             ("A10G", 70e12), ("L4", 121e12))


def bf16_peak(name: str) -> float | None:
    return next((peak for key, peak in BF16_PEAK if key in name), None)


def generation_flops(cfg: LLaDAConfig, seq: int, block: int, rows: int) -> float:
    """FLOPs of one sampler pass: every layer over ``seq`` tokens, the head over ``block``."""
    kv = cfg.n_kv_heads * cfg.head_dim
    per_token = 2 * cfg.d_model ** 2 + 2 * cfg.d_model * kv + 3 * cfg.d_model * cfg.mlp_hidden_size
    attention = 2 * seq * cfg.d_model  # scores and weighted values, per token and layer
    macs = seq * cfg.n_layers * (per_token + attention) + block * cfg.d_model * cfg.vocab_size
    return 2.0 * macs * rows


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--tiny", action="store_true", help="small config (smoke test)")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=256)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--batches", default=None,
                    help="comma-separated batch sizes for the throughput sweep, e.g. 1,8,32")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    device, dtype = torch.device(args.device), parse_dtype(args.dtype)
    cfg = LLaDAConfig(**(TINY if args.tiny else LLADA_8B))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = build(cfg, device, dtype)
    sync(device)
    out: dict[str, object] = {"params": param_count(cfg), "device": str(device),
                              "dtype": str(dtype), "build_s": time.perf_counter() - t0}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name()
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, cfg.vocab_size - 2000 if not args.tiny else 900,
                           (args.batch, args.prompt), generator=g).to(device)

    with torch.no_grad():
        x = torch.cat([prompt, torch.full((args.batch, args.gen), cfg.mask_token_id, device=device)], 1)
        model(x, positions=slice(args.prompt, args.prompt + args.block))
        sync(device)
        t = time.perf_counter()
        for _ in range(3):
            model(x, positions=slice(args.prompt, args.prompt + args.block))
        sync(device)
        out["forward_ms"] = (time.perf_counter() - t) / 3 * 1000

    config = SamplerConfig(gen_length=args.gen, steps=args.gen, block_length=args.block)
    sync(device)
    t = time.perf_counter()
    res = diffusion_generate(model, prompt, config=config, mask_id=cfg.mask_token_id,
                             eos_id=cfg.eos_token_id)
    sync(device)
    gen_s = time.perf_counter() - t
    out.update(gen_s=gen_s, nfe=res.nfe, tokens_per_s=args.batch * args.gen / gen_s)

    fast = config.replace(decoding="threshold", threshold=0.9)
    t = time.perf_counter()
    res_fast = diffusion_generate(model, prompt, config=fast, mask_id=cfg.mask_token_id,
                                  eos_id=cfg.eos_token_id)
    sync(device)
    out.update(threshold_gen_s=time.perf_counter() - t, threshold_nfe=res_fast.nfe)

    for mode in ("prefix", "dual"):
        t = time.perf_counter()
        res_cached = diffusion_generate(model, prompt, config=config.replace(cache=mode),
                                        mask_id=cfg.mask_token_id, eos_id=cfg.eos_token_id)
        sync(device)
        out[f"{mode}_cache_gen_s"] = time.perf_counter() - t
        out[f"{mode}_cache_agreement"] = (res_cached.generated == res.generated).float().mean().item()

    peak = bf16_peak(out.get("gpu", "")) if dtype == torch.bfloat16 else None
    out["bf16_peak_flops"] = peak
    sweep = []
    for batch in ([int(b) for b in args.batches.split(",")] if args.batches else []):
        rows = torch.randint(0, cfg.vocab_size - 2000 if not args.tiny else 900,
                             (batch, args.prompt), generator=g).to(device)
        sync(device)
        t = time.perf_counter()
        res_b = diffusion_generate(model, rows, config=config, mask_id=cfg.mask_token_id,
                                   eos_id=cfg.eos_token_id)
        sync(device)
        seconds = time.perf_counter() - t
        flops = res_b.nfe * generation_flops(cfg, args.prompt + args.gen, args.block, batch)
        sweep.append({"batch": batch, "seconds": seconds, "nfe": res_b.nfe,
                      "tokens_per_s": batch * args.gen / seconds,
                      "achieved_flops": flops / seconds,
                      "fraction_of_bf16_peak": None if peak is None else flops / seconds / peak})
    out["batch_sweep"] = sweep

    question = prompt[0].cpu()
    t = time.perf_counter()
    estimate_loglikelihood(model, [(question, torch.tensor([c])) for c in (10, 11, 12, 13)],
                           config=EstimatorConfig(mc_num=1, batch_size=1),
                           mask_id=cfg.mask_token_id)
    sync(device)
    out["mmlu_question_s"] = time.perf_counter() - t
    answers = [torch.randint(0, 900, (12,), generator=g) for _ in range(4)]
    mc = EstimatorConfig(mc_num=16 if args.tiny else 128, batch_size=16)
    sync(device)
    t = time.perf_counter()
    estimate_loglikelihood(model, [(question, a) for a in answers], config=mc,
                           mask_id=cfg.mask_token_id, max_rows=64)
    sync(device)
    out["likelihood_requests_per_s"] = len(answers) / (time.perf_counter() - t)
    out["likelihood_mc_num"] = mc.mc_num
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
