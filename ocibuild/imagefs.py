"""The merged filesystem of an image, read from its layer tars without extracting anything.

:func:`merged_view` streams each layer once, bottom first, and applies it the way a runtime's
snapshotter does (OCI image-spec, "Image Layer Filesystem Changeset"):

- an entry replaces the lower entry at its path; a non-directory over a lower directory also hides
  everything below it, a directory over a lower directory merges with it;
- ``D/.wh.NAME`` deletes ``D/NAME`` (and everything below it) from the lower layers;
- ``D/.wh..wh..opq`` hides every lower entry below ``D``; entries of its own layer stay, whatever
  their order in the tar.

Symlinks and hard links stay entries (nothing is followed while reading); :meth:`MergedView.follow`
and :meth:`MergedView.resolve` follow symlinks afterwards. Callers say which entries they care
about (``keep``) and which regular files' bytes to read (``want``; by default whole files up to
``MAX_DATA``, or through their own ``reader``), so memory is bounded by what they ask for, never
by a layer's size; :class:`Limits` bounds even that (how many entries and read files the view holds,
and their total bytes), and tar headers that would be read whole (PAX, GNU long names) are refused
above 1 MiB, so a hostile layer cannot make the walk use memory in proportion to its content.
Nothing here knows what the files mean: Python detection, ``ocibuild inspect`` and SBOMs build on it.

>>> view = merged_view(image, want=lambda path: path == "/etc/os-release")  # doctest: +SKIP
>>> view.resolve("/etc/os-release").data  # doctest: +SKIP
b'ID=debian\\n...'
"""

from __future__ import annotations

import base64
import posixpath
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

from .errors import SourceError
from .layers.compress import decode_errors

if TYPE_CHECKING:
    from .image import Image, Layer


class RecordCache(Protocol):
    """Where walks are noted (a ``ContentStore``): JSON values by key, a cache (misses are fine)."""

    def get_record(self, key: str) -> Any: ...
    def put_record(self, key: str, value: Any) -> None: ...

__all__ = ["MAX_DATA", "MAX_HEADER", "MAX_SYMLINK_HOPS", "BoundedTarInfo", "Entry", "Kind", "Limits", "MergedView",
           "Reader", "RecordCache", "follow_symlinks", "merged_view", "read_upto"]

Kind = Literal["file", "dir", "symlink", "hardlink", "other"]
MAX_DATA = 16 << 20  # default bound on the bytes read for one wanted file
MAX_SYMLINK_HOPS = 40  # as Linux's MAXSYMLINKS
MAX_HEADER = 1 << 20  # largest PAX header / GNU long name read (Go's archive/tar has the same bound)
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_AUFS_DIR = "/" + WHITEOUT + WHITEOUT


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    """One path of the merged filesystem, as the topmost layer that has it stored it.

    ``path`` is absolute and normalised (``/usr/bin/python3``). ``linkname`` is a symlink's target
    as stored, or a hard link's target as an absolute path. ``data`` is what the reader returned
    for a wanted regular file (by default its bytes), or None.
    """

    path: str
    kind: Kind
    mode: int = 0
    size: int = 0
    uid: int = 0
    gid: int = 0
    linkname: str = ""
    layer: int = 0  # index (bottom = 0) of the layer that wrote this entry
    data: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """How much a :func:`merged_view` may hold; a layer that would exceed a bound is a
    ``SourceError`` naming the bound, the layer and the path that crossed it.

    ``entries``: entries kept in the view at once; ``files``: of those, files whose content was
    read (``Entry.data`` set); ``data``: total bytes of those contents. ``advice`` ends the message.
    """

    entries: int = 1_000_000
    files: int = 100_000
    data: int = 512 << 20
    advice: str = "the base image is unusually large or hostile; use another base"


class BoundedTarInfo(tarfile.TarInfo):
    """A ``TarInfo`` that refuses headers ``tarfile`` would read whole into memory (PAX extended
    headers and GNU long names above :data:`MAX_HEADER`) and GNU sparse members, and reports
    malformed special headers as ``tarfile.ReadError`` instead of ``IndexError`` / ``ValueError``.
    Pass it as ``tarfile.open(..., tarinfo=BoundedTarInfo)``."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _SPECIAL_HEADERS and self.size > MAX_HEADER:
            raise tarfile.ReadError(f"a tar header of {self.size} bytes for {self.name[:200]!r} (more than "
                                    f"{MAX_HEADER} are refused)")
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise tarfile.ReadError(f"GNU sparse member {self.name[:200]!r} is not supported in layers")
        depth = getattr(tarfile_, _DEPTH, 0)  # PAX and long-name headers each read the next one
        if depth >= _MAX_CHAINED:
            raise tarfile.ReadError(f"more than {_MAX_CHAINED} extended headers in a row before {self.name[:200]!r}")
        setattr(tarfile_, _DEPTH, depth + 1)
        try:
            member: tarfile.TarInfo = super()._proc_member(tarfile_)  # type: ignore[misc]
        except (IndexError, ValueError, UnicodeError, RecursionError) as exc:
            raise tarfile.ReadError(f"malformed tar header for {self.name[:200]!r}: {exc}") from None
        finally:
            setattr(tarfile_, _DEPTH, depth)
        if member.sparse is not None:  # PAX-encoded sparse file (GNU.sparse.*)
            raise tarfile.ReadError(f"sparse member {member.name[:200]!r} is not supported in layers")
        return member


_DEPTH = "_ocibuild_header_depth"
_MAX_CHAINED = 16
_SPECIAL_HEADERS = frozenset({tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                              tarfile.GNUTYPE_LONGLINK})


Reader = Callable[[Entry, IO[bytes]], bytes | None]
"""Reads a wanted regular file's content stream (``entry.data`` is still None) and returns what to
keep as its ``data``: the whole content by default, or anything the caller derives from it in
bounded memory (a version banner, a hash)."""


def follow_symlinks(path: str, link_of: Callable[[str], str | None]) -> str | None:
    """``path`` (absolute) with every symlink on the way followed, lexically and inside the root.

    ``link_of(p)`` gives the stored target of the symlink at ``p`` or None if ``p`` is not one. ``..``
    at the root stays at the root, as in a chroot. None after ``MAX_SYMLINK_HOPS`` links (a loop).

    >>> follow_symlinks("/bin/sh", {"/bin": "usr/bin", "/usr/bin/sh": "dash"}.get)
    '/usr/bin/dash'
    """
    pending = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        target = link_of("/" + "/".join([*done, part]))
        if target is None:
            done.append(part)
            continue
        hops += 1
        if hops > MAX_SYMLINK_HOPS:
            return None
        if target.startswith("/"):
            done = []
        pending = [p for p in target.split("/") if p] + pending
    return "/" + "/".join(done)


@dataclass(frozen=True, slots=True)
class MergedView(Mapping[str, Entry]):
    """The merged filesystem: absolute path -> :class:`Entry`, for the entries the caller kept."""

    entries: Mapping[str, Entry]

    def __getitem__(self, path: str) -> Entry:
        return self.entries[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def readlink(self, path: str) -> str | None:
        """The stored target of the symlink at ``path``, or None if there is no (kept) symlink."""
        entry = self.entries.get(path)
        return entry.linkname if entry is not None and entry.kind == "symlink" else None

    @property
    def symlinks(self) -> dict[str, str]:
        """Every kept symlink: path -> target as stored."""
        return {p: e.linkname for p, e in self.entries.items() if e.kind == "symlink"}

    def follow(self, path: str) -> str | None:
        """``path`` with every symlink followed (see :func:`follow_symlinks`); None on a loop."""
        return follow_symlinks(path, self.readlink)

    def resolve(self, path: str) -> Entry | None:
        """The entry ``path`` leads to after following symlinks, or None (dangling, loop, not kept)."""
        real = self.follow(path)
        return self.entries.get(real) if real is not None else None


def _norm(name: str) -> str:
    """A tar member name as an absolute path (``./usr//bin/`` -> ``/usr/bin``); ``/`` for the root."""
    return "/" + posixpath.normpath("/" + name).lstrip("/")


def _kind(member: tarfile.TarInfo) -> Kind:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    return "other"


def _entry(member: tarfile.TarInfo, path: str, layer: int) -> Entry:
    kind = _kind(member)
    link = _norm(member.linkname) if kind == "hardlink" else member.linkname if kind == "symlink" else ""
    return Entry(path=path, kind=kind, mode=member.mode, size=member.size if kind == "file" else 0,
                 uid=member.uid, gid=member.gid, linkname=link, layer=layer)


def _ancestors(paths: Iterable[str]) -> set[str]:
    """Every directory above ``paths``, the root included."""
    out: set[str] = set()
    for p in paths:
        parent = posixpath.dirname(p)
        while parent not in out:
            out.add(parent)
            if parent == "/":
                break
            parent = posixpath.dirname(parent)
    return out


def _below(path: str, trees: set[str]) -> bool:
    """Whether ``path`` is inside one of the directories ``trees``."""
    while path != "/":
        path = posixpath.dirname(path)
        if path in trees:
            return True
    return False


def read_upto(limit: int = MAX_DATA) -> Reader:
    """The default :data:`Reader`: a file's whole content if it is at most ``limit`` bytes, else None
    (the bytes are then skipped, not read)."""

    def read(entry: Entry, stream: IO[bytes]) -> bytes | None:
        return stream.read() if entry.size <= limit else None

    return read


@dataclass(kw_only=True, slots=True)
class _Walk:
    keep: Callable[[Entry], bool]
    want: Callable[[str], bool]
    reader: Reader
    limits: Limits
    entries: int = 0  # kept in the view (lower + this layer's upper)
    files: int = 0  # of those, files with content read
    data: int = 0  # bytes of that content
    layer: str = ""  # for messages: "base layer N (digest)"

    def _count(self, entry: Entry, sign: int) -> None:
        self.entries += sign
        if entry.data is not None:
            self.files += sign
            if entry.kind == "file":  # a hard link shares the bytes of its target
                self.data += sign * len(entry.data)

    def _exceeded(self, what: str, limit: int, path: str) -> SourceError:
        return SourceError(f"{self.layer}: more than {limit} {what} at {path[:200]!r}; {self.limits.advice}")

    def _add(self, upper: dict[str, Entry], entry: Entry) -> None:
        old = upper.get(entry.path)
        if old is not None:
            self._count(old, -1)
        upper[entry.path] = entry
        self._count(entry, +1)
        if self.entries > self.limits.entries:
            raise self._exceeded("entries of interest", self.limits.entries, entry.path)
        if self.files > self.limits.files:
            raise self._exceeded("files read", self.limits.files, entry.path)
        if self.data > self.limits.data:
            raise self._exceeded("bytes of file content read", self.limits.data, entry.path)

    def _drop(self, table: dict[str, Entry], path: str) -> None:
        old = table.pop(path, None)
        if old is not None:
            self._count(old, -1)

    def apply(self, tar: tarfile.TarFile, layer: int, lower: dict[str, Entry]) -> None:
        """Apply one layer to ``lower`` (the merged view of the layers below it) in place."""
        dirs = _ancestors(lower)  # only these can hide kept lower entries as a tree
        upper: dict[str, Entry] = {}
        gone: set[str] = set()  # lower paths this layer deletes or replaces
        gone_trees: set[str] = set()  # lower directories whose contents this layer hides
        while (member := tar.next()) is not None:
            tar.members.clear()  # type: ignore[attr-defined]  # stream mode would keep every TarInfo
            path = _norm(member.name)
            if path == "/":
                continue
            parent, name = posixpath.split(path)
            if _AUFS_DIR in parent + "/":
                continue  # inside an AUFS metadata directory (/.wh..wh.plnk/...): not content
            if name.startswith(WHITEOUT):
                if name == OPAQUE:
                    if parent in dirs:
                        gone_trees.add(parent)
                elif not name.startswith(WHITEOUT + WHITEOUT):  # other .wh..wh.* are AUFS metadata
                    target = posixpath.join(parent, name[len(WHITEOUT):])
                    if target in lower:
                        gone.add(target)
                    if target in dirs:
                        gone_trees.add(target)
                continue
            if path in lower:
                gone.add(path)
            if path in dirs and not member.isdir():
                gone_trees.add(path)
            entry = _entry(member, path, layer)
            wanted = self.want(path)
            if not (wanted or self.keep(entry)):
                self._drop(upper, path)
                continue
            if wanted and entry.kind == "file":
                if self.files >= self.limits.files:
                    raise self._exceeded("files read", self.limits.files, path)
                entry = replace(entry, data=self._read(tar, member, entry))
            elif wanted and entry.kind == "hardlink":
                source = upper.get(entry.linkname) or (lower.get(entry.linkname)
                                                       if entry.linkname not in gone else None)
                entry = replace(entry, data=source.data if source is not None else None)
            self._add(upper, entry)
        for path in gone:
            self._drop(lower, path)
        if gone_trees:
            for path in [p for p in lower if _below(p, gone_trees)]:
                self._drop(lower, path)
        lower.update(upper)

    def _read(self, tar: tarfile.TarFile, member: tarfile.TarInfo, entry: Entry) -> bytes | None:
        if isinstance(tar, _Replay):
            return tar.data()
        stream = tar.extractfile(member)
        if stream is None:
            return None
        with stream:
            data = self.reader(entry, stream)
        if isinstance(tar, _Recorder):
            tar.keep_data(data)
        return data


class _Recorder:
    """A tar stream being walked, noting each member's header (and what was read of wanted files), so
    the next walk of the same layer for the same purpose replays it without reading the layer."""

    MAX_RECORDS = 100_000  # a layer with more members is walked every time (memory stays bounded)

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.members = tar.members  # type: ignore[attr-defined]  # the stream's list of seen members
        self.records: list[list[object]] | None = []

    def next(self) -> tarfile.TarInfo | None:
        member = self.tar.next()
        if member is not None and self.records is not None:
            if len(self.records) >= self.MAX_RECORDS:
                self.records = None
            else:
                self.records.append([member.name, member.type.decode("latin-1"), member.mode, member.size,
                                     member.uid, member.gid, member.linkname, None])
        return member

    def extractfile(self, member: tarfile.TarInfo) -> IO[bytes] | None:
        return self.tar.extractfile(member)

    def keep_data(self, data: bytes | None) -> None:
        if data is not None and self.records:
            self.records[-1][7] = base64.b64encode(data).decode("ascii")


class _Replay:
    """The members a :class:`_Recorder` noted, as the tar stream they came from."""

    def __init__(self, records: list[list[object]]) -> None:
        self._records = iter(records)
        self.members: list[tarfile.TarInfo] = []
        self._data: object = None

    def next(self) -> tarfile.TarInfo | None:
        record = next(self._records, None)
        if record is None:
            return None
        name, kind, mode, size, uid, gid, linkname, data = record
        info = tarfile.TarInfo(str(name))
        info.type = str(kind).encode("latin-1")
        info.mode, info.size, info.uid, info.gid = int(mode), int(size), int(uid), int(gid)  # type: ignore[call-overload]
        info.linkname = str(linkname)
        self._data = data
        return info

    def data(self) -> bytes | None:
        try:
            return base64.b64decode(self._data, validate=True) if isinstance(self._data, str) else None
        except ValueError:  # binascii.Error: a damaged record
            return None


def _replayable(records: object) -> bool:
    """Whether ``records`` has the shape ``_Recorder`` writes (a record may come from a shared cache,
    ``--cache-repo``, and is then not trusted to): [name, type, mode, size, uid, gid, linkname, data]."""
    if not isinstance(records, list):
        return False
    for r in records:
        if not (isinstance(r, list) and len(r) == 8 and isinstance(r[0], str) and isinstance(r[1], str)
                and len(r[1]) == 1 and all(isinstance(x, int) and not isinstance(x, bool) for x in r[2:6])
                and isinstance(r[6], str) and (r[7] is None or isinstance(r[7], str))):
            return False
    return True


def _walk_layer(walk: _Walk, layer: Layer, index: int, merged: dict[str, Entry], cache: RecordCache | None,
                key: str) -> None:
    """Apply one layer: replayed from ``cache`` when a walk for ``key`` noted it before, else streamed."""
    record_key = f"imagefs-walk-1:{key}:{layer.diff_id}" if cache is not None and key else ""
    if record_key and _replayable(records := cache.get_record(record_key)):  # type: ignore[union-attr]
        walk.apply(_Replay(records), index, merged)  # type: ignore[arg-type]
        return
    with layer.uncompressed() as stream, tarfile.open(fileobj=stream, mode="r|", tarinfo=BoundedTarInfo) as tar:
        if not record_key:
            walk.apply(tar, index, merged)
            return
        recorder = _Recorder(tar)
        walk.apply(recorder, index, merged)  # type: ignore[arg-type]
    if cache is not None and recorder.records is not None:
        cache.put_record(record_key, recorder.records)


def _everything(_entry: Entry) -> bool:
    return True


def _nothing(_path: str) -> bool:
    return False


def merged_view(image: Image, *, keep: Callable[[Entry], bool] = _everything,
                want: Callable[[str], bool] = _nothing, reader: Reader | None = None,
                limits: Limits | None = None, cache: RecordCache | None = None, cache_key: str = "") -> MergedView:
    """Read every layer of ``image`` once, as a stream, and return its merged filesystem.

    ``keep(entry)`` says which entries the view holds (all by default; an entry not kept still
    deletes or replaces what is below it). ``want(path)`` says which regular files' content to
    read (they are kept whatever ``keep`` says): ``reader`` (default ``read_upto(MAX_DATA)``) gets
    each one's stream and its result becomes ``Entry.data``; a wanted hard link gets the data of
    the file it links to, if that was read. ``limits`` (default :class:`Limits`) bounds what the
    view holds. A layer that is not a readable tar, or that crosses a limit, is a ``SourceError``
    naming it. With ``cache`` (e.g. the ``ContentStore``) and ``cache_key`` (naming what ``keep``, ``want`` and
    ``reader`` do, versioned), each layer's walk is noted once by its diff_id and replayed after that:
    an image that differs from the last one by one layer reads only that layer.

    >>> view = merged_view(image, keep=lambda e: e.kind != "dir")  # doctest: +SKIP
    >>> sorted(view)[:2]  # doctest: +SKIP
    ['/bin', '/etc/os-release']
    """
    walk = _Walk(keep=keep, want=want, reader=reader or read_upto(), limits=limits or Limits())
    merged: dict[str, Entry] = {}
    errors = decode_errors()
    for index, layer in enumerate(image.layers):
        walk.layer = f"base layer {index + 1} ({layer.digest})"
        try:
            _walk_layer(walk, layer, index, merged, cache, cache_key)
        except tarfile.ReadError as exc:
            if str(exc) == "empty file":
                continue
            raise SourceError(
                f"{walk.layer} is not a readable tar: {exc}; the base image is corrupt, fetch it again"
            ) from None
        except errors as exc:
            raise SourceError(
                f"{walk.layer} cannot be read: {exc}; the base image is corrupt, fetch it again"
            ) from None
    return MergedView(merged)
