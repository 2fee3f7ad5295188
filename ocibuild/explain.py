"""Why a layer changed: what each layer was built from, kept in the content store by layer digest,
and the comparison of two such records.

A layer's *inputs* are what its cache key hashes, kept readable: for a layer of files, each file's
path, kind, mode, size, link target and sha256 plus the settings (compression, owner, mtime); for a
layer of packages (wheels, ``.deb`` files), each package's name, version and sha256 plus the install
settings (venv, Python, bytecode). The layer builders note them with :func:`remember` when they
build a layer (or find one whose inputs are not noted yet); ``ocibuild diff`` reads them with
:func:`recall` for two layers in the same place of two images, and ``ocibuild build --explain``
compares a layer it builds with the one the same project's layer had in the last build
(:func:`explain_layer`). :func:`causes` says what differs, one line per cause::

    >>> old = package_inputs("wheel", [("numpy", "2.1.0", "a" * 64)], {"python": "3.13"})
    >>> new = package_inputs("wheel", [("numpy", "2.1.1", "b" * 64)], {"python": "3.13"})
    >>> causes(old, new)
    ('numpy 2.1.0 -> 2.1.1 (sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb)',)
    >>> causes(file_inputs([["app/x.py", "file", 420, 3, "", "c" * 64]], {"mtime": 0}),
    ...        file_inputs([["app/x.py", "file", 493, 3, "", "c" * 64]], {"mtime": 0}))
    ('/app/x.py: mode 0644 -> 0755',)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from .errors import OcibuildError
from .spec import Digest

__all__ = ["MAX_CAUSES", "causes", "explain_layer", "file_inputs", "note_project", "package_inputs", "project_of",
           "recall", "remember"]

INPUTS = "layer-inputs-"
LAST = "layer-last-"
PROJECT = "image-project-"
MAX_CAUSES = 20
"""At most this many file or package lines in one explanation (then ``... and N more``)."""


class Records(Protocol):
    """Where inputs are kept (a ``ContentStore``): JSON values by key; a cache, so misses are fine."""

    def get_record(self, key: str) -> Any: ...
    def put_record(self, key: str, value: Any) -> None: ...
    def has_record(self, key: str) -> bool: ...


def file_inputs(rows: Sequence[Sequence[Any]], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs of a layer of files: ``rows`` of ``[path, kind, mode, size, link, sha256]``."""
    return {"kind": "files", "settings": dict(settings),
            "files": {str(r[0]): [str(r[1]), int(r[2]), int(r[3]), str(r[4] or ""), str(r[5] or "")] for r in rows}}


def package_inputs(what: str, packages: Sequence[tuple[str, str, str]], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs of a layer of packages (``what``: ``wheel`` or ``deb``): ``(name, version, sha256)`` each."""
    return {"kind": "packages", "what": what, "settings": dict(settings),
            "packages": {name: [version, sha256] for name, version, sha256 in packages}}


def remember(store: Records, digest: Digest | str,
             inputs: Mapping[str, Any] | Callable[[], Mapping[str, Any]]) -> None:
    """Note ``inputs`` (or what ``inputs()`` gives, made only when needed) for the layer ``digest``
    unless they are noted already (never fails: a cache)."""
    key = INPUTS + Digest.parse(str(digest)).hex
    with contextlib.suppress(OcibuildError, OSError):
        if not store.has_record(key):
            store.put_record(key, inputs() if callable(inputs) else inputs)


def recall(store: Records, digest: Digest | str) -> dict[str, Any] | None:
    """The inputs noted for the layer ``digest``, or None (never noted, or a damaged record)."""
    try:
        value = store.get_record(INPUTS + Digest.parse(str(digest)).hex)
    except (OcibuildError, ValueError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("settings"), dict):
        return None
    kind = value.get("kind")  # names the table that holds the files or packages
    return value if kind in ("files", "packages") and isinstance(value.get(kind), dict) else None


def _short(sha: str) -> str:
    return sha[:12] if sha else "-"


def _more(lines: list[str], total: int) -> list[str]:
    return lines[:MAX_CAUSES] + ([f"... and {total - MAX_CAUSES} more"] if total > MAX_CAUSES else [])


def _setting_lines(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return [f"setting {k}: {json.dumps(old.get(k))} -> {json.dumps(new.get(k))}"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _file_lines(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        path = "/" + name.lstrip("/")  # as the image holds it (the tar's path has no leading /)
        if a is None:
            out.append(f"{path}: added")
        elif b is None:
            out.append(f"{path}: removed")
        else:
            what = []
            if a[0] != b[0]:
                what.append(f"{a[0]} -> {b[0]}")
            if a[4] != b[4]:
                what.append(f"content changed (sha256 {_short(a[4])} -> {_short(b[4])})")
            elif a[2] != b[2]:
                what.append(f"size {a[2]} -> {b[2]}")
            if a[1] != b[1]:
                what.append(f"mode {a[1]:04o} -> {b[1]:04o}")
            if a[3] != b[3]:
                what.append(f"link {a[3]} -> {b[3]}")
            out.append(f"{path}: {', '.join(what)}")
    return out


def _package_lines(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    out = []
    for name in sorted(set(old) | set(new)):
        a: Any = old.get(name)
        b: Any = new.get(name)
        if a == b:
            continue
        if b is None:
            out.append(f"{name} {a[0]} removed")
        elif a is None:
            out.append(f"{name} {b[0]} added (sha256 {_short(b[1])})")
        elif a[0] != b[0]:
            out.append(f"{name} {a[0]} -> {b[0]} (sha256 {_short(a[1])} -> {_short(b[1])})")
        else:
            out.append(f"{name} {a[0]}: another file (sha256 {_short(a[1])} -> {_short(b[1])})")
    return out


def causes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    """What differs between two layers' inputs, one line each (settings first, then files or packages)."""
    if old.get("kind") != new.get("kind") or old.get("what") != new.get("what"):
        before, after = old.get("what") or old.get("kind"), new.get("what") or new.get("kind")
        return (f"made from other inputs: {before} -> {after}",)
    lines = _setting_lines(old["settings"], new["settings"])
    items = (_file_lines(old["files"], new["files"]) if new["kind"] == "files"
             else _package_lines(old["packages"], new["packages"]))
    lines += _more(items, len(items))
    return tuple(lines) or ("the same inputs (the layer was made by another version of ocibuild)",)


def explain_layer(store: Records, role: Sequence[str], digest: Digest,
                  cached: bool | None) -> tuple[str, ...] | None:
    """Note ``digest`` as the last layer of ``role`` (e.g. project folder, layer label, platform) and,
    when it was built (not ``cached``), say why: what differs from the layer this role had last time.
    ``cached=None`` (not known): say why only when it is not the layer of last time."""
    key = LAST + hashlib.sha256(json.dumps(list(role)).encode()).hexdigest()
    try:
        last = store.get_record(key)
        if last != str(digest):
            store.put_record(key, str(digest))
    except (OcibuildError, OSError):
        last = None
    if cached or (cached is None and last in (None, str(digest))):
        return None
    if not isinstance(last, str):
        return ("no earlier build of this layer in this cache to compare with",)
    if last == str(digest):
        return ("not in the cache: built again from the same inputs as the last build (the cache entry was removed)",)
    old, new = recall(store, last), recall(store, digest)
    if old is None or new is None:
        return ("the last build's inputs of this layer are not recorded (made by an older ocibuild?)",)
    return causes(old, new)


def note_project(store: Records, project: str, digests: Sequence[Digest]) -> None:
    """Note that the images (and index) ``digests`` were built from the project folder ``project``."""
    for digest in digests:
        key = PROJECT + digest.hex
        with contextlib.suppress(OcibuildError, OSError):
            if store.get_record(key) != project:
                store.put_record(key, project)


def project_of(store: Records, digest: Digest | str) -> str | None:
    """The project folder the image ``digest`` was built from with this store, if it was."""
    try:
        value = store.get_record(PROJECT + Digest.parse(str(digest)).hex)
    except (OcibuildError, ValueError):
        return None
    return value if isinstance(value, str) else None
