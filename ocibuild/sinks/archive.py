"""Single-file outputs: ``oci-archive:FILE[:TAG]`` (a tarred OCI layout) and
``docker-archive:FILE[:REPO:TAG]`` (what ``docker load`` / ``podman load`` read)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from ..errors import DigestMismatch
from ..image import Artifact, Blob, Image, all_blobs
from ..layers.tarwriter import TarEntry, TarOptions, write_tar
from ..spec import Descriptor, Digest, Reference, canonical_json
from ..spec.annotations import REF_NAME
from ..store import CHUNK
from .common import atomic_file, open_verified, writable_parent
from .layout import OCI_LAYOUT, updated_index


def _blob_entry(blob: Blob, name: str) -> TarEntry:
    return TarEntry(path=name, kind="file", size=blob.descriptor.size, opener=lambda: open_verified(blob))


def write_oci_archive(path: Path, tag: str | None, artifact: Artifact, mtime: int) -> Descriptor:
    """A tarred OCI layout holding ``artifact`` under ``tag``, entries stamped ``mtime``."""
    where = f"oci-archive:{path}" + (f":{tag}" if tag else "")
    entry = artifact.descriptor({REF_NAME: tag} if tag else None)
    entries = [
        TarEntry.file("oci-layout", OCI_LAYOUT),
        TarEntry.file("index.json", canonical_json(updated_index(None, entry, tag).to_dict())),
    ]
    entries += [_blob_entry(blob, blob.descriptor.digest.blob_name) for blob in all_blobs(artifact)]
    with atomic_file(path, where) as f:
        write_tar(entries, f, TarOptions(mtime=mtime))
    return entry


def write_docker_archive(path: Path, reference: str | None, image: Image, mtime: int) -> Descriptor:
    """Layers are written uncompressed (named by diff_id), as ``docker save`` does."""
    where = f"docker-archive:{path}" + (f":{reference}" if reference else "")
    config_name = f"{image.manifest.config.digest.hex}.json"
    entries = [TarEntry.file(config_name, image.config_bytes)]
    layer_names = []
    temps: list[Path] = []
    tmp_dir = writable_parent(path, where)
    try:
        for layer in image.layers:
            name = f"{layer.diff_id.hex}.tar"
            layer_names.append(name)
            if any(e.path == name for e in entries):
                continue
            temps.append(_untar_to_temp(layer.uncompressed(), layer.diff_id, tmp_dir, layer.digest))
            entries.append(TarEntry(path=name, kind="file", size=temps[-1].stat().st_size, source=temps[-1]))
        manifest = [{"Config": config_name, "RepoTags": [repo_tag(reference)] if reference else None,
                     "Layers": layer_names}]
        entries.append(TarEntry.file("manifest.json", canonical_json(manifest)))
        with atomic_file(path, where) as f:
            write_tar(entries, f, TarOptions(mtime=mtime))
    finally:
        for t in temps:
            with contextlib.suppress(FileNotFoundError):
                t.unlink()
    return image.descriptor()


def repo_tag(reference: str) -> str:
    """``v1`` -> ``v1:latest``; ``docker.io/library/x:1`` -> ``x:1``: the form ``docker load`` expects."""
    ref = Reference.parse(reference)
    name = ref.repository.removeprefix("library/") if ref.registry == "docker.io" else ref.name
    return f"{name}:{ref.tag or 'latest'}"


def _untar_to_temp(stream: BinaryIO, diff_id: Digest, tmp_dir: Path, digest: Digest) -> Path:
    """Copy a layer's tar stream into a hidden temp file beside the output, checking its diff_id."""
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix=".layer-")
    hasher = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, stream as f:
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
                out.write(chunk)
        if hasher.hexdigest() != diff_id.hex:
            raise DigestMismatch(f"layer {digest} does not decompress to its diff_id {diff_id}")
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)
