"""LLaDA2 exact block KV cache against the official full-recompute algorithm, side by side.

The *reference mode* (:func:`reference_generate`) follows the official
``LLaDA2MoeModelLM.generate`` step by step (greedy variant): one request at a time, at every
step the network runs the whole ``x[:, :block_end]`` under the block-causal mask and the
vocabulary head is applied to every position (the official LM computes the logits of all
positions, then slices the block). evalsuite's path (:func:`evalsuite.families.llada2.generate.
block_diffusion_generate`, ``cache=True``) runs the prompt and each finished block once and every
step only the current block against the cached keys/values; its tokens are asserted equal to the
reference's.

Forward FLOPs are counted analytically from the shapes each forward call actually processes
(2 x multiply-adds: projections, attention scores and values over every key the call attends,
router, the top-k routed experts and the shared expert per token, dense MLP, the vocabulary head
over the positions it is applied to); wall time and CPU time (one thread; less sensitive to
other processes on a shared machine) are measured in the same process, the two paths
interleaved, best of the repeats.

Network: random weights with LLaDA2.0-mini's proportions (FAMILIES.md, unverified real values:
hidden 2048, 20 layers, 16 heads / 4 KV heads, head_dim 128, 256 experts top-8 in 8 groups
keeping 4, 1 shared expert, first layer dense, vocabulary 157184) scaled down to fit a small
CPU: the SAME expert count, top-k, groups and shared expert, the same head ratio (4:1) and
vocabulary-to-hidden ratio (76.75), hidden 256, 4 layers, head_dim 64; the expert and dense MLP
widths keep mini's assumed ratios to hidden (0.25 and 2.5; unverified).

Usage: python benchmarks/llada2_cache_bench.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

import torch

from evalsuite.families.llada2.config import LLaDA2Config
from evalsuite.families.llada2.generate import (
    block_diffusion_generate,
    choose_tokens,
    select_transfer,
    transfer_schedule,
)
from evalsuite.families.llada2.network import LLaDA2Model, layout_allowed
from evalsuite.families.common import additive_bias
from evalsuite.families.llada2.settings import LLaDA2Settings

MASK_ID, EOS_ID = 3, 2  # a random network never predicts them on purpose; EOS never stops


def mini_shape(hidden: int = 256, layers: int = 4) -> LLaDA2Config:
    """LLaDA2.0-mini's proportions at a smaller hidden size (see the module docstring)."""
    head_dim = 64
    heads = hidden // head_dim
    return LLaDA2Config(
        hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=max(1, heads // 4),
        head_dim=head_dim, num_hidden_layers=layers, vocab_size=int(hidden * 157184 / 2048),
        intermediate_size=int(2.5 * hidden), num_experts=256, num_experts_per_tok=8,
        moe_intermediate_size=hidden // 4, num_shared_experts=1, first_k_dense_replace=1,
        n_group=8, topk_group=4, routed_scaling_factor=2.5, rope_theta=600000.0,
        partial_rotary_factor=0.5, rms_norm_eps=1e-6, mask_token_id=MASK_ID,
        eos_token_id=EOS_ID, pad_token_id=EOS_ID)


def random_network(cfg: LLaDA2Config, seed: int = 0) -> LLaDA2Model:
    torch.manual_seed(seed)
    net = LLaDA2Model(cfg)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                param.fill_(1.0)
            else:
                param.normal_(0.0, 1.0 / param.shape[-1] ** 0.5)
        for module in net.modules():
            if hasattr(module, "expert_bias"):
                module.expert_bias.normal_(0.0, 0.05)
    return net.eval().requires_grad_(False).fuse_experts()  # as the loader leaves it


@dataclass
class FlopCounter:
    """Analytic forward FLOPs (2 x multiply-adds) of the calls a network makes."""

    cfg: LLaDA2Config
    flops: float = 0.0
    calls: int = 0

    def forward(self, rows: int, new: int, keys: int) -> None:
        c = self.cfg
        hd, h, kv = c.head_dim, c.num_attention_heads, c.num_key_value_heads
        per_token_layer_proj = c.hidden_size * (h + 2 * kv) * hd + h * hd * c.hidden_size
        attn = 2 * h * hd * keys  # scores and weighted values, per query token
        dense_mlp = 3 * c.hidden_size * c.intermediate_size
        moe_mlp = (c.hidden_size * c.num_experts
                   + (c.num_experts_per_tok + (c.num_shared_experts or 0))
                   * 3 * c.hidden_size * c.moe_intermediate_size)
        layers = sum(dense_mlp if not c.is_moe(i) else moe_mlp
                     for i in range(c.num_hidden_layers))
        macs = rows * new * (c.num_hidden_layers * (per_token_layer_proj + attn) + layers)
        self.flops += 2.0 * macs
        self.calls += 1

    def head(self, rows: int, positions: int) -> None:
        self.flops += 2.0 * rows * positions * self.cfg.hidden_size * self.cfg.vocab_size


def instrument(net: LLaDA2Model, counter: FlopCounter) -> None:
    """Count every ``extend`` and ``head`` call of ``net``."""
    extend, head = net.extend, net.head

    def counted_extend(input_ids, position_ids, bias, cache=None):
        past = 0 if cache is None or not cache.layers else cache.length
        counter.forward(input_ids.shape[0], input_ids.shape[1], past + input_ids.shape[1])
        return extend(input_ids, position_ids, bias, cache)

    def counted_head(hidden):
        counter.head(hidden.shape[0], hidden.shape[1])
        return head(hidden)

    net.extend, net.head = counted_extend, counted_head  # type: ignore[method-assign]


@torch.no_grad()
def reference_generate(net: LLaDA2Model, prompt: torch.Tensor, s: LLaDA2Settings) -> torch.Tensor:
    """The official algorithm (greedy), one request ``[P]``: full recompute of x[:, :block_end]
    every step, head over every position. Returns the ``gen_length`` generated ids."""
    p, bl = int(prompt.numel()), s.block_length
    blocks = -(-(p + s.gen_length) // bl)
    x = torch.full((1, blocks * bl), MASK_ID, dtype=torch.long)
    x[0, :p] = prompt
    cols = torch.arange(blocks * bl)
    full_bias = additive_bias(layout_allowed("block_causal", cols, cols, bl), net.dtype)
    schedule = transfer_schedule(bl, s.effective_steps)
    for block in range(p // bl, blocks):
        hi = (block + 1) * bl
        for step in range(s.effective_steps):
            active = x[:, hi - bl:hi] == MASK_ID
            if not bool(active.any()):
                break
            hidden, _ = net.extend(x[:, :hi], cols[None, :hi], full_bias[None, None, :hi, :hi])
            logits = net.head(hidden)[:, -bl:]
            x0, conf = choose_tokens(logits, s, None)
            commit = select_transfer(conf, active, schedule[step], s.threshold)
            x[:, hi - bl:hi] = torch.where(commit, x0, x[:, hi - bl:hi])
    return x[0, p:p + s.gen_length]


def run(quick: bool = False, repeats: int | None = None) -> dict[str, Any]:
    """Both paths on the same prompts, ``repeats`` interleaved times (default 1 quick, 2
    full); times are the best of the repeats, FLOPs and forwards per repeat."""
    repeats = repeats or (1 if quick else 2)
    cfg = mini_shape(hidden=128 if quick else 256, layers=3 if quick else 4)
    settings = LLaDA2Settings(gen_length=64 if quick else 128, block_length=32,
                              steps=8 if quick else 16, threshold=0.95, cache=True)
    prompt_len, requests = (40, 1) if quick else (96, 2)
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(4, cfg.vocab_size, (prompt_len,), generator=gen)
               for _ in range(requests)]
    ref_count, cache_count = FlopCounter(cfg), FlopCounter(cfg)
    ref_net, cache_net = random_network(cfg), random_network(cfg)  # same weights
    instrument(ref_net, ref_count)
    instrument(cache_net, cache_count)
    ref_wall, ref_cpu, cache_wall, cache_cpu = [], [], [], []
    for _ in range(repeats):  # interleaved, best of each: the machine may be shared
        w0, c0 = time.perf_counter(), time.process_time()
        reference = [reference_generate(ref_net, p, settings) for p in prompts]
        ref_wall.append(time.perf_counter() - w0)
        ref_cpu.append(time.process_time() - c0)
        w0, c0 = time.perf_counter(), time.process_time()
        cached = [block_diffusion_generate(cache_net, p[None], settings=settings,
                                           mask_id=MASK_ID, eos_id=None).generated[0]
                  for p in prompts]
        cache_wall.append(time.perf_counter() - w0)
        cache_cpu.append(time.process_time() - c0)
    identical = all(torch.equal(a, b) for a, b in zip(reference, cached))
    assert identical, "the cached path must return the reference's tokens"
    ref_time, cache_time = min(ref_wall), min(cache_wall)
    return {
        "network": {"hidden": cfg.hidden_size, "layers": cfg.num_hidden_layers,
                    "heads": cfg.num_attention_heads, "kv_heads": cfg.num_key_value_heads,
                    "head_dim": cfg.head_dim, "experts": cfg.num_experts,
                    "top_k": cfg.num_experts_per_tok, "n_group": cfg.n_group,
                    "topk_group": cfg.topk_group, "shared": cfg.num_shared_experts,
                    "vocab": cfg.vocab_size, "moe_intermediate": cfg.moe_intermediate_size,
                    "dense_intermediate": cfg.intermediate_size},
        "workload": {"requests": requests, "prompt_len": prompt_len,
                     "gen_length": settings.gen_length, "block_length": settings.block_length,
                     "steps_per_block": settings.steps, "threshold": settings.threshold},
        "identical_tokens": identical,
        "reference": {"gflops": ref_count.flops / 1e9 / repeats,
                      "forwards": ref_count.calls // repeats, "seconds": ref_time,
                      "cpu_seconds": min(ref_cpu)},
        "cached": {"gflops": cache_count.flops / 1e9 / repeats,
                   "forwards": cache_count.calls // repeats, "seconds": cache_time,
                   "cpu_seconds": min(cache_cpu)},
        "flops_ratio": ref_count.flops / cache_count.flops,
        "time_ratio": ref_time / cache_time,
        "cpu_time_ratio": min(ref_cpu) / min(cache_cpu),
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    result = run(quick=args.quick)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
