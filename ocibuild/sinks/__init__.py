"""Sinks: where a built image goes. Each output is written atomically."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import OutputError
from ..image import Artifact, Index
from ..spec import Reference

if TYPE_CHECKING:
    from ..registry import RegistryClient
from ..store import ContentStore
from ..transports import DockerArchive, Location, OciArchive, OciLayout, Registry, Scratch
from .archive import write_docker_archive, write_oci_archive
from .common import writable_parent
from .layout import write_layout

__all__ = ["check_output", "write_output"]


def write_output(location: Location, image: Artifact, store: ContentStore, *, mtime: int = 0,
                 client: RegistryClient | None = None, mount_from: Reference | None = None) -> None:
    """Write ``image`` (whose blobs are in ``store``) to ``location``. Registry pushes use ``client``
    and try to mount shared blobs from ``mount_from``'s repository."""
    image.store_metadata(store)
    if isinstance(location, OciLayout):
        write_layout(location.path, location.tag, image, store)
    elif isinstance(location, OciArchive):
        write_oci_archive(location.path, location.tag, image, store, mtime)
    elif isinstance(location, DockerArchive):
        if isinstance(image, Index):
            raise OutputError(
                f"output {location}: a docker archive holds one platform, but this build made "
                f"{len(image.images)} ({', '.join(str(i.config.platform) for i in image.images)}); "
                "choose one with --platform, or write oci:/oci-archive: for all of them")
        write_docker_archive(location.path, location.reference, image, store, mtime)
    elif isinstance(location, Registry):
        if location.reference.digest is not None:
            raise OutputError(f"output {location}: push to a tag (e.g. :latest), not to a digest")
        from ..registry import RegistryClient
        from .registry import push_image

        push_image(client or RegistryClient(), location.reference, image, store, mount_from=mount_from)
    elif isinstance(location, Scratch):
        raise OutputError("'scratch' is not an output; use oci:DIR:TAG, oci-archive:FILE or docker-archive:FILE")
    elif isinstance(location, Registry) and location.reference.digest is not None:
        raise OutputError(f"output {location}: push to a tag (e.g. :latest), not to a digest")
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
