"""Bases from an OCI image layout folder (``oci:DIR[:TAG]``) or an OCI archive (``oci-archive:``)."""

from __future__ import annotations

import contextlib
import json
import tarfile
from pathlib import Path
from typing import IO, Any

from ..errors import DigestMismatch, ImageNotFound, SourceError
from ..image import Image, Layer, store_layer
from ..spec import Descriptor, Digest, ImageIndex, Platform
from ..spec.annotations import REF_NAME
from ..store import ContentStore
from .base import ManifestSource, platforms, resolve

MAX_METADATA = 4 << 20


class _DirReader:
    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()


    def open(self, name: str) -> IO[bytes]:
        return (self.root / name).open("rb")

    def close(self) -> None:
        pass


class TarReader:
    """Random access to the members of an (uncompressed) tar file, by name."""

    def __init__(self, path: Path) -> None:
        self._tar = tarfile.open(path, "r:")
        self._members = {m.name.removeprefix("./"): m for m in self._tar.getmembers()}

    def open(self, name: str) -> IO[bytes]:
        member = self._members.get(name)
        f = self._tar.extractfile(member) if member is not None else None
        if f is None:
            raise FileNotFoundError(name)
        return f

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            data: bytes = f.read()
            return data

    def close(self) -> None:
        self._tar.close()


def _pick(index: ImageIndex, tag: str | None, where: str) -> Descriptor:
    tagged = {d.annotations.get(REF_NAME): d for d in index.manifests if d.annotations.get(REF_NAME)}
    if tag is not None:
        if tag in tagged:
            return tagged[tag]
        have = ", ".join(sorted(t for t in tagged if t)) or "no tags"
        raise ImageNotFound(f"{where} has no tag {tag!r} (it has: {have}); name one of those after ':'")
    if len(index.manifests) == 1:
        return index.manifests[0]
    have = ", ".join(sorted(t for t in tagged if t)) or "untagged images only"
    raise ImageNotFound(f"{where} holds {len(index.manifests)} images; name one with ':TAG' (tags: {have})")


def _open_reader(path: Path, archive: bool, where: str) -> Any:
    if not path.exists():
        raise ImageNotFound(f"base {where} not found: {path} does not exist")
    try:
        return TarReader(path) if archive else _DirReader(path)
    except (tarfile.TarError, OSError) as exc:
        raise SourceError(f"base {where}: cannot read the archive: {exc}") from None


def _source(reader: Any, tag: str | None, store: ContentStore, where: str) -> ManifestSource:
    try:
        layout = json.loads(reader.read("oci-layout"))
        index = ImageIndex.from_json(reader.read("index.json"))
    except (OSError, ValueError) as exc:
        raise SourceError(
            f"base {where} is not an OCI image layout (oci-layout / index.json unreadable: {exc})"
        ) from None
    if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
        raise SourceError(f"base {where}: oci-layout file has no imageLayoutVersion")

    def fetch(d: Descriptor) -> bytes:
        if d.size > MAX_METADATA:
            raise SourceError(f"base {where}: metadata blob {d.digest} is implausibly large ({d.size} B)")
        try:
            data: bytes = reader.read(d.digest.blob_name)
        except OSError:
            raise SourceError(f"base {where}: blob {d.digest} is missing from the layout") from None
        if not d.digest.verify(data) or len(data) != d.size:
            raise DigestMismatch(f"base {where}: blob {d.digest} does not match its digest or size")
        return data

    def make_layer(d: Descriptor, diff_id: Digest) -> Layer:
        # copied into the store now (verified): an archive's reader is closed once the base is resolved
        if not store.has(d.digest):
            try:
                with reader.open(d.digest.blob_name) as f:
                    store.put_stream(f, d.digest, d.size)
            except FileNotFoundError:
                raise SourceError(f"base {where}: layer {d.digest} is missing from the layout") from None
            except DigestMismatch as exc:
                raise DigestMismatch(f"base {where}: layer blob is corrupt: {exc}") from None
        return store_layer(store, d, diff_id)

    return ManifestSource(where=where, top=_pick(index, tag, where), fetch=fetch, make_layer=make_layer)


def load_layout(path: Path, tag: str | None, store: ContentStore, platform: Platform | None,
                *, archive: bool) -> Image:
    """The image for ``platform`` in an OCI layout folder or archive; layer blobs are copied into
    ``store``, verified."""
    where = f"{'oci-archive' if archive else 'oci'}:{path}" + (f":{tag}" if tag else "")
    reader = _open_reader(path, archive, where)
    try:
        return resolve(_source(reader, tag, store, where), platform)
    finally:
        with contextlib.suppress(Exception):
            reader.close()


def layout_platforms(path: Path, tag: str | None, store: ContentStore, *, archive: bool) -> tuple[Platform, ...]:
    """The platforms the layout's image (or index) offers; no layer is read."""
    where = f"{'oci-archive' if archive else 'oci'}:{path}" + (f":{tag}" if tag else "")
    reader = _open_reader(path, archive, where)
    try:
        return platforms(_source(reader, tag, store, where))
    finally:
        with contextlib.suppress(Exception):
            reader.close()
