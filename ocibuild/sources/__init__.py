"""Base image sources: scratch, OCI layouts and archives, docker archives, registries.

``resolve_base`` turns a location into a ``BaseImage`` whose blobs are all in the content store,
verified by digest and size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SourceError
from ..spec import Platform
from ..store import ContentStore
from ..transports import DebianBase, DockerArchive, Location, OciArchive, OciLayout, Registry, Scratch

if TYPE_CHECKING:
    from ..registry import RegistryClient
from .base import ANY_PLATFORM, BaseImage, host_platform, scratch, select_platform
from .dockerarchive import load_docker_archive
from .layout import load_layout

__all__ = ["ANY_PLATFORM", "BaseImage", "host_platform", "resolve_base", "select_platform"]


def resolve_base(location: Location, store: ContentStore, platform: Platform | None = None, *,
                 client: RegistryClient | None = None) -> BaseImage:
    """Resolve ``location`` for ``platform`` (None: the base's own, or the host's from an index).
    Registry bases need ``client`` (a default one is made if None)."""
    if isinstance(location, Scratch):
        return scratch(platform)
    if isinstance(location, OciLayout):
        return load_layout(location.path, location.tag, store, platform, archive=False)
    if isinstance(location, OciArchive):
        return load_layout(location.path, location.tag, store, platform, archive=True)
    if isinstance(location, DockerArchive):
        return load_docker_archive(location.path, location.reference, store, platform)
    if isinstance(location, Registry):  # imported here: a build without registries never loads requests
        from ..registry import RegistryClient
        from .registry import load_registry

        return load_registry(client or RegistryClient(), location.reference, store, platform)
    if isinstance(location, DebianBase):
        from .debian import load_debian

        return load_debian(location, store, platform)
    raise SourceError(f"unsupported base location {location!r}")
