"""Single-file outputs: ``oci-archive:FILE[:TAG]`` (a tarred OCI layout) and
``docker-archive:FILE[:REPO:TAG]`` (what ``docker load`` / ``podman load`` read).

Both are streamed into one temp file beside FILE (or beside what FILE links to) and renamed onto it:
memory stays constant whatever the layer sizes, and no other temp file is needed. A docker archive
holds its layers uncompressed; as a tar entry needs its size up front, each compressed layer is
decompressed twice, once to learn its size (checking its diff_id) and once into the archive
(checked again on the way).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..errors import DigestMismatch, OutputError
from ..image import Artifact, Blob, Image, Layer, all_blobs
from ..layers.compress import decode_errors
from ..layers.tarwriter import TarEntry, TarOptions, write_tar
from ..spec import Descriptor, Reference, canonical_json
from ..spec.annotations import REF_NAME
from ..store import CHUNK, write_error
from .common import OUTPUT_HINT, Verified, atomic_file, open_verified, output_target
from .layout import OCI_LAYOUT, updated_index


def _blob_entry(blob: Blob, name: str) -> TarEntry:
    return TarEntry(path=name, kind="file", size=blob.descriptor.size, opener=lambda: open_verified(blob))


def _write_archive(path: Path, where: str, entries: list[TarEntry], mtime: int) -> None:
    """``entries`` as a tar at ``path``, atomically; a failed write names the file."""
    with atomic_file(path, where) as f:
        try:
            write_tar(entries, f, TarOptions(mtime=mtime))
        except OSError as exc:  # write_tar lets only output errors out as OSError
            raise write_error(exc, output_target(path, where), OUTPUT_HINT, OutputError) from None


def write_oci_archive(path: Path, tag: str | None, artifact: Artifact, mtime: int, *,
                      extra_entries: Sequence[Descriptor] = (), extra_blobs: Sequence[Blob] = ()) -> Descriptor:
    """A tarred OCI layout holding ``artifact`` under ``tag``, entries stamped ``mtime``. ``extra_entries``
    are listed in ``index.json`` after it and ``extra_blobs`` stored beside its blobs: the artifacts
    attached to it (``ocibuild.referrers.layout_additions``), untagged."""
    where = f"oci-archive:{path}" + (f":{tag}" if tag else "")
    entry = artifact.descriptor({REF_NAME: tag} if tag else None)
    index = updated_index(None, entry, tag)
    index = replace(index, manifests=(*index.manifests, *(d for d in extra_entries if d.digest != entry.digest)))
    entries = [
        TarEntry.file("oci-layout", OCI_LAYOUT),
        TarEntry.file("index.json", canonical_json(index.to_dict())),
    ]
    blobs = {blob.descriptor.digest: blob for blob in all_blobs(artifact)}
    for blob in extra_blobs:
        blobs.setdefault(blob.descriptor.digest, blob)
    entries += [_blob_entry(blob, blob.descriptor.digest.blob_name) for blob in blobs.values()]
    _write_archive(path, where, entries, mtime)
    return entry


def write_docker_archive(path: Path, reference: str | None, image: Image, mtime: int) -> Descriptor:
    """Layers are written uncompressed (named by diff_id), as ``docker save`` does."""
    where = f"docker-archive:{path}" + (f":{reference}" if reference else "")
    config_name = f"{image.manifest.config.digest.hex}.json"
    entries = [TarEntry.file(config_name, image.config_bytes)]
    layer_names = []
    for layer in image.layers:
        name = f"{layer.diff_id.hex}.tar"
        layer_names.append(name)
        if any(e.path == name for e in entries):
            continue
        entries.append(_layer_entry(layer, name))
    manifest = [{"Config": config_name, "RepoTags": [repo_tag(reference)] if reference else None,
                 "Layers": layer_names}]
    entries.append(TarEntry.file("manifest.json", canonical_json(manifest)))
    _write_archive(path, where, entries, mtime)
    return image.descriptor()


def repo_tag(reference: str) -> str:
    """``v1`` -> ``v1:latest``; ``docker.io/library/x:1`` -> ``x:1``: the form ``docker load`` expects."""
    ref = Reference.parse(reference)
    name = ref.repository.removeprefix("library/") if ref.registry == "docker.io" else ref.name
    return f"{name}:{ref.tag or 'latest'}"


def _mismatch(layer: Layer) -> str:
    return f"layer {layer.digest} does not decompress to its diff_id {layer.diff_id}"


def _undecodable(layer: Layer, exc: BaseException) -> DigestMismatch:
    return DigestMismatch(f"layer {layer.digest} is corrupt: it does not decompress ({exc or type(exc).__name__})")


class _LayerTar(Verified):
    """A layer's tar, decompressed as it is read and checked against its diff_id and size."""

    def __init__(self, layer: Layer, size: int) -> None:
        self._layer = layer
        super().__init__(layer.uncompressed(), layer.diff_id, size, _mismatch(layer))

    def read(self, n: int = -1) -> bytes:
        try:
            return super().read(n)
        except DigestMismatch:
            raise
        except decode_errors() as exc:
            raise _undecodable(self._layer, exc) from None


def _uncompressed_size(layer: Layer) -> int:
    """The size of ``layer``'s tar, by one streamed decompression that also checks its diff_id (an
    uncompressed layer is its own tar: its size is known, and its bytes are checked when copied)."""
    if layer.digest == layer.diff_id:
        return layer.size
    hasher = hashlib.new(layer.diff_id.algorithm)
    size = 0
    try:
        with layer.uncompressed() as f:
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
                size += len(chunk)
    except decode_errors() as exc:
        raise _undecodable(layer, exc) from None
    if hasher.hexdigest() != layer.diff_id.hex:
        raise DigestMismatch(_mismatch(layer))
    return size


def _layer_entry(layer: Layer, name: str) -> TarEntry:
    size = _uncompressed_size(layer)
    return TarEntry(path=name, kind="file", size=size, opener=lambda: _LayerTar(layer, size))
