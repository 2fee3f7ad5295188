"""Sinks: where a built image goes. Each output is written atomically."""

from __future__ import annotations

from ..errors import OutputError
from ..image import Image
from ..store import ContentStore
from ..transports import DockerArchive, Location, OciArchive, OciLayout, Registry, Scratch
from .archive import write_docker_archive, write_oci_archive
from .common import writable_parent
from .layout import write_layout

__all__ = ["check_output", "write_output"]


def write_output(location: Location, image: Image, store: ContentStore, *, mtime: int = 0) -> None:
    """Write ``image`` (whose blobs are in ``store``) to ``location``."""
    image.store_metadata(store)
    if isinstance(location, OciLayout):
        write_layout(location.path, location.tag, image, store)
    elif isinstance(location, OciArchive):
        write_oci_archive(location.path, location.tag, image, store, mtime)
    elif isinstance(location, DockerArchive):
        write_docker_archive(location.path, location.reference, image, store, mtime)
    elif isinstance(location, Registry):
        raise OutputError(
            f"output {location}: pushing to a registry is not available in this version; write "
            "oci:DIR:TAG and push it with 'skopeo copy oci:DIR:TAG docker://...'"
        )
    elif isinstance(location, Scratch):
        raise OutputError("'scratch' is not an output; use oci:DIR:TAG, oci-archive:FILE or docker-archive:FILE")
    else:
        raise OutputError(f"unsupported output {location!r}")


def check_output(location: Location) -> None:
    """Fail early (before any layer is built) if ``location`` cannot be written."""
    if isinstance(location, OciLayout | OciArchive | DockerArchive):
        what = str(location)
        if isinstance(location, OciLayout) and location.path.is_dir():
            target = location.path
            if not (target / "oci-layout").is_file() and any(target.iterdir()):
                raise OutputError(f"cannot write {what}: {target} is a non-empty folder but not an OCI layout; "
                                  "choose a new or empty folder")
        writable_parent(location.path, what)
    elif isinstance(location, Scratch):
        raise OutputError("'scratch' is not an output; use oci:DIR:TAG, oci-archive:FILE or docker-archive:FILE")
