"""Content descriptors: what a manifest or index says about a blob."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .digest import Digest
from .mediatype import MediaType
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
            raise ValueError(f"descriptor {self.digest}: size must not be negative")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Descriptor:
        """Parse an OCI descriptor object; raise ``ValueError`` on a malformed one."""
        try:
            size = data["size"]
            if not isinstance(size, int) or isinstance(size, bool):
                raise ValueError(f"size {size!r} is not an integer")
            return cls(
                media_type=MediaType.of(str(data["mediaType"])),
                digest=Digest.parse(str(data["digest"])),
                size=size,
                annotations=dict(data.get("annotations") or {}),
                platform=Platform.from_dict(data["platform"]) if data.get("platform") else None,
                urls=tuple(data.get("urls") or ()),
                artifact_type=str(data.get("artifactType") or ""),
            )
        except KeyError as exc:
            raise ValueError(f"descriptor is missing {exc.args[0]!r}") from None

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
