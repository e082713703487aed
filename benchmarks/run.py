"""Speed and memory benchmarks, measured side by side in one process (`make bench`).

Each comparison runs evalsuite's implementation and a straightforward baseline written here
in the reference's style on the same random LLaDA-architecture network, alternating the two
and reporting the median time of each and their ratio. Absolute numbers on a shared 2-core
CPU are noisy; the ratios are what to read.

1. Generation: the sampler applies the vocabulary head only to the current block's columns;
   the baseline computes logits for the whole sequence at every step (as the reference does).
2. Multiple-choice likelihood with one-token answers (MMLU): evalsuite scores the distinct
   masked inputs once and packs requests; the baseline runs one forward per choice plus
   one more for is_greedy (as an lm-eval adapter computing is_greedy separately does).
3. Fast-dLLM's approximate KV cache (prefix / dual) against no cache, with the share of
   generated tokens that stay the same.
4. Peak memory of the logits tensor for a full-size LLaDA-8B generation step, computed
   from shapes (no weights needed).

Usage: python benchmarks/run.py [--quick] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from evalsuite.config import EstimatorConfig, SamplerConfig
from evalsuite.diffusion.likelihood import estimate_loglikelihood
from evalsuite.diffusion.sampler import diffusion_generate, transfer_schedule
from evalsuite.models.llada import LLaDAConfig, LLaDAModel, param_count

MASK = 3


def network(vocab: int, d: int, layers: int) -> LLaDAModel:
    cfg = LLaDAConfig(d_model=d, n_heads=8, n_layers=layers, mlp_hidden_size=3 * d,
                      vocab_size=vocab, embedding_size=vocab, n_kv_heads=8,
                      mask_token_id=MASK, eos_token_id=1)
    torch.manual_seed(0)
    model = LLaDAModel(cfg)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return model.eval()


@torch.no_grad()
def baseline_generate(model: LLaDAModel, prompt: torch.Tensor, config: SamplerConfig) -> torch.Tensor:
    """Reference-style loop: full-sequence logits every step, greedy, low confidence."""
    b, p = prompt.shape
    x = torch.full((b, p + config.gen_length), MASK, dtype=torch.long)
    x[:, :p] = prompt
    for block in range(config.num_blocks):
        start = p + block * config.block_length
        end = start + config.block_length
        sched = transfer_schedule((x[:, start:end] == MASK).sum(1), config.steps_per_block)
        for step in range(config.steps_per_block):
            masked = x == MASK
            logits = model(x)  # [B, T, V]
            x0 = logits.argmax(-1)
            conf = F.softmax(logits, -1).gather(-1, x0[..., None]).squeeze(-1)
            conf[:, end:] = float("-inf")
            conf = torch.where(masked, conf, torch.tensor(float("-inf")))
            x0 = torch.where(masked, x0, x)
            for row in range(b):
                idx = torch.topk(conf[row], int(sched[row, step])).indices
                x[row, idx] = x0[row, idx]
    return x


@torch.no_grad()
def baseline_choices(model: LLaDAModel, prompt: torch.Tensor, answers: list[int]) -> list[float]:
    """One forward per choice, plus one per choice for is_greedy."""
    out = []
    for a in answers:
        x = torch.cat([prompt, torch.tensor([MASK])])[None]
        logp = torch.log_softmax(model(x)[0, -1].float(), -1)[a].item()
        _ = model(x)[0, -1].argmax()
        out.append(logp)
    return out


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def compare(name: str, ours: Callable[[], object], base: Callable[[], object], repeats: int) -> dict:
    ours(), base()  # warm up
    t_ours, t_base = [], []
    for _ in range(repeats):
        t_ours.append(timed(ours))
        t_base.append(timed(base))
    row = {"benchmark": name, "evalsuite_s": statistics.median(t_ours),
           "baseline_s": statistics.median(t_base)}
    row["speedup"] = row["baseline_s"] / row["evalsuite_s"]
    print(f"{name:52s} evalsuite {row['evalsuite_s']:8.3f}s  baseline {row['baseline_s']:8.3f}s  "
          f"x{row['speedup']:.2f}")
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller shapes, 2 repeats")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    repeats = 2 if args.quick else 3
    vocab, d, layers = (8192, 128, 2) if args.quick else (32768, 256, 4)
    model = network(vocab, d, layers)
    print(f"network: vocab {vocab}, d_model {d}, {layers} layers, "
          f"{param_count(model.config) / 1e6:.1f}M params, torch threads {torch.get_num_threads()}")
    g = torch.Generator().manual_seed(0)
    rows = []

    prompt = torch.randint(10, vocab, (2, 256), generator=g)
    for gen, block in ((128, 128), (128, 32)):
        config = SamplerConfig(gen_length=gen, steps=gen // 4, block_length=block)
        ours_out = diffusion_generate(model, prompt, config=config, mask_id=MASK)
        assert torch.equal(ours_out.tokens, baseline_generate(model, prompt, config)), "outputs differ"
        rows.append(compare(
            f"generate B=2 P=256 gen={gen} block={block} steps={gen // 4}",
            lambda c=config: diffusion_generate(model, prompt, config=c, mask_id=MASK),
            lambda c=config: baseline_generate(model, prompt, c), repeats))

    long_prompt = torch.randint(10, vocab, (2, 768), generator=g)
    semi_ar = SamplerConfig(gen_length=128, steps=128, block_length=32)
    for mode in ("prefix", "dual"):
        cached = semi_ar.replace(cache=mode)
        a = diffusion_generate(model, long_prompt, config=cached, mask_id=MASK).generated
        b = diffusion_generate(model, long_prompt, config=semi_ar, mask_id=MASK).generated
        agree = (a == b).float().mean().item()
        row = compare(
            f"{mode} KV cache vs none: P=768 gen=128 block=32 steps=128",
            lambda c=cached: diffusion_generate(model, long_prompt, config=c, mask_id=MASK),
            lambda: diffusion_generate(model, long_prompt, config=semi_ar, mask_id=MASK), repeats)
        row["token_agreement"] = agree
        print(f"{'':52s} tokens equal to the uncached output: {agree:.1%} (the cache is approximate)")
        rows.append(row)

    questions = [torch.randint(10, vocab, (400,), generator=g) for _ in range(8)]
    choices = [11, 12, 13, 14]
    est = EstimatorConfig(mc_num=1, batch_size=1)

    def ours_mc() -> object:
        return estimate_loglikelihood(model, [(q, torch.tensor([c])) for q in questions for c in choices],
                                      config=est, mask_id=MASK, max_rows=32)

    def base_mc() -> object:
        return [baseline_choices(model, q, choices) for q in questions]

    ours_vals = [r.value for r in ours_mc()]
    base_vals = [v for vs in base_mc() for v in vs]
    assert max(abs(a - b) for a, b in zip(ours_vals, base_vals)) < 1e-3, "values differ"
    rows.append(compare("MMLU-style 8 questions x 4 one-token choices, P=400", ours_mc, base_mc, repeats))

    full = LLaDAConfig(d_model=4096, n_heads=32, n_layers=32, mlp_hidden_size=12288,
                       vocab_size=126464, embedding_size=126464, n_kv_heads=32)
    t, block, bytes_bf16 = 1024 + 1024, 32, 2
    full_logits = t * full.vocab_size * bytes_bf16 / 2**30
    block_logits = block * full.vocab_size * bytes_bf16 / 2**30
    print(f"LLaDA-8B ({param_count(full) / 1e9:.2f}B params) logits per sequence and step, bf16: "
          f"full sequence T={t}: {full_logits:.2f} GiB; current block of {block}: "
          f"{block_logits * 1024:.1f} MiB (x{full_logits / block_logits:.0f} less)")
    rows.append({"benchmark": "llada-8b logits memory per sequence-step (GiB)",
                 "evalsuite_s": block_logits, "baseline_s": full_logits,
                 "speedup": full_logits / block_logits})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
