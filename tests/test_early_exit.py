"""Exact early exit: answers identical to ``early_exit=off``, token for token and text for text."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from lm_eval.api.instance import Instance

from evalsuite.settings.config import SamplerConfig
from evalsuite.diffusion.sampler import commit_mask, diffusion_generate
from evalsuite.diffusion.stopping import StopRule, length_buckets, stop_string_decided
from evalsuite.errors import ConfigError
from evalsuite.models.adapter import LLaDAEvalModel
from evalsuite.models.requests import truncate_stop

MASK = 1000


def spaced(ids) -> str:
    """A prefix-stable decode for the tokenizer-less golden model: ' 12 7 301'."""
    return "".join(f" {int(t)}" for t in ids)


def answer(result, row: int, rule: StopRule, mask_id: int) -> tuple[list[int], str]:
    """The caller's cut (as the adapter does it): tokens up to the first stop id, then text."""
    tokens = result.generated[row].tolist()
    cut = set(rule.stop_ids) | ({mask_id} if result.exited[row] else set())
    end = next((j for j, t in enumerate(tokens) if t in cut), len(tokens))
    text = truncate_stop(rule.decode(tokens[:end]) if rule.decode else "", rule.until)
    return tokens[:end], text


def assert_exact(on, off, rules, mask_id: int) -> None:
    """Same answers; every token the early-exit run committed equals the full run's."""
    for row, rule in enumerate(rules):
        got, want = on.generated[row], off.generated[row]
        committed = got != mask_id
        assert torch.equal(got[committed], want[committed]), f"row {row}: committed tokens differ"
        tok_on, text_on = answer(on, row, rule, mask_id)
        tok_off, text_off = answer(off, row, rule, mask_id)
        assert text_on == text_off, f"row {row}: {text_on!r} != {text_off!r}"
        if not rule.until:
            assert tok_on == tok_off
    assert not any(off.exited)
    assert all(a <= b for a, b in zip(on.row_nfe, off.row_nfe))


def common_token(result) -> int:
    """The most frequent generated token: a stop id that really occurs."""
    return Counter(result.generated.flatten().tolist()).most_common(1)[0][0]


def run_pair(model, prompts, mask, config, *, rule_for, seeds=None, batch_size=None):
    def gens():
        return None if seeds is None else [torch.Generator().manual_seed(s) for s in seeds]

    off = diffusion_generate(model, prompts, mask, config=config.replace(early_exit=False),
                             mask_id=MASK, generator=gens(), batch_size=batch_size,
                             stop=rule_for(None))
    rules = rule_for(off)
    off = diffusion_generate(model, prompts, mask, config=config.replace(early_exit=False),
                             mask_id=MASK, generator=gens(), batch_size=batch_size, stop=rules)
    on = diffusion_generate(model, prompts, mask, config=config, mask_id=MASK,
                            generator=gens(), batch_size=batch_size, stop=rules)
    assert_exact(on, off, rules, MASK)
    return on, off


def id_rule(off):
    return [StopRule(stop_ids=frozenset({common_token(off)}) if off is not None else frozenset(),
                     decode=spaced)] * 3


CASES = {
    "pure diffusion": dict(gen_length=16, steps=16, block_length=16),
    "semi-AR blocks": dict(gen_length=24, steps=12, block_length=8),
    "cfg": dict(gen_length=16, steps=16, block_length=8, cfg_scale=1.0),
    "threshold": dict(gen_length=16, steps=4, block_length=8, decoding="threshold",
                      threshold=0.3),
    "eos last": dict(gen_length=16, steps=16, block_length=8, confidence_eos_eot_inf=True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_stop_ids_exit_early_with_identical_answers(golden_model, golden, name):
    prompts, mask = golden["genbatch.prompt"], golden["genbatch.attention_mask"]
    on, off = run_pair(golden_model, prompts, mask, SamplerConfig(**CASES[name]), rule_for=id_rule)
    if name != "eos last":
        assert any(on.exited) and sum(on.row_nfe) < sum(off.row_nfe)


@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_temperature_with_per_row_generators_and_slot_refill(golden_model, golden, remasking):
    """6 requests through 2 slots: rows exit at different times, refills start at block 0
    while others are mid-way; each row's draws come from its own generator only."""
    prompts = golden["genbatch.prompt"].repeat(2, 1)
    mask = golden["genbatch.attention_mask"].repeat(2, 1)
    config = SamplerConfig(gen_length=24, steps=24, block_length=8, temperature=0.8,
                           remasking=remasking)

    def rules(off):
        return [StopRule(stop_ids=frozenset({common_token(off)}) if off is not None
                         else frozenset(), decode=spaced)] * 6

    on, off = run_pair(golden_model, prompts, mask, config, rule_for=rules,
                       seeds=range(20, 26), batch_size=2)
    assert any(on.exited) and sum(on.row_nfe) < sum(off.row_nfe)
    # and equal to each row sampled alone with its generator, without any stop rule
    for row in range(6):
        keep = mask[row].bool()
        alone = diffusion_generate(golden_model, prompts[row:row + 1, keep], config=config,
                                   mask_id=MASK, generator=[torch.Generator().manual_seed(20 + row)])
        committed = on.generated[row] != MASK
        assert torch.equal(on.generated[row][committed], alone.generated[0][committed])


def test_stop_strings_split_across_tokens(golden_model, golden):
    """A stop string made of the end of one token's text and the start of the next."""
    prompts, mask = golden["genbatch.prompt"], golden["genbatch.attention_mask"]
    config = SamplerConfig(gen_length=24, steps=24, block_length=8)

    def rules(off):
        if off is None:
            return [StopRule(decode=spaced)] * 3
        out = []
        for row in range(3):
            toks = off.generated[row].tolist()
            stop = f"{toks[4]} {str(toks[5])[:1]}"[-3:]  # spans the boundary of tokens 4 and 5
            out.append(StopRule(until=(stop,), decode=spaced))
        return out

    on, off = run_pair(golden_model, prompts, mask, config, rule_for=rules)
    assert any(on.exited) and on.nfe < off.nfe


def test_mixed_blocks_use_the_same_logits_without_a_hidden_states_api(golden_model, golden):
    class Plain(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None, positions=None):
            return golden_model(input_ids, attention_mask, positions)

    prompts = golden["genbatch.prompt"].repeat(2, 1)
    mask = golden["genbatch.attention_mask"].repeat(2, 1)
    config = SamplerConfig(gen_length=24, steps=12, block_length=8, cfg_scale=0.5)

    def rules(off):
        return [StopRule(stop_ids=frozenset({common_token(off)}) if off is not None
                         else frozenset(), decode=spaced)] * 6

    run_pair(Plain(), prompts, mask, config, rule_for=rules, batch_size=4)


def test_kv_cache_modes_stop_a_chunk_once_every_answer_is_fixed(golden_model, golden):
    prompts, mask = golden["genbatch.prompt"], golden["genbatch.attention_mask"]
    config = SamplerConfig(gen_length=32, steps=32, block_length=8, cache="dual")
    rule = [StopRule(stop_ids=frozenset(range(MASK)), decode=spaced)] * 3  # any token stops
    on, off = run_pair(golden_model, prompts, mask, config, rule_for=lambda off: rule)
    assert all(on.exited) and on.nfe < off.nfe


def test_shared_generator_with_sampling_does_not_exit():
    """Draws of a shared generator depend on the batch's shape: exiting would change rows."""
    net = _Constant()
    config = SamplerConfig(gen_length=8, steps=8, block_length=8, temperature=1.0)
    rule = StopRule(stop_ids=frozenset(range(16)))
    out = diffusion_generate(net, torch.tensor([[7, 8], [7, 9]]), config=config, mask_id=1,
                             generator=torch.Generator().manual_seed(0), stop=rule)
    assert not any(out.exited) and out.nfe == 8


class _Constant(torch.nn.Module):
    """Fixed logits: token 9 (confident) on the first half of the answer, EOS 3 after."""

    def __init__(self, answer_start: int = 2, half: int = 4, nan_row: int | None = None) -> None:
        super().__init__()
        self.start, self.half, self.nan_row, self.calls = answer_start, half, nan_row, 0

    def forward(self, input_ids, attention_mask=None, positions=None):
        self.calls += 1
        b, t = input_ids.shape
        logits = torch.zeros((b, t, 16))
        logits[:, :, 9] = 10.0
        logits[:, self.start + self.half:, 9] = 0.0
        logits[:, self.start + self.half:, 3] = 12.0
        if self.nan_row is not None and self.nan_row < b:
            logits[self.nan_row, :, 5] = float("nan")
        return logits if positions is None else logits[:, positions]


def test_threshold_with_eos_last_commits_trailing_eos_together():
    net = _Constant()
    config = SamplerConfig(gen_length=8, steps=8, block_length=8, decoding="threshold",
                           threshold=0.9, confidence_eos_eot_inf=True)
    out = diffusion_generate(net, torch.tensor([[7, 8]]), config=config, mask_id=1, eos_id=3)
    assert out.generated[0].tolist() == [9, 9, 9, 9, 3, 3, 3, 3]
    assert out.nfe == 2  # the confident tokens, then the four EOS at once (not one pass each)


def test_nonfinite_logits_are_flagged_per_row():
    config = SamplerConfig(gen_length=8, steps=4, block_length=8)
    out = diffusion_generate(_Constant(nan_row=1), torch.tensor([[7, 8], [7, 8]]),
                             config=config, mask_id=1)
    assert out.nonfinite == (False, True)
    clean = diffusion_generate(_Constant(), torch.tensor([[7, 8]]), config=config, mask_id=1)
    assert clean.nonfinite == (False,)


def test_commit_ties_go_to_the_leftmost_position():
    conf = torch.tensor([[0.5, 0.9, 0.5, 0.5, 0.9]])
    masked = torch.tensor([[True, True, True, True, False]])
    got = commit_mask(conf, masked, torch.tensor([3]))
    assert got.tolist() == [[True, True, True, False, False]]


def test_stop_string_rule_is_conservative():
    decode = "".join
    ids = list("abc\n\nxyzw")
    assert not stop_string_decided(ids[:6], ["\n\n"], decode, tail_chars=4)  # too close to the end
    assert stop_string_decided(ids, ["\n\n"], decode, tail_chars=2)
    # a longer stop starting earlier could still complete: not decided yet
    assert not stop_string_decided(list("xab12"), ["b", "abcdefg"], decode, tail_chars=0)
    assert stop_string_decided(list("xab12345678"), ["b", "abcdefg"], decode, tail_chars=0)
    # a decoder that rewrites the end (incomplete character) is not trusted there
    def unstable(tokens):
        return "".join(tokens)[:-1] + "?" if tokens else ""

    assert not stop_string_decided(list("ab\n\n"), ["\n\n"], unstable, tail_chars=0)


def test_length_buckets_keep_batches_full_and_padding_bounded():
    lengths = [100, 98, 30, 97, 31, 29, 99, 28]
    buckets = length_buckets(lengths, batch_size=2)
    assert buckets == [[0, 6, 1, 3], [4, 2, 5, 7]]
    assert length_buckets([5, 50], batch_size=4) == [[1, 0]]  # a short bucket is not split


def test_early_exit_setting_accepts_on_off():
    assert SamplerConfig(early_exit="off").early_exit is False
    assert SamplerConfig(early_exit="on").early_exit is True
    with pytest.raises(ConfigError, match=r"early_exit 'maybe' \(from argument\) must be on or off"):
        SamplerConfig(early_exit="maybe")


@pytest.mark.slow
def test_adapter_texts_identical_with_fewer_passes():
    """llada-tiny's real BPE tokenizer, stop strings decided on decoded text."""
    prompts = ["Question: What is 2 + 3?\nAnswer:", "Question: Name a colour.\nAnswer:",
               "Question: hi\nAnswer:", "The capital of France is"]
    texts, nfes = {}, {}
    for mode in ("on", "off"):
        lm = LLaDAEvalModel(pretrained="llada-tiny", device="cpu", batch_size=2, gen_length=32,
                            steps=32, block_length=8, early_exit=mode, temperature=0.7)
        reqs = [Instance("generate_until", {}, (p, {"until": ["engthength", "Mr"]}), i, ("t", i, 1))
                for i, p in enumerate(prompts)]
        texts[mode] = lm.generate_until(reqs)
        nfes[mode] = sum(v["nfe"] for v in lm.request_stats.values())
        assert lm.settings_used["t"]["early_exit"] is (mode == "on")
    assert texts["on"] == texts["off"]
    assert nfes["on"] < nfes["off"]


def test_cli_refuses_a_bad_early_exit_value_before_loading(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "evalsuite", "run", "--model", "llada-tiny",
                           "--tasks", "gsm8k", "--early-exit", "maybe", "--output", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "early_exit 'maybe' (from cli) must be on or off; pass e.g. --early-exit on" in proc.stderr


def test_early_exit_flag_and_model_arg_forms():
    import argparse

    from evalsuite.settings.knobs import add_flags, from_namespace, parse_knobs

    parser = argparse.ArgumentParser()
    add_flags(parser)
    for argv, want in ((["--early-exit", "off"], False), (["--early-exit", "on"], True),
                       (["--no-early-exit"], False), (["--early-exit"], True)):
        assert from_namespace(parser.parse_args(argv)) == {"early_exit": want}
    assert "early_exit" not in from_namespace(parser.parse_args([]))
    assert parse_knobs({"early_exit": "off"}, "model_args") == {"early_exit": False}
    with pytest.raises(ConfigError, match=r"early_exit 'maybe' \(from model_args\) must be on or off; pass e.g. early_exit='on'"):
        parse_knobs({"early_exit": "maybe"}, "model_args")


def test_request_seed_leaves_out_early_exit():
    from evalsuite.models.engine import DiffusionEngine
    from evalsuite.models.requests import GenerationRequest
    from evalsuite.settings import Overrides

    engine = DiffusionEngine(lambda: None, family="base", seed=7, overrides=Overrides())
    on, off = (GenerationRequest("t", 0, "ctx", ("\n",), SamplerConfig(early_exit=v))
               for v in (True, False))
    assert engine.generation_seed(on) == engine.generation_seed(off)
    other = GenerationRequest("t", 0, "ctx", ("\n",), SamplerConfig(temperature=0.5))
    assert engine.generation_seed(other) != engine.generation_seed(on)
