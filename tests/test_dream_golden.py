"""Dream parity with the official code on shared/golden/dream (copied into tests/fixtures).

Every case of the golden README is checked:

- logits: no mask, and the padded 4-D bool mask + ``tok_idx`` positions of
  ``diffusion_generate`` (<= 1e-4; they agree to the bit); a 2-D padding mask gives the same
  logits at the real positions;
- generations gen0..gen9: output and step history token for token, including uneven step
  counts, steps == gen length (first step commits 0, last 2) and mask ids committed;
- padded batches genbatch0/1 with ``batch_schedule="batch_mean"`` (the official batch mean);
  the default ``per_row`` gives each row its solo run;
- likelihood: the exact expectation of the official MC estimator, the official values per
  seed (``estimator="reference"``), ``ar_ftb``; Monte Carlo designs within 3 standard errors.

RNG-dependent cases: gen7, gen8 (``origin``: ``torch.rand`` per step) and gen9
(``alg_temp=0.5``: ``torch.multinomial``) and ``official_mc`` (``torch.rand``). The sampler and
the reference estimator make Dream's random calls in the official order and shapes, so a
per-row generator seeded with the case's seed (the golden ``torch.manual_seed``) reproduces
them exactly; they are tested as such.

The golden generations were made by calling ``diffusion_generate`` without ``top_k``; that call
filters with ``top_k=50`` (transformers' ``GenerationConfig`` default reaches Dream's config),
which changes the entropy / max-prob confidences. The cases pass ``top_k=50`` explicitly;
without it entropy and maskgit_plus cases differ (tested), the default being Dream's
evaluation scripts' (no top-k).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import evalsuite
from evalsuite.settings.config import EstimatorConfig
from evalsuite.diffusion.sampler import diffusion_generate, dream_commit_count, dream_timesteps
from evalsuite.families.dream.likelihood import estimate_dream_loglikelihood, subset_mass
from evalsuite.families.dream.protocol import sampler_config

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden" / "dream"
TOL = 1e-4
MASK, EOS = 1000, 999
GOLDEN_TOP_K = 50  # what the golden's diffusion_generate call used (see the module docstring)


@pytest.fixture(scope="module")
def dream():
    return evalsuite.load_model(str(GOLDEN / "tiny-dream"), dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def gold():
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "tiny-dream-golden.safetensors"))


@pytest.fixture(scope="module")
def meta():
    return json.loads((GOLDEN / "tiny-dream-golden.json").read_text())


def test_loads_as_the_dream_family(dream):
    assert dream.family.name == "dream"
    assert (dream.tokens.mask_id, dream.tokens.eos_id, dream.tokens.pad_id) == (MASK, EOS, EOS)


def test_raw_logits_match(dream, gold):
    with torch.no_grad():
        logits = dream.network(gold["logits.input_ids"])
    assert (logits - gold["logits.logits"]).abs().max().item() <= TOL


def test_padded_logits_with_the_official_4d_mask_and_positions(dream, gold):
    ids, mask = gold["logits.input_ids"], gold["logits_padded.attention_mask"].bool()
    mask4d = mask[:, None, :, None] & mask[:, None, None, :]
    with torch.no_grad():
        logits = dream.network(ids, mask4d, position_ids=gold["logits_padded.position_ids"])
        from_2d = dream.network(ids, gold["logits_padded.attention_mask"])
    assert torch.isfinite(logits).all()
    assert (logits - gold["logits_padded.logits"]).abs().max().item() <= TOL
    # a 2-D padding mask: Dream's positions, real positions identical
    assert (from_2d - gold["logits_padded.logits"])[mask].abs().max().item() <= TOL


def _generation_cases(meta):
    return [c for c in meta["generation"] if isinstance(c["case"], int)]


@pytest.mark.parametrize("case", range(10))
def test_generation_and_history_token_exact(dream, gold, meta, case):
    c = _generation_cases(meta)[case]
    config = sampler_config(steps=c["steps"], gen_length=c["max_new_tokens"], alg=c["alg"],
                            alg_temp=c.get("alg_temp") or 0.0, top_k=GOLDEN_TOP_K)
    generator = None
    if c["rng_dependent"]:
        generator = [torch.Generator().manual_seed(c["seed"])]
    out = diffusion_generate(dream.network, gold[f"gen{case}.prompt"], config=config,
                             mask_id=MASK, eos_id=EOS, generator=generator, logit_shift=1,
                             history=True)
    assert torch.equal(out.tokens, gold[f"gen{case}.output"])
    history = torch.stack(out.history[0])[:, None]
    assert torch.equal(history, gold[f"gen{case}.history"])
    # masks removed per step, as the golden counted them
    before = [c["max_new_tokens"]] + [int((h == MASK).sum()) for h in out.history[0]]
    assert [a - b for a, b in zip(before, before[1:])] == c["per_step_committed"]
    # a step that can commit nothing (no masks left, or a count of 0 at temperature 0)
    # costs no forward pass: steps == gen length skips the first
    masks_before = [c["max_new_tokens"]] + [int((h[-c["max_new_tokens"]:] == MASK).sum())
                                            for h in out.history[0]]
    times = dream_timesteps(c["steps"])
    passes = sum(1 for i in range(c["steps"]) if masks_before[i] > 0 and (
        c["alg"] == "origin" or dream_commit_count(masks_before[i], 1, i, times) > 0))
    assert out.nfe == passes
    if c["steps"] == c["max_new_tokens"] and c["alg"] != "origin":
        assert out.nfe == c["steps"] - 1


def test_public_generate_takes_dreams_setting_names(dream, gold, meta):
    c = _generation_cases(meta)[1]
    out = evalsuite.generate(dream, gold["gen1.prompt"], steps=c["steps"],
                             gen_length=c["max_new_tokens"], alg=c["alg"], top_k=GOLDEN_TOP_K)
    assert out.tokens.shape == (1, gold["gen1.prompt"].shape[1] + c["max_new_tokens"])
    assert torch.equal(out.tokens, gold["gen1.output"])
    assert out.nfe == c["steps"]


def test_without_the_golden_top_k_the_confidence_changes(dream, gold, meta):
    """The top-k filter shapes entropy confidences even at temperature 0: the golden's
    implicit top_k=50 matters (a test that the parity above is not vacuous)."""
    c = _generation_cases(meta)[0]
    out = evalsuite.generate(dream, gold["gen0.prompt"], steps=c["steps"],
                             gen_length=c["max_new_tokens"], alg=c["alg"])
    assert not torch.equal(out.tokens, gold["gen0.output"])


@pytest.mark.parametrize("k", [0, 1])
def test_padded_batch_official_batch_mean(dream, gold, meta, k):
    c = meta["generation"][10 + k]
    config = sampler_config(steps=c["steps"], gen_length=c["max_new_tokens"], alg=c["alg"],
                            top_k=GOLDEN_TOP_K, batch_schedule="batch_mean")
    out = diffusion_generate(dream.network, gold[f"genbatch{k}.prompt"],
                             gold[f"genbatch{k}.attention_mask"], config=config, mask_id=MASK,
                             logit_shift=1)
    assert torch.equal(out.tokens, gold[f"genbatch{k}.output"])


@pytest.mark.parametrize("k", [0, 1])
def test_padded_batch_default_is_each_rows_solo_run(dream, gold, meta, k):
    c = meta["generation"][10 + k]
    settings = dict(steps=c["steps"], gen_length=c["max_new_tokens"], alg=c["alg"],
                    top_k=GOLDEN_TOP_K)
    prompts, mask = gold[f"genbatch{k}.prompt"], gold[f"genbatch{k}.attention_mask"]
    batch = evalsuite.generate(dream, prompts, mask, **settings)
    p = prompts.shape[1]
    for row in range(3):
        solo = evalsuite.generate(dream, prompts[row:row + 1, mask[row].bool()], **settings)
        assert torch.equal(solo.generated[0], batch.generated[row])
        # the official batch equals the solo run exactly where the golden says so
        same = torch.equal(batch.generated[row], gold[f"genbatch{k}.output"][row, p:])
        assert same == c["rows_equal_unpadded_solo_generation"][row]


def _pair(gold, case):
    target = gold[f"ll{case}.target"]
    assert int(target[-1]) == EOS  # the golden target carries the appended EOS
    return gold[f"ll{case}.prefix"], target[:-1]


@pytest.mark.parametrize("case", range(4))
def test_likelihood_exact_expectation(dream, gold, meta, case):
    c = meta["likelihood"][case]
    res = evalsuite.loglikelihood(dream, *_pair(gold, case), mc_num=128, seed=0)
    assert res.exact and res.stderr == 0 and res.samples == 2 ** c["maskable_positions"] - 1
    assert math.isclose(res.value, c["exact_expectation_mc"], rel_tol=TOL)


@pytest.mark.parametrize("case", range(4))
def test_likelihood_ar_ftb(dream, gold, meta, case):
    c = meta["likelihood"][case]
    res = evalsuite.loglikelihood(dream, *_pair(gold, case), nll_type="ar_ftb")
    assert res.nfe == c["target_len"]
    assert math.isclose(res.value, c["official_ar_ftb"], rel_tol=TOL)


@pytest.mark.parametrize("case", [1, 3])
def test_reference_estimator_reproduces_the_official_values(dream, gold, meta, case):
    c = meta["likelihood"][case]["official_mc"]
    config = EstimatorConfig(mc_num=c["mc_num"], batch_size=c["batch_size"],
                             estimator="reference")
    for seed, value in list(zip(c["seeds"], c["values"]))[:6]:
        res = estimate_dream_loglikelihood(
            dream.network, [_pair(gold, case)], config=config, mask_id=MASK, eos_id=EOS,
            generators=[torch.Generator().manual_seed(seed)])[0]
        assert abs(res.value - value) <= TOL * max(1.0, abs(value))


@pytest.mark.parametrize("estimator", ["auto", "stratified"])
def test_monte_carlo_designs_are_unbiased_for_the_official_expectation(dream, gold, meta,
                                                                       estimator):
    """5 maskable positions, 8 rows: not enumerable, so the design samples."""
    c = meta["likelihood"][2]
    config = EstimatorConfig(mc_num=8, batch_size=8, estimator=estimator)
    runs = 24
    results = estimate_dream_loglikelihood(
        dream.network, [_pair(gold, 2)] * runs, config=config, mask_id=MASK, eos_id=EOS,
        generators=[torch.Generator().manual_seed(100 + i) for i in range(runs)])
    assert not any(r.exact for r in results)
    values = torch.tensor([r.value for r in results], dtype=torch.float64)
    se = float(values.std() / math.sqrt(runs))
    assert abs(float(values.mean()) - c["exact_expectation_mc"]) <= 3 * se
    # lower variance than the official Bernoulli estimator at the same rows (its sd at 128
    # rows scaled to 8 rows)
    official_sd_8 = meta["likelihood"][2]["official_mc"]["sd"] * math.sqrt(128 / 8)
    assert float(values.std()) < official_sd_8


def test_subset_masses_sum_to_the_official_weighting():
    # sum_k C(n,k) ... : with every g(S) = 1 per masked token, the expectation is
    # E_t[(1/p) * E|S|] = n exactly (each position masked w.p. p, weighted 1/p)
    for n in (1, 2, 5, 9):
        total = sum(subset_mass(n, k) * k for k in range(1, n + 1))
        assert math.isclose(total, n, rel_tol=1e-9)


def test_classifier_free_guidance_works_and_follows_the_formula(dream, gold):
    prefix, answer = _pair(gold, 0)  # one maskable position: exact in one row
    w = 0.5
    res = evalsuite.loglikelihood(dream, prefix, answer, cfg_scale=w)
    seq = torch.cat([prefix, answer, torch.tensor([EOS])])
    pos = prefix.numel()
    masked = seq.clone()
    masked[pos] = MASK
    uncond = masked.clone()
    uncond[:pos] = MASK
    with torch.no_grad():
        logits = dream.network(torch.stack([masked, uncond]))[:, pos - 1]  # the shift
    guided = logits[1] + (w + 1) * (logits[0] - logits[1])
    expected = float(torch.log_softmax(guided, -1)[seq[pos]])
    assert res.nfe == 2 and math.isclose(res.value, expected, rel_tol=1e-5)
    plain = evalsuite.loglikelihood(dream, prefix, answer)
    assert abs(plain.value - res.value) > 1e-3
