"""The pure OCI data model: digests, media types, platforms, descriptors, manifests, indexes,
configs and references. Standard library only, no I/O (a test enforces this).

Every parser raises :class:`SpecError` (a ``ValueError``) naming the field that is wrong, and
nothing else, whatever the input; callers that read images add where the document came from.
"""

from .archive import ArchiveEntry, archive_manifest
from .canonical import canonical_json
from .config import ContainerConfig, History, ImageConfig
from .descriptor import Descriptor
from .digest import Digest
from .document import MAX_DEPTH, SpecError, parse_json, parse_object
from .manifest import ImageIndex, ImageManifest, check_image_manifest, media_type_of, parse_manifest_or_index
from .mediatype import (
    CONFIG_TYPES,
    INDEX_TYPES,
    LAYER_TYPES,
    MANIFEST_TYPES,
    MediaType,
    is_media_type,
    layer_compression,
    to_oci,
)
from .platform import Platform
from .reference import Reference

__all__ = [
    "CONFIG_TYPES",
    "INDEX_TYPES",
    "LAYER_TYPES",
    "MANIFEST_TYPES",
    "MAX_DEPTH",
    "ArchiveEntry",
    "ContainerConfig",
    "Descriptor",
    "Digest",
    "History",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "MediaType",
    "Platform",
    "Reference",
    "SpecError",
    "archive_manifest",
    "canonical_json",
    "check_image_manifest",
    "is_media_type",
    "layer_compression",
    "media_type_of",
    "parse_json",
    "parse_manifest_or_index",
    "parse_object",
    "to_oci",
]
