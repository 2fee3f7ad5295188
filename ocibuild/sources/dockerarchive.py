"""Bases from a ``docker save`` / ``podman save`` archive (``docker-archive:FILE[:REPO:TAG]``)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

from ..errors import DigestMismatch, ImageNotFound, SourceError
from ..image import MemoryImage, store_layer
from ..layers.compress import sniff
from ..spec import Descriptor, Digest, ImageConfig, ImageManifest, MediaType, Platform
from ..store import CHUNK, ContentStore
from .base import ANY_PLATFORM
from .layout import TarReader

_MEDIA = {"gzip": MediaType.OCI_LAYER_GZIP, "zstd": MediaType.OCI_LAYER_ZSTD, "none": MediaType.OCI_LAYER}


def _media_type(head: bytes) -> MediaType:
    return _MEDIA[sniff(head)]


def load_docker_archive(path: Path, reference: str | None, store: ContentStore,
                        platform: Platform | None) -> MemoryImage:
    """The image in a ``docker save`` archive (the one named by ``reference`` if it holds several);
    its layers are copied into ``store``."""
    where = f"docker-archive:{path}" + (f":{reference}" if reference else "")
    if not path.exists():
        raise ImageNotFound(f"base {where} not found: {path} does not exist")
    try:
        reader = TarReader(path)
    except (tarfile.TarError, OSError) as exc:
        raise SourceError(f"base {where}: cannot read the archive: {exc}") from None
    try:
        def read(name: str) -> bytes:
            try:
                return reader.read(name)
            except FileNotFoundError:
                raise SourceError(f"base {where}: {name} is missing from the archive") from None

        try:
            entries: list[dict[str, Any]] = json.loads(read("manifest.json"))
        except ValueError as exc:
            raise SourceError(f"base {where}: manifest.json is not valid JSON: {exc}") from None
        entry = _pick(entries, reference, where)
        config_raw = read(str(entry["Config"]))
        config = ImageConfig.from_json(config_raw)
        if platform is not None and platform is not ANY_PLATFORM and not config.platform.matches(platform):
            raise ImageNotFound(f"base {where} is a {config.platform} image, not {platform}")
        layer_names = list(entry.get("Layers") or [])
        if len(layer_names) != len(config.diff_ids):
            raise SourceError(f"base {where}: {len(layer_names)} layers but {len(config.diff_ids)} diff_ids")
        layers = []
        for name, diff_id in zip(layer_names, config.diff_ids, strict=True):
            try:
                f = reader.open(name)
            except FileNotFoundError:
                raise SourceError(f"base {where}: layer {name} is missing from the archive") from None
            with f, store.writer() as w:
                head = b""
                while chunk := f.read(CHUNK):
                    head = head or chunk[:4]
                    w.write(chunk)
                media = _media_type(head)
                if media == MediaType.OCI_LAYER and w.digest() != diff_id:  # uncompressed: digest is the diff_id
                    w.abort()
                    raise DigestMismatch(f"base {where}: layer {name} does not match diff_id {diff_id}")
                digest = w.commit()
                layers.append(store_layer(store, Descriptor(media_type=media, digest=digest, size=w.size), diff_id))
        manifest = ImageManifest(
            config=Descriptor(media_type=MediaType.OCI_CONFIG, digest=Digest.of(config_raw),
                              size=len(config_raw)),
            layers=tuple(layer.descriptor() for layer in layers),
        )
        return MemoryImage(manifest=manifest, config=config, config_bytes=config_raw,
                           manifest_bytes=manifest.to_json(), layers=tuple(layers))
    finally:
        reader.close()


def _pick(entries: list[dict[str, Any]], reference: str | None, where: str) -> dict[str, Any]:
    if not entries:
        raise ImageNotFound(f"base {where}: the archive holds no image")
    if reference is None:
        if len(entries) > 1:
            names = ", ".join(t for e in entries for t in e.get("RepoTags") or [])
            raise ImageNotFound(f"base {where} holds {len(entries)} images; name one as :REPO:TAG ({names})")
        return entries[0]
    for e in entries:
        tags = e.get("RepoTags") or []
        if reference in tags or any(str(t).split("/")[-1] == reference for t in tags):
            return e
    have = ", ".join(t for e in entries for t in e.get("RepoTags") or []) or "no tags"
    raise ImageNotFound(f"base {where}: no image tagged {reference!r} (it has: {have})")
