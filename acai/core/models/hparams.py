"""Declared hyper-parameters: each field of a model's Hparams dataclass has a type (its
annotation) and a valid range (`hparam(default, ge=..., lt=...)`).

Construction parses every value by its declared type, whether it comes as text
(`acai train --hp lam=0.3`) or as a Python value (a TrainConfig read back from a
checkpoint or metrics.json, a sweep), and checks it against its range, so a
value that would only fail (or silently misbehave) during training is a
one-line ConfigError naming the parameter, the value and what is allowed.

Types understood: bool (true/false/1/0), int, float (finite), `int | None`
(none) and `tuple[int, ...]` (comma-separated, brackets optional).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """A bad model name or hyper-parameter; the message says what is allowed."""


@dataclass(frozen=True)
class Range:
    """Bounds of a number (of each element, for a tuple): ge <= v, gt < v, v <= le, v < lt."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __contains__(self, value) -> bool:
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def __str__(self) -> str:
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else None
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else None
        if low and high:
            return f" in {low}, {high}"
        if low:
            return f" {'>=' if low[0] == '[' else '>'} {low[1:]}"
        if high:
            return f" {'<=' if high[-1] == ']' else '<'} {high[:-1]}"
        return ""


def hparam(default, *, ge=None, gt=None, le=None, lt=None):
    """A dataclass field with its valid range: `lam: float = hparam(0.5, ge=0)`."""
    return field(default=default, metadata={"range": Range(ge, gt, le, lt)})


class _Invalid(Exception):
    """A value that does not parse as its type (internal: becomes a ConfigError)."""


def _parse_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "false", "0"):
        return value.strip().lower() in ("true", "1")
    raise _Invalid


def _parse_int(value) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise _Invalid from None
    raise _Invalid


def _parse_float(value) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _Invalid from None
    else:
        raise _Invalid
    if not math.isfinite(number):  # nan and inf parse as floats, but no hyper-parameter can be either
        raise _Invalid
    return number


def _parse_int_tuple(value) -> tuple[int, ...]:
    if isinstance(value, str):
        text = value.strip()
        if text[:1] + text[-1:] in ("()", "[]"):
            text = text[1:-1]
        parts = text.split(",") if text.strip() else []
        if parts and not parts[-1].strip():  # "64," is a tuple of one, as in Python
            parts = parts[:-1]
        return tuple(_parse_int(part) for part in parts)
    if isinstance(value, (tuple, list)):  # JSON gives lists back
        return tuple(_parse_int(item) for item in value)
    raise _Invalid


def _optional(parse):
    def parse_optional(value):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            return None
        return parse(value)
    return parse_optional


@dataclass(frozen=True)
class Kind:
    """How one declared type is parsed and described."""

    parse: typing.Callable
    words: str  # "a finite number", for the error message
    numeric: bool  # whether the range applies (to the value, or to each element of a tuple)
    optional: bool = False  # also accepts none

    def describe(self, bounds: Range) -> str:
        each = ", each" if self.parse is _parse_int_tuple and str(bounds) else ""
        return f"{self.words}{each}{bounds}" + (" or none" if self.optional else "")


_KINDS = {
    bool: Kind(_parse_bool, "true or false (or 1 or 0)", False),
    int: Kind(_parse_int, "an integer", True),
    float: Kind(_parse_float, "a finite number", True),
}


def kind_of(annotation) -> Kind:
    """The Kind of an annotation: bool, int, float, X | None of those, tuple[int, ...]."""
    if annotation in _KINDS:
        return _KINDS[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
        inner = kind_of(next(a for a in args if a is not type(None)))
        return Kind(_optional(inner.parse), inner.words, inner.numeric, optional=True)
    if origin is tuple and args == (int, Ellipsis):
        return Kind(_parse_int_tuple, "integers separated by commas (e.g. 100,100)", True)
    raise TypeError(f"hyper-parameters of type {annotation} are not supported")


@functools.cache
def declared(cls) -> dict[str, tuple[Kind, Range, object]]:
    """{field name: (kind, range, default)} of an Hparams dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: (kind_of(hints[f.name]), f.metadata.get("range", Range()), f.default)
            for f in dataclasses.fields(cls)}


def describe(cls, name: str) -> str:
    """'a finite number in [0, 1] (default 0.2)': what `name` of `cls` accepts."""
    kind, bounds, default = declared(cls)[name]
    shown = "none" if default is None else str(default).lower() if isinstance(default, bool) else default
    return f"{kind.describe(bounds)} (default {shown})"


def parse_value(cls, name: str, value):
    """`value` (text or a Python value) as field `name` of `cls` declares it; ConfigError if it is not
    of that type or outside its range."""
    kind, bounds, _ = declared(cls)[name]
    try:
        parsed = kind.parse(value)
    except _Invalid:
        parsed = _Invalid
    numbers = () if parsed is None or parsed is _Invalid or not kind.numeric else (
        parsed if isinstance(parsed, tuple) else (parsed,))
    if parsed is _Invalid or any(number not in bounds for number in numbers):
        shown = value if isinstance(value, str) else repr(value)
        raise ConfigError(f"{name}={shown} is not allowed: {name} must be {describe(cls, name)}")
    return parsed


class Hparams:
    """Base of every model's hyper-parameter dataclass: construction parses and checks each field."""

    def __post_init__(self):
        for name in declared(type(self)):
            setattr(self, name, parse_value(type(self), name, getattr(self, name)))
