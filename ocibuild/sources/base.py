"""What every base source shares: platform selection and the walk from a top-level descriptor
(an index or a manifest) to one ``Image``.

A source that serves manifests and blobs by descriptor (an OCI layout, an archive, a registry) is a
``ManifestSource``: a way to fetch small verified blobs, the top descriptor, and a way to make a
``Layer`` for a layer descriptor (eagerly stored, or lazy). ``resolve`` and ``platforms`` do the rest.
"""

from __future__ import annotations

import platform as _platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import ImageNotFound, SourceError
from ..image import Layer, MemoryImage
from ..spec import (
    INDEX_TYPES,
    Descriptor,
    Digest,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    Platform,
    media_type_of,
    to_oci,
)


def host_platform() -> Platform:
    """The build machine's platform (``linux/amd64`` on x86-64)."""
    return Platform.create("linux", _platform.machine() or "amd64")


# Asks for "whichever the base has first": used to list what an index offers (``--platform all``).
ANY_PLATFORM = Platform(os="*", architecture="*")


def scratch(platform: Platform | None) -> MemoryImage:
    """The empty image (``FROM scratch``) for ``platform`` (default: the host's)."""
    plat = platform if platform is not None and platform is not ANY_PLATFORM else host_platform()
    return MemoryImage.assemble(ImageConfig(platform=plat), ())


def offered(index: ImageIndex) -> list[Descriptor]:
    """Index entries that are runnable images (not attestations with platform unknown/unknown)."""
    return [d for d in index.manifests if d.platform is None or d.platform.os != "unknown"]


def select_platform(index: ImageIndex, wanted: Platform | None, where: str) -> Descriptor:
    """The manifest of ``index`` for ``wanted`` (the host's if None; the only one if just one)."""
    manifests = offered(index)
    if (wanted is None and len(manifests) == 1) or (wanted is ANY_PLATFORM and manifests):
        return manifests[0]
    target = wanted or host_platform()
    for d in manifests:
        if d.platform is not None and d.platform.matches(target):
            return d
    have = ", ".join(str(d.platform) for d in manifests if d.platform) or "no platforms"
    raise ImageNotFound(
        f"base {where} has no image for {target} (it has: {have}); choose one of those with --platform"
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ManifestSource:
    """Manifests and blobs by descriptor: ``fetch`` returns a small blob verified by digest and size,
    ``make_layer`` turns a layer descriptor and its diff_id into a ``Layer``."""

    where: str
    top: Descriptor
    fetch: Callable[[Descriptor], bytes]
    make_layer: Callable[[Descriptor, Digest], Layer]


_T = TypeVar("_T")


def _parse(parser: Callable[[bytes], _T], raw: bytes, what: str, where: str) -> _T:
    try:
        return parser(raw)
    except ValueError as exc:
        raise SourceError(f"base {where}: invalid {what}: {exc}") from None


def _parse_index(raw: bytes, where: str) -> ImageIndex:
    return _parse(ImageIndex.from_json, raw, "image index", where)


def _parse_manifest(raw: bytes, where: str) -> ImageManifest:
    return _parse(ImageManifest.from_json, raw, "manifest", where)


def _parse_config(raw: bytes, where: str) -> ImageConfig:
    return _parse(ImageConfig.from_json, raw, "image config", where)


def _is_index(desc: Descriptor, raw: bytes) -> bool:
    return (str(desc.media_type) or media_type_of(raw)) in INDEX_TYPES


def _as_oci(d: Descriptor) -> Descriptor:
    """A layer descriptor with the OCI media type for its bytes (Docker types map 1:1)."""
    return Descriptor(media_type=to_oci(d.media_type), digest=d.digest, size=d.size, annotations=d.annotations,
                      urls=d.urls)


def platforms(source: ManifestSource) -> tuple[Platform, ...]:
    """Every platform ``source`` offers, reading only the top index (or one manifest and its config)."""
    raw = source.fetch(source.top)
    if _is_index(source.top, raw):
        found = tuple(d.platform for d in offered(_parse_index(raw, source.where)) if d.platform is not None)
        if found:
            return found
        raise ImageNotFound(f"base {source.where}: its index names no platforms; build with --platform")
    manifest = _parse_manifest(raw, source.where)
    return (_parse_config(source.fetch(manifest.config), source.where).platform,)


def resolve(source: ManifestSource, platform: Platform | None) -> MemoryImage:
    """Follow ``source.top`` (an index or a manifest) to the image for ``platform``.

    The image is the source's own (its manifest bytes and digest unchanged); its layers are what
    ``make_layer`` returns, in order, described with OCI media types (a Docker-typed base's layers
    are the same bytes), so images built on it are pure OCI."""
    where = source.where
    desc = source.top
    for _ in range(4):  # an index may point at an index; never loop forever
        raw = source.fetch(desc)
        if _is_index(desc, raw):
            desc = select_platform(_parse_index(raw, where), platform, where)
            continue
        manifest = _parse_manifest(raw, where)
        config_raw = source.fetch(manifest.config)
        config = _parse_config(config_raw, where)
        if platform is not None and platform is not ANY_PLATFORM and not config.platform.matches(platform):
            raise ImageNotFound(
                f"base {where} is a {config.platform} image, not {platform}; "
                f"build for {config.platform} or use a base that offers {platform}"
            )
        if len(config.diff_ids) != len(manifest.layers):
            raise SourceError(
                f"base {where}: manifest has {len(manifest.layers)} layers but config lists "
                f"{len(config.diff_ids)} diff_ids; the base image is corrupt"
            )
        layers = tuple(source.make_layer(_as_oci(d), diff_id)
                       for d, diff_id in zip(manifest.layers, config.diff_ids, strict=True))
        return MemoryImage(manifest=manifest, config=config, config_bytes=config_raw, manifest_bytes=raw,
                           layers=layers)
    raise SourceError(f"base {where}: image indexes nested too deeply")
