"""The gate's identity mode on runs written through the real store (no models).

Identity applies when settings, model, seeds and device are unchanged and the task is
deterministic (likelihood tasks, generation at temperature 0); then any sample whose prompt,
output, filtered response or log-likelihood (beyond the tolerance) differs fails the gate.
"""

from __future__ import annotations

import copy
import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from results_builder import GEN_TASK, MC_TASK, flags, lm_eval_output, make_run, meta, request_stats

from evalsuite.errors import ConfigError
from evalsuite.gate import GatePolicy, TaskPolicy, decide, parse_policy, to_junit, to_markdown
from evalsuite.gate_identity import (
    ROUNDED_LOGLIK_RESOLUTION,
    IdentityPolicy,
    check_identity,
    compare_samples,
)
from evalsuite.results import Run, read_run
from evalsuite.results.store import write_run_from_lm_eval

ON = GatePolicy(identity=IdentityPolicy(enabled=True))
CORRECT = {GEN_TASK: flags(12, 6), MC_TASK: flags(12, 6)}


def run(tmp_path: Path, correct: dict = CORRECT, **kw: Any) -> Run:
    return read_run(make_run(tmp_path / "runs", correct, **kw))


def run_with_logliks(tmp_path: Path, shift: dict[int, float], device: str = "cpu") -> Run:
    """An MC run whose documents' first log-likelihood is moved by ``shift[doc_id]``."""
    out = lm_eval_output({MC_TASK: flags(12, 6)})
    for entry in out["samples"][MC_TASK]:
        delta = shift.get(entry["doc_id"], 0.0)
        (ll, greedy), rest = entry["resps"][0][0], entry["resps"][1:]
        entry["resps"] = [[(ll + delta, greedy)], *rest]
        entry["filtered_resps"] = [r[0] for r in entry["resps"]]
    m = dataclasses.replace(meta(), device=device)
    return read_run(write_run_from_lm_eval(tmp_path / "runs", out, m, request_stats(out)))


def test_unchanged_rerun_passes_and_records_the_tolerance(tmp_path: Path) -> None:
    d = decide(run(tmp_path), run(tmp_path), ON)
    assert d.outcome == "pass" and d.exit_code == 0
    for t in d.tasks:
        assert t.identity is not None and t.identity.applies and not t.identity.failed
        assert t.identity.compared == 12 and "all 12 samples match" in t.identity.reason
    md = to_markdown(d)
    assert "identity mode: on" in md and "0.0001 + 1e-05·|ll|" in md and "✅ 12 match" in md
    props = {
        p.get("name"): p.get("value") for p in ET.fromstring(to_junit(d)).iter("property")
    }
    assert props["loglik_abs_tol"] == "0.0001" and props["loglik_rel_tol"] == "1e-05"


def test_a_changed_output_fails_even_when_scores_are_equal(tmp_path: Path) -> None:
    base = run(tmp_path)
    cand = run(tmp_path, outputs={GEN_TASK: {3: " a different generation #### 0"}})
    off = decide(base, cand, GatePolicy())
    assert off.outcome == "pass" and all(t.identity is None for t in off.tasks)
    d = decide(base, cand, ON)
    assert d.outcome == "changed" and d.exit_code == 1
    gen = next(t for t in d.tasks if t.task == GEN_TASK)
    assert gen.status == "changed" and gen.delta == 0.0 and gen.identity is not None
    assert gen.identity.differing == 1 and "1 of 12 samples differ" in gen.reason
    (diff,) = gen.identity.diffs
    assert (diff.task, diff.doc_id, diff.field) == (GEN_TASK, 3, "output")
    assert "a different generation" in diff.candidate
    assert next(t for t in d.tasks if t.task == MC_TASK).status == "pass"
    md = to_markdown(d)
    assert "❌ outputs changed" in md and "First samples that differ" in md
    assert f"| {GEN_TASK} | 3 | output |" in md
    suite = ET.fromstring(to_junit(d)).find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    (failure,) = suite.iter("failure")
    assert "doc 3 output" in (failure.text or "")


def test_regression_and_identity_failure_report_both(tmp_path: Path) -> None:
    base = run(tmp_path, {GEN_TASK: flags(40, 30)})
    worse = run(tmp_path, {GEN_TASK: flags(40, 10)})
    (t,) = decide(base, worse, ON).tasks
    assert t.status == "regression" and t.identity is not None and t.identity.differing == 20
    assert "identity: 20 of 40 samples differ" in t.reason
    assert len(t.identity.diffs) == IdentityPolicy().max_shown


def test_loglikelihood_tolerance_is_configurable(tmp_path: Path) -> None:
    base = run_with_logliks(tmp_path, {})
    tiny = run_with_logliks(tmp_path, {2: 5e-5})
    small = run_with_logliks(tmp_path, {2: 1e-3})
    assert base.samples[0].loglikelihoods == (-1.0, -2.0)  # stored in full precision
    assert tiny.samples[2].loglikelihoods is not None
    assert tiny.samples[2].loglikelihoods[0] == pytest.approx(-1.0 + 5e-5)
    assert decide(base, tiny, ON).outcome == "pass"
    d = decide(base, small, ON)
    assert d.outcome == "changed"
    ident = d.tasks[0].identity
    assert ident is not None and ident.max_loglik_diff == pytest.approx(1e-3)
    (diff,) = ident.diffs
    assert diff.doc_id == 2 and diff.field == "loglikelihood[0]" and "> 0.00011" in diff.candidate
    loose = GatePolicy(identity=IdentityPolicy(enabled=True, loglik_abs_tol=1e-2))
    assert decide(base, small, loose).outcome == "pass"


def test_records_with_rounded_loglikelihoods_compare_within_the_rounding(
    tmp_path: Path,
) -> None:
    """Records written before the loglikelihoods field kept 4 decimals in ``output`` only."""
    (s,) = [x for x in run_with_logliks(tmp_path, {}).samples if x.doc_id == 0]
    exact = dataclasses.replace(s, loglikelihoods=(-1.00004, -2.0))
    old = dataclasses.replace(s, loglikelihoods=None)  # output text says -1.0000 / -2.0000
    tight = IdentityPolicy(enabled=True, loglik_abs_tol=0.0, loglik_rel_tol=0.0)
    diffs, gap = compare_samples(old, exact, tight, likelihood=True)
    assert diffs == [] and gap == pytest.approx(4e-5) and gap < ROUNDED_LOGLIK_RESOLUTION
    far = dataclasses.replace(exact, loglikelihoods=(-1.0002, -2.0))
    diffs, _ = compare_samples(old, far, tight, likelihood=True)
    assert [d.field for d in diffs] == ["loglikelihood[0]"]
    diffs, _ = compare_samples(exact, far, tight, likelihood=True)
    assert [d.field for d in diffs] == ["loglikelihood[0]"]


def test_identity_does_not_apply_to_sampled_or_changed_runs(tmp_path: Path) -> None:
    hot = {GEN_TASK: {"gen_length": 32, "steps": 32, "block_length": 32, "temperature": 0.7}}
    changed = {3: " another sample #### 0"}
    base = run(tmp_path, {GEN_TASK: flags(12, 6)}, settings=hot)
    cand = run(tmp_path, {GEN_TASK: flags(12, 6)}, settings=hot, outputs={GEN_TASK: changed})
    (t,) = decide(base, cand, ON).tasks
    assert t.status == "pass" and t.identity is not None and not t.identity.applies
    assert "samples at temperature 0.7" in t.identity.reason
    assert "not applied" in to_markdown(decide(base, cand, ON))

    cold = run(tmp_path, {GEN_TASK: flags(12, 6)})
    steps = run(tmp_path, {GEN_TASK: flags(12, 6)}, settings={GEN_TASK: {"steps": 8}},
                outputs={GEN_TASK: changed})
    (t,) = decide(cold, steps, ON, allow_setting_changes=True).tasks
    assert t.status == "pass" and t.identity is not None
    assert t.identity.reason == "not applied: task versions or settings differ"

    gpu = run_with_logliks(tmp_path, {2: 1.0}, device="cuda")
    (t,) = decide(run_with_logliks(tmp_path, {}), gpu, ON).tasks
    assert t.status == "pass" and t.identity is not None and not t.identity.applies
    assert "device: cpu -> cuda" in t.identity.reason


def test_a_task_can_be_exempted(tmp_path: Path) -> None:
    base = run(tmp_path)
    cand = run(tmp_path, outputs={GEN_TASK: {0: " changed"}})
    policy = dataclasses.replace(ON, tasks={GEN_TASK: TaskPolicy(identity=False)})
    d = decide(base, cand, policy)
    assert d.outcome == "pass"
    assert next(t for t in d.tasks if t.task == GEN_TASK).identity is None


def test_group_and_changed_prompt(tmp_path: Path) -> None:
    subs = ("llada_mmlu_anatomy", "llada_mmlu_astronomy")
    a = run(tmp_path, {subs[0]: flags(6, 3), subs[1]: flags(6, 3)}, with_group=True)
    b_run = run(tmp_path, {subs[0]: flags(6, 3), subs[1]: flags(6, 3)}, with_group=True)
    samples = list(b_run.samples)
    i = next(k for k, s in enumerate(samples) if s.task == subs[1] and s.doc_id == 4)
    samples[i] = dataclasses.replace(samples[i], prompt=samples[i].prompt + " (chat template)")
    b = dataclasses.replace(b_run, samples=tuple(samples))
    ident = check_identity(a, b, "llada_mmlu", ON.identity)
    assert ident.applies and ident.compared == 12 and ident.differing == 1
    assert (ident.diffs[0].task, ident.diffs[0].doc_id, ident.diffs[0].field) == (
        subs[1], 4, "prompt")
    missing = dataclasses.replace(b_run, samples=tuple(s for s in b_run.samples if s.doc_id != 5))
    ident = check_identity(a, missing, "llada_mmlu", ON.identity)
    assert ident.differing == 2 and {d.field for d in ident.diffs} == {"presence"}


def test_identity_policy_validation() -> None:
    p = parse_policy({"identity": {"enabled": True, "loglik_abs_tol": 1e-3}})
    assert p.identity == IdentityPolicy(enabled=True, loglik_abs_tol=1e-3)
    assert parse_policy({"identity": True}).identity.enabled
    assert not parse_policy({}).identity.enabled
    assert parse_policy({"tasks": {"x": {"identity": False}}}).for_task("x").identity is False
    with pytest.raises(ConfigError, match="did you mean 'loglik_abs_tol'"):
        parse_policy({"identity": {"loglik_abs_tl": 1e-4}})
    with pytest.raises(ConfigError, match=r"loglik_rel_tol: expected a number in \[0, 1\)"):
        parse_policy({"identity": {"loglik_rel_tol": -1}})
    with pytest.raises(ConfigError, match="identity.enabled: expected true or false"):
        parse_policy({"identity": {"enabled": "yes"}})
    with pytest.raises(ConfigError, match="identity: expected true or false"):
        parse_policy({"tasks": {"x": {"identity": 1}}})
    with pytest.raises(ConfigError, match="identity: expected an object"):
        parse_policy({"identity": [1]})


def test_repository_policy_enables_identity() -> None:
    from evalsuite.gate import load_policy

    policy = load_policy(Path(__file__).resolve().parents[1] / "gate-policy.json")
    assert policy.identity.enabled and policy.identity.loglik_abs_tol == pytest.approx(1e-4)


def test_lm_eval_resps_keep_full_precision(tmp_path: Path) -> None:
    out = lm_eval_output({MC_TASK: flags(2, 1)})
    original = copy.deepcopy(out)
    out["samples"][MC_TASK][0]["resps"] = [[(-1.234567891, False)], [(-2.5, True)]]
    r = read_run(write_run_from_lm_eval(tmp_path, out, meta(), request_stats(original)))
    assert r.samples[0].loglikelihoods == (-1.234567891, -2.5)
    assert "-1.2346" in r.samples[0].output


def test_wall_time_inside_filtered_responses_is_ignored(tmp_path: Path) -> None:
    """HumanEval keeps each check program's run time in its filtered response."""
    (s,) = [x for x in run(tmp_path, {GEN_TASK: flags(1, 1)}).samples]
    outcome = "[{{'code': 'def f(): pass', 'passed': True, 'status': 'passed', 'seconds': {}}}]"
    a = dataclasses.replace(s, extracted={"none": outcome.format(0.131)})
    b = dataclasses.replace(s, extracted={"none": outcome.format(2.5e-05)})
    policy = IdentityPolicy(enabled=True)
    assert compare_samples(a, b, policy, likelihood=False) == ([], None)
    failing = outcome.format(0.131).replace("True", "False")
    failed = dataclasses.replace(b, extracted={"none": failing})
    diffs, _ = compare_samples(a, failed, policy, likelihood=False)
    assert [d.field for d in diffs] == ["filtered[none]"]
