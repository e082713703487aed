"""The miniature study's training (evalsuite.training): data protocol, reproducibility of the
committed checkpoints' loss curves, checkpoint formats and the bad-input paths of
``make tiny-models``."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from evalsuite.presets import ARM_TINY_DIR, LLADA_TINY_DIR
from evalsuite.training import build, corpus, train
from evalsuite.training.batches import mixed_batches, pool_batches, sft_row

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "evalsuite" / "assets" / "miniature"


@pytest.fixture(scope="module")
def data() -> build.MiniatureData:
    return build.make_data(build.read_poems(MINI / "poem_data.json"), seed=0)


@pytest.fixture(scope="module")
def committed_tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(LLADA_TINY_DIR / "tokenizer.json"))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_committed_data_is_what_the_seeded_generator_writes(data):
    assert json.loads((MINI / "poem_heldout.json").read_text()) == data.heldout
    assert _jsonl(MINI / "arith_train.jsonl") == data.arith_train
    assert _jsonl(MINI / "arith_test.jsonl") == data.arith_test
    assert _jsonl(MINI / "sum_choice_train.jsonl") == data.sums_train
    assert _jsonl(MINI / "sum_choice_test.jsonl") == data.sums_test


def test_heldout_couplets_never_appear_in_sft_in_either_direction(data):
    assert len(data.heldout) == round(0.2 * len(data.poems)) == 94
    sft_text = "\n".join(p + a for p, a in corpus.sft_examples(data.poems, data.heldout, data.arith_train, data.sums_train))
    for i in data.heldout:
        poem = data.poems[i]
        assert poem["first"] not in sft_text and poem["second"] not in sft_text
    trained = [p for i, p in enumerate(data.poems) if i not in set(data.heldout)]
    assert all(corpus.BACKWARD_PROMPT.format(**p) in sft_text for p in trained)
    pools = corpus.training_pools(data.poems, data.heldout, data.arith_train, data.sums_train, 0)
    for name, pairs in pools.items():
        text = "\n".join(p + a for p, a in pairs)
        for i in data.heldout:
            poem = data.poems[i]
            for question in (corpus.FORWARD_PROMPT.format(**poem), corpus.BACKWARD_PROMPT.format(**poem)):
                assert question not in text, name
            if name != "couplet":
                assert poem["first"] not in text and poem["second"] not in text, name
    assert [a for _, a in pools["couplet"]] == [corpus.couplet_text(p) for p in data.poems]


def test_no_test_problem_or_test_sum_is_trained(data):
    sft = corpus.sft_examples(data.poems, data.heldout, data.arith_train, data.sums_train)
    pools = corpus.training_pools(data.poems, data.heldout, data.arith_train, data.sums_train, 0)
    everything = "\n".join(p + a for pairs in pools.values() for p, a in pairs)
    prompts = {p for p, _ in sft}
    docs = set(corpus.pretraining_documents(data.poems, data.arith_train, data.sums_train))
    assert sum(p.startswith("Question: What is ") for p in prompts) == len(data.sums_train)
    for d in data.sums_test:
        prompt, answer = corpus.sum_fact(d["a"], d["b"])
        assert prompt not in prompts and prompt + answer not in docs
    for p in data.arith_test:
        assert f"Question: {p['question']}\nAnswer:" not in prompts
        assert not any(p["question"] in doc for doc in docs)
        assert p["question"] not in everything
    for d in data.sums_test:
        assert "".join(corpus.sum_fact(d["a"], d["b"])) not in everything


def test_fewshot_pool_renders_llada_arith_prompts_as_the_harness_does(data):
    """The 2-shot layout trained is lm-eval's rendering of llada_arith (checked against a
    prompt the harness wrote into the committed baseline run)."""
    pools = corpus.training_pools(data.poems, data.heldout, data.arith_train, data.sums_train, 0)
    assert len(pools["fewshot"]) == len(data.arith_train)
    for (prompt, answer), problem in zip(pools["fewshot"], data.arith_train):
        assert prompt.count("Question: ") == corpus.FEWSHOT_K + 1
        assert prompt.endswith(corpus.arith_pair(problem)[0]) and answer == " " + problem["answer"]
        assert problem["question"] not in prompt[:-len(corpus.arith_pair(problem)[0])]
    samples = [json.loads(line) for line in (ROOT / "results" / "baselines" / "llada-tiny" / "samples.jsonl")
               .read_text().splitlines()]
    harness = next(s["prompt"] for s in samples if s["task"] == "llada_arith")
    blocks = harness.split("\n\n")
    shots = [{"question": b.split("\nAnswer: ")[0].removeprefix("Question: "),
              "answer": b.split("\nAnswer: ")[1]} for b in blocks[:-1]]
    last = {"question": blocks[-1].removeprefix("Question: ").removesuffix("\nAnswer:"), "answer": ""}
    assert corpus.fewshot_prompt(shots, last) == harness


def test_pretraining_holds_every_couplet_forwards_and_none_backwards(data):
    docs = corpus.pretraining_documents(data.poems, data.arith_train, data.sums_train)
    for poem in data.poems:
        assert f"{poem['first']}，{poem['second']}。" in docs
        assert f"{poem['second']}，{poem['first']}。" not in docs
    assert not any("的上一句" in d or "的下一句" in d for d in docs)


def test_arithmetic_answers_are_correct_and_splits_disjoint(data):
    for row in data.arith_train + data.arith_test:
        body, final = row["answer"].rsplit("\n#### ", 1)
        last = body.rstrip(".").split(" = ")[-1].split()[0]
        assert last == final
        assert int(final) >= 0
    assert not {r["question"] for r in data.arith_test} & {r["question"] for r in data.arith_train}


def test_sum_choice_gold_is_the_sum_and_test_pairs_are_not_trained(data):
    for d in data.sums_train + data.sums_test:
        assert int(d["choices"][d["label"]]) == d["a"] + d["b"]
        assert int(d["choices"][1 - d["label"]]) != d["a"] + d["b"]
    assert not {(d["a"], d["b"]) for d in data.sums_test} & {(d["a"], d["b"]) for d in data.sums_train}


def test_tokenizer_retrains_identically_and_keeps_poem_characters_whole(data, committed_tokenizer):
    from evalsuite.training import tokenizer

    other = corpus.tokenizer_texts(data.arith_train, data.sums_train)
    tok = tokenizer.train_tokenizer(build.poem_texts(data.poems), other, build.VOCAB_SIZE)
    assert tok.get_vocab() == committed_tokenizer.get_vocab()
    assert tokenizer.multi_token_characters(tok, build.poem_texts(data.poems)) == []
    assert [tok.token_to_id(s) for s in tokenizer.SPECIALS] == [0, 1, 2, 3, 4, 5]


def test_one_example_per_row_with_eos_padding():
    examples = [([5, 6], [7]), ([], [8, 9, 10]), ([11], [12, 13])]
    batches = pool_batches(examples, eos=0, fill=4, batch_size=2, seed=0, name="t")
    seen: list[list[int]] = []
    for _ in range(6):
        b = next(batches)
        assert b.ids.shape[1] == int(b.visible_len.max()) + 1  # as wide as the longest row + EOS
        for row, p, a in zip(b.ids.tolist(), b.prompt_len.tolist(), b.answer_len.tolist()):
            body = row[:p + a - 1]
            assert body in ([5, 6, 7], [8, 9, 10], [11, 12, 13])  # never two examples in a row
            assert set(row[p + a - 1:]) == {0}
            seen.append(body)
    assert len(seen) == 12 and all(seen.count(e) == 4 for e in ([5, 6, 7], [8, 9, 10], [11, 12, 13]))
    assert sft_row([7, 8], [9], eos=0, width=6) == [7, 8, 9, 0, 0, 0]
    with pytest.raises(ValueError, match="does not fit"):
        sft_row([1] * 5, [2], eos=0, width=6)


def test_mixed_batches_follow_the_cycle_with_each_pool_s_rows():
    pools = {"a": [([1], [2])], "b": [([], [3, 4])]}
    stream = mixed_batches(pools, {"a": 3, "b": 2}, "a,b,b", eos=0, fill=4, seed=0)
    got = [next(stream) for _ in range(6)]
    assert [name for name, _ in got] == ["a", "b", "b"] * 2
    assert [b.ids.shape[0] for _, b in got] == [3, 2, 2] * 2
    with pytest.raises(ValueError, match="unknown"):
        next(mixed_batches(pools, {"a": 1, "b": 1}, "a,c", eos=0, fill=4, seed=0))


def test_the_two_models_share_shape_parameter_count_and_initial_weights():
    vocab = train.Vocab(size=2048, eos=0, mask=1)
    cfg = train.TrainConfig()
    llada = train.build_model("llada", cfg, vocab)
    arm = train.build_model("arm", cfg, vocab)
    assert sum(p.numel() for p in llada.parameters()) == sum(p.numel() for p in arm.parameters())
    arm_state = arm.state_dict()
    for key, value in llada.state_dict().items():
        assert torch.equal(arm_state[train.llama_key(key)], value), key


def test_diffusion_sft_loss_never_masks_the_prompt():
    vocab = train.Vocab(size=64, eos=0, mask=1)
    cfg = train.TrainConfig(d_model=32, n_layers=1, n_heads=2, mlp_hidden_size=48)
    model = train.build_model("llada", cfg, vocab)
    seen: list[torch.Tensor] = []
    # the token ids the network embeds (the loss calls hidden_states, not forward)
    model.wte.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    from evalsuite.training.batches import SftBatch

    ids = torch.randint(2, 64, (4, 12), generator=torch.Generator().manual_seed(0))
    batch = SftBatch(ids, torch.tensor([3, 5, 7, 9]), torch.tensor([2, 2, 2, 2]),
                     torch.tensor([6, 12, 9, 11]))
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        assert torch.isfinite(train.diffusion_sft_loss(model, batch, vocab.mask, gen))
    for noisy in seen:
        for row, (start, stop) in enumerate(zip(batch.prompt_len.tolist(), batch.visible_len.tolist())):
            assert torch.equal(noisy[row, :start], ids[row, :start])
            assert torch.equal(noisy[row, stop:], ids[row, stop:])  # beyond the visible part: never masked
    assert any((noisy == vocab.mask).any() for noisy in seen)


def test_losses_equal_the_full_logits_losses():
    """Both losses apply the vocabulary head to the positions they score only; the values are
    those of the full-sequence logits (the textbook form), to float precision."""
    from evalsuite.training.batches import SftBatch

    vocab = train.Vocab(size=64, eos=0, mask=1)
    cfg = train.TrainConfig(d_model=32, n_layers=1, n_heads=2, mlp_hidden_size=48)
    ids = torch.randint(2, 64, (4, 12), generator=torch.Generator().manual_seed(0))
    batch = SftBatch(ids, torch.tensor([3, 5, 7, 9]), torch.tensor([2, 2, 2, 2]),
                     torch.tensor([6, 12, 9, 11]))
    llada = train.build_model("llada", cfg, vocab)
    fast = train.diffusion_sft_loss(llada, batch, vocab.mask, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)  # the same draws as inside the loss
    b, n = ids.shape
    pos = torch.arange(n)[None, :]
    visible = pos < batch.visible_len[:, None]
    answer = (pos >= batch.prompt_len[:, None]) & visible
    t = train._mask_ratio(b, gen)[:, None].expand(b, n)
    masked = (torch.rand(b, n, generator=gen) < t) & answer
    logits = llada(torch.where(masked, vocab.mask, ids), attention_mask=visible.long())
    ce = torch.zeros(b, n)
    ce[masked] = F.cross_entropy(logits[masked], ids[masked], reduction="none") / t[masked]
    full = (ce.sum(1) / answer.sum(1).clamp(min=1)).mean()
    assert masked.any() and torch.allclose(fast, full, rtol=1e-6, atol=1e-6)

    arm = train.build_model("arm", cfg, vocab)
    logits = arm(input_ids=ids).logits[:, :-1]
    pos = torch.arange(1, n)[None, :]
    start = batch.prompt_len[:, None]
    keep = (pos >= start) & (pos < start + batch.answer_len[:, None])
    full = F.cross_entropy(logits[keep], ids[:, 1:][keep])
    assert torch.allclose(train.ar_sft_loss(arm, batch), full, rtol=1e-6, atol=1e-6)


def test_diffusion_sft_rows_attend_only_to_their_visible_part():
    """The loss of a row does not depend on the tokens beyond its visible length (key padding)."""
    vocab = train.Vocab(size=64, eos=0, mask=1)
    cfg = train.TrainConfig(d_model=32, n_layers=1, n_heads=2, mlp_hidden_size=48)
    model = train.build_model("llada", cfg, vocab)
    from evalsuite.training.batches import SftBatch

    ids = torch.randint(2, 64, (2, 12), generator=torch.Generator().manual_seed(0))
    other = ids.clone()
    other[:, 8:] = torch.randint(2, 64, (2, 4), generator=torch.Generator().manual_seed(5))
    losses = [train.diffusion_sft_loss(model, SftBatch(x, torch.tensor([3, 4]), torch.tensor([2, 2]),
                                                       torch.tensor([8, 6])),
                                       vocab.mask, torch.Generator().manual_seed(2))
              for x in (ids, other)]
    assert losses[0].item() == pytest.approx(losses[1].item(), rel=1e-5)


def test_visible_tails_cover_nothing_after_the_answer_to_the_whole_generation_window():
    """Every layout the harness scores: the answer followed by nothing (likelihood) up to the
    answer plus EOS filling the generation window (the sampler's answer region)."""
    examples = [([5, 6], [7]), ([5, 6, 8], [7, 9])]
    batches = pool_batches(examples, eos=0, fill=10, batch_size=2, seed=0)
    seen: dict[int, set[int]] = {1: set(), 2: set()}
    for _ in range(200):
        b = next(batches)
        after_prompt = b.visible_len - b.prompt_len
        answer = b.answer_len - 1
        assert bool(((after_prompt >= answer) & (after_prompt <= 10)).all())
        for a, v in zip(answer.tolist(), after_prompt.tolist()):
            seen[a].add(v - a)
    assert seen == {1: {0, 1, 9}, 2: {0, 1, 8}}


@pytest.mark.parametrize("name", ["llada-tiny", "arm-tiny"])
def test_first_training_steps_reproduce_the_committed_log(name, data, committed_tokenizer):
    """Re-run the first 5 optimizer steps from the committed data and tokenizer: the losses
    equal the committed log's (float tolerance), so the checkpoint stays reproducible."""
    summary = json.loads((ROOT / "evalsuite" / "assets" / name / "training.json").read_text())
    fields = {f.name for f in dataclasses.fields(train.TrainConfig)}
    assert set(summary["train_config"]) == fields, (
        f"{name}/training.json was written by another training recipe (settings "
        f"{sorted(set(summary['train_config']) ^ fields)} differ): run make tiny-models and "
        "commit the new checkpoints and logs")
    cfg = train.TrainConfig(**summary["train_config"])
    log = [json.loads(line) for line in (ROOT / "evalsuite" / "assets" / name / train.LOG_NAME)
           .read_text().splitlines()]
    assert len(log) == cfg.total_steps
    torch.set_num_threads(1)
    _, losses = train.step_losses(summary["kind"], cfg, build.vocab_of(committed_tokenizer),
                                  build.build_stream(data, committed_tokenizer), steps=5)
    assert losses == pytest.approx([row["loss"] for row in log[:5]], rel=1e-4, abs=1e-5)


def test_committed_checkpoints_are_small_and_load(tiny_lm):
    for directory in (LLADA_TINY_DIR, ARM_TINY_DIR):
        assert (directory / "model.safetensors").stat().st_size <= 10 * 2**20
    from transformers import AutoModelForCausalLM, AutoTokenizer

    arm = AutoModelForCausalLM.from_pretrained(str(ARM_TINY_DIR))
    tok = AutoTokenizer.from_pretrained(str(ARM_TINY_DIR))
    assert tok.eos_token_id == tiny_lm.tokens.eos_id == 0
    assert sum(p.numel() for p in arm.parameters()) == sum(p.numel() for p in tiny_lm.network.parameters())


# --- make tiny-models: bad input, interrupted runs -----------------------------------------


def _train(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "evalsuite.training", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_missing_poem_data_exits_2_naming_the_file(tmp_path):
    missing = tmp_path / "nope" / "poem_data.json"
    proc = _train("--poems", str(missing), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert str(missing) in proc.stderr and "Traceback" not in proc.stderr


def test_unwritable_output_directory_exits_2_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = _train("--out", str(blocker / "assets"))
    assert proc.returncode == 2
    assert str(blocker / "assets") in proc.stderr and "not writable" in proc.stderr


def test_corrupt_existing_checkpoint_exits_2_naming_the_file(tmp_path):
    ckpt = tmp_path / "out" / "llada-tiny"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    (ckpt / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"trunc")
    proc = _train("--out", str(tmp_path / "out"), "--only", "llada", "--steps", "1")
    assert proc.returncode == 2
    assert str(ckpt / "model.safetensors") in proc.stderr and "corrupt" in proc.stderr


def test_a_short_run_publishes_loadable_checkpoints_and_no_partial_directory(tmp_path):
    out = tmp_path / "out"
    stale = train.partial_dir(out / "llada-tiny")
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    proc = _train("--out", str(out), "--steps", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["arm-tiny", "llada-tiny", "miniature"]
    from evalsuite.models.checkpoint import load_llada

    model, _ = load_llada(str(out / "llada-tiny"))
    assert model.config.vocab_size == build.VOCAB_SIZE
    log = (out / "arm-tiny" / train.LOG_NAME).read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [0, 1]
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(str(out / "arm-tiny"))


def test_publish_replaces_the_checkpoint_by_renames(tmp_path):
    final = tmp_path / "m"
    final.mkdir()
    (final / "old").write_text("old")
    tmp = train.partial_dir(final)
    tmp.mkdir()
    (tmp / "new").write_text("new")
    train.publish(tmp, final)
    assert [p.name for p in final.iterdir()] == ["new"]
    assert not tmp.exists() and not (tmp_path / ".m.old").exists()


def test_parallel_and_sequential_training_give_the_same_losses(tmp_path):
    """`--jobs 2` (one process per model, the default on 2 cores) and `--jobs 1` write the
    same loss values: the committed logs do not depend on how the models were scheduled."""
    logs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}"
        proc = _train("--out", str(out), "--steps", "2", "--jobs", jobs)
        assert proc.returncode == 0, proc.stderr[-2000:]
        logs[jobs] = {name: [json.loads(line)["loss"] for line in
                             (out / name / train.LOG_NAME).read_text().splitlines()]
                      for name in ("llada-tiny", "arm-tiny")}
    assert logs["1"] == logs["2"] and all(len(v) == 2 for v in logs["1"].values())


def test_train_seed_changes_the_training_and_not_the_data(tmp_path):
    """`--train-seed` draws other initial weights, batches and masks; the data (`--seed`: the
    splits the task files hold) stay the committed ones, so a seed study scores on the same
    test documents."""
    out = tmp_path / "out"
    proc = _train("--out", str(out), "--only", "llada", "--steps", "2", "--train-seed", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "llada-tiny" / "training.json").read_text())
    assert summary["train_config"]["seed"] == 1
    for path in sorted((out / "miniature").iterdir()):
        assert path.read_bytes() == (MINI / path.name).read_bytes(), path.name
    committed = json.loads((LLADA_TINY_DIR / train.LOG_NAME).read_text().splitlines()[0])
    first = json.loads((out / "llada-tiny" / train.LOG_NAME).read_text().splitlines()[0])
    assert first["loss"] != pytest.approx(committed["loss"], rel=1e-3)
