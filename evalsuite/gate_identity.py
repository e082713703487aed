"""The gate's identity mode: per-sample outputs must equal the baseline's (pure functions).

A statistical test only sees scores, so on a tiny random model (where every score is noise)
it cannot tell a broken sampler from a working one. Identity mode asks more where the answer is
known exactly: when a task ran with unchanged settings, the same model, seeds, limit and device,
and its requests are deterministic (likelihood tasks; generation at temperature 0), a rerun must
reproduce every sample:

* the rendered prompt, the generated text and every filtered response exactly (except
  wall-clock ``seconds`` values inside a filtered response, such as the run time of a
  HumanEval check program, which no rerun reproduces);
* every log-likelihood within ``|a - b| <= loglik_abs_tol + loglik_rel_tol * max(|a|, |b|)``
  (floating point differs slightly between machines and thread counts); where a record kept
  only the 4-decimal text of a log-likelihood (records written before ``SampleRecord.
  loglikelihoods`` existed) the rounding, 5e-5, is added to the tolerance.

:func:`check_identity` decides whether identity applies to one gate unit (a task or a group)
and, if so, compares the samples; the first differing samples are kept for the gate's output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evalsuite.results.compare import differing, task_settings
from evalsuite.results.schema import SampleRecord
from evalsuite.results.store import Run

ROUNDED_LOGLIK_RESOLUTION = 5e-5
"""Largest rounding error of a log-likelihood kept only as text with 4 decimals."""

_LL_TEXT = re.compile(r"log-likelihood (\S+)\s*$")
_WALL_TIME = re.compile(r"""(['"]seconds['"]\s*:\s*)-?[0-9][0-9.eE+-]*""")
_SHOWN_CHARS = 160


@dataclass(frozen=True)
class IdentityPolicy:
    """The ``identity`` object of a gate policy."""

    enabled: bool = False
    """Off unless the policy (or ``--identity``) turns it on; the shipped gate-policy.json does."""
    loglik_abs_tol: float = 1e-4
    """Absolute tolerance on each log-likelihood (nats)."""
    loglik_rel_tol: float = 1e-5
    """Relative tolerance, for long continuations whose float32 sums reach hundreds of nats."""
    max_shown: int = 5
    """How many differing samples the gate output lists per task."""

    def describe(self) -> str:
        """One line for the gate output stating what identity mode compares and how tightly."""
        if not self.enabled:
            return "off"
        return (
            "on: prompts, generated text and filtered responses must match exactly; "
            f"log-likelihoods within {self.loglik_abs_tol:g} + {self.loglik_rel_tol:g}·|ll| "
            f"(+{ROUNDED_LOGLIK_RESOLUTION:g} where a record kept 4 decimals only)"
        )


@dataclass(frozen=True)
class SampleDiff:
    """One field of one document that differs (texts shortened for display)."""

    task: str
    doc_id: int
    field: str
    baseline: str
    candidate: str


@dataclass(frozen=True)
class IdentityResult:
    """Whether identity applied to a unit, and what the comparison found.

    ``reason`` says why identity did not apply, or summarises the comparison. ``differing``
    counts documents with at least one difference; ``diffs`` lists the first of them.
    """

    applies: bool
    reason: str
    compared: int = 0
    differing: int = 0
    diffs: tuple[SampleDiff, ...] = ()
    max_loglik_diff: float | None = None
    skipped_tasks: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.applies and self.differing > 0


# ---------------------------------------------------------------- when identity applies


def run_context(run: Run) -> dict[str, str]:
    """Run-level facts that must match for outputs to be reproducible (flattened to text)."""
    r = run.record
    sha = r.checkpoint.sha256 if r.checkpoint is not None else None
    out = {
        "model.resolved_id": r.model.resolved_id,
        "model.architecture": str(r.model.architecture),
        "model.revision": str(r.model.revision),
        "model.dtype": str(r.model.dtype),
        "model.checkpoint_sha256": str(sha),
        "device": str(r.device),
        "limit": str(r.limit),
        "world_size": str(r.world_size),
    }
    for k, v in sorted(r.seeds.as_dict().items()):
        out[f"seeds.{k}"] = str(v)
    return out


def _temperature(settings: Mapping[str, Any], gen_kwargs: Mapping[str, Any]) -> float | None:
    for source in (settings, gen_kwargs):
        value = source.get("temperature")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    if gen_kwargs.get("do_sample") is False:
        return 0.0
    return None


def nondeterminism(run: Run, leaf: str) -> str | None:
    """Why ``leaf``'s outputs are not expected to repeat exactly, or ``None`` when they are.

    Likelihood tasks are deterministic (the Monte Carlo estimator is seeded from the request,
    settings and run seed); generation tasks are when they sample at temperature 0.
    """
    task = run.record.tasks.get(leaf)
    if task is None:
        return "not in the run"
    if task.output_type != "generate_until":
        return None
    temp = _temperature(task.settings, task.generation_kwargs)
    if temp is None:
        return "temperature not recorded"
    if temp != 0.0:
        return f"samples at temperature {temp:g}"
    return None


# ---------------------------------------------------------------- comparing samples


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _loglikelihoods(sample: SampleRecord) -> tuple[tuple[float, ...], float] | None:
    """The sample's log-likelihoods and their rounding resolution (0 when stored in full)."""
    if sample.loglikelihoods is not None:
        return sample.loglikelihoods, 0.0
    values: list[float] = []
    for line in sample.output.splitlines():
        match = _LL_TEXT.search(line)
        if match is None:
            return None
        try:
            values.append(float(match.group(1)))
        except ValueError:
            return None
    return (tuple(values), ROUNDED_LOGLIK_RESOLUTION) if values else None


def without_wall_time(text: str) -> str:
    """``text`` with every ``'seconds': <number>`` (Python or JSON notation) blanked out."""
    return _WALL_TIME.sub(r"\1…", text)


def _first_text_diff(a: str, b: str) -> tuple[str, str]:
    """Both texts from a little before their first differing character (for display)."""
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    start = max(0, i - 20)
    lead = "…" if start else ""
    return _short(lead + a[start:]), _short(lead + b[start:])


def compare_samples(
    base: SampleRecord, cand: SampleRecord, policy: IdentityPolicy, likelihood: bool
) -> tuple[list[SampleDiff], float | None]:
    """Differences between two records of the same document, and the largest |Δ ll|."""
    diffs: list[SampleDiff] = []
    where = (base.task, base.doc_id)

    def add(name: str, a: Any, b: Any) -> None:
        if isinstance(a, str) and isinstance(b, str):
            a, b = _first_text_diff(a, b)
        diffs.append(SampleDiff(*where, name, _short(a), _short(b)))

    if base.doc_hash and cand.doc_hash and base.doc_hash != cand.doc_hash:
        add("document", base.doc_hash, cand.doc_hash)
    if base.prompt != cand.prompt:
        add("prompt", base.prompt, cand.prompt)
    max_ll: float | None = None
    if likelihood:
        a, b = _loglikelihoods(base), _loglikelihoods(cand)
        if a is None or b is None:
            if base.output != cand.output:
                add("output", base.output, cand.output)
        elif len(a[0]) != len(b[0]):
            add("loglikelihoods", f"{len(a[0])} values", f"{len(b[0])} values")
        else:
            slack = a[1] + b[1]
            for i, (x, y) in enumerate(zip(a[0], b[0], strict=True)):
                gap = abs(x - y)
                max_ll = gap if max_ll is None else max(max_ll, gap)
                tol = policy.loglik_abs_tol + policy.loglik_rel_tol * max(abs(x), abs(y)) + slack
                if not gap <= tol:  # NaN never passes
                    add(f"loglikelihood[{i}]", repr(x), f"{y!r} (|Δ| {gap:.3g} > {tol:.3g})")
    else:
        if base.output != cand.output:
            add("output", base.output, cand.output)
        for filt in sorted(set(base.extracted) | set(cand.extracted)):
            x, y = base.extracted.get(filt), cand.extracted.get(filt)
            if x is None or y is None or without_wall_time(x) != without_wall_time(y):
                add(f"filtered[{filt}]", "—" if x is None else x, "—" if y is None else y)
    return diffs, max_ll


def check_identity(
    baseline: Run, candidate: Run, unit: str, policy: IdentityPolicy
) -> IdentityResult:
    """Apply identity mode to one gate unit (see the module docstring); pure."""
    context = differing(run_context(baseline), run_context(candidate))
    if context:
        listed = "; ".join(f"{k}: {a} -> {b}" for k, a, b in context[:3])
        return IdentityResult(False, f"not applied: the runs differ ({listed})")
    if differing(task_settings(baseline, unit), task_settings(candidate, unit)):
        return IdentityResult(False, "not applied: task versions or settings differ")
    leaves = baseline.record.leaves_of(unit)
    skipped: list[str] = []
    compared_leaves: list[str] = []
    for leaf in leaves:
        why = nondeterminism(baseline, leaf)
        if why is None:
            compared_leaves.append(leaf)
        else:
            skipped.append(f"{leaf} ({why})")
    if not compared_leaves:
        return IdentityResult(
            False, "not applied: " + "; ".join(skipped), skipped_tasks=tuple(skipped)
        )
    wanted = set(compared_leaves)
    base = {(s.task, s.doc_id): s for s in baseline.samples if s.task in wanted}
    cand = {(s.task, s.doc_id): s for s in candidate.samples if s.task in wanted}
    shown: list[SampleDiff] = []
    n_diff = 0
    max_ll: float | None = None
    for key in sorted(base.keys() | cand.keys()):
        b, c = base.get(key), cand.get(key)
        if b is None or c is None:
            found = [SampleDiff(*key, "presence", "present" if b else "absent",
                                "present" if c else "absent")]
        else:
            task = baseline.record.tasks[key[0]]
            found, gap = compare_samples(b, c, policy, task.output_type != "generate_until")
            if gap is not None:
                max_ll = gap if max_ll is None else max(max_ll, gap)
        if found:
            n_diff += 1
            if len(shown) < policy.max_shown:
                shown.append(found[0])
    total = len(base.keys() | cand.keys())
    summary = (
        f"{n_diff} of {total} samples differ from the baseline"
        if n_diff
        else f"all {total} samples match"
    )
    if max_ll is not None:
        summary += f" (max |Δ loglikelihood| {max_ll:.2g})"
    if skipped:
        summary += "; not compared: " + "; ".join(skipped)
    return IdentityResult(True, summary, total, n_diff, tuple(shown), max_ll, tuple(skipped))


def describe_diffs(diffs: Sequence[SampleDiff]) -> list[str]:
    """One plain-text line per differing sample (JUnit and stderr)."""
    return [
        f"{d.task} doc {d.doc_id} {d.field}: baseline {d.baseline!r} / candidate {d.candidate!r}"
        for d in diffs
    ]
