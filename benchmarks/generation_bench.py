"""Generation benchmark: the reference mode against evalsuite's exact and approximate modes.

The *reference mode* (:func:`reference_generate`) follows the official ``generate.py`` step by
step: one request at a time, logits of the whole sequence at every step, a forward pass for
every scheduled step, top-k commit, no early exit. evalsuite's exact modes must return the same
answers (asserted, token for token and text for text); they are timed at equal outputs. The
approximate modes (threshold decoding, prefix / dual KV cache) are reported with their speedup
and their agreement with the exact answers.

Networks (random weights, no download):
- ``llada8b-shape``: LLaDA-8B's proportions scaled down (FFN 3x d_model, SwiGLU, MHA), with the
  vocabulary chosen so that the head is ~7% of the multiply-adds per token, as in LLaDA-8B.
  A random network never ends an answer, so for this network the answer lengths are
  *synthetic*: :class:`SyntheticStops` raises the EOS logit after a per-prompt answer length
  (derived from the prompt's tokens, so independent of batching). This measures what early
  exit does with GSM8K-like answer lengths; it is not a model's behaviour.
- ``llada-tiny``: the bundled tiny model trained in this repository, with its real BPE
  tokenizer, on the miniature study's ``llada_arith`` prompts (2-shot, stop string
  ``Question:``): its answers are solutions it generated itself, ending in ``#### N`` and EOS,
  so its early-exit savings and the approximate modes' agreement are a trained model's
  (reported, not tuned).

Tokens/s counts ``gen_length`` tokens per request for every mode (the requested length, as
Fast-dLLM reports it), so modes compare at the same work definition.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from evalsuite.settings.config import SamplerConfig
from evalsuite.diffusion.sampler import diffusion_generate, transfer_schedule
from evalsuite.diffusion.stopping import StopRule, length_buckets
from evalsuite.models.llada import LLaDAConfig, LLaDAModel
from evalsuite.models.requests import truncate_stop
from evalsuite.training.corpus import arith_pair

ROOT = Path(__file__).resolve().parents[1]
MASK, EOS, PAD = 3, 1, 0


@dataclass(frozen=True)
class Ids:
    """Special ids of the network under test."""

    mask: int = MASK
    eos: int = EOS
    pad: int = PAD


def say(line: str) -> None:
    """Progress lines, flushed (the benchmark runs for minutes)."""
    print(line, flush=True)


def llada8b_shape(d_model: int, layers: int, head_share: float = 0.07) -> LLaDAConfig:
    """LLaDA-8B's proportions at ``d_model``: FFN 3x, vocabulary so the head is ``head_share``.

    Per token a block costs 4 d^2 + 3 d * 3d = 13 d^2 multiply-adds, the head d * V, so
    V = head_share / (1 - head_share) * 13 * layers * d (rounded to a multiple of 64)."""
    vocab = round(head_share / (1 - head_share) * 13 * layers * d_model / 64) * 64
    return LLaDAConfig(d_model=d_model, n_heads=max(1, d_model // 64), n_layers=layers,
                       mlp_hidden_size=3 * d_model, vocab_size=vocab, embedding_size=vocab,
                       n_kv_heads=max(1, d_model // 64), rope_theta=500000.0,
                       mask_token_id=MASK, eos_token_id=EOS, pad_token_id=PAD)


def head_fraction(cfg: LLaDAConfig) -> float:
    """Share of the per-token multiply-adds spent in the vocabulary head (attention scores,
    which grow with the sequence, excluded as in REFERENCE.md's LLaDA-8B figure)."""
    kv = cfg.n_kv_heads * cfg.head_dim
    block = 2 * cfg.d_model ** 2 + 2 * cfg.d_model * kv + 3 * cfg.d_model * cfg.mlp_hidden_size
    head = cfg.d_model * cfg.vocab_size
    return head / (cfg.n_layers * block + head)


def random_network(cfg: LLaDAConfig, seed: int = 0) -> LLaDAModel:
    torch.manual_seed(seed)
    model = LLaDAModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.05)
    return model.eval().requires_grad_(False)


class SyntheticStops(torch.nn.Module):
    """A network whose EOS logit is raised (+``boost``) after a per-prompt answer length.

    The answer region is the last ``gen_length`` columns whatever the padding; the length of a
    request's answer is ``lo + (sum of its non-padding prompt ids) % (hi - lo)``."""

    def __init__(self, net: LLaDAModel, gen_length: int, lo: int, hi: int,
                 boost: float = 12.0) -> None:
        super().__init__()
        self.net, self.gen_length, self.lo, self.hi, self.boost = net, gen_length, lo, hi, boost

    def answer_lengths(self, input_ids: torch.Tensor) -> torch.Tensor:
        prompt = input_ids[:, :input_ids.shape[1] - self.gen_length]
        return self.lo + (prompt * (prompt != PAD)).sum(dim=1) % (self.hi - self.lo)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                positions: slice | None = None) -> torch.Tensor:
        return self._stops(input_ids, self.net(input_ids, attention_mask, positions), positions)

    def forward_cached(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                       active: slice, positions: slice, cache: object = None
                       ) -> tuple[torch.Tensor, object]:
        logits, cache = self.net.forward_cached(input_ids, attention_mask, active=active,
                                                positions=positions, cache=cache)
        return self._stops(input_ids, logits, positions), cache

    def _stops(self, input_ids: torch.Tensor, logits: torch.Tensor,
               positions: slice | None) -> torch.Tensor:
        t = input_ids.shape[1]
        cols = torch.arange(t, device=input_ids.device)
        if positions is not None:
            cols = cols[positions]
        answer_col = cols - (t - self.gen_length)  # [C]
        after = answer_col[None, :] >= self.answer_lengths(input_ids)[:, None]  # [B, C]
        logits[:, :, EOS] += self.boost * after.to(logits.dtype)
        return logits


@torch.no_grad()
def reference_generate(model: torch.nn.Module, prompt: torch.Tensor, config: SamplerConfig,
                       mask_id: int) -> torch.Tensor:
    """The official algorithm for one request (temperature 0, low-confidence remasking).

    Whole-sequence logits every step; every scheduled step is a forward pass (also those that
    commit nothing); confidence right of the block and at committed positions is -inf; top-k
    commit. Returns the generated tokens ``[gen_length]``."""
    if config.temperature != 0 or config.remasking != "low_confidence" or config.cfg_scale:
        raise ValueError("the reference mode here covers greedy low-confidence sampling")
    p = prompt.shape[0]
    x = torch.full((1, p + config.gen_length), mask_id, dtype=torch.long)
    x[0, :p] = prompt
    for block in range(config.num_blocks):
        start = p + block * config.block_length
        end = start + config.block_length
        counts = transfer_schedule((x[:, start:end] == mask_id).sum(dim=1),
                                   config.steps_per_block)
        for step in range(config.steps_per_block):
            mask_index = x == mask_id
            logits = model(x)  # [1, T, V]
            x0 = torch.argmax(logits, dim=-1)
            probs = F.softmax(logits, dim=-1)
            x0_p = torch.gather(probs, -1, x0.unsqueeze(-1)).squeeze(-1)
            x0_p[:, end:] = float("-inf")
            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, torch.tensor(float("-inf")))
            index = torch.topk(confidence[0], k=int(counts[0, step])).indices
            x[0, index] = x0[0, index]
    return x[0, p:]


@dataclass(frozen=True)
class ModeRun:
    """One mode's outputs: generated tokens per request, forward passes per request, time."""

    generated: list[list[int]]
    nfe: list[int]
    seconds: float
    """Wall-clock seconds."""
    cpu_seconds: float
    """Process CPU seconds (all threads): steadier than wall time on a shared machine."""


class _Clock:
    def __enter__(self) -> "_Clock":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def run_reference(model: torch.nn.Module, prompts: Sequence[torch.Tensor],
                  config: SamplerConfig, ids: Ids) -> ModeRun:
    with _Clock() as clock:
        out = [reference_generate(model, p, config, ids.mask).tolist() for p in prompts]
    # the reference does one pass per step, scheduled or not
    return ModeRun(out, [config.steps] * len(prompts), clock.wall, clock.cpu)


def run_evalsuite(model: torch.nn.Module, prompts: Sequence[torch.Tensor], config: SamplerConfig,
                  batch_size: int, rules: Sequence[StopRule], ids: Ids) -> ModeRun:
    """As the adapter runs requests: length buckets, left padding, ``batch_size`` slots."""
    generated: list[list[int]] = [[] for _ in prompts]
    nfe = [0] * len(prompts)
    with _Clock() as clock:
        _buckets(model, prompts, config, batch_size, rules, ids, generated, nfe)
    return ModeRun(generated, nfe, clock.wall, clock.cpu)


def _buckets(model: torch.nn.Module, prompts: Sequence[torch.Tensor], config: SamplerConfig,
             batch_size: int, rules: Sequence[StopRule], ids: Ids, generated: list[list[int]],
             nfe: list[int]) -> None:
    for bucket in length_buckets([len(p) for p in prompts], batch_size):
        width = max(len(prompts[i]) for i in bucket)
        batch = torch.full((len(bucket), width), ids.pad, dtype=torch.long)
        mask = torch.zeros((len(bucket), width), dtype=torch.long)
        for row, i in enumerate(bucket):
            batch[row, width - len(prompts[i]):] = prompts[i]
            mask[row, width - len(prompts[i]):] = 1
        res = diffusion_generate(model, batch, mask if len(bucket) > 1 else None, config=config,
                                 mask_id=ids.mask, eos_id=ids.eos, stop=[rules[i] for i in bucket],
                                 batch_size=batch_size)
        for row, i in enumerate(bucket):
            generated[i] = res.generated[row].tolist()
            nfe[i] = res.row_nfe[row]


def answer(tokens: list[int], rule: StopRule, mask_id: int) -> tuple[list[int], str]:
    """The caller's cut: tokens before the first stop id (or an uncommitted position), text."""
    cut = set(rule.stop_ids) | {mask_id}
    end = next((j for j, t in enumerate(tokens) if t in cut), len(tokens))
    text = truncate_stop(rule.decode(tokens[:end]), rule.until) if rule.decode else ""
    return tokens[:end], text


def agreement(run: ModeRun, exact: ModeRun, rules: Sequence[StopRule],
              mask_id: int) -> dict[str, float]:
    """Approximate vs exact: share of the exact answers' positions (through the cut token)
    holding the same token, and share of requests whose answer is identical (the text when
    the rule has stop strings, else the tokens before the cut)."""
    same = total = texts = 0
    for got, want, rule in zip(run.generated, exact.generated, rules):
        tokens, text = answer(want, rule, mask_id)
        span = min(len(tokens) + 1, len(want))
        same += sum(int(a == b) for a, b in zip(got[:span], want[:span]))
        total += span
        got_tokens, got_text = answer(got, rule, mask_id)
        texts += int(got_text == text if rule.until else got_tokens == tokens)
    return {"token_agreement": same / max(total, 1), "answer_agreement": texts / len(rules)}


def _row(name: str, run: ModeRun, n: int, gen_length: int, base: ModeRun) -> dict:
    return {"mode": name, "seconds": run.seconds, "cpu_seconds": run.cpu_seconds,
            "tokens_per_s": n * gen_length / run.seconds,
            "tokens_per_cpu_s": n * gen_length / run.cpu_seconds,
            "nfe_per_request": statistics.mean(run.nfe), "speedup": base.seconds / run.seconds,
            "cpu_speedup": base.cpu_seconds / run.cpu_seconds,
            "nfe_ratio": statistics.mean(base.nfe) / statistics.mean(run.nfe)}


def compare_modes(model: torch.nn.Module, prompts: Sequence[torch.Tensor], config: SamplerConfig,
                  rules: Sequence[StopRule], batch_size: int, label: str, ids: Ids = Ids(),
                  log: Callable[[str], None] = say) -> dict:
    """Every mode on one case; exact modes asserted identical to the reference."""
    n = len(prompts)
    short = [prompts[0][:8]]  # warm-up of both code paths (allocations, rotary tables)
    run_reference(model, short, config, ids)
    run_evalsuite(model, short, config, 1, rules[:1], ids)
    ref = run_reference(model, prompts, config, ids)
    rows = [_row("reference (one request, full logits, no early exit)", ref, n,
                 config.gen_length, ref)]
    exact_off = run_evalsuite(model, prompts, config.replace(early_exit=False), batch_size,
                              rules, ids)
    exact_on = run_evalsuite(model, prompts, config, batch_size, rules, ids)
    for name, run in (("evalsuite exact, early exit off", exact_off),
                      ("evalsuite exact, early exit on", exact_on)):
        for i, rule in enumerate(rules):
            want_tokens, want_text = answer(ref.generated[i], rule, ids.mask)
            got_tokens, got_text = answer(run.generated[i], rule, ids.mask)
            assert got_text == want_text, f"{label} {name}: request {i} text differs"
            if not rule.until:
                assert got_tokens == want_tokens, f"{label} {name}: request {i} tokens differ"
        if name.endswith("off"):
            assert run.generated == ref.generated, f"{label}: tokens differ from the reference"
        rows.append({**_row(name, run, n, config.gen_length, ref), "identical_to_reference": True})
    approx = {
        "threshold 0.9 (approximate)": config.replace(decoding="threshold", threshold=0.9),
        "prefix KV cache (approximate)": config.replace(cache="prefix"),
        "dual KV cache (approximate)": config.replace(cache="dual"),
    }
    for name, cfg in approx.items():
        run = run_evalsuite(model, prompts, cfg, batch_size, rules, ids)
        rows.append({**_row(name, run, n, config.gen_length, ref),
                     **agreement(run, ref, rules, ids.mask),
                     "nfe_vs_exact": statistics.mean(exact_on.nfe) / statistics.mean(run.nfe)})
    saved = 1 - sum(exact_on.nfe) / sum(exact_off.nfe)
    case = {"case": label, "requests": n, "config": config.as_dict(), "batch_size": batch_size,
            "prompt_lengths": [len(p) for p in prompts],
            "answer_lengths": [len(answer(g, r, ids.mask)[0])
                               for g, r in zip(ref.generated, rules)],
            "early_exit_nfe_saved": saved, "modes": rows}
    log(f"\n{label}: {n} requests, gen_length {config.gen_length}, block "
        f"{config.block_length}, steps {config.steps}, batch {batch_size}; early exit saves "
        f"{saved:.1%} of the forward passes")
    for r in rows:
        extra = "".join(f"  {k} {r[k]:.1%}" for k in ("token_agreement", "answer_agreement")
                        if k in r)
        log(f"  {r['mode']:52s} {r['seconds']:7.2f}s wall {r['cpu_seconds']:7.2f}s cpu "
            f"{r['tokens_per_s']:7.1f} tok/s  NFE/req {r['nfe_per_request']:6.1f}  "
            f"x{r['speedup']:.2f} (cpu x{r['cpu_speedup']:.2f}){extra}")
    return case


def arith_prompts(shots: int, count: int) -> list[str]:
    """The miniature study's ``llada_arith`` prompts (its 2-shot layout on the committed
    splits): in-distribution for the trained llada-tiny, so its answers are real solutions of
    12-22 tokens that end in ``#### N`` and EOS, not the out-of-distribution GSM8K text it
    answers with an immediate EOS."""
    data = ROOT / "evalsuite" / "assets" / "miniature"
    train = [json.loads(line) for line in (data / "arith_train.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (data / "arith_test.jsonl").read_text().splitlines()]
    context = "".join("".join(arith_pair(d)) + "\n\n" for d in train[:shots])
    return [context + arith_pair(d)[0] for d in test[:count]]


def run_generation_bench(quick: bool = False, log: Callable[[str], None] = say) -> dict:
    """All generation cases; a dict for bench.json."""
    cases = []
    d, layers = (128, 2) if quick else (512, 2)
    cfg = llada8b_shape(d, layers)
    net = random_network(cfg)
    log(f"llada8b-shape network: d_model {d}, {layers} layers, FFN {cfg.mlp_hidden_size}, "
        f"vocab {cfg.vocab_size}; head {head_fraction(cfg):.1%} of the multiply-adds per token "
        f"(LLaDA-8B: ~7%); torch threads {torch.get_num_threads()}")
    n, gen = (3, 16) if quick else (8, 64)
    g = torch.Generator().manual_seed(0)
    lo = 3 * gen // 16  # synthetic answer lengths: 3/16 .. 11/16 of gen_length
    prompts = [torch.randint(10, cfg.vocab_size, (int(length),), generator=g)
               for length in torch.randint(gen + gen // 2, 2 * gen + gen // 2, (n,), generator=g)]
    rule = StopRule(stop_ids=frozenset({EOS}))
    stops = SyntheticStops(net, gen, lo, lo + gen // 2)
    for block in ((gen // 4, gen) if not quick else (gen // 4,)):
        config = SamplerConfig(gen_length=gen, steps=gen // 2, block_length=block)
        label = ("llada8b-shape, GSM8K-shaped, synthetic EOS, "
                 + ("semi-AR blocks" if block < gen else "pure diffusion"))
        cases.append(compare_modes(stops, prompts, config, [rule] * n, min(4, n), label,
                                   log=log))
    cases.append(_llada_tiny_case(quick, log))
    return {"network": {"d_model": d, "n_layers": layers, "mlp_hidden_size": cfg.mlp_hidden_size,
                        "vocab_size": cfg.vocab_size, "head_fraction": head_fraction(cfg)},
            "cases": cases}


def _llada_tiny_case(quick: bool, log: Callable[[str], None]) -> dict:
    from evalsuite.models.loader import load_model
    from evalsuite.presets import LLADA_TINY_DIR

    lm = load_model(str(LLADA_TINY_DIR), dtype="float32", device="cpu")
    tok = lm.tokenizer
    texts = arith_prompts(shots=2, count=3 if quick else 8)
    prompts = [torch.tensor(tok(t)["input_ids"]) for t in texts]
    stop_ids = frozenset(i for i in (lm.tokens.eos_id, lm.tokens.eot_id) if i is not None)
    decode = lambda ids: tok.decode(ids, skip_special_tokens=True)  # noqa: E731
    rule = StopRule(stop_ids=stop_ids, until=("Question:", "</s>", "<|im_end|>"), decode=decode)
    gen = 16 if quick else 64
    config = SamplerConfig(gen_length=gen, steps=gen // 2, block_length=gen // 4)
    eos = lm.tokens.eos_id if lm.tokens.eos_id is not None else -1
    ids = Ids(mask=lm.tokens.mask_id, eos=eos,
              pad=lm.tokens.pad_id if lm.tokens.pad_id is not None else max(eos, 0))
    return compare_modes(lm.network, prompts, config, [rule] * len(prompts),
                         min(4, len(prompts)), "llada-tiny, llada_arith prompts (real tokenizer)",
                         ids, log)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    print(json.dumps(run_generation_bench(ap.parse_args().quick), indent=2)[:2000])
