"""Reading untrusted JSON documents: one error type, bounded nesting, typed field access.

Every parser in ``ocibuild.spec`` raises :class:`SpecError` (a ``ValueError``) whose message names
the field that is wrong (``'layers[2].size' is not an integer (got a string)``); callers that read
a base image add where the document came from and turn it into an ``ocibuild`` error. Nothing
else escapes a parser, whatever the input: not ``RecursionError`` for deep nesting, not
``TypeError`` for a list where an object belongs. Standard library only, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

MAX_DEPTH = 100
"""Deepest nesting of lists and objects accepted (OCI documents nest about five levels)."""

INT64_MAX = (1 << 63) - 1

_T = TypeVar("_T")


class SpecError(ValueError):
    """A document or value does not follow the OCI (or Docker) specs; the message says which field
    and how. Callers add where it came from (``base oci:DIR: manifest sha256:…: …``)."""


def kind_of(value: Any) -> str:
    """What a JSON value is, for messages: ``a string``, ``an object``, ``null``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _reject_constant(name: str) -> Any:
    raise SpecError(f"{name} is not a JSON value")


def _check_depth(value: Any, what: str, max_depth: int) -> None:
    """Raise unless lists and objects in ``value`` nest at most ``max_depth`` levels (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth >= max_depth:
                    raise SpecError(f"{what} is nested more than {max_depth} levels deep")
                stack.append((child, depth + 1))


def parse_json(raw: bytes | str, what: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a JSON document (UTF-8 bytes or text) named ``what`` in messages.

    Raises :class:`SpecError` for invalid UTF-8 or JSON, ``NaN`` / ``Infinity``, lone surrogates
    (``"\\ud800"``, which cannot be written back as UTF-8) and nesting deeper than ``max_depth``.

    >>> parse_json(b'{"a": [1]}', "index")
    {'a': [1]}
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else str(raw)
    except UnicodeDecodeError as exc:
        raise SpecError(f"{what} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise SpecError(f"{what} is nested more than {max_depth} levels deep") from None
    except SpecError as exc:
        raise SpecError(f"{what} is not valid JSON: {exc}") from None
    except ValueError as exc:  # JSONDecodeError, or an integer with too many digits
        raise SpecError(f"{what} is not valid JSON: {exc}") from None
    if isinstance(value, dict | list):
        _check_depth(value, what, max_depth)
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise SpecError(f"{what} holds a string that is not valid Unicode (a lone \\u surrogate)") from None
    elif isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise SpecError(f"{what} holds a string that is not valid Unicode (a lone \\u surrogate)") from None
    return value


def parse_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """:func:`parse_json` for a document that must be a JSON object."""
    value = parse_json(raw, what)
    if not isinstance(value, dict):
        raise SpecError(f"{what} is not a JSON object (got {kind_of(value)})")
    return value


# --------------------------------------------------------------------------------------------------
# typed access to the fields of a parsed object; ``path`` names the object in messages ("" = top)
# --------------------------------------------------------------------------------------------------


def field_name(path: str, key: str) -> str:
    """``'layers[2].size'`` from path ``layers[2]`` and key ``size``."""
    return f"{path}.{key}" if path else key


def _wrong(path: str, key: str, want: str, value: Any) -> SpecError:
    return SpecError(f"{field_name(path, key)!r} is not {want} (got {kind_of(value)})")


def as_object(value: Any, path: str) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else a :class:`SpecError` naming ``path``."""
    if not isinstance(value, Mapping):
        raise SpecError(f"{path or 'the document'!r} is not an object (got {kind_of(value)})")
    return value


def required(data: Mapping[str, Any], key: str, path: str) -> Any:
    """The value of ``key``; a :class:`SpecError` if it is missing or null."""
    value = data.get(key)
    if value is None:
        raise SpecError(f"missing {field_name(path, key)!r}")
    return value


def get_str(data: Mapping[str, Any], key: str, path: str, *, require: bool = False) -> str:
    """A string field ("" when absent or null, unless ``require``)."""
    value = required(data, key, path) if require else data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _wrong(path, key, "a string", value)
    return value


def get_bool(data: Mapping[str, Any], key: str, path: str) -> bool:
    """A boolean field (False when absent or null)."""
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _wrong(path, key, "a boolean", value)
    return value


def get_int(data: Mapping[str, Any], key: str, path: str, *, require: bool = False, minimum: int = 0,
            maximum: int = INT64_MAX) -> int | None:
    """An integer field in ``minimum..maximum`` (None when absent or null, unless ``require``)."""
    value = required(data, key, path) if require else data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong(path, key, "an integer", value)
    if not minimum <= value <= maximum:
        raise SpecError(f"{field_name(path, key)!r} is {value}, outside {minimum}..{maximum}")
    return value


def require_int(data: Mapping[str, Any], key: str, path: str, *, minimum: int = 0,
                maximum: int = INT64_MAX) -> int:
    """A required integer field in ``minimum..maximum``."""
    value = get_int(data, key, path, require=True, minimum=minimum, maximum=maximum)
    if value is None:  # pragma: no cover - get_int(require=True) never returns None
        raise SpecError(f"missing {field_name(path, key)!r}")
    return value


def get_list(data: Mapping[str, Any], key: str, path: str, *, require: bool = False) -> list[Any] | None:
    """A list field (None when absent or null, unless ``require``)."""
    value = required(data, key, path) if require else data.get(key)
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise _wrong(path, key, "a list", value)
    return list(value)


def get_str_list(data: Mapping[str, Any], key: str, path: str) -> tuple[str, ...] | None:
    """A list-of-strings field (None when absent or null). A string is refused, not split."""
    items = get_list(data, key, path)
    if items is None:
        return None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise SpecError(f"{field_name(path, key) + f'[{i}]'!r} is not a string (got {kind_of(item)})")
    return tuple(items)


def get_object(data: Mapping[str, Any], key: str, path: str, *, require: bool = False) -> Mapping[str, Any] | None:
    """An object field (None when absent or null, unless ``require``)."""
    value = required(data, key, path) if require else data.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _wrong(path, key, "an object", value)
    return value


def get_str_map(data: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
    """An object field whose values are all strings (annotations, labels); {} when absent or null."""
    value = get_object(data, key, path)
    if value is None:
        return {}
    for k, v in value.items():
        if not isinstance(v, str):
            raise SpecError(f"{field_name(path, key) + f'[{k!r}]'!r} is not a string (got {kind_of(v)})")
    return dict(value)


def get_items(data: Mapping[str, Any], key: str, path: str, parse: Callable[[Any, str], _T]) -> tuple[_T, ...]:
    """Each element of a list field parsed by ``parse(element, "key[i]")`` (() when absent or null)."""
    items = get_list(data, key, path)
    return tuple(parse(item, f"{field_name(path, key)}[{i}]") for i, item in enumerate(items or ()))


def convert(path: str, parse: Callable[[str], _T], text: str) -> _T:
    """``parse(text)`` with a failure reported as a :class:`SpecError` naming ``path``."""
    try:
        return parse(text)
    except ValueError as exc:
        raise SpecError(f"{path!r}: {exc}") from None
