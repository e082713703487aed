"""Regression gate: a pure decision over two runs, plus Markdown and JUnit renderings.

``decide(baseline, candidate, policy)`` compares every task (or aggregating group) the baseline
reports with the candidate, on the documents both evaluated:

* a task **regresses** when the candidate is worse by more than the policy's ``allowed_drop``
  (in the metric's own units, e.g. 0.02 = 2 points of accuracy) **and** the difference is
  significant (two-sided p < ``alpha``) under a paired test: exact McNemar for pass/fail
  metrics, a seeded paired bootstrap otherwise (``test: auto``);
* a task's outputs **changed** when identity mode applies to it (policy ``identity.enabled``:
  same settings, model, seeds and device, deterministic requests) and any sample's prompt,
  generated text, filtered response or log-likelihood (beyond the stated tolerance) differs
  from the baseline's (see :mod:`evalsuite.gate_identity`);
* the input is **unusable** when the runs share no task, a baseline task is missing from the
  candidate (``require_all_tasks``), a task has no shared samples, or a task's version or
  settings differ (unless ``allow_setting_changes``; the differences are then listed).

Outcome and exit code: ``pass`` 0, ``regression`` or ``changed`` 1, ``unusable`` 2. Nothing
here reads files except :func:`load_policy`; the CLI lives in :mod:`evalsuite.report.cli`.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evalsuite.errors import EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, ConfigError, did_you_mean
from evalsuite.gate_identity import IdentityPolicy, IdentityResult, check_identity, describe_diffs
from evalsuite.results.compare import (
    differing,
    higher_is_better,
    pair_scores,
    primary_metric,
    task_settings,
)
from evalsuite.results.stats import TestName, is_binary, paired_test
from evalsuite.results.store import Run

Status = Literal["pass", "regression", "changed", "missing", "incomparable"]
Outcome = Literal["pass", "regression", "changed", "unusable"]
_TESTS: tuple[str, ...] = ("auto", "mcnemar", "bootstrap")


@dataclass(frozen=True)
class TaskPolicy:
    """Thresholds for one task."""

    allowed_drop: float = 0.02
    """Largest tolerated drop, in metric units (0.02 = 2 points on a 0-1 accuracy)."""
    alpha: float = 0.05
    """Significance level of the two-sided paired test."""
    test: TestName = "auto"
    """``mcnemar`` (pass/fail metrics), ``bootstrap`` (any metric) or ``auto`` (by the scores)."""
    metric: str | None = None
    """lm-eval metric key (``"exact_match,strict-match"``); ``None``: the task's primary metric."""
    identity: bool = True
    """``false`` exempts this task from identity mode (when the policy enables it)."""


@dataclass(frozen=True)
class GatePolicy:
    """A gate policy file (``gate-policy.json``): defaults plus per-task overrides."""

    default: TaskPolicy = field(default_factory=TaskPolicy)
    tasks: Mapping[str, TaskPolicy] = field(default_factory=dict)
    bootstrap_iters: int = 10_000
    seed: int = 1234
    require_all_tasks: bool = True
    """A baseline task absent from the candidate makes the input unusable (exit 2)."""
    identity: IdentityPolicy = field(default_factory=IdentityPolicy)
    """Identity mode and its log-likelihood tolerance (off unless the policy enables it)."""

    def for_task(self, name: str) -> TaskPolicy:
        return self.tasks.get(name, self.default)


@dataclass(frozen=True)
class TaskDecision:
    """The gate's verdict on one task; numbers are ``None`` when the task was not compared."""

    task: str
    status: Status
    reason: str
    metric: str | None = None
    higher_is_better: bool = True
    n_shared: int = 0
    baseline_value: float | None = None
    candidate_value: float | None = None
    delta: float | None = None
    test: str | None = None
    p_value: float | None = None
    allowed_drop: float | None = None
    alpha: float | None = None
    setting_changes: tuple[tuple[str, str, str], ...] = ()
    identity: IdentityResult | None = None
    """Identity mode's finding (``None`` when identity mode is off or the task not compared)."""


@dataclass(frozen=True)
class GateDecision:
    """All task verdicts, run identities, and the overall outcome."""

    baseline: str
    candidate: str
    tasks: tuple[TaskDecision, ...]
    problems: tuple[str, ...]
    allow_setting_changes: bool
    identity: IdentityPolicy = field(default_factory=IdentityPolicy)

    @property
    def outcome(self) -> Outcome:
        if self.problems or any(t.status in ("missing", "incomparable") for t in self.tasks):
            return "unusable"
        if any(t.status == "regression" for t in self.tasks):
            return "regression"
        if any(t.status == "changed" for t in self.tasks):
            return "changed"
        return "pass"

    @property
    def exit_code(self) -> int:
        return {
            "pass": EXIT_OK,
            "regression": EXIT_REGRESSION,
            "changed": EXIT_REGRESSION,
            "unusable": EXIT_USAGE,
        }[self.outcome]


# ---------------------------------------------------------------- policy


def _task_policy(raw: Any, where: str, base: TaskPolicy) -> TaskPolicy:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected an object")
    known = {"allowed_drop", "alpha", "test", "metric", "identity"}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{where}: {did_you_mean(key, known, 'policy field')}")
    allowed = raw.get("allowed_drop", base.allowed_drop)
    alpha = raw.get("alpha", base.alpha)
    test = raw.get("test", base.test)
    metric = raw.get("metric", base.metric)
    identity = raw.get("identity", base.identity)
    if isinstance(allowed, bool) or not isinstance(allowed, (int, float)) or allowed < 0:
        raise ConfigError(f"{where}.allowed_drop: expected a number >= 0, found {allowed!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ConfigError(f"{where}.alpha: expected a number in (0, 1), found {alpha!r}")
    if test not in _TESTS:
        raise ConfigError(f"{where}.test: {did_you_mean(str(test), _TESTS, 'test')}")
    if metric is not None and not isinstance(metric, str):
        raise ConfigError(f"{where}.metric: expected a metric key like 'acc,none' or null")
    if not isinstance(identity, bool):
        raise ConfigError(
            f"{where}.identity: expected true or false (false exempts the task from identity "
            f"mode), found {identity!r}"
        )
    return TaskPolicy(float(allowed), float(alpha), test, metric, identity)


def _tolerance(raw: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(
            f"{where}.{key}: expected a number in [0, 1) (e.g. 1e-4), found {value!r}"
        )
    return float(value)


def _identity_policy(raw: Any, where: str) -> IdentityPolicy:
    if isinstance(raw, bool):
        return IdentityPolicy(enabled=raw)
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f'{where}: expected an object like {{"enabled": true, "loglik_abs_tol": 1e-4}}'
        )
    known = {"enabled", "loglik_abs_tol", "loglik_rel_tol", "max_shown", "description"}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{where}: {did_you_mean(key, known, 'identity field')}")
    base = IdentityPolicy()
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled: expected true or false, found {enabled!r}")
    shown = raw.get("max_shown", base.max_shown)
    if isinstance(shown, bool) or not isinstance(shown, int) or shown < 1:
        raise ConfigError(f"{where}.max_shown: expected an integer >= 1, found {shown!r}")
    return IdentityPolicy(
        enabled=enabled,
        loglik_abs_tol=_tolerance(raw, "loglik_abs_tol", base.loglik_abs_tol, where),
        loglik_rel_tol=_tolerance(raw, "loglik_rel_tol", base.loglik_rel_tol, where),
        max_shown=shown,
    )


def parse_policy(raw: Any, source: str = "policy") -> GatePolicy:
    """Validate a policy object (the parsed JSON file); ConfigError names the field."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a JSON object")
    known = {
        "policy_version",
        "description",
        "default",
        "tasks",
        "bootstrap_iters",
        "seed",
        "require_all_tasks",
        "identity",
    }
    for key in raw:
        if key not in known:
            raise ConfigError(f"{source}: {did_you_mean(key, known, 'policy field')}")
    if raw.get("policy_version", 1) != 1:
        raise ConfigError(
            f"{source}: unknown policy_version {raw.get('policy_version')!r}; expected 1"
        )
    default = _task_policy(raw.get("default", {}), f"{source}: default", TaskPolicy())
    tasks_raw = raw.get("tasks", {})
    if not isinstance(tasks_raw, Mapping):
        raise ConfigError(f"{source}: tasks: expected an object mapping task names to overrides")
    tasks = {str(k): _task_policy(v, f"{source}: tasks.{k}", default) for k, v in tasks_raw.items()}
    iters = raw.get("bootstrap_iters", 10_000)
    seed = raw.get("seed", 1234)
    require = raw.get("require_all_tasks", True)
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 100:
        raise ConfigError(f"{source}: bootstrap_iters: expected an integer >= 100, found {iters!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"{source}: seed: expected an integer, found {seed!r}")
    if not isinstance(require, bool):
        raise ConfigError(f"{source}: require_all_tasks: expected true or false")
    identity = _identity_policy(raw.get("identity", False), f"{source}: identity")
    return GatePolicy(default, tasks, iters, seed, require, identity)


def load_policy(path: Path | str) -> GatePolicy:
    """Read and validate a policy JSON file."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: policy file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return parse_policy(raw, str(path))


# ---------------------------------------------------------------- decision


def _decide_task(
    baseline: Run, candidate: Run, name: str, policy: GatePolicy, allow_setting_changes: bool
) -> TaskDecision:
    tp = policy.for_task(name)
    base_task = baseline.record.tasks[name]
    cand_task = candidate.record.tasks[name]
    changes = tuple(differing(task_settings(baseline, name), task_settings(candidate, name)))
    if changes and not allow_setting_changes:
        listed = "; ".join(f"{k}: {a} -> {b}" for k, a, b in changes[:5])
        more = f" (+{len(changes) - 5} more)" if len(changes) > 5 else ""
        return TaskDecision(
            name,
            "incomparable",
            f"task version or settings differ ({listed}{more}); pass --allow-setting-changes "
            "to compare anyway",
            setting_changes=changes,
        )
    metric = tp.metric or primary_metric(base_task)
    if metric is None or metric not in base_task.metrics or metric not in cand_task.metrics:
        have = sorted(set(base_task.metrics) & set(cand_task.metrics))
        return TaskDecision(
            name,
            "incomparable",
            f"metric {metric!r} is not reported by both runs; "
            f"shared metrics: {', '.join(have) or 'none'}",
            metric=metric,
            setting_changes=changes,
        )
    hib = higher_is_better(base_task, metric)
    paired = pair_scores(baseline, candidate, name, metric)
    if not paired.keys:
        return TaskDecision(
            name,
            "incomparable",
            "no shared samples (the runs evaluated different documents)",
            metric=metric,
            higher_is_better=hib,
            setting_changes=changes,
        )
    if tp.test == "mcnemar" and not (is_binary(paired.baseline) and is_binary(paired.candidate)):
        return TaskDecision(
            name,
            "incomparable",
            f"policy asks for McNemar's test but {metric} is not a pass/fail (0/1) score; "
            "use test 'bootstrap' or 'auto'",
            metric=metric,
            higher_is_better=hib,
            n_shared=len(paired.keys),
            setting_changes=changes,
        )
    result = paired_test(
        paired.baseline,
        paired.candidate,
        test=tp.test,
        iters=policy.bootstrap_iters,
        seed=policy.seed,
    )
    identity = None
    if policy.identity.enabled and tp.identity:
        identity = check_identity(baseline, candidate, name, policy.identity)
    drop = -result.delta if hib else result.delta
    regressed = drop > tp.allowed_drop and result.p_value < tp.alpha
    if regressed:
        reason = (
            f"worse by {drop:.4g} > allowed {tp.allowed_drop:.4g}, "
            f"significant (p={result.p_value:.3g} < {tp.alpha:g})"
        )
    elif drop > tp.allowed_drop:
        reason = (
            f"worse by {drop:.4g} > allowed {tp.allowed_drop:.4g} but not significant "
            f"(p={result.p_value:.3g} >= {tp.alpha:g})"
        )
    else:
        reason = f"within the allowed drop ({tp.allowed_drop:.4g})"
    if paired.mismatched:
        reason += f"; {paired.mismatched} documents left out because their content differs"
    status: Status = "regression" if regressed else "pass"
    if identity is not None and identity.failed:
        reason += f"; identity: {identity.reason}"
        if not regressed:
            status = "changed"
    return TaskDecision(
        name,
        status,
        reason,
        metric=metric,
        higher_is_better=hib,
        n_shared=result.n,
        baseline_value=result.baseline_mean,
        candidate_value=result.candidate_mean,
        delta=result.delta,
        test=result.test,
        p_value=result.p_value,
        allowed_drop=tp.allowed_drop,
        alpha=tp.alpha,
        setting_changes=changes,
        identity=identity,
    )


def decide(
    baseline: Run, candidate: Run, policy: GatePolicy, *, allow_setting_changes: bool = False
) -> GateDecision:
    """Compare ``candidate`` against ``baseline`` task by task (pure; see the module docstring)."""
    base_units = [u.name for u in baseline.record.units()]
    cand_names = set(candidate.record.tasks)
    common = [u for u in base_units if u in cand_names]
    problems: list[str] = []
    decisions: list[TaskDecision] = []
    if not common:
        problems.append(
            f"the runs have no task in common (baseline: {', '.join(base_units) or 'none'}; "
            f"candidate: {', '.join(u.name for u in candidate.record.units()) or 'none'})"
        )
    for name in base_units:
        if name not in cand_names:
            if policy.require_all_tasks and common:
                decisions.append(
                    TaskDecision(
                        name,
                        "missing",
                        "the candidate did not evaluate this baseline task (require_all_tasks)",
                    )
                )
            continue
        decisions.append(_decide_task(baseline, candidate, name, policy, allow_setting_changes))
    return GateDecision(
        baseline=f"{baseline.record.model.preset} @ {baseline.record.run_id}",
        candidate=f"{candidate.record.model.preset} @ {candidate.record.run_id}",
        tasks=tuple(decisions),
        problems=tuple(problems),
        allow_setting_changes=allow_setting_changes,
        identity=policy.identity,
    )


# ---------------------------------------------------------------- renderings

_ICON = {
    "pass": "✅",
    "regression": "❌",
    "changed": "❌",
    "missing": "⚠️",
    "incomparable": "⚠️",
}
_HEADLINE = {
    "pass": "✅ pass: no significant regression",
    "regression": "❌ regression",
    "changed": "❌ outputs changed: samples differ from the baseline (identity mode)",
    "unusable": "⚠️ unusable input: the runs cannot be compared",
}


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _identity_cell(result: IdentityResult | None) -> str:
    if result is None:
        return "—"
    if not result.applies:
        return f"— {result.reason}"
    if result.failed:
        return f"❌ {result.differing}/{result.compared} differ"
    return f"✅ {result.compared} match"


def to_markdown(decision: GateDecision) -> str:
    """A Markdown summary suitable for a pull-request comment."""
    lines = [
        f"## evalsuite gate: {_HEADLINE[decision.outcome]}",
        "",
        f"- baseline: `{decision.baseline}`",
        f"- candidate: `{decision.candidate}`",
    ]
    lines.append(f"- identity mode: {decision.identity.describe()}")
    if decision.allow_setting_changes:
        lines.append("- settings changes allowed (`--allow-setting-changes`)")
    for problem in decision.problems:
        lines.append(f"- **problem:** {_md_cell(problem)}")
    lines += [
        "",
        "| task | metric | baseline | candidate | Δ | shared | test | p | allowed drop | identity "
        "| result |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | --- |",
    ]
    for t in decision.tasks:
        lines.append(
            f"| {_md_cell(t.task)} | {_md_cell(t.metric or '—')} | {_fmt(t.baseline_value)} | "
            f"{_fmt(t.candidate_value)} | {_fmt(t.delta, '+.4f')} | {t.n_shared} | "
            f"{t.test or '—'} | {_fmt(t.p_value, '.3g')} | {_fmt(t.allowed_drop, '.4g')} | "
            f"{_md_cell(_identity_cell(t.identity))} | "
            f"{_ICON[t.status]} {t.status}: {_md_cell(t.reason)} |"
        )
    failed = [t for t in decision.tasks if t.identity is not None and t.identity.failed]
    if failed:
        lines += [
            "",
            "### First samples that differ from the baseline (identity mode)",
            "",
            "| task | doc | field | baseline | candidate |",
            "| --- | ---: | --- | --- | --- |",
        ]
        for t in failed:
            assert t.identity is not None
            lines += [
                f"| {_md_cell(d.task)} | {d.doc_id} | {_md_cell(d.field)} | "
                f"`{_md_cell(d.baseline)}` | `{_md_cell(d.candidate)}` |"
                for d in t.identity.diffs
            ]
    changed = [(t.task, c) for t in decision.tasks for c in t.setting_changes]
    if changed:
        lines += [
            "",
            "<details><summary>settings that differ</summary>",
            "",
            "| setting | baseline | candidate |",
            "| --- | --- | --- |",
        ]
        lines += [f"| {_md_cell(k)} | {_md_cell(a)} | {_md_cell(b)} |" for _, (k, a, b) in changed]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def to_junit(decision: GateDecision) -> str:
    """JUnit XML: one testcase per task; regressions are failures, unusable tasks errors."""
    suite = ET.Element(
        "testsuite",
        name="evalsuite-gate",
        tests=str(len(decision.tasks) + len(decision.problems)),
        failures=str(sum(t.status in ("regression", "changed") for t in decision.tasks)),
        errors=str(
            sum(t.status in ("missing", "incomparable") for t in decision.tasks)
            + len(decision.problems)
        ),
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="baseline", value=decision.baseline)
    ET.SubElement(props, "property", name="candidate", value=decision.candidate)
    ident = decision.identity
    ET.SubElement(props, "property", name="identity", value=ident.describe())
    if ident.enabled:
        ET.SubElement(props, "property", name="loglik_abs_tol", value=f"{ident.loglik_abs_tol:g}")
        ET.SubElement(props, "property", name="loglik_rel_tol", value=f"{ident.loglik_rel_tol:g}")
    for i, problem in enumerate(decision.problems):
        case = ET.SubElement(suite, "testcase", classname="evalsuite.gate", name=f"input-{i + 1}")
        ET.SubElement(case, "error", message=problem)
    for t in decision.tasks:
        case = ET.SubElement(suite, "testcase", classname="evalsuite.gate", name=t.task)
        detail = (
            f"metric={t.metric} baseline={_fmt(t.baseline_value)} "
            f"candidate={_fmt(t.candidate_value)} delta={_fmt(t.delta, '+.4f')} "
            f"n={t.n_shared} test={t.test} p={_fmt(t.p_value, '.3g')}"
        )
        if t.identity is not None:
            detail += f"\nidentity: {t.identity.reason}"
            detail += "".join(f"\n  {line}" for line in describe_diffs(t.identity.diffs))
        if t.status in ("regression", "changed"):
            ET.SubElement(case, "failure", message=t.reason).text = detail
        elif t.status in ("missing", "incomparable"):
            ET.SubElement(case, "error", message=t.reason).text = detail
        else:
            ET.SubElement(case, "system-out").text = f"{t.reason}; {detail}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
