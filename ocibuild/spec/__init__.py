"""The pure OCI data model: digests, media types, platforms, descriptors, manifests, indexes,
configs and references. Standard library only, no I/O (a test enforces this)."""

from .canonical import canonical_json
from .config import ContainerConfig, History, ImageConfig
from .descriptor import Descriptor
from .digest import Digest
from .manifest import ImageIndex, ImageManifest, media_type_of
from .mediatype import INDEX_TYPES, MANIFEST_TYPES, MediaType, layer_compression, to_oci
from .platform import Platform
from .reference import Reference

__all__ = [
    "INDEX_TYPES",
    "MANIFEST_TYPES",
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
    "canonical_json",
    "layer_compression",
    "media_type_of",
    "to_oci",
]
