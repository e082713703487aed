"""The one validator of diffusion settings.

Every rule lives here or in the :class:`~evalsuite.settings.config.Rule` of a field; the
dataclasses (``__post_init__``), the resolver (with the source of each value) and the
overrides check before any task is known all call :func:`check`. Every message has one
format: ``<knob> <value> (from <source>) <what is wrong>; <the fix>``, e.g.
``steps 10 (from cli) is not divisible by the number of blocks 4 (gen_length 64 /
block_length 16); use a multiple of 4, e.g. --steps 8``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from evalsuite.errors import ConfigError
from evalsuite.settings.fields import Rule, field_specs


class Spec(Protocol):
    """What the validator needs of a knob (a :class:`~evalsuite.settings.fields.FieldSpec` or
    a registry :class:`~evalsuite.settings.knobs.Knob`)."""

    name: str
    kind: type
    optional: bool
    choices: tuple[Any, ...] | None
    rule: Rule | None

    @property
    def example(self) -> Any: ...

#: Source of values given straight to a dataclass or to :mod:`evalsuite.api`.
DIRECT = "argument"


def where(fix: str, key: str, value: Any) -> str:
    """How the user sets ``key`` to ``value`` at the level ``fix`` (``--steps 8``, ``steps=8``)."""
    if fix == "cli":
        return f"--{key.replace('_', '-')} {value}"
    if fix.startswith("yaml"):
        return f"{key}: {value} in the task YAML's generation_kwargs"
    return f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


class _Named:
    def __init__(self, values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
        self.values, self.sources = values, sources

    def __call__(self, key: str) -> str:
        return f"{key} {_show(self.values[key])} (from {self.sources.get(key, DIRECT)})"


def check_value(knob: Spec, value: Any, source: str, fix: str) -> None:
    """One knob on its own: its choices, its kind and its :class:`Rule`."""
    name = knob.name
    named = f"{name} {_show(value)} (from {source})"
    if value is None:
        if knob.optional:
            return
        raise ConfigError(f"{named} needs a value; pass e.g. {where(fix, name, knob.example)}")
    if knob.choices is not None:
        if value not in knob.choices:
            raise ConfigError(f"{named} must be one of {', '.join(map(str, knob.choices))}; "
                              f"pass e.g. {where(fix, name, knob.choices[0])}")
        return
    if knob.kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{named} must be on or off; pass e.g. {where(fix, name, 'on')}")
        return
    if knob.rule is not None and not knob.rule.allows(value):
        raise ConfigError(f"{named} must be {knob.rule.describe()}; pass e.g. "
                          f"{where(fix, name, knob.rule.example)}")


def check(owner: str, specs: Mapping[str, Spec], values: Mapping[str, Any],
          sources: Mapping[str, str] | None = None, fix: str = DIRECT) -> None:
    """Raise :class:`ConfigError` when ``values`` (knob name -> value, every knob of ``owner``:
    ``"sampler"`` or ``"estimator"``; ``specs`` describes them) cannot run. ``sources`` names
    where each value came from; ``fix`` is the level the user acts at (``cli``,
    ``model_args``, ``argument``)."""
    sources = sources or {}
    for name, value in values.items():
        check_value(specs[name], value, sources.get(name, DIRECT), fix)
    named = _Named(values, sources)
    if owner == "sampler":
        _check_sampler(values, named, fix)
    else:
        _check_estimator(values, named, fix)


def _check_sampler(values: Mapping[str, Any], named: _Named, fix: str) -> None:
    gen, steps, block = values["gen_length"], values["steps"], values["block_length"]
    if values.get("minimal_topk") is not None:
        _check_block_diffusion(values, named, fix)
        return
    for name, own in _LLADA2_ONLY.items():
        if name in values and values[name] == own:
            plain = "none" if name == "cache" else "off"
            raise ConfigError(
                f"{named(name)} is a setting of LLaDA2's block-diffusion sampler (LLaDA2 models, "
                f"which set minimal_topk); pass {where(fix, name, plain)} or leave it unset on "
                "this model")
    if block > gen:
        raise ConfigError(f"{named('block_length')} is larger than {named('gen_length')}; use "
                          f"block_length <= gen_length ({where(fix, 'block_length', gen)} is "
                          "pure diffusion)")
    if gen % block:
        raise ConfigError(f"{named('gen_length')} is not a multiple of {named('block_length')}; "
                          f"choose a block_length that divides gen_length, e.g. "
                          f"{where(fix, 'block_length', gen)}")
    blocks = gen // block
    if steps % blocks:
        raise ConfigError(
            f"{named('steps')} is not divisible by the number of blocks {blocks} (gen_length "
            f"{gen} / block_length {block}); use a multiple of {blocks}, e.g. "
            f"{where(fix, 'steps', max(blocks, steps // blocks * blocks))}")
    if values.get("alg") is not None or any(
            values.get(k, d) != d for k, d in _DREAM_UNUSED.items()):
        _check_dream_sampler(values, named, fix)
        return
    if values["decoding"] == "schedule" and steps > gen:
        raise ConfigError(
            f"{named('steps')} is more than {named('gen_length')}: every step commits at least "
            f"one token, so at most {gen} steps can run; use {where(fix, 'steps', gen)} or "
            "fewer (or a longer gen_length)")
    if values["decoding"] == "threshold" and values["remasking"] != "low_confidence":
        raise ConfigError(
            f"{named('decoding')} needs remasking='low_confidence' (it thresholds the model's "
            f"confidence), got {named('remasking')}; pass "
            f"{where(fix, 'remasking', 'low_confidence')}")


#: Values of knobs that only LLaDA2's sampler has.
_LLADA2_ONLY: dict[str, Any] = {"cache": "exact", "eos_early_stop": True}
#: Knobs of LLaDA's and Dream's samplers and the only value LLaDA2's sampler accepts for each.
_NOT_LLADA2: dict[str, Any] = {"decoding": "schedule", "remasking": "low_confidence",
                               "cfg_scale": 0.0, "logits_eos_inf": False,
                               "confidence_eos_eot_inf": False, "alg": None, "alg_temp": 0.0,
                               "batch_schedule": "per_row"}


def _check_block_diffusion(values: Mapping[str, Any], named: _Named, fix: str) -> None:
    """LLaDA2's block-diffusion sampler (``minimal_topk`` set): ``gen_length`` a whole number
    of blocks, ``steps`` per block (any positive number), ``cache`` exact or none, and the
    other families' knobs at their neutral values."""
    gen, block = values["gen_length"], values["block_length"]
    if gen % block:
        lower = gen // block * block
        raise ConfigError(
            f"{named('gen_length')} is not a multiple of {named('block_length')}: LLaDA2 "
            f"generates whole blocks; use {where(fix, 'gen_length', lower or block)} or "
            f"{where(fix, 'gen_length', lower + block)}, or another block_length")
    if values.get("cache", "exact") not in ("exact", "none"):
        raise ConfigError(
            f"{named('cache')} is Fast-dLLM's approximate cache for LLaDA's sampler; LLaDA2 "
            f"has the exact block cache: pass {where(fix, 'cache', 'exact')} (or none, the "
            "official full recompute)")
    for name, plain in _NOT_LLADA2.items():
        if name in values and values[name] != plain:
            shown = "off" if isinstance(plain, bool) else plain
            raise ConfigError(
                f"{named(name)} is not a setting of LLaDA2's block-diffusion sampler (minimal_topk "
                f"{values['minimal_topk']}); pass {where(fix, name, shown)} or leave it unset")


#: Dream's sampler knobs (other than ``alg``) and their values when LLaDA's sampler runs.
_DREAM_UNUSED: dict[str, Any] = {"alg_temp": 0.0, "top_p": None, "top_k": None,
                                 "batch_schedule": "per_row"}
#: LLaDA's sampler knobs and the only value Dream's sampler accepts for each.
_LLADA_ONLY: dict[str, Any] = {"decoding": "schedule", "cache": "none",
                               "remasking": "low_confidence", "logits_eos_inf": False,
                               "confidence_eos_eot_inf": False}
ALG_CHOICES: tuple[str, ...] = ("origin", "maskgit_plus", "topk_margin", "entropy")


def _check_dream_sampler(values: Mapping[str, Any], named: _Named, fix: str) -> None:
    """Dream's sampler (``alg`` set) and the knobs that go with it: they need ``alg``, and
    LLaDA's own knobs keep their neutral values (Dream's loop has no blocks, no remasking rule,
    no threshold decoding and no cache)."""
    if values.get("alg") is None:
        name = next(k for k, d in _DREAM_UNUSED.items() if values.get(k, d) != d)
        raise ConfigError(
            f"{named(name)} is a setting of Dream's sampler and needs alg; LLaDA's sampler has "
            f"no such setting: pass {where(fix, 'alg', 'entropy')} (one of "
            f"{', '.join(ALG_CHOICES)}) on a Dream model, or drop {name}")
    if values["block_length"] != values["gen_length"]:
        raise ConfigError(
            f"{named('block_length')} with {named('alg')} (Dream's sampler) has no blocks: "
            f"block_length must equal {named('gen_length')}; pass "
            f"{where(fix, 'block_length', values['gen_length'])} or leave it unset")
    for name, plain in _LLADA_ONLY.items():
        if name in values and values[name] != plain:
            shown = "off" if isinstance(plain, bool) else plain
            raise ConfigError(
                f"{named(name)} is a LLaDA setting; Dream's sampler (alg {values['alg']!r}) needs "
                f"{name} {_show(plain)}: pass {where(fix, name, shown)} or leave it unset")


def _check_estimator(values: Mapping[str, Any], named: _Named, fix: str) -> None:
    mc_num, batch = values["mc_num"], values["mc_batch_size"]
    if mc_num % batch:
        raise ConfigError(
            f"{named('mc_num')} is not a multiple of {named('mc_batch_size')}; use "
            f"{where(fix, 'mc_num', max(batch, mc_num // batch * batch))} or "
            f"{(mc_num // batch + 1) * batch}, or an mc_batch_size that divides {mc_num}")


def check_config(config: Any, owner: str) -> None:
    """Check a constructed :class:`SamplerConfig` (``owner="sampler"``) or
    :class:`EstimatorConfig` (its values came straight from the caller: source ``argument``)."""
    specs = {f.name: f for f in field_specs(type(config))}
    check(owner, specs, {f.name: getattr(config, f.field) for f in specs.values()})
