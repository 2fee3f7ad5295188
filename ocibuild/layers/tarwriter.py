"""A deterministic tar writer (the rules of Jib's ReproducibleLayerBuilder).

Entries are sorted by path, every parent directory is emitted, owners are numeric (uid/gid 0 by
default) with empty user and group names, every mtime is the same (``SOURCE_DATE_EPOCH``),
permissions are normalised, and no xattrs or host-specific PAX records are written.
"""

from __future__ import annotations

import functools
import io
import posixpath
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from ..errors import LayerError

Kind = Literal["file", "dir", "symlink"]
FILE_MODE = 0o644
EXEC_MODE = 0o755
DIR_MODE = 0o755
COPY_BUFSIZE = 1 << 20


class Writable(Protocol):
    def write(self, data: bytes) -> int: ...


class ReadStream(Protocol):
    """What an entry's ``opener`` returns: a readable context manager."""

    def read(self, n: int = -1, /) -> bytes: ...
    def __enter__(self) -> ReadStream: ...
    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class TarEntry:
    """One entry of a layer. ``path`` is relative and POSIX (``app/main.py``); content comes from
    ``source`` (a file on disk) or ``data`` (bytes)."""

    path: str
    kind: Kind
    mode: int = FILE_MODE
    size: int = 0
    source: Path | None = None
    data: bytes | None = None
    linkname: str = ""
    opener: Callable[[], ReadStream] | None = None  # streamed content (e.g. a zip member), read when written

    @classmethod
    def file(cls, path: str, data: bytes, *, executable: bool = False) -> TarEntry:
        return cls(path=path, kind="file", mode=EXEC_MODE if executable else FILE_MODE,
                   size=len(data), data=data)

    @classmethod
    def directory(cls, path: str, mode: int = DIR_MODE) -> TarEntry:
        return cls(path=path, kind="dir", mode=mode)

    @classmethod
    def symlink(cls, path: str, target: str) -> TarEntry:
        return cls(path=path, kind="symlink", mode=0o777, linkname=target)


@dataclass(frozen=True, kw_only=True, slots=True)
class TarOptions:
    """Owner and timestamp given to every entry."""

    uid: int = 0
    gid: int = 0
    mtime: int = 0


def normalize_path(path: str) -> str:
    """``/app/./x/`` -> ``app/x``; rejects paths that climb out of the root with ``..``."""
    parts: list[str] = []
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise LayerError(f"path {path!r} escapes the image root")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def with_parents(entries: Iterable[TarEntry]) -> list[TarEntry]:
    """Normalise paths, add missing parent directories, reject duplicates, sort by path."""
    by_path: dict[str, TarEntry] = {}
    for entry in entries:
        path = normalize_path(entry.path)
        if not path:
            continue
        if path in by_path and by_path[path].kind != "dir":
            raise LayerError(f"two entries for {path!r} in one layer")
        if path != entry.path:
            entry = TarEntry(path=path, kind=entry.kind, mode=entry.mode, size=entry.size,
                             source=entry.source, data=entry.data, linkname=entry.linkname, opener=entry.opener)
        by_path[path] = entry
    for path in list(by_path):
        parent = posixpath.dirname(path)
        while parent and parent not in by_path:
            by_path[parent] = TarEntry.directory(parent)
            parent = posixpath.dirname(parent)
    return [by_path[p] for p in sorted(by_path)]


@functools.lru_cache(maxsize=16384)
def _header(key: tuple[object, ...]) -> bytes:
    """The header bytes (PAX records included) tarfile writes for a member described by ``key``: a pure
    function of the fields, remembered, so a long-lived process (``ocibuild dev``) re-tarring a tree of
    unchanged files does not format their headers again."""
    fmt, encoding, errors, name, mode, uid, gid, size, mtime, kind, linkname = key
    info = tarfile.TarInfo(str(name))
    info.mode, info.uid, info.gid, info.size, info.mtime = mode, uid, gid, size, mtime  # type: ignore[assignment]
    info.type, info.linkname, info.uname, info.gname = kind, str(linkname), "", ""  # type: ignore[assignment]
    return info.tobuf(fmt, encoding, errors)  # type: ignore[arg-type]


class _Info(tarfile.TarInfo):
    """A ``TarInfo`` whose header bytes come from ``_header`` (uname/gname are always empty here)."""

    def tobuf(self, format: int | None = tarfile.DEFAULT_FORMAT, encoding: str | None = tarfile.ENCODING,
              errors: str = "surrogateescape") -> bytes:
        return _header((format, encoding, errors, self.name, self.mode, self.uid, self.gid, self.size, self.mtime,
                        self.type, self.linkname))


def _tarinfo(entry: TarEntry, options: TarOptions) -> tarfile.TarInfo:
    info = _Info(entry.path)
    info.mode = entry.mode & 0o7777
    info.uid, info.gid = options.uid, options.gid
    info.uname = info.gname = ""
    info.mtime = options.mtime
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.linkname
    else:
        info.type = tarfile.REGTYPE
        info.size = entry.size
    return info


class _OutputFailed(Exception):
    """Carries an ``OSError`` of the *output* through tarfile, so that it is never taken for a read
    error of the entry being copied (a full disk is not "cannot read SOURCE")."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _Sink:
    """File-like adapter tarfile writes to: forwards bytes and counts them."""

    def __init__(self, out: Writable) -> None:
        self._out = out
        self.offset = 0

    def write(self, data: bytes) -> int:
        try:
            self._out.write(bytes(data))
        except OSError as exc:
            raise _OutputFailed(exc) from None
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset


def write_tar(entries: Iterable[TarEntry], out: Writable, options: TarOptions = TarOptions()) -> int:
    """Write ``entries`` (plus parents, sorted) as a tar stream to ``out``; return bytes written.

    A source file that cannot be read is a ``LayerError`` naming it; whatever ``out.write`` raises
    (``OSError`` of a full disk included) comes out unchanged, for the caller to name its file."""
    sink = _Sink(out)
    try:
        _write_entries(entries, sink, options)
    except _OutputFailed as failed:
        raise failed.error from None
    return sink.offset


def _write_entries(entries: Iterable[TarEntry], sink: _Sink, options: TarOptions) -> None:
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT,  # type: ignore[call-overload]
                      encoding="utf-8") as tar:
        tar.copybufsize = COPY_BUFSIZE
        for entry in with_parents(entries):
            info = _tarinfo(entry, options)
            if entry.kind != "file":
                tar.addfile(info)
            elif entry.data is not None:
                tar.addfile(info, io.BytesIO(entry.data))
            elif entry.opener is not None:
                try:
                    with entry.opener() as stream:
                        tar.addfile(info, stream)
                except OSError as exc:  # output errors are _OutputFailed: this is the entry's stream
                    raise LayerError(f"cannot read the content of {entry.path}: {exc.strerror or exc}") from None
            elif entry.source is not None:
                try:
                    with entry.source.open("rb") as f:
                        tar.addfile(info, f)
                except OSError as exc:  # output errors are _OutputFailed: this is the source
                    raise LayerError(f"cannot read {entry.source}: {exc.strerror or exc}") from None
            else:
                raise LayerError(f"file entry {entry.path!r} has no content")
