"""One registry of diffusion knobs, derived from the settings dataclasses.

Every field of :class:`~evalsuite.settings.config.SamplerConfig` and
:class:`~evalsuite.settings.config.EstimatorConfig` is a knob: a user-facing name (the field name,
except the estimator's ``batch_size``, which is ``mc_batch_size`` so that it does not clash
with the run's batch size), a type, the allowed choices of a ``Literal``, a default, the
:class:`~evalsuite.settings.config.Rule` its values obey and a help text
(``field(metadata={"help": ...})`` or the attribute docstring), read by
:func:`evalsuite.settings.fields.field_specs`. The CLI flags, the
``model_args`` / ``gen_kwargs`` keys, the keyword arguments of :mod:`evalsuite.api`, the paper
tables (:mod:`evalsuite.settings.paper`), the validator and the record are generated from this
registry, so a new dataclass field becomes a flag, a model_arg, an API argument, a checked
and recorded setting with no further code.
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

from evalsuite.settings.config import ON_OFF_TEXT, EstimatorConfig, SamplerConfig, parse_on_off
from evalsuite.settings.fields import Rule, field_specs
from evalsuite.errors import ConfigError

Owner = Literal["sampler", "estimator"]
OWNERS: Final[dict[Owner, type]] = {"sampler": SamplerConfig, "estimator": EstimatorConfig}



@dataclass(frozen=True)
class Knob:
    """One user-settable diffusion setting."""

    name: str
    """User-facing name: model_args key, gen_kwargs key, ``--flag-name`` and record key."""
    fields: Mapping[Owner, str]
    """Dataclass field it sets, per config it belongs to (``cfg_scale`` belongs to both)."""
    kind: type
    """``int``, ``float``, ``bool`` or ``str``."""
    optional: bool
    """Whether ``None`` is a valid value (``float | None``)."""
    choices: tuple[Any, ...] | None
    """Allowed values of a ``Literal`` field."""
    defaults: Mapping[Owner, Any]
    """Dataclass default per owner."""
    help: str
    rule: Rule | None = None
    """Bounds of a numeric value (field metadata ``rule``)."""

    @property
    def example(self) -> Any:
        """A valid value (for the fix in a message)."""
        if self.kind is bool:
            return "on"
        if self.rule is not None and self.rule.example is not None:
            return self.rule.example
        return self.choices[0] if self.choices else next(iter(self.defaults.values()))

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, value: Any, where_: str) -> Any:
        """The typed value of a raw input (a model_args string, a YAML scalar, a CLI value).

        Raises :class:`ConfigError` naming the knob, the value, ``where_`` it came from and
        the fix (:mod:`evalsuite.settings.validate`).
        """
        from evalsuite.settings.validate import check_value, where

        if value is None or (self.optional and isinstance(value, str) and value.lower() == "none"):
            if self.optional:
                return None
            raise ConfigError(f"{self.name} (from {where_}) needs a value; pass e.g. "
                              f"{where(where_, self.name, self.example)}")
        try:
            typed = _coerce(self.kind, value)
        except (TypeError, ValueError):
            wanted = ("on or off" if self.kind is bool else
                      f"one of {', '.join(map(str, self.choices))}" if self.choices else
                      self.rule.describe() if self.rule else f"a {self.kind.__name__}")
            raise ConfigError(f"{self.name} {value!r} (from {where_}) must be {wanted}; pass "
                              f"e.g. {where(where_, self.name, self.example)}") from None
        check_value(self, typed, where_, where_)
        return typed


def _coerce(kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ON_OFF_TEXT:
            return ON_OFF_TEXT[value.strip().lower()]
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(value)
            return int(value)
        return int(str(value).strip())
    if kind is float:
        if isinstance(value, bool):
            raise TypeError(value)
        return float(value)
    return str(value)


@lru_cache(maxsize=1)
def knobs() -> dict[str, Knob]:
    """Every knob, by user-facing name, in field order (sampler first)."""
    collected: dict[str, dict[str, Any]] = {}
    for owner, cls in OWNERS.items():
        for spec in field_specs(cls):
            entry = collected.setdefault(spec.name, {
                "fields": {}, "kind": spec.kind, "optional": spec.optional,
                "choices": spec.choices, "defaults": {}, "help": spec.help, "rule": spec.rule,
            })
            entry["fields"][owner] = spec.field
            entry["defaults"][owner] = spec.default
    return {
        name: Knob(name, types.MappingProxyType(e["fields"]), e["kind"], e["optional"],
                   e["choices"], types.MappingProxyType(e["defaults"]), e["help"], e["rule"])
        for name, e in collected.items()
    }


def owner_of(config: SamplerConfig | EstimatorConfig) -> Owner:
    """``"sampler"`` or ``"estimator"``."""
    return "sampler" if isinstance(config, SamplerConfig) else "estimator"


def record_of(config: SamplerConfig | EstimatorConfig) -> dict[str, Any]:
    """Every setting of ``config`` under its knob name (what the run record and the request
    cache key store: the estimator's batch size as ``mc_batch_size``)."""
    owner = owner_of(config)
    return {name: getattr(config, k.fields[owner]) for name, k in knobs_of(owner).items()}


def build(owner: Owner, values: Mapping[str, Any]) -> SamplerConfig | EstimatorConfig:
    """The config of ``owner`` from knob values (the others at their defaults)."""
    mine = knobs_of(owner)
    return OWNERS[owner](**{mine[k].fields[owner]: v for k, v in values.items()})


def knob_names() -> frozenset[str]:
    return frozenset(knobs())


def knobs_of(owner: Owner) -> dict[str, Knob]:
    """The knobs that set a field of ``owner``'s config."""
    return {n: k for n, k in knobs().items() if owner in k.fields}


def parse_knobs(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Typed values of known knobs; an unknown key raises :class:`ConfigError` with the
    closest names. ``None`` values (flags not given) are dropped."""
    from evalsuite.errors import did_you_mean

    registry = knobs()
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in registry:
            raise ConfigError(did_you_mean(key, registry, f"diffusion setting ({where})"))
        if value is None:
            continue
        out[key] = registry[key].parse(value, where)
    return out


def add_flags(group: Any) -> None:
    """Add one ``--flag`` per knob to an argparse group (bools: ``--flag``, ``--flag on|off``
    and ``--no-flag``)."""
    for knob in knobs().values():
        help_text = knob.help.replace("%", "%%")
        if knob.kind is bool:
            group.add_argument(knob.flag, "--no-" + knob.flag[2:], dest=knob.name,
                               action=_OnOffFlag, type=_on_off_type(knob.name), default=None,
                               help=help_text)
        else:
            group.add_argument(knob.flag, dest=knob.name, default=None, help=help_text,
                               type=_cli_type(knob), choices=knob.choices,
                               metavar=knob.kind.__name__.upper() if knob.choices is None else None)


def _on_off_type(name: str) -> Any:
    def convert(text: str) -> bool:
        try:
            return parse_on_off(text, name, "cli")
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = "on|off"
    return convert


class _OnOffFlag(argparse.Action):
    """``--flag`` (on), ``--flag on|off`` or ``--no-flag`` (off)."""

    def __init__(self, option_strings: Any, dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("metavar", "on|off")
        super().__init__(option_strings, dest, nargs="?", **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        negated = bool(option_string and option_string.startswith("--no-"))
        if negated and values is not None:
            parser.error(f"{option_string} takes no value")
        setattr(namespace, self.dest, False if negated else (True if values is None else values))


def _cli_type(knob: Knob) -> Any:
    def convert(text: str) -> Any:
        if knob.optional and text.lower() == "none":
            return None
        return _coerce(knob.kind, text)

    convert.__name__ = knob.kind.__name__
    return convert


def from_namespace(args: Any) -> dict[str, Any]:
    """The knobs given on the command line (flags left at None are absent)."""
    return {name: getattr(args, name) for name in knobs() if getattr(args, name, None) is not None}
