"""Image manifests and image indexes (OCI, plus the Docker v2 equivalents when reading)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .canonical import canonical_json
from .descriptor import Descriptor
from .mediatype import INDEX_TYPES, MANIFEST_TYPES, MediaType


def _load(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} is not a JSON object")
    if data.get("schemaVersion") != 2:
        raise ValueError(f"{what} has schemaVersion {data.get('schemaVersion')!r}; only 2 is supported")
    return data


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
    def from_dict(cls, data: Mapping[str, Any]) -> ImageManifest:
        try:
            return cls(
                config=Descriptor.from_dict(data["config"]),
                layers=tuple(Descriptor.from_dict(d) for d in data.get("layers") or ()),
                media_type=MediaType.of(str(data.get("mediaType") or MediaType.OCI_MANIFEST)),
                annotations=dict(data.get("annotations") or {}),
                subject=Descriptor.from_dict(data["subject"]) if data.get("subject") else None,
                artifact_type=str(data.get("artifactType") or ""),
            )
        except KeyError as exc:
            raise ValueError(f"manifest is missing {exc.args[0]!r}") from None

    @classmethod
    def from_json(cls, raw: bytes) -> ImageManifest:
        data = _load(raw, "manifest")
        if data.get("mediaType", MediaType.OCI_MANIFEST) not in MANIFEST_TYPES:
            raise ValueError(f"not an image manifest: mediaType {data.get('mediaType')!r}")
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
    def from_dict(cls, data: Mapping[str, Any]) -> ImageIndex:
        return cls(
            manifests=tuple(Descriptor.from_dict(d) for d in data.get("manifests") or ()),
            media_type=MediaType.of(str(data.get("mediaType") or MediaType.OCI_INDEX)),
            annotations=dict(data.get("annotations") or {}),
            subject=Descriptor.from_dict(data["subject"]) if data.get("subject") else None,
            artifact_type=str(data.get("artifactType") or ""),
        )

    @classmethod
    def from_json(cls, raw: bytes) -> ImageIndex:
        data = _load(raw, "index")
        if data.get("mediaType", MediaType.OCI_INDEX) not in INDEX_TYPES:
            raise ValueError(f"not an image index: mediaType {data.get('mediaType')!r}")
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
    declared = data.get("mediaType")
    if declared:
        return str(declared)
    return str(MediaType.OCI_INDEX if "manifests" in data else MediaType.OCI_MANIFEST)
