"""What a settings field is: its :class:`Rule`, its user-facing name and the description of
a dataclass field (kind, choices, default, help) that the registry, the validator and the
dataclasses themselves share.

This module depends on nothing else of :mod:`evalsuite.settings`, so that the dataclasses
(:mod:`.config`) can validate themselves (:mod:`.validate`) and the registry (:mod:`.knobs`)
can be derived from them without an import cycle.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, get_args, get_origin


@dataclass(frozen=True)
class Rule:
    """What one numeric value must satisfy (checked by :mod:`evalsuite.settings.validate`)."""

    integer: bool = False
    """The value must be an int (not a bool)."""
    low: float | None = None
    """Lower bound (None: unbounded)."""
    low_open: bool = False
    """The lower bound itself is not allowed."""
    high: float | None = None
    """Upper bound, inclusive (None: unbounded)."""
    example: Any = None
    """A valid value, shown in the fix of a message."""

    def describe(self) -> str:
        """What is allowed, in words: ``a positive integer``, ``in (0, 1]``, ``>= 0``."""
        if self.integer and self.low == 0 and self.low_open and self.high is None:
            return "a positive integer"
        if self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return "a number"

    def allows(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high


POSITIVE_INT = Rule(integer=True, low=0, low_open=True, example=256)
NON_NEGATIVE = Rule(low=0.0, example=0.0)
PROBABILITY = Rule(low=0.0, low_open=True, high=1.0, example=0.9)
POSITIVE = Rule(low=0.0, low_open=True, example=0.05)


def knob(default: Any, rule: Rule | None = None, *, name: str | None = None) -> Any:
    """A settings field: its default, the rule its values obey and, where it differs from the
    field name, its user-facing knob name (the estimator's ``batch_size`` is
    ``mc_batch_size``)."""
    metadata: dict[str, Any] = {}
    if rule is not None:
        metadata["rule"] = rule
    if name is not None:
        metadata["name"] = name
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class FieldSpec:
    """One field of a settings dataclass, as the registry and the validator see it."""

    name: str
    """User-facing knob name (model_args key, ``--flag-name``, record key)."""
    field: str
    """Dataclass field name."""
    kind: type
    """``int``, ``float``, ``bool`` or ``str``."""
    optional: bool
    """Whether ``None`` is a valid value (``float | None``)."""
    choices: tuple[Any, ...] | None
    """Allowed values of a ``Literal`` field."""
    rule: Rule | None
    default: Any
    help: str

    @property
    def example(self) -> Any:
        """A valid value (for the fix in a message)."""
        if self.kind is bool:
            return "on"
        if self.rule is not None and self.rule.example is not None:
            return self.rule.example
        return self.choices[0] if self.choices else self.default


@lru_cache(maxsize=None)
def field_specs(cls: type) -> tuple[FieldSpec, ...]:
    """The fields of a settings dataclass, in order."""
    hints = typing.get_type_hints(cls)
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's docstrings win
        if dataclasses.is_dataclass(klass):
            docs.update(_attribute_docs(klass))
    out = []
    for f in dataclasses.fields(cls):
        kind, optional, choices = _describe(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        out.append(FieldSpec(f.metadata.get("name", f.name), f.name, kind, optional, choices,
                             f.metadata.get("rule"), default,
                             f.metadata.get("help") or docs.get(f.name, "")))
    return tuple(out)


def _attribute_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (a string literal right after ``name: type = default``)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):  # pragma: no cover - source unavailable
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _describe(hint: Any) -> tuple[type, bool, tuple[Any, ...] | None]:
    """(kind, optional, choices) of a field annotation."""
    optional = False
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in get_args(hint) if a is not type(None)]
        optional = len(members) < len(get_args(hint))
        if len(members) != 1:
            raise TypeError(f"unsupported settings annotation {hint!r}")
        hint = members[0]
        origin = get_origin(hint)
    if origin is Literal:
        choices = get_args(hint)
        return type(choices[0]), optional, tuple(choices)
    if hint in (int, float, bool, str):
        return hint, optional, None
    raise TypeError(f"unsupported settings annotation {hint!r}")
