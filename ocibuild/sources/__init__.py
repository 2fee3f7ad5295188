"""Base image sources: scratch, OCI layouts and archives, docker archives (registries: issue 3).

``resolve_base`` turns a location into a ``BaseImage`` whose blobs are all in the content store,
verified by digest and size.
"""

from __future__ import annotations

from ..errors import SourceError
from ..spec import Platform
from ..store import ContentStore
from ..transports import DockerArchive, Location, OciArchive, OciLayout, Registry, Scratch
from .base import BaseImage, host_platform, scratch, select_platform
from .dockerarchive import load_docker_archive
from .layout import load_layout

__all__ = ["BaseImage", "host_platform", "resolve_base", "select_platform"]


def resolve_base(location: Location, store: ContentStore, platform: Platform | None = None) -> BaseImage:
    """Resolve ``location`` for ``platform`` (None: the base's own, or the host's from an index)."""
    if isinstance(location, Scratch):
        return scratch(platform)
    if isinstance(location, OciLayout):
        return load_layout(location.path, location.tag, store, platform, archive=False)
    if isinstance(location, OciArchive):
        return load_layout(location.path, location.tag, store, platform, archive=True)
    if isinstance(location, DockerArchive):
        return load_docker_archive(location.path, location.reference, store, platform)
    if isinstance(location, Registry):
        raise SourceError(
            f"base {location}: pulling from a registry is not available in this version; "
            "copy the image to a layout first, e.g. 'skopeo copy docker://... oci:bases/x:tag', "
            "and use --base oci:bases/x:tag"
        )
    raise SourceError(f"unsupported base location {location!r}")
