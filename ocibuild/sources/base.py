"""What every base source shares: platform selection and the walk from a top-level descriptor
(an index or a manifest) to one ``Image``.

A source that serves manifests and blobs by descriptor (an OCI layout, an archive, a registry) is a
``ManifestSource``: a way to fetch small verified blobs, the top descriptor, and a way to make a
``Layer`` for a layer descriptor (eagerly stored, or lazy). ``resolve`` and ``platforms`` do the rest.
"""

from __future__ import annotations

import hashlib
import platform as _platform
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ImageNotFound, MalformedImage, SourceError
from ..image import Layer, MemoryImage
from ..spec import (
    INDEX_TYPES,
    Descriptor,
    Digest,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    Platform,
    SpecError,
    check_image_manifest,
    layer_compression,
    parse_manifest_or_index,
    to_oci,
)
from ..store import CHUNK, ContentStore


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


def malformed(where: str, what: str, problem: object, *, fix: str = "the image is malformed") -> MalformedImage:
    """The one-line error for a base whose ``what`` (``manifest sha256:…``) breaks the spec."""
    return MalformedImage(f"base {where}: {what}: {problem}; {fix}")


def _label(desc: Descriptor) -> str:
    return f"{'index' if str(desc.media_type) in INDEX_TYPES else 'manifest'} {desc.digest}"


def _document(source: ManifestSource, desc: Descriptor) -> tuple[ImageManifest | ImageIndex, bytes]:
    raw = source.fetch(desc)
    try:
        return parse_manifest_or_index(raw, desc.media_type), raw
    except SpecError as exc:
        raise malformed(source.where, _label(desc), exc) from None


def _image(source: ManifestSource, desc: Descriptor, manifest: ImageManifest) -> tuple[ImageConfig, bytes]:
    """The config of an image manifest, after checking that the manifest is an image's."""
    try:
        check_image_manifest(manifest)
    except SpecError as exc:
        raise malformed(source.where, _label(desc), exc) from None
    raw = source.fetch(manifest.config)
    try:
        return ImageConfig.from_json(raw), raw
    except SpecError as exc:
        raise malformed(source.where, f"config {manifest.config.digest}", exc) from None


def _as_oci(d: Descriptor) -> Descriptor:
    """A layer descriptor with the OCI media type for its bytes (Docker types map 1:1)."""
    return Descriptor(media_type=to_oci(d.media_type), digest=d.digest, size=d.size, annotations=d.annotations,
                      urls=d.urls)


def platforms(source: ManifestSource) -> tuple[Platform, ...]:
    """Every platform ``source`` offers, reading only the top index (or one manifest and its config)."""
    doc, _ = _document(source, source.top)
    if isinstance(doc, ImageIndex):
        found = tuple(d.platform for d in offered(doc) if d.platform is not None)
        if found:
            return found
        raise ImageNotFound(f"base {source.where}: its index names no platforms; build with --platform")
    return (_image(source, source.top, doc)[0].platform,)


def manifest_chain(source: ManifestSource, platform: Platform | None) -> tuple[Descriptor, ...]:
    """The descriptors from ``source.top`` down to its image manifest for ``platform``: ``(manifest,)``
    for a lone image, ``(index, manifest)`` for an index. Each carries the media type its document
    declares and no annotations. Reads only indexes (and a lone manifest's config when ``platform``
    is given, to check it), never a layer: what the artifacts attached to an image are found by."""
    chain: list[Descriptor] = []
    desc = source.top
    for _ in range(4):
        doc, _raw = _document(source, desc)
        chain.append(Descriptor(media_type=doc.media_type, digest=desc.digest, size=desc.size))
        if isinstance(doc, ImageIndex):
            desc = select_platform(doc, platform, source.where)
            continue
        if platform is not None and platform is not ANY_PLATFORM:
            config = _image(source, desc, doc)[0]
            if not config.platform.matches(platform):
                raise ImageNotFound(f"{source.where} is a {config.platform} image, not {platform}")
        return tuple(chain)
    raise SourceError(f"{source.where}: image indexes nested too deeply")


def resolve(source: ManifestSource, platform: Platform | None) -> MemoryImage:
    """Follow ``source.top`` (an index or a manifest) to the image for ``platform``.

    Every document on the way is checked against the spec (field types, media types, an image
    config and layers, one diff_id per layer). The image is the source's own (its manifest bytes and
    digest unchanged); its layers are what ``make_layer`` returns, in order, described with OCI
    media types (a Docker-typed base's layers are the same bytes), so images built on it are pure OCI."""
    where = source.where
    desc = source.top
    for _ in range(4):  # an index may point at an index; never loop forever
        doc, raw = _document(source, desc)
        if isinstance(doc, ImageIndex):
            desc = select_platform(doc, platform, where)
            continue
        config, config_raw = _image(source, desc, doc)
        if platform is not None and platform is not ANY_PLATFORM and not config.platform.matches(platform):
            raise ImageNotFound(
                f"base {where} is a {config.platform} image, not {platform}; "
                f"build for {config.platform} or use a base that offers {platform}"
            )
        if len(config.diff_ids) != len(doc.layers):
            raise malformed(where, _label(desc), f"it has {len(doc.layers)} layers but its config lists "
                            f"{len(config.diff_ids)} diff_ids")
        layers = tuple(source.make_layer(_as_oci(d), diff_id)
                       for d, diff_id in zip(doc.layers, config.diff_ids, strict=True))
        return MemoryImage(manifest=doc, config=config, config_bytes=config_raw, manifest_bytes=raw,
                           layers=layers)
    raise SourceError(f"base {where}: image indexes nested too deeply")


# --------------------------------------------------------------------------------------------------
# diff_ids: each layer decompressed once, as a stream, and the result remembered in the store
# --------------------------------------------------------------------------------------------------

_RECORD = "diffid-{algorithm}-{hex}-{diff_algorithm}"


def _decompressed_digest(store: ContentStore, digest: Digest, algorithm: str, where: str) -> tuple[Digest, str]:
    from ..layers.compress import decode_errors, open_decompressed, sniff

    hasher = hashlib.new(algorithm)
    raw = store.open(digest)
    compression = sniff(raw.read(4))
    raw.seek(0)
    try:
        with open_decompressed(raw) as stream:
            while chunk := stream.read(CHUNK):
                hasher.update(chunk)
    except decode_errors() as exc:
        raise malformed(where, f"layer {digest}", f"its {compression} data cannot be decompressed ({exc})",
                        fix="the image is corrupt") from None
    finally:
        raw.close()
    return Digest.from_hasher(hasher), compression


def layer_diff_id(store: ContentStore, digest: Digest, where: str, algorithm: str = "sha256") -> tuple[Digest, str]:
    """The diff_id of the stored layer blob ``digest`` (the ``algorithm`` digest of its decompressed
    tar) and its compression (``gzip``, ``zstd``, ``none``, from the bytes). Computed in one streamed
    pass the first time, then read from the store's records."""
    key = _RECORD.format(algorithm=digest.algorithm, hex=digest.hex, diff_algorithm=algorithm)
    record = store.get_record(key)
    if isinstance(record, dict) and record.get("compression") in ("gzip", "zstd", "none"):
        try:
            return Digest.parse(record["diff_id"]), str(record["compression"])
        except (KeyError, ValueError):
            pass
    diff_id, compression = _decompressed_digest(store, digest, algorithm, where)
    store.put_record(key, {"diff_id": str(diff_id), "compression": compression})
    return diff_id, compression


def check_layer(store: ContentStore, desc: Descriptor, diff_id: Digest, where: str) -> None:
    """Raise ``MalformedImage`` unless the stored blob of layer ``desc`` is compressed the way its
    media type says and decompresses to ``diff_id``."""
    declared = layer_compression(desc.media_type) or "none"
    if desc.digest == diff_id:  # the blob is the tar itself
        actual, compression = diff_id, "none"
    else:
        actual, compression = layer_diff_id(store, desc.digest, where, diff_id.algorithm)
    if compression != declared:
        raise malformed(where, f"layer {desc.digest}", f"its data is {_COMPRESSION[compression]} but its media "
                        f"type {desc.media_type} says {_COMPRESSION[declared]}")
    if actual != diff_id:
        what = "its digest is" if compression == "none" else "it decompresses to"
        raise malformed(where, f"layer {desc.digest}", f"{what} {actual}, but the config's rootfs.diff_ids "
                        f"lists {diff_id}")


_COMPRESSION = {"gzip": "gzip-compressed", "zstd": "zstd-compressed", "none": "an uncompressed tar"}
