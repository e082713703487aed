"""The gate's pure decision on runs built through the real store (no models)."""

from __future__ import annotations

from pathlib import Path

import pytest
from results_builder import GEN_TASK, MC_TASK, flags, make_run

from evalsuite.errors import ConfigError
from evalsuite.gate import GatePolicy, TaskPolicy, decide, parse_policy, to_junit, to_markdown
from evalsuite.results import Run, read_run

POLICY = GatePolicy()


def run(tmp_path: Path, correct: dict, **kw) -> Run:
    return read_run(make_run(tmp_path / "runs", correct, **kw))


def test_identical_runs_pass(tmp_path: Path) -> None:
    a = run(tmp_path, {GEN_TASK: flags(40, 20), MC_TASK: flags(40, 30)})
    b = run(tmp_path, {GEN_TASK: flags(40, 20), MC_TASK: flags(40, 30)})
    d = decide(a, b, POLICY)
    assert d.outcome == "pass" and d.exit_code == 0
    assert {t.task: t.status for t in d.tasks} == {GEN_TASK: "pass", MC_TASK: "pass"}
    assert all(t.p_value == 1.0 and t.n_shared == 40 for t in d.tasks)


def test_significant_drop_is_a_regression(tmp_path: Path) -> None:
    a = run(tmp_path, {GEN_TASK: flags(40, 30), MC_TASK: flags(40, 30)})
    b = run(tmp_path, {GEN_TASK: flags(40, 15), MC_TASK: flags(40, 30)})
    d = decide(a, b, POLICY)
    assert d.outcome == "regression" and d.exit_code == 1
    gsm = next(t for t in d.tasks if t.task == GEN_TASK)
    assert gsm.status == "regression" and gsm.test == "mcnemar"
    assert gsm.delta == pytest.approx(-15 / 40) and gsm.p_value < 0.001
    assert gsm.metric == "exact_match,strict-match"


def test_large_but_insignificant_drop_passes(tmp_path: Path) -> None:
    a = run(tmp_path, {MC_TASK: flags(6, 4)})
    b = run(tmp_path, {MC_TASK: flags(6, 2)})
    t = decide(a, b, POLICY).tasks[0]
    assert t.status == "pass" and t.delta == pytest.approx(-2 / 6) and t.p_value >= 0.05
    assert "not significant" in t.reason


def test_significant_drop_within_allowance_passes(tmp_path: Path) -> None:
    a = run(tmp_path, {MC_TASK: flags(400, 300)})
    b = run(tmp_path, {MC_TASK: flags(400, 280)})
    strict = decide(a, b, POLICY).tasks[0]
    assert strict.status == "regression" and strict.p_value < 0.05
    lenient = decide(a, b, GatePolicy(tasks={MC_TASK: TaskPolicy(allowed_drop=0.06)})).tasks[0]
    assert lenient.status == "pass" and "within the allowed drop" in lenient.reason


def test_improvement_is_never_a_regression(tmp_path: Path) -> None:
    a = run(tmp_path, {MC_TASK: flags(60, 10)})
    b = run(tmp_path, {MC_TASK: flags(60, 50)})
    t = decide(a, b, POLICY).tasks[0]
    assert t.status == "pass" and t.delta > 0 and t.p_value < 0.001


def test_bootstrap_when_the_policy_asks(tmp_path: Path) -> None:
    a = run(tmp_path, {MC_TASK: flags(80, 70)})
    b = run(tmp_path, {MC_TASK: flags(80, 30)})
    policy = GatePolicy(default=TaskPolicy(test="bootstrap"), bootstrap_iters=2000)
    t = decide(a, b, policy).tasks[0]
    assert t.test == "bootstrap" and t.status == "regression"
    assert t.p_value == decide(a, b, policy).tasks[0].p_value  # seeded


def test_changed_settings_make_the_input_unusable(tmp_path: Path) -> None:
    a = run(tmp_path, {GEN_TASK: flags(20, 10)})
    b = run(tmp_path, {GEN_TASK: flags(20, 10)}, settings={GEN_TASK: {"gen_length": 256}})
    d = decide(a, b, POLICY)
    assert d.outcome == "unusable" and d.exit_code == 2
    t = d.tasks[0]
    assert t.status == "incomparable" and "llada_gsm8k.settings.gen_length: 32 -> 256" in t.reason
    allowed = decide(a, b, POLICY, allow_setting_changes=True)
    assert allowed.outcome == "pass" and allowed.tasks[0].setting_changes
    assert "gen_length" in to_markdown(allowed)


def test_changed_task_version_makes_the_input_unusable(tmp_path: Path) -> None:
    a = run(tmp_path, {MC_TASK: flags(20, 10)})
    b = run(tmp_path, {MC_TASK: flags(20, 10)}, versions={MC_TASK: 2.0})
    t = decide(a, b, POLICY).tasks[0]
    assert t.status == "incomparable" and "llada_piqa.version: 1.0 -> 2.0" in t.reason


def test_no_task_in_common(tmp_path: Path) -> None:
    a = run(tmp_path, {MC_TASK: flags(5, 2)})
    b = run(tmp_path, {GEN_TASK: flags(5, 2)})
    d = decide(a, b, POLICY)
    assert d.outcome == "unusable" and "no task in common" in d.problems[0]
    assert "no task in common" in to_markdown(d) and "<error" in to_junit(d)


def test_missing_task(tmp_path: Path) -> None:
    a = run(tmp_path, {MC_TASK: flags(5, 2), GEN_TASK: flags(5, 2)})
    b = run(tmp_path, {MC_TASK: flags(5, 2)})
    d = decide(a, b, POLICY)
    assert d.outcome == "unusable"
    assert {t.task: t.status for t in d.tasks} == {GEN_TASK: "missing", MC_TASK: "pass"}
    assert decide(a, b, GatePolicy(require_all_tasks=False)).outcome == "pass"


def test_unknown_metric_in_policy(tmp_path: Path) -> None:
    a = run(tmp_path, {MC_TASK: flags(5, 2)})
    policy = GatePolicy(default=TaskPolicy(metric="f1,none"))
    t = decide(a, a, policy).tasks[0]
    assert t.status == "incomparable" and "acc,none" in t.reason


def test_group_is_compared_on_pooled_samples(tmp_path: Path) -> None:
    subs = ("llada_mmlu_anatomy", "llada_mmlu_astronomy")
    a = run(tmp_path, {subs[0]: flags(30, 25), subs[1]: flags(30, 25)}, with_group=True)
    b = run(tmp_path, {subs[0]: flags(30, 5), subs[1]: flags(30, 25)}, with_group=True)
    d = decide(a, b, POLICY)
    assert [t.task for t in d.tasks] == ["llada_mmlu"]
    assert d.tasks[0].n_shared == 60 and d.tasks[0].status == "regression"


def test_policy_validation() -> None:
    p = parse_policy({"default": {"allowed_drop": 0.01}, "tasks": {"x": {"alpha": 0.1}}})
    assert p.for_task("x") == TaskPolicy(allowed_drop=0.01, alpha=0.1)
    assert p.for_task("y").alpha == 0.05
    with pytest.raises(ConfigError, match="did you mean 'allowed_drop'"):
        parse_policy({"default": {"allowed_drp": 0.1}})
    with pytest.raises(ConfigError, match=r"alpha: expected a number in \(0, 1\)"):
        parse_policy({"default": {"alpha": 5}})
    with pytest.raises(ConfigError, match="test"):
        parse_policy({"default": {"test": "ttest"}})


def test_repository_policy_file_is_valid() -> None:
    from evalsuite.gate import load_policy

    policy = load_policy(Path(__file__).resolve().parents[1] / "gate-policy.json")
    assert policy.default.test == "auto" and 0 < policy.default.alpha < 1
