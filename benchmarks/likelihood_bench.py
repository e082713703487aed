"""Likelihood benchmark: evalsuite's default estimator against the official algorithm.

Three measurements, one run:

1. **Precision** on a trained tiny model (``--checkpoint``, default the bundled llada-tiny)
   with PIQA-shaped multiple-choice requests: the standard deviation of the estimate over
   seeds for the reference design at ``mc_num`` 128 and the default design at 16..128 rows;
   the SD ratio at equal rows and the fewest rows at which the default design is at least as
   precise as the reference at 128 ("equal precision").
2. **Accuracy flip rate** between seeds on the same questions: how often two seeds pick a
   different choice, for the reference, the default design without and with common random
   numbers across the choices of a question.
3. **Speed** on a random network with LLaDA-8B's proportions (vocabulary head ~7% of the
   FLOPs): the baseline is the official algorithm as the official code runs it (one request at
   a time, groups of 16 rows, full-sequence logits, every choice scored separately, 128 rows);
   evalsuite runs its default design at the equal-precision row count, packed across requests.
   Reported: requests/s of both, forward rows per request, the ratio (wall clock and CPU
   time; on a shared machine the CPU-time ratio is the robust one).

``python benchmarks/likelihood_bench.py [--quick] [--checkpoint DIR] [--out FILE]``;
``benchmarks/run.py`` imports :func:`run_likelihood_bench`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from evalsuite.settings.config import EstimatorConfig  # noqa: E402
from evalsuite.diffusion.likelihood import estimate_loglikelihood  # noqa: E402
from evalsuite.models.llada import LLaDAConfig, LLaDAModel  # noqa: E402

MC_NUM = 128
PROMPT = 32
GROUP = 16
BUDGETS = (16, 32, 64, 128)
PIQA = ROOT.parent / "shared" / "data" / "piqa" / "valid.jsonl"


# ----- the baseline: the official algorithm, run the way the official code runs it ----------
def official_forward_process(seq: torch.Tensor, prompt_len: int, mask_id: int,
                             gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One group: offset k in 1..L, counts ((round(k + j L / b) - 1) mod L) + 1, a random
    permutation per row. Returns the masked batch [b, T] and p_mask = l / L per row [b]."""
    b = seq.shape[0]
    length = seq.shape[1] - prompt_len
    k = int(torch.randint(1, length + 1, (), generator=gen))
    line = torch.linspace(float(k), k + (b - 1) * (length / b), steps=b)
    counts = ((torch.round(line).long() - 1) % length) + 1
    is_mask = torch.arange(length)[None, :] < counts[:, None]
    for i in range(b):
        is_mask[i] = is_mask[i][torch.randperm(length, generator=gen)]
    full = torch.cat([torch.zeros((b, prompt_len), dtype=torch.bool), is_mask], dim=1)
    return seq.masked_fill(full, mask_id), counts.double() / length


@torch.no_grad()
def official_loglikelihood(model: LLaDAModel, prompt: torch.Tensor, answer: torch.Tensor,
                           mask_id: int, gen: torch.Generator, mc_num: int = MC_NUM,
                           batch: int = GROUP) -> float:
    """The official estimator: mc_num / batch passes of full-sequence logits, loss / p_mask."""
    seq = torch.cat([prompt, answer])[None].repeat(batch, 1)
    losses = []
    for _ in range(mc_num // batch):
        x, p_mask = official_forward_process(seq, prompt.numel(), mask_id, gen)
        where = x == mask_id
        logits = model(x)  # [b, T, V]: every position through the head, as the official code
        loss = F.cross_entropy(logits[where].float(), seq[where], reduction="none")
        loss = loss / p_mask[:, None].expand_as(where)[where]
        losses.append(float(loss.sum() / batch))
    return -sum(losses) / len(losses)


# ----- requests ---------------------------------------------------------------------------
def piqa_questions(tokenizer: Any, count: int) -> list[tuple[list[int], list[list[int]]]]:
    """``count`` PIQA-shaped questions (context ids, choice ids), lm-eval's split; falls back
    to fixed synthetic text when the shared data is absent."""
    rows = []
    if PIQA.is_file():
        for line in PIQA.read_text().splitlines():
            rows.append(json.loads(line))
            if len(rows) >= 4 * count:
                break
    else:  # pragma: no cover - the shared data is present in this project
        words = "the a cup of water put it in box then heat pan with oil and stir slowly".split()
        gen = torch.Generator().manual_seed(0)
        for _ in range(4 * count):
            pick = lambda n: " ".join(words[int(i)] for i in torch.randint(0, len(words), (n,), generator=gen))  # noqa: E731
            rows.append({"goal": pick(8), "sol1": pick(12), "sol2": pick(12)})
    out = []
    for row in rows:
        context = f"Question: {row['goal']}\nAnswer:"
        ctx = tokenizer(context)["input_ids"]
        choices = []
        for sol in (row["sol1"], row["sol2"]):
            whole = tokenizer(context + " " + sol)["input_ids"]
            choices.append(whole[len(ctx):])
        if all(4 <= len(c) <= 40 for c in choices):  # multi-token answers of PIQA's usual size
            out.append((ctx, choices))
        if len(out) == count:
            break
    return out


def proportional_network(layers: int, seed: int = 0) -> tuple[LLaDAModel, dict[str, float]]:
    """A random LLaDA network with LLaDA-8B's proportions: d 512, FFN 3x, vocab 512 x layers so
    the head is ~7% of the multiply-adds per token (LLaDA-8B: 0.52 G of 7.5 G)."""
    d, ffn = 512, 1536
    vocab = 512 * layers
    cfg = LLaDAConfig(d_model=d, n_heads=8, n_layers=layers, mlp_hidden_size=ffn,
                      vocab_size=vocab, embedding_size=vocab, n_kv_heads=8,
                      mask_token_id=vocab - 1, eos_token_id=vocab - 2)
    torch.manual_seed(seed)
    model = LLaDAModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.05)
    model.eval()
    blocks = layers * (4 * d * d + 3 * d * ffn)
    head = d * vocab
    return model, {"d_model": d, "ffn": ffn, "layers": layers, "vocab": vocab,
                   "head_fraction": round(head / (blocks + head), 4)}


# ----- measurements -----------------------------------------------------------------------
def _estimates(model: Any, requests: list[tuple[torch.Tensor, torch.Tensor]], estimator: str,
               mc_num: int, seeds: list[int], mask_id: int, crn: list[int] | None = None,
               ) -> torch.Tensor:
    """``[len(seeds), len(requests)]`` estimates; seed s drives request i's draws (shared by
    a CRN group when ``crn`` is given)."""
    config = EstimatorConfig(mc_num=mc_num, batch_size=min(GROUP, mc_num), estimator=estimator)  # type: ignore[arg-type]
    out = torch.empty((len(seeds), len(requests)), dtype=torch.float64)
    for a, s in enumerate(seeds):
        gens = [torch.Generator().manual_seed(s * 100_003 + (crn[i] if crn else i))
                for i in range(len(requests))]
        res = estimate_loglikelihood(model, requests, config=config, mask_id=mask_id,
                                     generators=gens, max_rows=256, crn_groups=crn)
        out[a] = torch.tensor([r.value for r in res], dtype=torch.float64)
    return out


def _flip_rate(values: torch.Tensor, sizes: list[int]) -> float:
    """Mean over questions of the fraction of seed pairs whose argmax choice differs."""
    picks = []
    start = 0
    for n in sizes:
        picks.append(values[:, start:start + n].argmax(dim=1))
        start += n
    seeds = values.shape[0]
    pairs = seeds * (seeds - 1) / 2
    rates = [sum(int(p[i] != p[j]) for i in range(seeds) for j in range(i + 1, seeds)) / pairs
             for p in picks]
    return sum(rates) / len(rates)


def _difference_sd(values: torch.Tensor, sizes: list[int]) -> float:
    """Mean over questions of the SD over seeds of (first choice - second choice)."""
    sds, start = [], 0
    for n in sizes:
        sds.append(float((values[:, start] - values[:, start + 1]).std()))
        start += n
    return sum(sds) / len(sds)


def precision_and_flips(checkpoint: str | None, quick: bool, questions_n: int | None = None,
                        seeds_n: int | None = None) -> dict[str, Any]:
    from evalsuite.models.loader import load_model
    from evalsuite.presets import LLADA_TINY_DIR

    lm = load_model(str(checkpoint or LLADA_TINY_DIR), dtype="float32", device="cpu")
    mask_id = lm.tokens.mask_id
    questions = piqa_questions(lm.tokenizer, questions_n or (6 if quick else 10))
    requests, sizes = [], []
    for ctx, choices in questions:
        sizes.append(len(choices))
        requests += [(torch.tensor(ctx), torch.tensor(c)) for c in choices]
    crn = [q for q, n in enumerate(sizes) for _ in range(n)]
    seeds = list(range(seeds_n or (6 if quick else 8)))
    ref = _estimates(lm.network, requests, "reference", MC_NUM, seeds, mask_id)
    sd_ref = ref.std(dim=0)
    by_budget: dict[int, torch.Tensor] = {}
    for budget in BUDGETS:
        by_budget[budget] = _estimates(lm.network, requests, "auto", budget, seeds, mask_id, crn)
    ratios = {b: float((v.std(dim=0) / sd_ref).median()) for b, v in by_budget.items()}
    lengths = [int(a.numel()) for _, a in requests]
    sampled = torch.tensor([2 ** min(n, 62) - 1 > MC_NUM for n in lengths])  # not enumerable
    long_ratio = float((by_budget[MC_NUM].std(dim=0)[sampled] / sd_ref[sampled]).median())
    mean_sd = {b: float(v.std(dim=0).mean()) for b, v in by_budget.items()}
    equal = next((b for b in BUDGETS if mean_sd[b] <= float(sd_ref.mean())), MC_NUM)
    auto_nocrn = _estimates(lm.network, requests, "auto", MC_NUM, seeds, mask_id)
    return {
        "model": str(checkpoint or "llada-tiny (bundled)"),
        "requests": len(requests), "questions": len(questions), "seeds": len(seeds),
        "answer_tokens": {"min": min(lengths), "median": sorted(lengths)[len(lengths) // 2],
                          "max": max(lengths)},
        "sd_reference_mc128": round(float(sd_ref.mean()), 4),
        "sd_auto_by_rows": {str(b): round(v, 4) for b, v in mean_sd.items()},
        "sd_ratio_auto_over_reference_at_128": round(ratios[MC_NUM], 3),
        "sd_ratio_at_128_answers_over_7_tokens": round(long_ratio, 3),
        "exact_requests": int((~sampled).sum()),
        "sd_ratio_median_by_rows": {str(b): round(r, 3) for b, r in ratios.items()},
        "rows_for_equal_precision": equal,
        "reference_rows_to_match_auto_128": int(round(MC_NUM / ratios[MC_NUM] ** 2)),
        "choice_difference_sd_reference": round(_difference_sd(ref, sizes), 4),
        "choice_difference_sd_auto_no_crn": round(_difference_sd(auto_nocrn, sizes), 4),
        "choice_difference_sd_auto_crn": round(_difference_sd(by_budget[MC_NUM], sizes), 4),
        "flip_rate_reference": round(_flip_rate(ref, sizes), 4),
        "flip_rate_auto_no_crn": round(_flip_rate(auto_nocrn, sizes), 4),
        "flip_rate_auto_crn": round(_flip_rate(by_budget[MC_NUM], sizes), 4),
        "flip_rate_auto_crn_at_equal_precision": round(_flip_rate(by_budget[equal], sizes), 4),
    }


def speed(rows: int, quick: bool) -> dict[str, Any]:
    """Requests/s of the official loop (128 rows) vs evalsuite's default design at ``rows``."""
    torch.manual_seed(0)
    model, shape = proportional_network(layers=4)
    mask_id = int(shape["vocab"]) - 1
    questions = 2 if quick else 3
    gen = torch.Generator().manual_seed(1)
    requests = []
    for _ in range(questions):
        prompt = torch.randint(0, shape["vocab"] - 2, (PROMPT,), generator=gen)
        for _ in range(2):
            requests.append((prompt, torch.randint(0, shape["vocab"] - 2, (12,), generator=gen)))
    t0, c0 = time.perf_counter(), time.process_time()
    for i, (p, a) in enumerate(requests):
        official_loglikelihood(model, p, a, mask_id, torch.Generator().manual_seed(i))
    base_s, base_cpu = time.perf_counter() - t0, time.process_time() - c0
    config = EstimatorConfig(mc_num=rows, batch_size=min(GROUP, rows))
    gens = [torch.Generator().manual_seed(q // 2) for q in range(len(requests))]
    t0, c0 = time.perf_counter(), time.process_time()
    res = estimate_loglikelihood(model, requests, config=config, mask_id=mask_id,
                                 generators=gens, max_rows=32,
                                 crn_groups=[q // 2 for q in range(len(requests))])
    ours_s, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(requests)
    return {
        "network": shape, "requests": n, "prompt_tokens": PROMPT, "answer_tokens": 12,
        "reference_rows_per_request": MC_NUM,
        "evalsuite_rows_per_request": rows,
        "evalsuite_nfe_per_request": sum(r.nfe for r in res) / n,
        "reference_seconds": round(base_s, 3), "evalsuite_seconds": round(ours_s, 3),
        "reference_requests_per_s": round(n / base_s, 3),
        "evalsuite_requests_per_s": round(n / ours_s, 3),
        "reference_cpu_seconds": round(base_cpu, 3), "evalsuite_cpu_seconds": round(ours_cpu, 3),
        "speedup_at_equal_precision_wall": round(base_s / ours_s, 2),
        "speedup_at_equal_precision_cpu": round(base_cpu / ours_cpu, 2),
    }


def run_likelihood_bench(quick: bool = False, checkpoint: str | None = None,
                         questions: int | None = None, seeds: int | None = None) -> dict[str, Any]:
    """All likelihood figures as a JSON-serialisable dict (see the module docstring).
    ``questions`` / ``seeds`` override the precision part's size (default 10 / 8, quick 6 / 6)."""
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    t0 = time.perf_counter()
    precision = precision_and_flips(checkpoint, quick, questions, seeds)
    t1 = time.perf_counter()
    fast = speed(precision["rows_for_equal_precision"], quick)
    return {"precision": precision, "speed": fast, "quick": quick,
            "seconds": {"precision": round(t1 - t0, 1), "speed": round(time.perf_counter() - t1, 1)},
            "cpu_seconds": round(time.process_time(), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer questions and seeds")
    parser.add_argument("--checkpoint", default=None,
                        help="trained LLaDA-format checkpoint for precision and flip rate "
                        "(default: the bundled llada-tiny)")
    parser.add_argument("--questions", type=int, default=None, help="PIQA questions (default 10)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per estimate (default 8)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    figures = run_likelihood_bench(args.quick, args.checkpoint, args.questions, args.seeds)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
