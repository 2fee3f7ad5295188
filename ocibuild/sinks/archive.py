"""Single-file outputs: ``oci-archive:FILE[:TAG]`` (a tarred OCI layout) and
``docker-archive:FILE[:REPO:TAG]`` (what ``docker load`` / ``podman load`` read)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ..image import Artifact, Image
from ..layers.compress import decompressor
from ..layers.tarwriter import TarEntry, TarOptions, write_tar
from ..spec import Digest, Reference, canonical_json, layer_compression
from ..store import CHUNK, ContentStore
from .common import atomic_file, verify_blob
from .layout import OCI_LAYOUT, REF_NAME, updated_index


def _blob_entry(store: ContentStore, digest: Digest, name: str) -> TarEntry:
    verify_blob(store, digest)
    return TarEntry(path=name, kind="file", size=store.size(digest), source=store.blob_path(digest))


def write_oci_archive(path: Path, tag: str | None, image: Artifact, store: ContentStore, mtime: int) -> None:
    where = f"oci-archive:{path}" + (f":{tag}" if tag else "")
    image.store_metadata(store)
    entries = [
        TarEntry.file("oci-layout", OCI_LAYOUT),
        TarEntry.file("index.json", canonical_json(
            updated_index(None, image.descriptor({REF_NAME: tag} if tag else None), tag).to_dict())),
    ]
    for desc in image.all_blobs():
        entries.append(_blob_entry(store, desc.digest, f"blobs/{desc.digest.algorithm}/{desc.digest.hex}"))
    with atomic_file(path, where) as f:
        write_tar(entries, f, TarOptions(mtime=mtime))


def write_docker_archive(path: Path, reference: str | None, image: Image, store: ContentStore,
                         mtime: int) -> None:
    """Layers are written uncompressed (named by diff_id), as ``docker save`` does."""
    where = f"docker-archive:{path}" + (f":{reference}" if reference else "")
    image.store_metadata(store)
    config_name = f"{image.manifest.config.digest.hex}.json"
    entries = [TarEntry.file(config_name, image.config_bytes)]
    layer_names = []
    temps: list[Path] = []
    try:
        for desc, diff_id in zip(image.manifest.layers, image.config.diff_ids, strict=True):
            name = f"{diff_id.hex}.tar"
            layer_names.append(name)
            if any(e.path == name for e in entries):
                continue
            algorithm = layer_compression(desc.media_type)
            if algorithm is None:
                entries.append(_blob_entry(store, desc.digest, name))
                continue
            temps.append(_decompress(store, desc.digest, algorithm, diff_id))
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


def repo_tag(reference: str) -> str:
    """``v1`` -> ``v1:latest``; ``docker.io/library/x:1`` -> ``x:1``: the form ``docker load`` expects."""
    ref = Reference.parse(reference)
    name = ref.repository.removeprefix("library/") if ref.registry == "docker.io" else ref.name
    return f"{name}:{ref.tag or 'latest'}"


def _decompress(store: ContentStore, digest: Digest, algorithm: str, diff_id: Digest) -> Path:
    import hashlib

    from ..errors import DigestMismatch

    fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="layer-")
    hasher = hashlib.sha256()
    try:
        d = decompressor(algorithm)
        with os.fdopen(fd, "wb") as out, store.open(digest) as f:
            while chunk := f.read(CHUNK):
                data = d.decompress(chunk)
                hasher.update(data)
                out.write(data)
        if hasher.hexdigest() != diff_id.hex:
            raise DigestMismatch(f"layer {digest} does not decompress to its diff_id {diff_id}")
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)
