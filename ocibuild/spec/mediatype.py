"""Media types of OCI and Docker v2 images: a closed set of constants."""

from __future__ import annotations

import re
from enum import StrEnum


class MediaType(StrEnum):
    """Known media types. Unknown ones (artifacts) are kept as plain strings by descriptors."""

    OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
    OCI_INDEX = "application/vnd.oci.image.index.v1+json"
    OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
    OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
    OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
    OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
    OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
    OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
    OCI_EMPTY = "application/vnd.oci.empty.v1+json"
    DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
    DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
    DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
    DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
    DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
    DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

    @classmethod
    def of(cls, text: str) -> MediaType | str:
        """The constant for ``text`` if known, else ``text`` itself."""
        try:
            return cls(text)
        except ValueError:
            return text


MANIFEST_TYPES = frozenset({MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST})
INDEX_TYPES = frozenset({MediaType.OCI_INDEX, MediaType.DOCKER_MANIFEST_LIST})
CONFIG_TYPES = frozenset({MediaType.OCI_CONFIG, MediaType.DOCKER_CONFIG})
LAYER_TYPES = frozenset({
    MediaType.OCI_LAYER, MediaType.OCI_LAYER_GZIP, MediaType.OCI_LAYER_ZSTD, MediaType.OCI_LAYER_NONDIST,
    MediaType.OCI_LAYER_NONDIST_GZIP, MediaType.OCI_LAYER_NONDIST_ZSTD, MediaType.DOCKER_LAYER,
    MediaType.DOCKER_LAYER_GZIP, MediaType.DOCKER_LAYER_ZSTD, MediaType.DOCKER_FOREIGN_LAYER,
})
"""Media types of filesystem layers (a tar, plain or compressed) that an image's ``layers`` may list."""

# RFC 6838 type/subtype, as the OCI descriptor schema checks it
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


def is_media_type(text: str) -> bool:
    """Whether ``text`` has the ``type/subtype`` form the OCI spec requires of a ``mediaType``."""
    return _MEDIA_TYPE.fullmatch(text) is not None

# Docker layer/config types and the OCI type with the same bytes.
_TO_OCI = {
    MediaType.DOCKER_MANIFEST: MediaType.OCI_MANIFEST,
    MediaType.DOCKER_MANIFEST_LIST: MediaType.OCI_INDEX,
    MediaType.DOCKER_CONFIG: MediaType.OCI_CONFIG,
    MediaType.DOCKER_LAYER: MediaType.OCI_LAYER,
    MediaType.DOCKER_LAYER_GZIP: MediaType.OCI_LAYER_GZIP,
    MediaType.DOCKER_LAYER_ZSTD: MediaType.OCI_LAYER_ZSTD,
    MediaType.DOCKER_FOREIGN_LAYER: MediaType.OCI_LAYER_NONDIST_GZIP,
}


def to_oci(media_type: MediaType | str) -> MediaType | str:
    """The OCI media type for the same content (Docker types map 1:1); others unchanged."""
    known = MediaType.of(str(media_type))
    if isinstance(known, MediaType) and known in _TO_OCI:
        return _TO_OCI[known]
    return media_type


def layer_compression(media_type: MediaType | str) -> str | None:
    """``"gzip"``, ``"zstd"`` or ``None`` (uncompressed) for a layer media type."""
    text = str(media_type)
    if text.endswith(("+gzip", ".gzip")):
        return "gzip"
    if text.endswith(("+zstd", ".zstd")):
        return "zstd"
    return None
