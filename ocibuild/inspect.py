"""What ``ocibuild inspect`` shows: an image's identity, runtime config and layers with what added
each, read from any source without downloading a layer (registry layers stay lazy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import OcibuildError
from .spec import Platform
from .store import ContentStore
from .transports import Location, Scratch

if TYPE_CHECKING:
    from .registry import RegistryClient

__all__ = ["ImageInfo", "LayerInfo", "inspect_image"]


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerInfo:
    """One layer: digest, compressed size, media type, and the history line that added it."""

    digest: str
    size: int
    media_type: str
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "size": self.size, "mediaType": self.media_type, "created_by": self.created_by}


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageInfo:
    """An image as ``ocibuild inspect`` reports it."""

    location: str
    digest: str | None
    platform: str
    platforms: tuple[str, ...]
    created: str
    user: str
    workdir: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[str, ...]
    ports: tuple[str, ...]
    labels: dict[str, str]
    layers: tuple[LayerInfo, ...]

    @property
    def total_size(self) -> int:
        return sum(layer.size for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"location": self.location, "digest": self.digest, "platform": self.platform,
                "platforms": list(self.platforms), "created": self.created, "user": self.user,
                "workdir": self.workdir, "entrypoint": list(self.entrypoint), "cmd": list(self.cmd),
                "env": list(self.env), "ports": list(self.ports), "labels": dict(self.labels),
                "layers": [layer.to_dict() for layer in self.layers], "total_size": self.total_size}


def inspect_image(location: Location, store: ContentStore, platform: Platform | None = None, *,
                  client: RegistryClient | None = None) -> ImageInfo:
    """Describe the image at ``location`` (for ``platform``; default: the host's, else the first the
    index offers). Reads indexes, manifests and configs only."""
    from .sources import ANY_PLATFORM, base_platforms, resolve_base

    try:
        image = resolve_base(location, store, platform, client=client)
    except OcibuildError:
        if platform is not None:
            raise
        image = resolve_base(location, store, ANY_PLATFORM, client=client)
    offered = base_platforms(location, store, client=client)
    config = image.config
    made = [h for h in config.history if not h.empty_layer]  # the entries that added a layer, in order
    layers = tuple(
        LayerInfo(digest=str(desc.digest), size=desc.size, media_type=str(desc.media_type),
                  created_by=made[i].created_by if len(made) == len(image.manifest.layers) else "")
        for i, desc in enumerate(image.manifest.layers))
    c = config.config
    return ImageInfo(location=str(location), digest=None if isinstance(location, Scratch) else str(image.digest),
                     platform=str(config.platform), platforms=tuple(map(str, offered)), created=config.created,
                     user=c.user, workdir=c.working_dir, entrypoint=tuple(c.entrypoint or ()), cmd=tuple(c.cmd or ()),
                     env=tuple(c.env), ports=tuple(c.exposed_ports), labels=dict(c.labels), layers=layers)
