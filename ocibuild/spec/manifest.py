"""Image manifests and image indexes (OCI, plus the Docker v2 equivalents when reading)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .canonical import canonical_json
from .descriptor import Descriptor
from .document import (
    SpecError,
    as_object,
    field_name,
    get_int,
    get_items,
    get_object,
    get_str,
    get_str_map,
    kind_of,
    parse_object,
    required,
)
from .mediatype import CONFIG_TYPES, INDEX_TYPES, LAYER_TYPES, MANIFEST_TYPES, MediaType


def _load(raw: bytes, what: str) -> dict[str, Any]:
    data = parse_object(raw, what)
    version = data.get("schemaVersion")
    if type(version) is not int or version != 2:
        shown = version if isinstance(version, int | float | bool) or version is None else kind_of(version)
        raise SpecError(f"{what} has schemaVersion {shown!r}; only 2 is supported")
    return data


def _has_manifest_fields(data: Mapping[str, Any]) -> bool:
    return "config" in data or "layers" in data


def _with_optional(out: dict[str, Any], annotations: Mapping[str, str], subject: Descriptor | None,
                   artifact_type: str) -> dict[str, Any]:
    """The optional fields manifests and indexes share, added only when set."""
    if annotations:
        out["annotations"] = dict(annotations)
    if subject is not None:
        out["subject"] = subject.to_dict()
    if artifact_type:
        out["artifactType"] = artifact_type
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageManifest:
    """An image manifest: one config and an ordered list of layers."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: MediaType | str = MediaType.OCI_MANIFEST
    annotations: Mapping[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "") -> ImageManifest:
        """Parse a manifest object; ``SpecError`` naming the field if one is missing or mistyped."""
        data = as_object(data, path)
        get_int(data, "schemaVersion", path)
        subject = get_object(data, "subject", path)
        return cls(
            config=Descriptor.from_dict(required(data, "config", path), field_name(path, "config")),
            layers=get_items(data, "layers", path, Descriptor.from_dict),
            media_type=MediaType.of(get_str(data, "mediaType", path) or MediaType.OCI_MANIFEST),
            annotations=get_str_map(data, "annotations", path),
            subject=Descriptor.from_dict(subject, field_name(path, "subject")) if subject else None,
            artifact_type=get_str(data, "artifactType", path),
        )

    @classmethod
    def from_json(cls, raw: bytes) -> ImageManifest:
        return cls._from_loaded(_load(raw, "manifest"))

    @classmethod
    def _from_loaded(cls, data: dict[str, Any]) -> ImageManifest:
        media_type = get_str(data, "mediaType", "")
        if media_type and media_type not in MANIFEST_TYPES:
            raise SpecError(f"not an image manifest: mediaType {media_type[:200]!r}")
        if "manifests" in data and not _has_manifest_fields(data):
            raise SpecError("not an image manifest: it lists 'manifests', as an image index does")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": str(self.media_type),
            "config": self.config.to_dict(),
            "layers": [d.to_dict() for d in self.layers],
        }
        return _with_optional(out, self.annotations, self.subject, self.artifact_type)

    def to_json(self) -> bytes:
        """Canonical bytes; their sha256 is the manifest digest."""
        return canonical_json(self.to_dict())


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageIndex:
    """An image index (or Docker manifest list): manifests for several platforms."""

    manifests: tuple[Descriptor, ...]
    media_type: MediaType | str = MediaType.OCI_INDEX
    annotations: Mapping[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "") -> ImageIndex:
        """Parse an index object; ``SpecError`` naming the field if one is mistyped."""
        data = as_object(data, path)
        get_int(data, "schemaVersion", path)
        subject = get_object(data, "subject", path)
        return cls(
            manifests=get_items(data, "manifests", path, Descriptor.from_dict),
            media_type=MediaType.of(get_str(data, "mediaType", path) or MediaType.OCI_INDEX),
            annotations=get_str_map(data, "annotations", path),
            subject=Descriptor.from_dict(subject, field_name(path, "subject")) if subject else None,
            artifact_type=get_str(data, "artifactType", path),
        )

    @classmethod
    def from_json(cls, raw: bytes) -> ImageIndex:
        return cls._from_loaded(_load(raw, "index"))

    @classmethod
    def _from_loaded(cls, data: dict[str, Any]) -> ImageIndex:
        media_type = get_str(data, "mediaType", "")
        if media_type and media_type not in INDEX_TYPES:
            raise SpecError(f"not an image index: mediaType {media_type[:200]!r}")
        if "manifests" not in data and _has_manifest_fields(data):
            raise SpecError("not an image index: it has 'config' and 'layers', as an image manifest does")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": str(self.media_type),
            "manifests": [d.to_dict() for d in self.manifests],
        }
        return _with_optional(out, self.annotations, self.subject, self.artifact_type)

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())


def media_type_of(raw: bytes) -> str:
    """The media type a manifest-like document declares (or implies by its fields)."""
    data = _load(raw, "manifest")
    declared = get_str(data, "mediaType", "")
    if declared:
        return declared
    return str(MediaType.OCI_INDEX if "manifests" in data else MediaType.OCI_MANIFEST)


def parse_manifest_or_index(raw: bytes, declared: MediaType | str = "") -> ImageManifest | ImageIndex:
    """Parse what a descriptor of media type ``declared`` points at: an image manifest or an index.

    The descriptor, the document's own ``mediaType`` and its fields must agree (``declared`` ""
    means: tell by the document). ``SpecError`` says how they disagree.

    >>> parse_manifest_or_index(b'{"schemaVersion": 2, "manifests": []}').manifests
    ()
    """
    declared = str(declared)
    data = _load(raw, "document")
    own = get_str(data, "mediaType", "")
    if declared and declared not in MANIFEST_TYPES | INDEX_TYPES:
        raise SpecError(f"its descriptor's media type {declared[:200]!r} is not an image manifest or index")
    if own and declared and own != declared:
        raise SpecError(f"its descriptor says {declared} but the document's mediaType is {own[:200]!r}")
    kind = own or declared or (MediaType.OCI_INDEX if "manifests" in data else MediaType.OCI_MANIFEST)
    if kind in INDEX_TYPES:
        if "manifests" not in data and _has_manifest_fields(data):
            raise SpecError(f"its media type says {kind} but the document is an image manifest "
                            "(it has 'config' and 'layers')")
        return ImageIndex._from_loaded(data)
    if kind in MANIFEST_TYPES:
        if "manifests" in data and not _has_manifest_fields(data):
            raise SpecError(f"its media type says {kind} but the document is an image index (it lists 'manifests')")
        return ImageManifest._from_loaded(data)
    raise SpecError(f"mediaType {own[:200]!r} is not an image manifest or index")


def check_image_manifest(manifest: ImageManifest) -> None:
    """Raise ``SpecError`` unless ``manifest`` describes a container image: an image config and
    filesystem layers (not an artifact such as a Helm chart or a signature)."""
    config_type = str(manifest.config.media_type)
    if config_type not in CONFIG_TYPES:
        raise SpecError(f"'config.mediaType' is {config_type[:200]!r}, not an image config: this is an artifact, "
                        "not a container image")
    for i, layer in enumerate(manifest.layers):
        if str(layer.media_type) not in LAYER_TYPES:
            raise SpecError(f"'layers[{i}].mediaType' is {str(layer.media_type)[:200]!r}, not a layer media type")
