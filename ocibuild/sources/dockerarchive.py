"""Bases from a ``docker save`` / ``podman save`` archive (``docker-archive:FILE[:REPO:TAG]``).

``manifest.json`` and the config go through the checked parsers of ``ocibuild.spec``; each layer is
copied into the store, its compression taken from its bytes, and its diff_id checked against the
config (one streamed pass the first time a layer is seen, remembered in the store afterwards).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from ..errors import ImageNotFound, SourceError
from ..image import MemoryImage, store_layer
from ..layers.compress import sniff
from ..spec import (
    ArchiveEntry,
    Descriptor,
    Digest,
    ImageConfig,
    ImageManifest,
    MediaType,
    Platform,
    SpecError,
    archive_manifest,
)
from ..store import CHUNK, ContentStore
from .base import ANY_PLATFORM, check_layer, malformed
from .layout import MAX_METADATA, NotARegularFile, TarReader, TooLarge, open_archive

_MEDIA = {"gzip": MediaType.OCI_LAYER_GZIP, "zstd": MediaType.OCI_LAYER_ZSTD, "none": MediaType.OCI_LAYER}


def _media_type(head: bytes) -> MediaType:
    return _MEDIA[sniff(head)]


def _read(reader: TarReader, name: str, where: str) -> bytes:
    try:
        return reader.read(name, MAX_METADATA)
    except FileNotFoundError:
        raise SourceError(f"base {where}: {name} is missing from the archive") from None
    except (NotARegularFile, TooLarge) as exc:
        raise malformed(where, name, exc, fix="the archive is malformed") from None
    except (OSError, tarfile.TarError) as exc:
        raise SourceError(f"base {where}: cannot read {name}: {exc}") from None


def load_docker_archive(path: Path, reference: str | None, store: ContentStore,
                        platform: Platform | None) -> MemoryImage:
    """The image in a ``docker save`` archive (the one named by ``reference`` if it holds several);
    its layers are copied into ``store``."""
    where = f"docker-archive:{path}" + (f":{reference}" if reference else "")
    if not path.exists():
        raise ImageNotFound(f"base {where} not found: {path} does not exist")
    reader = open_archive(path, where)
    try:
        try:
            entries = archive_manifest(_read(reader, "manifest.json", where))
        except SpecError as exc:
            raise malformed(where, "manifest.json", exc, fix="the archive is malformed") from None
        entry = _pick(entries, reference, where)
        config_raw = _read(reader, entry.config, where)
        try:
            config = ImageConfig.from_json(config_raw)
        except SpecError as exc:
            raise malformed(where, f"config {entry.config}", exc) from None
        if platform is not None and platform is not ANY_PLATFORM and not config.platform.matches(platform):
            raise ImageNotFound(f"base {where} is a {config.platform} image, not {platform}")
        if len(entry.layers) != len(config.diff_ids):
            raise malformed(where, "manifest.json", f"it lists {len(entry.layers)} layers but the config lists "
                            f"{len(config.diff_ids)} diff_ids")
        layers = []
        for name, diff_id in zip(entry.layers, config.diff_ids, strict=True):
            try:
                f = reader.open(name)
            except FileNotFoundError:
                raise SourceError(f"base {where}: layer {name} is missing from the archive") from None
            except NotARegularFile as exc:
                raise malformed(where, f"layer {name}", exc, fix="the archive is malformed") from None
            with f, store.writer() as w:
                head = b""
                try:
                    while chunk := f.read(CHUNK):
                        head = head or chunk[:4]
                        w.write(chunk)
                except (OSError, tarfile.TarError) as exc:
                    raise SourceError(f"base {where}: cannot read layer {name}: {exc}") from None
                digest = w.commit()
            desc = Descriptor(media_type=_media_type(head), digest=digest, size=w.size)
            check_layer(store, desc, diff_id, where)
            layers.append(store_layer(store, desc, diff_id))
        manifest = ImageManifest(
            config=Descriptor(media_type=MediaType.OCI_CONFIG, digest=Digest.of(config_raw),
                              size=len(config_raw)),
            layers=tuple(layer.descriptor() for layer in layers),
        )
        return MemoryImage(manifest=manifest, config=config, config_bytes=config_raw,
                           manifest_bytes=manifest.to_json(), layers=tuple(layers))
    finally:
        reader.close()


def _pick(entries: tuple[ArchiveEntry, ...], reference: str | None, where: str) -> ArchiveEntry:
    if not entries:
        raise ImageNotFound(f"base {where}: the archive holds no image")
    if reference is None:
        if len(entries) > 1:
            names = ", ".join(t for e in entries for t in e.repo_tags)
            raise ImageNotFound(f"base {where} holds {len(entries)} images; name one as :REPO:TAG ({names})")
        return entries[0]
    for e in entries:
        if reference in e.repo_tags or any(t.split("/")[-1] == reference for t in e.repo_tags):
            return e
    have = ", ".join(t for e in entries for t in e.repo_tags) or "no tags"
    raise ImageNotFound(f"base {where}: no image tagged {reference!r} (it has: {have})")
