"""Base image sources: scratch, OCI layouts and archives, docker archives, registries, Debian packages.

``resolve_base`` turns a location into an ``Image``; ``base_platforms`` lists what a location
offers without reading any layer. Local sources copy layer blobs into the content store (verified);
registry layers are lazy: fetched only when their bytes are read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SourceError
from ..image import Image
from ..spec import Platform
from ..store import ContentStore
from ..transports import DebianBase, DockerArchive, Location, OciArchive, OciLayout, Registry, Scratch

if TYPE_CHECKING:
    from ..registry import RegistryClient
from .base import ANY_PLATFORM, host_platform, scratch, select_platform
from .dockerarchive import load_docker_archive
from .layout import layout_platforms, load_layout

__all__ = ["ANY_PLATFORM", "base_platforms", "host_platform", "resolve_base", "select_platform"]


def _client(client: RegistryClient | None) -> RegistryClient:
    from ..registry import RegistryClient  # imported here: a build without registries never loads requests

    return client or RegistryClient()


def resolve_base(location: Location, store: ContentStore, platform: Platform | None = None, *,
                 client: RegistryClient | None = None) -> Image:
    """The image at ``location`` for ``platform`` (None: the base's own, or the host's from an index).
    Registry bases go through ``client`` (a default one if None) and their layers stay lazy."""
    if isinstance(location, Scratch):
        return scratch(platform)
    if isinstance(location, OciLayout | OciArchive):
        return load_layout(location.path, location.tag, store, platform, archive=isinstance(location, OciArchive))
    if isinstance(location, DockerArchive):
        return load_docker_archive(location.path, location.reference, store, platform)
    if isinstance(location, Registry):
        from .registry import load_registry

        return load_registry(_client(client), location.reference, store, platform)
    if isinstance(location, DebianBase):
        from .debian import load_debian

        return load_debian(location, store, platform)
    raise SourceError(f"unsupported base location {location!r}")


def base_platforms(location: Location, store: ContentStore, *,
                   client: RegistryClient | None = None) -> tuple[Platform, ...]:
    """Every platform ``location`` offers (an index's entries, or its one image's), reading only
    indexes, manifests and configs."""
    if isinstance(location, Scratch):
        return (host_platform(),)
    if isinstance(location, OciLayout | OciArchive):
        return layout_platforms(location.path, location.tag, store, archive=isinstance(location, OciArchive))
    if isinstance(location, DockerArchive):
        return (load_docker_archive(location.path, location.reference, store, None).config.platform,)
    if isinstance(location, Registry):
        from .registry import registry_platforms

        return registry_platforms(_client(client), location.reference, store)
    if isinstance(location, DebianBase):
        from .debian import debian_platforms

        return debian_platforms(location)
    raise SourceError(f"unsupported base location {location!r}")
