"""Frozen dataclasses <-> JSON values, driven by their type hints (one place for every value type
of the plan, so ``to_dict`` / ``from_dict`` are lossless by construction and new fields need no code).

Handled: ``str``, ``int``, ``float``, ``bool``, ``Path``, ``X | None``, ``tuple[X, ...]``,
``Mapping[str, str]``, ``Literal[...]``, nested dataclasses, and any type registered with a
``(to_json, from_json)`` pair in ``CODECS``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")
CODECS: dict[type, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """The names of a dataclass's fields, in order (the keys a table of it accepts)."""
    return tuple(f.name for f in dataclasses.fields(cls))


def to_json(value: Any) -> Any:
    """A JSON-ready view of ``value`` (dataclasses become objects with every field)."""
    for cls, (encode, _) in CODECS.items():
        if isinstance(value, cls):
            return encode(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def from_json(cls: type[T], data: Any, where: str) -> T:
    """``cls`` from ``data`` (as ``to_json`` wrote it); unknown keys and wrong types are a
    ``ConfigError`` naming ``where`` and the key. Missing keys take the field's default."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be an object, got {type(data).__name__}")
    names = field_names(cls)
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(names)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: decode(hints[name], data[name], f"{where}.{name}") for name in names if name in data}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def decode(hint: Any, value: Any, where: str) -> Any:
    """``value`` converted to the type ``hint`` describes."""
    if hint in CODECS:
        try:
            return CODECS[hint][1](value)
        except (TypeError, ValueError, ConfigError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return decode(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of its types")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__}")
        return tuple(decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict, typing.Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be an object, got {type(value).__name__}")
        return {str(k): decode(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return from_json(typing.cast(type, hint), value, where)
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a path string, got {type(value).__name__}")
        return Path(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number")
        return float(value)
    if hint in (int, str):
        if isinstance(value, bool) or not isinstance(value, hint):
            raise ConfigError(f"{where} must be {'a whole number' if hint is int else 'a string'}")
        return value
    if hint is Any:
        return value
    raise ConfigError(f"{where}: cannot read a value of type {hint!r}")  # a field type this module lacks
