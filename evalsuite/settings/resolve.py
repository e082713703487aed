"""The settings resolver: which sampler or estimator settings apply to a task, and why.

:func:`resolve` is pure. It is called by the runner for every task of a plan before any
weight loads, and by the lm-eval adapter for every request, so that a run and a plain
``lm_eval --model llada`` decide the same way. Rules (README, "Settings"):

* Precedence, highest first: the CLI or ``model_args`` (``overrides``), lm-eval's
  ``--gen_kwargs``, the task YAML's ``generation_kwargs``, the family's per-task table (the
  ``task_table`` of :class:`evalsuite.families.FamilySpec`, looked up by exact task name:
  LLaDA's paper table :mod:`evalsuite.settings.paper`, source ``paper_table``; Dream's
  table :mod:`evalsuite.families.dream.tasks`, source ``family_table``, which sits above the
  task YAML's kwargs, written for LLaDA's protocol), the family's defaults (Dream's ``alg``
  entropy, ``mc_batch_size`` 32), the defaults (:mod:`evalsuite.settings.config`).
* ``max_gen_toks`` in the generation kwargs is ``gen_length`` unless ``gen_length`` is set by
  the same or a higher layer; ``do_sample: false`` is temperature 0, ``do_sample: true``
  without a temperature is temperature 1. Any other generation kwarg that the diffusion
  sampler cannot honour (``top_p``, ``top_k``, ...) is named in a warning and recorded.
* A ``gen_length`` set above the table re-derives what depends on it unless that is set at
  the same level or higher: a pure-diffusion base (block = gen = steps) stays pure diffusion
  at the new length; a semi-autoregressive one keeps its block length when it divides the new
  length (else the largest divisor below it) and keeps its steps per token (rounded to a
  multiple of the number of blocks).
* The estimator's ``mc_batch_size`` is derived (largest divisor of ``mc_num`` up to the
  family's default: 16, Dream 32) unless given; a given one that does not divide ``mc_num``
  is an error.
* Invalid values and combinations raise :class:`~evalsuite.errors.ConfigError` naming the
  values, where each came from and the fix (:mod:`evalsuite.settings.validate`, the one
  validator).

Provenance of each value: ``cli``, ``model_args``, ``argument`` (:mod:`evalsuite.api`),
``gen_kwargs``, ``yaml``, ``family_table``, ``paper_table``, ``derived`` or ``default``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from evalsuite.settings import validate
from evalsuite.settings.config import (
    DEFAULT_LENGTH,
    EstimatorConfig,
    SamplerConfig,
)
from evalsuite.settings.knobs import Knob, Owner, build, knobs, knobs_of, record_of

Source = Literal["cli", "model_args", "argument", "gen_kwargs", "yaml", "family_table",
                 "paper_table", "derived", "default"]
OverrideSource = Literal["cli", "model_args", "argument"]
OutputType = Literal["generate_until", "loglikelihood", "multiple_choice", "loglikelihood_rolling"]

DEFAULT_GEN_LENGTH: Final = DEFAULT_LENGTH
"""gen_length (and steps, block_length) when nothing sets them: the dataclass default."""

#: Generation kwargs the sampler understands besides the knobs themselves.
HONOURED_GEN_KWARGS: Final = frozenset({"until", "max_gen_toks", "do_sample", "temperature"})

_RANK: Final[dict[Source, int]] = {
    "default": 0, "paper_table": 1, "derived": 1, "yaml": 2, "family_table": 3, "gen_kwargs": 4,
    "model_args": 5, "cli": 5, "argument": 5,
}
_LENGTH_KEYS: Final = ("gen_length", "steps", "block_length")


@dataclass(frozen=True)
class TaskInfo:
    """What the resolver needs to know about a task."""

    name: str | None
    """lm-eval task name (``Instance.task_name``); looked up exactly in the paper table."""
    output_type: OutputType = "generate_until"


@dataclass(frozen=True)
class Overrides:
    """Settings given by the user, and where."""

    values: Mapping[str, Any] = field(default_factory=dict)
    """Typed knob values (see :func:`evalsuite.settings.knobs.parse_knobs`)."""
    source: OverrideSource = "cli"


@dataclass(frozen=True)
class Provenance:
    """Where each setting came from, and what was not honoured."""

    sources: Mapping[str, Source]
    """Knob name -> source of its value."""
    ignored_gen_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Generation kwargs the diffusion sampler cannot honour (warned about, recorded)."""
    notes: tuple[str, ...] = ()
    """Human-readable derivations (``block_length 8 kept: divides gen_length 64``)."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sources": dict(self.sources)}
        if self.ignored_gen_kwargs:
            out["ignored_gen_kwargs"] = dict(self.ignored_gen_kwargs)
        if self.notes:
            out["notes"] = list(self.notes)
        return out


Config = SamplerConfig | EstimatorConfig


def is_generation(task: TaskInfo) -> bool:
    return task.output_type == "generate_until"


def resolve(
    task: TaskInfo | str | None,
    family: str,
    task_generation_kwargs: Mapping[str, Any] | None = None,
    overrides: Overrides | Mapping[str, Any] | None = None,
    *,
    user_gen_kwargs: Mapping[str, Any] | None = None,
    gen_kwargs_source: Literal["yaml", "gen_kwargs"] = "yaml",
    use_paper_table: bool = True,
    architecture: str = "llada",
) -> tuple[Config, Provenance]:
    """Settings for one task (or request) and their provenance.

    ``task``: a :class:`TaskInfo` (a bare name means a generation task).
    ``task_generation_kwargs``: the task YAML's ``generation_kwargs`` (under plain lm-eval the
    request's, which already include ``--gen_kwargs``; pass ``gen_kwargs_source="gen_kwargs"``
    to label them so). ``user_gen_kwargs``: lm-eval's ``--gen_kwargs`` when known separately.
    ``overrides``: the CLI's or model_args' typed knob values.
    ``architecture``: the model family (:mod:`evalsuite.families`); a generation kwarg that is
    a sampler knob of another family only (``top_p`` for LLaDA) is recorded as ignored.
    Raises :class:`ConfigError` for invalid combinations.
    """
    info = task if isinstance(task, TaskInfo) else TaskInfo(task)
    over = overrides if isinstance(overrides, Overrides) else Overrides(dict(overrides or {}))
    from evalsuite.families import family_named

    spec = family_named(architecture)
    table_source: Source = spec.table_source  # type: ignore[assignment]
    table = _family_table(info.name, family, spec.task_table) if use_paper_table else {}
    if is_generation(info):
        layers: list[tuple[Source, Mapping[str, Any]]] = [("default", spec.sampler_defaults)]
        if not spec.table_over_yaml:
            layers.append((table_source, table))
        ignored: dict[str, Any] = {}
        for i, (source, kwargs) in enumerate(((gen_kwargs_source, task_generation_kwargs or {}),
                                              ("gen_kwargs", user_gen_kwargs or {}))):
            honoured, dropped = _from_gen_kwargs(kwargs, source, architecture)
            layers.append((source, honoured))
            if i == 0 and spec.table_over_yaml:  # above the task's own kwargs (docstring)
                layers.append((table_source, table))
            ignored.update(dropped)
        layers.append((over.source, _own(over.values, "sampler")))
        return _resolve_sampler(layers, ignored, over.source, spec.derive_lengths)
    layers = [("default", spec.estimator_defaults), (table_source, table),
              (over.source, _own(over.values, "estimator"))]
    return _resolve_estimator(layers, over.source)


def _family_table(name: str | None, family: str, where: str) -> dict[str, Any]:
    """The family's per-task settings of ``name`` (``where``: ``module:function``)."""
    if not name:
        return {}
    import importlib

    module, _, function = where.partition(":")
    return dict(getattr(importlib.import_module(module), function)(name, family))


def _own(values: Mapping[str, Any], owner: Owner) -> dict[str, Any]:
    mine = knobs_of(owner)
    return {k: v for k, v in values.items() if k in mine and v is not None}


def _from_gen_kwargs(kwargs: Mapping[str, Any], source: Source, architecture: str = "llada"
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(sampler knobs set by lm-eval generation kwargs, kwargs the sampler cannot honour)."""
    from evalsuite.families import family_named

    sampler = knobs_of("sampler")
    own = family_named(architecture).settings()
    honoured: dict[str, Any] = {}
    ignored: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in sampler and key in own:
            honoured[key] = sampler[key].parse(value, f"{source} generation kwarg")
        elif key not in HONOURED_GEN_KWARGS:
            ignored[key] = value  # top_p, top_k, ... and estimator knobs (mc_num)
    if "max_gen_toks" in kwargs and "gen_length" not in honoured:
        honoured["gen_length"] = sampler["gen_length"].parse(kwargs["max_gen_toks"],
                                                             f"{source} max_gen_toks")
    if "temperature" not in honoured and "do_sample" in kwargs:
        do_sample = kwargs["do_sample"]
        if str(do_sample).lower() in ("false", "0"):
            honoured["temperature"] = 0.0
        elif str(do_sample).lower() in ("true", "1"):
            honoured["temperature"] = 1.0
    return honoured, ignored


def _pick(layers: list[tuple[Source, Mapping[str, Any]]], knob: Knob, owner: Owner) -> tuple[Any, Source]:
    for source, values in reversed(layers):
        if knob.name in values:
            return values[knob.name], source
    return knob.defaults[owner], "default"


def _pick_all(layers: list[tuple[Source, Mapping[str, Any]]],
              owner: Owner) -> tuple[dict[str, Knob], dict[str, Any], dict[str, Source]]:
    """Every knob of ``owner``: the value of the highest layer that sets it, and that layer."""
    mine = knobs_of(owner)
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for name, knob in mine.items():
        values[name], sources[name] = _pick(layers, knob, owner)
    return mine, values, sources


def _resolve_sampler(layers: list[tuple[Source, Mapping[str, Any]]], ignored: dict[str, Any],
                     fix_source: OverrideSource, derive_lengths: bool = True
                     ) -> tuple[SamplerConfig, Provenance]:
    mine, values, sources = _pick_all(layers, "sampler")
    notes: list[str] = []
    if sources["gen_length"] == "default":
        values["gen_length"] = DEFAULT_GEN_LENGTH
    if derive_lengths:
        _derive_lengths(layers, values, sources, notes)
    else:
        _whole_blocks(values, sources, notes)
    validate.check("sampler", mine, values, sources, fix_source)
    return build("sampler", values), Provenance(MappingProxyType(sources),  # type: ignore[return-value]
                                                MappingProxyType(dict(ignored)), tuple(notes))


def _whole_blocks(values: dict[str, Any], sources: dict[str, Source], notes: list[str]) -> None:
    """Block diffusion (LLaDA2): ``block_length`` and ``steps`` (per block) are the family's
    or the user's; a ``gen_length`` that a task (or the default) set, not the user, is rounded
    up to whole blocks (the official generate fills whole blocks; the answer is cut at its stop
    strings or EOS). A user's ``gen_length`` is validated as given."""
    gen, block = values["gen_length"], values["block_length"]
    if sources["gen_length"] in ("cli", "model_args", "argument"):
        return
    if isinstance(gen, int) and isinstance(block, int) and gen > 0 and block > 0 and gen % block:
        values["gen_length"] = -(-gen // block) * block
        sources["gen_length"] = "derived"
        notes.append(f"gen_length {values['gen_length']}: {gen} rounded up to whole blocks of "
                     f"{block} (block diffusion generates whole blocks)")


def _derive_lengths(layers: list[tuple[Source, Mapping[str, Any]]], values: dict[str, Any],
                    sources: dict[str, Source], notes: list[str]) -> None:
    """Re-derive steps and block_length from a gen_length set above them (rules above)."""
    gen_rank = _RANK[sources["gen_length"]]
    below = [(s, v) for s, v in layers if _RANK[s] < gen_rank]
    base_gen, base_steps, base_block = _base_lengths(below)
    gen = values["gen_length"]
    if not isinstance(gen, int) or gen <= 0:
        return  # reported by _check_sampler
    derived: Source = "derived" if sources["gen_length"] != "default" else "default"
    if _RANK[sources["block_length"]] < gen_rank or sources["block_length"] == "default":
        if base_block >= base_gen:
            block = gen
            if gen != base_gen:
                notes.append(f"block_length {gen}: pure diffusion (block = gen_length) at the new "
                             f"gen_length {gen}")
        elif gen % base_block == 0:
            block = base_block
            notes.append(f"block_length {block} kept: it divides gen_length {gen}")
        else:
            block = max(d for d in range(1, min(base_block, gen) + 1) if gen % d == 0)
            notes.append(f"block_length {block}: the largest divisor of gen_length {gen} "
                         f"up to the base block_length {base_block}")
        values["block_length"], sources["block_length"] = block, derived
    if _RANK[sources["steps"]] < gen_rank or sources["steps"] == "default":
        block = values["block_length"]
        blocks = gen // block if isinstance(block, int) and block > 0 and gen % block == 0 else 1
        per_token = base_steps / base_gen
        steps = max(blocks, round(per_token * gen / blocks) * blocks)
        values["steps"], sources["steps"] = steps, derived
        if derived == "derived" and gen != base_gen:
            notes.append(f"steps {steps}: {per_token:g} steps per token of the base setting "
                         f"({base_steps}/{base_gen}) at gen_length {gen}, a multiple of the "
                         f"{blocks} block(s)")


def _base_lengths(layers: list[tuple[Source, Mapping[str, Any]]]) -> tuple[int, int, int]:
    """(gen_length, steps, block_length) that ``layers`` alone resolve to (recursively: the
    base of a layer is what the layers below it decide)."""
    tops = [i for i, (_, v) in enumerate(layers) if "gen_length" in v]
    if not tops:
        gen = DEFAULT_GEN_LENGTH
        steps = next((v["steps"] for _, v in reversed(layers) if "steps" in v), gen)
        block = next((v["block_length"] for _, v in reversed(layers) if "block_length" in v), gen)
        return gen, steps, block
    top = tops[-1]
    gen = layers[top][1]["gen_length"]
    base_gen, base_steps, base_block = _base_lengths(layers[:top])
    if not isinstance(gen, int) or gen <= 0:
        return base_gen, base_steps, base_block  # reported when it is the final value
    above = layers[top:]
    block = next((v["block_length"] for _, v in reversed(above) if "block_length" in v), None)
    if block is None:
        block = gen if base_block >= base_gen else (
            base_block if gen % base_block == 0 else
            max(d for d in range(1, min(base_block, gen) + 1) if gen % d == 0))
    if not isinstance(block, int) or block <= 0:
        block = gen
    steps = next((v["steps"] for _, v in reversed(above) if "steps" in v), None)
    if steps is None:
        blocks = gen // block if block > 0 and gen % block == 0 else 1
        steps = max(blocks, round(base_steps / base_gen * gen / blocks) * blocks)
    return gen, steps, block


def _resolve_estimator(layers: list[tuple[Source, Mapping[str, Any]]],
                       fix: OverrideSource) -> tuple[EstimatorConfig, Provenance]:
    mine, values, sources = _pick_all(layers, "estimator")
    notes: list[str] = []
    for key in ("mc_num", "mc_batch_size"):
        validate.check_value(mine[key], values[key], sources[key], fix)
    mc_num = values["mc_num"]
    if sources["mc_batch_size"] == "default":
        limit = values["mc_batch_size"]  # the family's default (LLaDA: DEFAULT_MC_BATCH_SIZE)
        batch = max(d for d in range(1, min(limit, mc_num) + 1) if mc_num % d == 0)
        if batch != values["mc_batch_size"]:
            values["mc_batch_size"] = batch
            sources["mc_batch_size"] = "derived"
            notes.append(f"mc_batch_size {batch}: the largest divisor of mc_num {mc_num} "
                         f"up to {limit}")
    validate.check("estimator", mine, values, sources, fix)
    return build("estimator", values), Provenance(MappingProxyType(sources),  # type: ignore[return-value]
                                                  MappingProxyType({}), tuple(notes))


def validate_overrides(overrides: Overrides, architecture: str = "llada") -> None:
    """Check the overrides on their own, before any task is known or anything loads: each value
    against its rule, the lengths, steps and blocks when ``gen_length`` is given (a task may
    supply it otherwise), the estimator always, with the defaults of the model family
    ``architecture``. Raises :class:`ConfigError` like :func:`resolve`."""
    values = overrides.values
    registry = knobs()
    for key, value in values.items():
        validate.check_value(registry[key], value, overrides.source, overrides.source)
    if "gen_length" in values:
        resolve(TaskInfo(None, "generate_until"), "base", {}, overrides,
                architecture=architecture)
    else:  # the other sampler knobs, at the default lengths
        rest = {k: v for k, v in values.items() if k not in _LENGTH_KEYS}
        resolve(TaskInfo(None, "generate_until"), "base", {}, Overrides(rest, overrides.source),
                architecture=architecture)
    resolve(TaskInfo(None, "loglikelihood"), "base", {}, overrides, architecture=architecture)


def settings_record(config: Config, architecture: str | None = None) -> dict[str, Any]:
    """What the run record and the request-cache key store as a task's settings: every knob
    of the family ``architecture`` for this config's side (its sampler's or its likelihood's)
    under its registry name (the estimator's batch size as
    ``mc_batch_size``, not the run's ``batch_size``). Another family's knobs are left out, so
    a LLaDA record, its request-cache keys and its seeds do not change with Dream's knobs and
    a Dream record does not carry LLaDA's ``remasking``. ``architecture`` None: Dream when the
    config uses Dream's sampler (``alg``) or ``nll_type`` ``ar_ftb``, else LLaDA."""
    from evalsuite.families import family_named

    if architecture is None:
        dream = (config.alg is not None if isinstance(config, SamplerConfig)
                 else config.nll_type != "mc")
        llada2 = isinstance(config, SamplerConfig) and config.minimal_topk is not None
        architecture = "llada2" if llada2 else "dream" if dream else "llada"
    spec = family_named(architecture)
    own = spec.generate_settings if isinstance(config, SamplerConfig) else spec.likelihood_settings
    return {k: v for k, v in record_of(config).items() if k in own}


def describe(config: Config, provenance: Provenance) -> str:
    """One line: ``gen_length=64 (cli), steps=64 (derived), ...``."""
    return ", ".join(f"{k}={v} ({provenance.sources[k]})"
                     for k, v in settings_record(config).items() if k in provenance.sources)


__all__ = ["DEFAULT_GEN_LENGTH", "Overrides", "Provenance", "Source", "TaskInfo", "describe",
           "is_generation", "resolve", "settings_record", "validate_overrides"]
