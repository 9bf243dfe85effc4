"""Turns plain dicts (parsed YAML, composed Hydra configs) into frozen, typed dataclasses.

Each problem becomes one `ConfigError` line naming the dotted key, the offending value and what is
allowed, so a bad scenario never surfaces as a traceback from deep inside Sionna.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from twin.errors import ConfigError

T = TypeVar("T")
Check = Callable[[Any], str | None]  # returns a description of what is allowed when the value fails


def spec(default: Any = dataclasses.MISSING, *, check: Check | None = None, factory: Any = None) -> Any:
    """A dataclass field with an optional range/choice check applied during validation."""
    kwargs: dict[str, Any] = {"metadata": {"check": check}}
    if factory is not None:
        kwargs["default_factory"] = factory
    elif default is not dataclasses.MISSING:
        kwargs["default"] = default
    return dataclasses.field(**kwargs)


def at_least(low: float, *, strict: bool = False) -> Check:
    def check(value: Any) -> str | None:
        ok = value > low if strict else value >= low
        return None if ok else f"a value {'>' if strict else '>='} {low}"

    return check


def between(low: float, high: float) -> Check:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"a value in [{low}, {high}]"

    return check


def each_between(low: float, high: float) -> Check:
    def check(value: Any) -> str | None:
        return None if all(low <= v <= high for v in value) else f"values in [{low}, {high}]"

    return check


def one_of(*choices: Any) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def file_name() -> Check:
    """A name that is used as part of file and folder names: no path separators, no '..', not empty."""

    def check(value: Any) -> str | None:
        if isinstance(value, str) and _FILE_NAME.fullmatch(value) and ".." not in value:
            return None
        return "a plain name of letters, digits, '.', '_' or '-', at most 100, no '..' (it names files)"

    return check


def ordered_pair(low: float = float("-inf")) -> Check:
    """A [min, max] pair with min <= max and min >= low."""

    def check(value: Any) -> str | None:
        if value[0] > value[1] or value[0] < low:
            return f"a pair [min, max] with {low} <= min <= max" if low > float("-inf") else "min <= max"
        return None

    return check


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
        return f"a list of {len(args)} {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "a mapping"
    return str(tp)


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} = {value!r}: expected a mapping with keys {_field_names(tp)}")
        return build(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `60.0e9` (no exponent sign) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, list | tuple):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
            if len(value) == len(args):
                return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    elif origin is dict:
        key_type, value_type = typing.get_args(tp)
        if isinstance(value, Mapping):
            return {
                _convert(k, key_type, key): _convert(v, value_type, f"{key}.{k}") for k, v in value.items()
            }
    else:  # pragma: no cover - a programming error in the schema, not user input
        raise TypeError(f"unsupported field type {tp} at {key}")
    raise ConfigError(f"{key} = {value!r}: expected {_describe(tp)}")


def _field_names(cls: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls))


def build(cls: type[T], data: Mapping[str, Any], prefix: str) -> T:
    """Validate `data` against dataclass `cls`; `prefix` is the dotted key used in error messages."""
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"{prefix}.{key}: unknown key; allowed keys: {_field_names(cls)}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}"
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}: missing; expected {_describe(hints[f.name])}")
            continue
        value = _convert(data[f.name], hints[f.name], key)
        check = f.metadata.get("check")
        if check is not None and value is not None:
            allowed = check(value)
            if allowed is not None:
                raise ConfigError(f"{key} = {data[f.name]!r}: expected {allowed}")
        values[f.name] = value
    instance = cls(**values)
    post_check = getattr(instance, "validate", None)
    if post_check is not None:
        post_check(prefix)
    return instance


def to_dict(instance: Any) -> Any:
    """Dataclass → plain dict with lists instead of tuples (YAML/JSON friendly)."""
    if dataclasses.is_dataclass(instance):
        return {f.name: to_dict(getattr(instance, f.name)) for f in dataclasses.fields(instance)}
    if isinstance(instance, tuple | list):
        return [to_dict(v) for v in instance]
    if isinstance(instance, dict):
        return {k: to_dict(v) for k, v in instance.items()}
    return instance
