"""Content descriptors: what a manifest or index says about a blob."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .digest import Digest
from .document import (
    SpecError,
    as_object,
    convert,
    field_name,
    get_object,
    get_str,
    get_str_list,
    get_str_map,
    require_int,
)
from .mediatype import MediaType, is_media_type
from .platform import Platform


@dataclass(frozen=True, kw_only=True, slots=True)
class Descriptor:
    """Media type, digest and size of a blob, plus optional platform and annotations."""

    media_type: MediaType | str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    artifact_type: str = ""

    def __post_init__(self) -> None:
        if self.size < 0:
            raise SpecError(f"descriptor {self.digest}: size must not be negative")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "") -> Descriptor:
        """Parse an OCI descriptor object; raise ``SpecError`` (a ``ValueError``) naming the field
        (``path`` prefixes it, e.g. ``layers[2]``) if it is missing or has the wrong type."""
        data = as_object(data, path)
        media_type = get_str(data, "mediaType", path, require=True)
        digest = convert(field_name(path, "digest"), Digest.parse, get_str(data, "digest", path, require=True))
        size = require_int(data, "size", path)
        platform = get_object(data, "platform", path)
        if platform is not None:
            get_str_list(platform, "features", field_name(path, "platform"))  # reserved by the spec, but typed
        get_str(data, "data", path)  # embedded content (base64): not kept, but typed
        if not is_media_type(media_type):
            raise SpecError(f"{field_name(path, 'mediaType')!r} is {media_type[:200]!r}, not a media type "
                            "(type/subtype)")
        return cls(
            media_type=MediaType.of(media_type),
            digest=digest,
            size=size,
            annotations=get_str_map(data, "annotations", path),
            platform=Platform.from_dict(platform, field_name(path, "platform")) if platform else None,
            urls=get_str_list(data, "urls", path) or (),
            artifact_type=get_str(data, "artifactType", path),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": str(self.media_type),
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out
