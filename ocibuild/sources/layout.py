"""Bases from an OCI image layout folder (``oci:DIR[:TAG]``) or an OCI archive (``oci-archive:``).

Nothing in the layout is trusted: only regular files are read (a blob that is a FIFO or a link to
``/dev/zero`` is refused), metadata files are read at most :data:`MAX_METADATA` bytes, a layer
copy stops one byte past its descriptor's size, an archive may hold at most
:data:`MAX_ARCHIVE_MEMBERS` members, and every JSON document goes through the checked parsers of
``ocibuild.spec`` (see ``base.resolve``).
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from ..errors import DigestMismatch, ImageNotFound, SourceError
from ..image import Image, Layer, store_layer
from ..imagefs import BoundedTarInfo
from ..spec import Descriptor, Digest, ImageIndex, Platform, SpecError, parse_object
from ..spec.annotations import REF_NAME
from ..store import ContentStore
from .base import ManifestSource, check_layer, malformed, platforms, resolve

MAX_METADATA = 4 << 20
"""Largest ``index.json``, manifest, config or ``oci-layout`` read from a layout or archive."""
MAX_ARCHIVE_MEMBERS = 100_000
"""Most members an OCI or docker archive may hold (real ones hold a few hundred)."""


class NotARegularFile(OSError):
    """A member or file that should be a blob is a directory, link, device or FIFO."""


class TooLarge(OSError):
    """A metadata file is larger than it may be."""


class BlobReader(Protocol):
    def read(self, name: str, limit: int = MAX_METADATA) -> bytes: ...
    def open(self, name: str) -> IO[bytes]: ...
    def close(self) -> None: ...


class _Bounded(io.RawIOBase):
    """At most ``limit`` bytes of ``inner``: a copy of a blob that claims to be ``size`` bytes stops
    at ``size + 1``, so its size check fails instead of filling the disk."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self._inner = inner
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        data = self._inner.read(min(len(buffer), self._left))
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


def bounded(f: IO[bytes], size: int) -> BinaryIO:
    """``f`` cut off after ``size + 1`` bytes (one more than a blob of ``size`` bytes may have)."""
    return io.BufferedReader(_Bounded(f, size + 1), buffer_size=1 << 20)


def _read_limited(f: IO[bytes], name: str, limit: int) -> bytes:
    with f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"{name} is larger than {limit} bytes")
    return data


class _DirReader:
    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, name: str) -> IO[bytes]:
        path = self.root / name
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))  # a FIFO must not block
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise NotARegularFile(f"{name} is not a regular file")
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def read(self, name: str, limit: int = MAX_METADATA) -> bytes:
        return _read_limited(self.open(name), name, limit)

    def close(self) -> None:
        pass


class TarReader:
    """Random access to the regular-file members of an (uncompressed) tar file, by name."""

    def __init__(self, path: Path, *, max_members: int = MAX_ARCHIVE_MEMBERS) -> None:
        self._tar = tarfile.open(path, "r:", tarinfo=BoundedTarInfo)
        self._members: dict[str, tarfile.TarInfo] = {}
        try:
            while (member := self._tar.next()) is not None:
                self._tar.members.clear()  # type: ignore[attr-defined]  # kept here, by name, instead
                if len(self._members) >= max_members:
                    raise tarfile.ReadError(f"it holds more than {max_members} members")
                self._members[member.name.removeprefix("./")] = member
        except BaseException:
            self._tar.close()
            raise

    def open(self, name: str) -> IO[bytes]:
        member = self._members.get(name)
        if member is None:
            raise FileNotFoundError(name)
        if not member.isreg():
            raise NotARegularFile(f"{name} is not a regular file in the archive")
        f = self._tar.extractfile(member)
        if f is None:
            raise FileNotFoundError(name)
        return f

    def read(self, name: str, limit: int = MAX_METADATA) -> bytes:
        member = self._members.get(name)
        if member is not None and member.size > limit:
            raise TooLarge(f"{name} is larger than {limit} bytes")
        return _read_limited(self.open(name), name, limit)

    def close(self) -> None:
        self._tar.close()


def _pick(index: ImageIndex, tag: str | None, where: str) -> Descriptor:
    tagged = {d.annotations.get(REF_NAME): d for d in index.manifests if d.annotations.get(REF_NAME)}
    if tag is not None:
        if tag in tagged:
            return tagged[tag]
        have = ", ".join(sorted(t for t in tagged if t)) or "no tags"
        raise ImageNotFound(f"{where} has no tag {tag!r} (it has: {have}); name one of those after ':'")
    # untagged artifacts (an SBOM, a provenance attached to an image) are not images to pick
    images = [d for d in index.manifests if d.annotations.get(REF_NAME) or not d.artifact_type]
    if len(images) == 1:
        return images[0]
    have = ", ".join(sorted(t for t in tagged if t)) or "untagged images only"
    raise ImageNotFound(f"{where} holds {len(images)} images; name one with ':TAG' (tags: {have})")


def open_archive(path: Path, where: str) -> TarReader:
    """A :class:`TarReader` over ``path``, or a ``SourceError`` naming ``where``."""
    try:
        return TarReader(path)
    except (tarfile.TarError, OSError) as exc:
        raise SourceError(f"base {where}: cannot read the archive: {exc}") from None


def _open_reader(path: Path, archive: bool, where: str) -> BlobReader:
    if not path.exists():
        raise ImageNotFound(f"base {where} not found: {path} does not exist")
    return open_archive(path, where) if archive else _DirReader(path)


def _source(reader: BlobReader, tag: str | None, store: ContentStore, where: str) -> ManifestSource:
    try:
        layout_raw = reader.read("oci-layout")
        index_raw = reader.read("index.json")
    except (OSError, tarfile.TarError) as exc:
        raise SourceError(
            f"base {where} is not an OCI image layout (oci-layout / index.json unreadable: {exc})"
        ) from None
    try:
        layout = parse_object(layout_raw, "oci-layout")
        version = layout.get("imageLayoutVersion")
        if not isinstance(version, str):
            raise SpecError("'imageLayoutVersion' is missing or not a string")
    except SpecError as exc:
        raise malformed(where, "oci-layout", exc, fix="the layout is malformed") from None
    try:
        index = ImageIndex.from_json(index_raw)
    except SpecError as exc:
        raise malformed(where, "index.json", exc, fix="the layout is malformed") from None

    def fetch(d: Descriptor) -> bytes:
        if d.size > MAX_METADATA:
            raise SourceError(f"base {where}: metadata blob {d.digest} is implausibly large ({d.size} B)")
        try:
            data: bytes = reader.read(d.digest.blob_name, MAX_METADATA)
        except NotARegularFile:
            raise SourceError(f"base {where}: blob {d.digest} is not a regular file") from None
        except TooLarge:
            raise DigestMismatch(f"base {where}: blob {d.digest} does not match its digest or size") from None
        except (OSError, tarfile.TarError):
            raise SourceError(f"base {where}: blob {d.digest} is missing from the layout") from None
        if not d.digest.verify(data) or len(data) != d.size:
            raise DigestMismatch(f"base {where}: blob {d.digest} does not match its digest or size")
        return data

    def make_layer(d: Descriptor, diff_id: Digest) -> Layer:
        # copied into the store now (verified): an archive's reader is closed once the base is resolved
        if not store.has(d.digest):
            try:
                with bounded(reader.open(d.digest.blob_name), d.size) as f:
                    store.put_stream(f, d.digest, d.size)
            except NotARegularFile:
                raise SourceError(f"base {where}: layer {d.digest} is not a regular file") from None
            except FileNotFoundError:
                raise SourceError(f"base {where}: layer {d.digest} is missing from the layout") from None
            except DigestMismatch as exc:
                raise DigestMismatch(f"base {where}: layer blob is corrupt: {exc}") from None
            except (OSError, tarfile.TarError) as exc:
                raise SourceError(f"base {where}: layer {d.digest} cannot be read: {exc}") from None
        check_layer(store, d, diff_id, where)
        return store_layer(store, d, diff_id)

    return ManifestSource(where=where, top=_pick(index, tag, where), fetch=fetch, make_layer=make_layer)


def _where(path: Path, tag: str | None, archive: bool) -> str:
    return f"{'oci-archive' if archive else 'oci'}:{path}" + (f":{tag}" if tag else "")


def load_layout(path: Path, tag: str | None, store: ContentStore, platform: Platform | None,
                *, archive: bool) -> Image:
    """The image for ``platform`` in an OCI layout folder or archive; layer blobs are copied into
    ``store``, verified (digest, size, and the diff_id the config lists)."""
    where = _where(path, tag, archive)
    reader = _open_reader(path, archive, where)
    try:
        return resolve(_source(reader, tag, store, where), platform)
    finally:
        with contextlib.suppress(Exception):
            reader.close()


@contextlib.contextmanager
def open_layout_source(path: Path, tag: str | None, store: ContentStore, *,
                       archive: bool) -> Iterator[tuple[ManifestSource, BlobReader]]:
    """The layout's (or archive's) ``ManifestSource`` for ``tag`` and its reader, closed on exit: for
    callers that read more than one image's documents (the artifacts attached beside an image)."""
    where = _where(path, tag, archive)
    reader = _open_reader(path, archive, where)
    try:
        yield _source(reader, tag, store, where), reader
    finally:
        with contextlib.suppress(Exception):
            reader.close()


def layout_platforms(path: Path, tag: str | None, store: ContentStore, *, archive: bool) -> tuple[Platform, ...]:
    """The platforms the layout's image (or index) offers; no layer is read."""
    where = _where(path, tag, archive)
    reader = _open_reader(path, archive, where)
    try:
        return platforms(_source(reader, tag, store, where))
    finally:
        with contextlib.suppress(Exception):
            reader.close()
