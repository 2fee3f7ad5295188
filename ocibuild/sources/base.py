"""What a base source yields, and the platform selection shared by every source."""

from __future__ import annotations

import platform as _platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import ImageNotFound, SourceError
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
from ..store import ContentStore


def host_platform() -> Platform:
    """The build machine's platform (``linux/amd64`` on x86-64)."""
    return Platform.create("linux", _platform.machine() or "amd64")


@dataclass(frozen=True, kw_only=True, slots=True)
class BaseImage:
    """A resolved base: its manifest (layer types as OCI), config, and where it came from."""

    manifest: ImageManifest
    config: ImageConfig
    digest: Digest | None = None  # manifest digest; None for scratch
    name: str = ""  # a registry reference for the base.name annotation; "" for local files
    platforms: tuple[Platform, ...] = ()  # every platform the base offers (an index's entries, or its own)

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        return self.manifest.layers


def scratch(platform: Platform | None) -> BaseImage:
    from ..spec import MediaType

    plat = platform if platform is not None and platform is not ANY_PLATFORM else host_platform()
    config = ImageConfig(platform=plat)
    raw = config.to_json()
    manifest = ImageManifest(
        config=Descriptor(media_type=MediaType.OCI_CONFIG, digest=Digest.of(raw), size=len(raw)), layers=()
    )
    return BaseImage(manifest=manifest, config=config, platforms=(plat,))


# Asks for "whichever the base has first": used to list what an index offers (``--platform all``).
ANY_PLATFORM = Platform(os="*", architecture="*")


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


def resolve_manifest(fetch: Callable[[Descriptor], bytes], top: Descriptor, store: ContentStore,
                     platform: Platform | None, where: str,
                     ingest: Callable[[Sequence[Descriptor]], None]) -> BaseImage:
    """Follow ``top`` (an index or a manifest) to one manifest for ``platform`` and ingest its blobs.

    ``fetch`` returns a verified small blob; ``ingest`` copies layer blobs into the store, verified.
    """
    desc = top
    platforms: tuple[Platform, ...] = ()
    for _ in range(4):  # an index may point at an index; never loop forever
        raw = fetch(desc)
        media = str(desc.media_type) or media_type_of(raw)
        if media in INDEX_TYPES:
            try:
                index = ImageIndex.from_json(raw)
            except ValueError as exc:
                raise SourceError(f"base {where}: invalid image index: {exc}") from None
            platforms = platforms or tuple(d.platform for d in offered(index) if d.platform is not None)
            desc = select_platform(index, platform, where)
            continue
        try:
            manifest = ImageManifest.from_json(raw)
        except ValueError as exc:
            raise SourceError(f"base {where}: invalid manifest: {exc}") from None
        config_raw = fetch(manifest.config)
        store.put_bytes(config_raw)
        try:
            config = ImageConfig.from_json(config_raw)
        except ValueError as exc:
            raise SourceError(f"base {where}: invalid image config: {exc}") from None
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
        ingest(manifest.layers)
        oci_layers = tuple(
            Descriptor(media_type=to_oci(d.media_type), digest=d.digest, size=d.size,
                       annotations=d.annotations, urls=d.urls)
            for d in manifest.layers
        )
        return BaseImage(
            manifest=ImageManifest(config=manifest.config, layers=oci_layers),
            config=config,
            digest=Digest.of(raw),
            platforms=platforms or (config.platform,),
        )
    raise SourceError(f"base {where}: image indexes nested too deeply")
