"""Dream benchmark: Dream's reference mode against evalsuite's engine path.

The *reference mode* follows Dream's own code as its evaluation runs it, one request at a time:

- generation (``DreamGenerationMixin._sample`` with ``alg="entropy"``, temperature 0, top_p):
  ``x = prompt + gen_length masks``, ``timesteps = linspace(1, 1e-3, steps + 1)``, every step
  one forward pass over the whole sequence, logits shifted one position, the top_p filter,
  argmax, confidence = negative entropy, ``int(n_masked * (1 - s / t))`` tokens committed by
  top-k (all on the last step), no early exit;
- likelihood (``eval.py`` ``_eval_target_nll_mc``): ``prompt + answer + EOS``, ``mc_num / 32``
  loops of 32 rows, ``t_i = (u0 + i / 32) % 1``, ``p = (1 - 1e-3) t + 1e-3``, Bernoulli(p)
  masks on the answer (never position 0 nor the EOS), loss ``sum CE / p`` per row.

evalsuite runs the same requests as the adapter does (length buckets, left padding, batch
slots): generation with the default ``batch_schedule="per_row"`` (each row its own official
batch-of-one run: asserted token for token equal to the reference with early exit off, equal
answers with early exit on) and with ``batch_mean`` (Dream's batched code: a row's output
depends on its batch-mates; agreement reported); the likelihood with Dream's estimator batched
over requests (``estimator="auto"``: exact enumeration where ``2^n - 1 <= mc_num``, count strata
otherwise), at the same ``mc_num``.

Network (random weights): Dream-7B's proportions scaled to this CPU. Dream-7B: hidden 3584, 28
layers, 28 query / 4 key-value heads (7:1 GQA), intermediate 18944 (5.29x hidden), vocabulary
152064, so the vocabulary head is 7.7% of the per-token multiply-adds (attention scores
excluded). Here: hidden 448 (quick: 128), 2 layers, heads of 64 with the same 7:1 grouping
(quick: 2:1), intermediate 5.29x hidden, and the vocabulary chosen so that the head keeps the
same 7.7% share. Answer lengths are synthetic (the EOS logit is raised after a per-prompt
length, as in :mod:`generation_bench`): a random network never ends an answer.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generation_bench import EOS, MASK, PAD, StopRule, SyntheticStops, _Clock, say  # noqa: E402

from evalsuite.diffusion.sampler import diffusion_generate  # noqa: E402
from evalsuite.diffusion.stopping import length_buckets  # noqa: E402
from evalsuite.families.dream.config import DreamConfig  # noqa: E402
from evalsuite.families.dream.likelihood import (  # noqa: E402
    SAMPLING_EPS,
    estimate_dream_loglikelihood,
)
from evalsuite.families.dream.network import DreamModel  # noqa: E402
from evalsuite.families.dream.protocol import sampler_config  # noqa: E402
from evalsuite.settings.config import EstimatorConfig, SamplerConfig  # noqa: E402

DREAM_7B = {"hidden": 3584, "layers": 28, "heads": 28, "kv_heads": 4, "intermediate": 18944,
            "vocab": 152064}


def _per_token(hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int,
               vocab: int) -> tuple[int, int]:
    """(multiply-adds of the layers, of the head) per token."""
    kv = kv_heads * hidden // heads
    block = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * intermediate
    return layers * block, hidden * vocab


def head_share(**shape: int) -> float:
    body, head = _per_token(**shape)
    return head / (body + head)


def dream7b_shape(hidden: int, layers: int) -> DreamConfig:
    """Dream-7B's proportions at ``hidden`` (see the module docstring)."""
    heads = max(2, hidden // 64)
    kv_heads = max(1, heads // 7)
    intermediate = round(DREAM_7B["intermediate"] / DREAM_7B["hidden"] * hidden / 64) * 64
    share = head_share(**DREAM_7B)
    body, _ = _per_token(hidden, layers, heads, kv_heads, intermediate, 1)
    vocab = round(share / (1 - share) * body / hidden / 64) * 64
    return DreamConfig(hidden_size=hidden, intermediate_size=intermediate,
                       num_hidden_layers=layers, num_attention_heads=heads,
                       num_key_value_heads=kv_heads, vocab_size=vocab, rope_theta=1e6,
                       mask_token_id=MASK, eos_token_id=EOS, pad_token_id=PAD, bos_token_id=EOS)


def random_dream(cfg: DreamConfig, seed: int = 0) -> DreamModel:
    torch.manual_seed(seed)
    model = DreamModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(0.0 if name.endswith("bias") else 1.0)
            else:
                p.normal_(0.0, 0.05)
    return model.eval().requires_grad_(False)


def _shift(logits: torch.Tensor) -> torch.Tensor:
    """Dream: token i is read from the output at i - 1, position 0 from itself."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


def _top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most probable tokens whose mass reaches ``top_p``."""
    ordered, order = torch.sort(logits, descending=True, dim=-1)
    mass = torch.cumsum(F.softmax(ordered, dim=-1), dim=-1)
    drop = mass > top_p
    drop[..., 1:] = drop[..., :-1].clone()
    drop[..., 0] = False
    out = logits.clone()
    out[drop.scatter(-1, order, drop)] = torch.finfo(logits.dtype).min
    return out


@torch.no_grad()
def reference_generate(model: torch.nn.Module, prompt: torch.Tensor, config: SamplerConfig,
                       mask_id: int) -> torch.Tensor:
    """Dream's sampler for one request (entropy, temperature 0; see the module docstring)."""
    if config.alg != "entropy" or config.temperature != 0 or config.alg_temp:
        raise ValueError("the reference mode here covers entropy at temperature 0")
    p = prompt.shape[0]
    x = torch.full((1, p + config.gen_length), mask_id, dtype=torch.long)
    x[0, :p] = prompt
    timesteps = torch.linspace(1, 1e-3, config.steps + 1)
    for i in range(config.steps):
        masked = x == mask_id
        logits = _shift(model(x))[masked]
        if config.top_p is not None and config.top_p < 1:
            logits = _top_p(logits, config.top_p)
        probs = F.softmax(logits, dim=-1)
        x0 = probs.argmax(dim=-1)
        confidence = (probs * torch.log(probs + 1e-10)).sum(dim=-1)
        n_masked = masked.sum()
        t, s = timesteps[i], timesteps[i + 1]
        count = int(n_masked * (1 - s / t)) if i < config.steps - 1 else int(n_masked)
        if count == 0:
            continue
        full = torch.full(x.shape, float("-inf"))
        full[masked] = confidence
        index = torch.topk(full[0], count).indices
        proposal = torch.full_like(x, mask_id)
        proposal[masked] = x0
        x[0, index] = proposal[0, index]
    return x[0, p:]


def _engine_generate(model: torch.nn.Module, prompts: Sequence[torch.Tensor],
                     config: SamplerConfig, batch_size: int, rule: StopRule
                     ) -> tuple[list[list[int]], list[int], float, float]:
    """As the adapter runs requests (length buckets, left padding, batch slots)."""
    generated: list[list[int]] = [[] for _ in prompts]
    nfe = [0] * len(prompts)
    with _Clock() as clock:
        for bucket in length_buckets([len(p) for p in prompts], batch_size):
            width = max(len(prompts[i]) for i in bucket)
            batch = torch.full((len(bucket), width), PAD, dtype=torch.long)
            mask = torch.zeros((len(bucket), width), dtype=torch.long)
            for row, i in enumerate(bucket):
                batch[row, width - len(prompts[i]):] = prompts[i]
                mask[row, width - len(prompts[i]):] = 1
            res = diffusion_generate(model, batch, mask if len(bucket) > 1 else None,
                                     config=config, mask_id=MASK, eos_id=EOS,
                                     stop=[rule] * len(bucket), batch_size=batch_size,
                                     logit_shift=1)
            for row, i in enumerate(bucket):
                generated[i] = res.generated[row].tolist()
                nfe[i] = res.row_nfe[row]
    return generated, nfe, clock.wall, clock.cpu


def _cut(tokens: list[int]) -> list[int]:
    end = next((j for j, t in enumerate(tokens) if t in (EOS, MASK)), len(tokens))
    return tokens[:end]


def generation_case(model: torch.nn.Module, quick: bool, log: Callable[[str], None]) -> dict:
    n, gen = (3, 16) if quick else (8, 64)
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(gen + gen // 2, 2 * gen + gen // 2, (n,), generator=g)
    prompts = [torch.randint(10, model.config.vocab_size, (int(k),), generator=g) for k in lengths]
    lo = 3 * gen // 16
    stops = SyntheticStops(model, gen, lo, lo + gen // 2)  # type: ignore[arg-type]
    config = sampler_config(steps=gen, gen_length=gen, top_p=0.95)  # GSM8K's protocol, scaled
    rule = StopRule(stop_ids=frozenset({EOS}))
    batch = min(4, n)
    reference_generate(stops, prompts[0][:8], config, MASK)  # warm-up
    with _Clock() as clock:
        ref = [reference_generate(stops, p, config, MASK).tolist() for p in prompts]
    ref_wall, ref_cpu = clock.wall, clock.cpu
    rows = [{"mode": "Dream reference (one request, full logits, no early exit)",
             "seconds": ref_wall, "cpu_seconds": ref_cpu, "nfe_per_request": float(gen),
             "tokens_per_s": n * gen / ref_wall, "speedup": 1.0, "cpu_speedup": 1.0}]
    modes = {"evalsuite per_row, early exit off": config.replace(early_exit=False),
             "evalsuite per_row, early exit on": config,
             "evalsuite batch_mean (Dream's batched code)": config.replace(
                 batch_schedule="batch_mean", early_exit=False)}
    for name, cfg in modes.items():
        out, nfe, wall, cpu = _engine_generate(stops, prompts, cfg, batch, rule)
        row = {"mode": name, "seconds": wall, "cpu_seconds": cpu,
               "nfe_per_request": statistics.mean(nfe), "tokens_per_s": n * gen / wall,
               "speedup": ref_wall / wall, "cpu_speedup": ref_cpu / cpu}
        if "per_row" in name:
            if name.endswith("off"):
                assert out == ref, f"{name}: tokens differ from Dream's reference"
            assert [_cut(o) for o in out] == [_cut(r) for r in ref], f"{name}: answers differ"
            row["identical_to_reference"] = True
        else:
            row["answer_agreement"] = sum(_cut(o) == _cut(r) for o, r in zip(out, ref)) / n
        rows.append(row)
    log(f"\nDream generation: {n} requests, gen_length {gen} = steps, entropy, top_p 0.95, "
        f"batch {batch}")
    for r in rows:
        extra = (f"  same answer {r['answer_agreement']:.0%}" if "answer_agreement" in r else "")
        log(f"  {r['mode']:58s} {r['seconds']:7.2f}s wall {r['cpu_seconds']:7.2f}s cpu "
            f"NFE/req {r['nfe_per_request']:6.1f}  x{r['speedup']:.2f} "
            f"(cpu x{r['cpu_speedup']:.2f}){extra}")
    return {"requests": n, "gen_length": gen, "steps": gen, "batch_size": batch,
            "answer_lengths": [len(_cut(r)) for r in ref], "modes": rows}


@torch.no_grad()
def reference_loglikelihood(model: torch.nn.Module, prompt: torch.Tensor, answer: torch.Tensor,
                            mc_num: int, batch: int, generator: torch.Generator
                            ) -> tuple[float, float]:
    """Dream's ``_eval_target_nll_mc`` for one request: (log-likelihood, standard error from
    the spread of its ``mc_num / batch`` loop means)."""
    seq = torch.cat([prompt, answer, torch.tensor([EOS])])
    maskable = torch.zeros(seq.numel(), dtype=torch.bool)
    maskable[max(prompt.numel(), 1):seq.numel() - 1] = True
    losses = []
    for _ in range(mc_num // batch):
        u0 = torch.rand(1, generator=generator)
        t = (u0 + torch.arange(batch) / batch) % 1
        p = (1 - SAMPLING_EPS) * t + SAMPLING_EPS
        masks = (torch.rand((batch, seq.numel()), generator=generator) < p[:, None]) & maskable
        noisy = seq.expand(batch, -1).masked_fill(masks, MASK)
        logits = _shift(model(noisy))
        ce = F.cross_entropy(logits[masks], seq.expand(batch, -1)[masks], reduction="none")
        weights = (1 / p)[:, None].expand_as(masks)[masks]
        losses.append(float((ce * weights).sum() / batch))
    value = -statistics.mean(losses)
    se = statistics.stdev(losses) / len(losses) ** 0.5 if len(losses) > 1 else float("nan")
    return value, se


def likelihood_case(model: torch.nn.Module, quick: bool, log: Callable[[str], None]) -> dict:
    """MMLU-like (one-token choices: exact in one pass) and PIQA-like (8-24 token choices)
    requests, four choices per question, at Dream's ``mc_num`` 128 in batches of 32."""
    mc_num, batch = (64, 32) if quick else (128, 32)
    questions = 2 if quick else 4
    g = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    requests: list[tuple[torch.Tensor, torch.Tensor]] = []
    for kind in ("mmlu-like", "piqa-like"):
        for _ in range(questions):
            prompt = torch.randint(10, vocab, (int(torch.randint(48, 96, (1,), generator=g)),),
                                   generator=g)
            for _ in range(4):
                length = 1 if kind == "mmlu-like" else int(torch.randint(8, 25, (1,), generator=g))
                requests.append((prompt, torch.randint(10, vocab, (length,), generator=g)))
    reference_loglikelihood(model, requests[0][0][:8], requests[0][1], batch, batch,
                            torch.Generator().manual_seed(0))  # warm-up
    with _Clock() as clock:
        ref = [reference_loglikelihood(model, p, a, mc_num, batch,
                                       torch.Generator().manual_seed(i))
               for i, (p, a) in enumerate(requests)]
    ref_wall, ref_cpu = clock.wall, clock.cpu
    config = EstimatorConfig(mc_num=mc_num, batch_size=batch, nll_type="mc")
    with _Clock() as clock:
        ours = estimate_dream_loglikelihood(
            model, requests, config=config, mask_id=MASK, eos_id=EOS,
            generators=[torch.Generator().manual_seed(i) for i in range(len(requests))],
            max_rows=64)
    n = len(requests)
    ref_se = [se for _, se in ref]
    our_se = [r.stderr or 0.0 for r in ours]
    exact = sum(bool(r.exact) for r in ours)
    close = [abs(r.value - v) for r, (v, _) in zip(ours, ref)]
    multi = [i for i, (_, a) in enumerate(requests) if a.numel() > 1]  # the piqa-like half
    out = {"requests": n, "mc_num": mc_num, "batch": batch,
           "reference": {"seconds": ref_wall, "cpu_seconds": ref_cpu,
                         "requests_per_s": n / ref_wall,
                         "forward_rows_per_request": mc_num,
                         "mean_stderr": statistics.mean(ref_se),
                         "mean_stderr_multi_token": statistics.mean(ref_se[i] for i in multi)},
           "evalsuite": {"seconds": clock.wall, "cpu_seconds": clock.cpu,
                         "requests_per_s": n / clock.wall,
                         "forward_rows_per_request": statistics.mean(r.nfe for r in ours),
                         "mean_stderr": statistics.mean(our_se),
                         "mean_stderr_multi_token": statistics.mean(our_se[i] for i in multi),
                         "exact_requests": exact},
           "speedup": ref_wall / clock.wall, "cpu_speedup": ref_cpu / clock.cpu,
           "mean_abs_difference": statistics.mean(close)}
    log(f"\nDream likelihood: {n} requests (half one-token answers), mc_num {mc_num}; "
        f"standard error on the multi-token half: reference "
        f"{out['reference']['mean_stderr_multi_token']:.3f}, evalsuite "
        f"{out['evalsuite']['mean_stderr_multi_token']:.3f}")
    log(f"  reference {ref_wall:7.2f}s wall ({n / ref_wall:6.1f} req/s), mean se "
        f"{out['reference']['mean_stderr']:.3f}")
    log(f"  evalsuite {clock.wall:7.2f}s wall ({n / clock.wall:6.1f} req/s), mean se "
        f"{out['evalsuite']['mean_stderr']:.3f}, {exact}/{n} exact, rows/request "
        f"{out['evalsuite']['forward_rows_per_request']:.1f}; x{out['speedup']:.2f} "
        f"(cpu x{out['cpu_speedup']:.2f}); mean |difference| {out['mean_abs_difference']:.3f}")
    return out


def run_dream_bench(quick: bool = False, log: Callable[[str], None] = say) -> dict:
    hidden, layers = (128, 2) if quick else (448, 2)
    cfg = dream7b_shape(hidden, layers)
    model = random_dream(cfg)
    shape = dict(hidden=cfg.hidden_size, layers=cfg.num_hidden_layers,
                 heads=cfg.num_attention_heads, kv_heads=cfg.num_key_value_heads,
                 intermediate=cfg.intermediate_size, vocab=cfg.vocab_size)
    share = head_share(**shape)
    log(f"dream7b-shape network: hidden {hidden}, {layers} layers, heads "
        f"{cfg.num_attention_heads}/{cfg.num_key_value_heads} KV, intermediate "
        f"{cfg.intermediate_size}, vocab {cfg.vocab_size}; head {share:.1%} of the "
        f"multiply-adds per token (Dream-7B: {head_share(**DREAM_7B):.1%}); torch threads "
        f"{torch.get_num_threads()}")
    t0 = time.perf_counter()
    out = {"network": {**shape, "head_share": share, "dream7b_head_share": head_share(**DREAM_7B)},
           "generation": generation_case(model, quick, log),
           "likelihood": likelihood_case(model, quick, log)}
    out["seconds"] = time.perf_counter() - t0
    return out


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = run_dream_bench(args.quick)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
