"""The request-cache key holds everything that can change an answer; lm-eval's own
``--use_cache`` (keyed on the request only) is refused with the reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalsuite.models.request_cache import (
    CachedAnswer,
    Lookup,
    RequestCache,
    request_key,
    repeat_indices,
)

from .helpers import ROOT, cached_counts

MODEL = {"checkpoint": "abc", "tokenizer": "def", "dtype": "float32", "device_type": "cpu",
         "window": 4096, "reference_padding": False}
REQUEST = {"context": "Q: 2+3?\nA:", "continuation": " 5"}
SETTINGS = {"mc_num": 128, "batch_size": 16, "cfg_scale": 0.0, "estimator": "eq6-stratified"}


def _key(**changes):
    parts = {"model": MODEL, "kind": "loglikelihood", "request": REQUEST, "settings": SETTINGS,
             "seed": 1234, "repeat": 0}
    for name, value in changes.items():
        parts[name] = {**parts[name], **value} if isinstance(value, dict) else value
    return request_key(parts["model"], parts["kind"], parts["request"], parts["settings"],
                       parts["seed"], parts["repeat"])


@pytest.mark.parametrize("change", [
    {"model": {"checkpoint": "abd"}}, {"model": {"tokenizer": "deg"}},
    {"model": {"dtype": "bfloat16"}}, {"model": {"device_type": "cuda"}},
    {"model": {"window": 2048}}, {"settings": {"mc_num": 64}}, {"settings": {"cfg_scale": 0.5}},
    {"settings": {"batch_size": 8}}, {"request": {"continuation": " 6"}},
    {"request": {"context": "Q: 2+3? \nA:"}}, {"kind": "generate_until"}, {"seed": 1235},
    {"repeat": 1},
])
def test_every_part_of_the_key_changes_it(change):
    assert _key(**change) != _key()


def test_the_key_is_deterministic_and_ignores_dict_order():
    reordered = dict(reversed(list(SETTINGS.items())))
    assert _key() == _key(settings=reordered) == _key()


def test_schema_version_is_in_the_key(monkeypatch):
    import evalsuite.models.request_cache as rc

    before = _key()
    monkeypatch.setattr(rc, "CACHE_SCHEMA_VERSION", rc.CACHE_SCHEMA_VERSION + 1)
    assert _key() != before


def test_the_code_that_computes_answers_is_in_the_key(monkeypatch):
    import evalsuite.models.request_cache as rc

    before = _key()
    assert len(rc.code_fingerprint()) == 64
    monkeypatch.setattr(rc, "_code", lambda: "edited sampler")
    assert _key() != before


def test_repeats_of_one_request_are_told_apart():
    assert repeat_indices([["a", 1], ["b", 1], ["a", 1], ["a", 2], ["a", 1]]) == [0, 0, 1, 0, 2]


def test_lookup_returns_what_was_stored_and_counts_it(tmp_path):
    cache = RequestCache(tmp_path)
    reqs = [REQUEST, {**REQUEST, "continuation": " 6"}]
    first = Lookup.build(cache, "loglikelihood", lambda: MODEL, reqs, [SETTINGS] * 2, 1234)
    assert first.missing == [0, 1] and first.hits == {}
    first.store([(1, CachedAnswer([-1.25, False], nfe=3, seconds=0.5))])
    again = Lookup.build(cache, "loglikelihood", lambda: MODEL, reqs, [SETTINGS] * 2, 1234)
    assert again.missing == [0]
    assert again.hits[1] == CachedAnswer([-1.25, False], 3, 0.5, 0, False)
    other = Lookup.build(cache, "loglikelihood", lambda: {**MODEL, "dtype": "float16"}, reqs,
                         [SETTINGS] * 2, 1234)
    assert other.missing == [0, 1]
    assert cache.stats.as_dict()["from_cache"] == 1 and cache.stats.writes == 1


def test_an_unwritable_cache_directory_says_how_to_fix_it(tmp_path):
    from evalsuite.models.request_cache import CacheError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CacheError, match="--cache-dir.*--no-cache"):
        RequestCache(blocker / "cache")


# ---------------------------------------------------------------- plain lm-eval

LM_EVAL_ARGS = ["--device", "cpu", "--tasks", "tiny_qa_mc", "--include_path",
                str(ROOT / "tests" / "fixtures" / "lm_eval_tasks"), "--limit", "3"]


def _lm_eval(model_args: str, *extra: str) -> subprocess.CompletedProcess[str]:
    lm_eval = Path(sys.executable).parent / "lm_eval"
    return subprocess.run([str(lm_eval), "--model", "llada", "--model_args", model_args,
                           *LM_EVAL_ARGS, *extra], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_lm_eval_use_cache_is_refused_with_the_reason(tmp_path):
    proc = _lm_eval("pretrained=llada-tiny,mc_num=8", "--use_cache", str(tmp_path / "lmc"))
    assert proc.returncode != 0
    assert "ignores model_args" in proc.stderr and "request_cache=DIR" in proc.stderr


@pytest.mark.slow
def test_lm_eval_with_request_cache_model_arg_resumes(tmp_path):
    args = f"pretrained=llada-tiny,mc_num=8,request_cache={tmp_path / 'cache'}"
    first = _lm_eval(args, "--output_path", str(tmp_path / "a"), "--log_samples")
    assert first.returncode == 0, first.stderr[-3000:]
    assert cached_counts(tmp_path / "cache") == {"loglikelihood": 6}
    second = _lm_eval(args, "--output_path", str(tmp_path / "b"), "--log_samples")
    assert second.returncode == 0, second.stderr[-3000:]

    def lls(out):
        (path,) = (tmp_path / out).rglob("samples_tiny_qa_mc_*.jsonl")
        return [json.loads(line)["resps"] for line in path.read_text().splitlines()]

    assert lls("a") == lls("b")
    assert cached_counts(tmp_path / "cache") == {"loglikelihood": 6}
