"""Forward FLOPs of the exact block KV cache against the official full recompute at LLaDA2.0-mini's
full-size shapes (analytic counts of the calls each path makes; the calls are those of a small
random network on the bench workload, tokens asserted identical). Prints the head share of a
token's FLOPs and the ratio for the bench shapes and for the full-size shapes."""

import dataclasses, torch
from benchmarks.llada2_cache_bench import (FlopCounter, instrument, mini_shape, random_network,
    reference_generate, MASK_ID)
from evalsuite.families.llada2.generate import block_diffusion_generate
from evalsuite.families.llada2.settings import LLaDA2Settings
torch.set_num_threads(1)
small = mini_shape(hidden=128, layers=3)
full = dataclasses.replace(small, hidden_size=2048, num_hidden_layers=20, num_attention_heads=16,
    num_key_value_heads=4, head_dim=128, vocab_size=157184, intermediate_size=5120,
    moe_intermediate_size=512)
s = LLaDA2Settings(gen_length=128, block_length=32, steps=16, threshold=0.95, cache=True)
gen = torch.Generator().manual_seed(1)
prompts = [torch.randint(4, small.vocab_size, (96,), generator=gen) for _ in range(2)]
for cfgname, cfg in (("bench", mini_shape(256, 4)), ("mini-full", full)):
    rc, cc = FlopCounter(cfg), FlopCounter(cfg)
    a, b = random_network(small), random_network(small)
    instrument(a, rc); instrument(b, cc)
    ra = [reference_generate(a, p, s) for p in prompts]
    rb = [block_diffusion_generate(b, p[None], settings=s, mask_id=MASK_ID, eos_id=None).generated[0] for p in prompts]
    assert all(torch.equal(x, y) for x, y in zip(ra, rb))
    head = 2 * cfg.hidden_size * cfg.vocab_size
    c2 = FlopCounter(cfg); c2.forward(1, 1, 1); per_tok_body = c2.flops
    print(cfgname, "head share per token %.1f%%" % (100*head/(head+per_tok_body)), "flops ratio %.2f" % (rc.flops/cc.flops))
