"""Sinks: where an image goes. Every sink speaks one protocol, ``Sink``:

- ``check()`` fails early (before anything is built) if the output cannot be written;
- ``write(artifact)`` writes an ``Image`` or ``Index`` atomically and returns its descriptor.

``sink_for(location)`` makes the sink for a parsed or textual location; ``MultiSink`` tees to several.
Sinks read layer bytes through ``Layer.compressed()``, so they work the same for layers built in
the content store, copied from a layout, or still in a remote registry (fetched, or mounted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import OutputError
from ..image import Artifact, Index
from ..spec import Descriptor, Reference
from ..transports import DebianBase, DockerArchive, Location, OciArchive, OciLayout, Registry, Scratch, parse_location
from .common import check_file_output, output_target, writable_parent
from .layout import check_layout

if TYPE_CHECKING:
    import requests

    from ..events import EventHandler
    from ..referrers import LayoutAdditions
    from ..registry import RegistryClient

__all__ = ["DockerArchiveSink", "LayoutSink", "MultiSink", "OciArchiveSink", "RegistrySink", "Sink", "sink_for"]


@runtime_checkable
class Sink(Protocol):
    """Where an artifact is written: an OCI layout, an archive, a registry, or several."""

    def check(self) -> None:
        """Raise ``OutputError`` now if a later ``write`` could not succeed (unwritable folder, ...)."""
        ...

    def write(self, artifact: Artifact) -> Descriptor:
        """Write ``artifact`` completely or not at all; return the descriptor it is stored under."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class LayoutSink:
    """``oci:DIR[:TAG]``: an OCI image layout folder; other tags in it are kept, also when several
    builds write into it at once (they take turns on its lock). A symlink is followed: its target
    folder is written (and created if missing)."""

    path: Path
    tag: str | None = None

    def __str__(self) -> str:
        return str(OciLayout(path=self.path, tag=self.tag))

    def check(self) -> None:
        check_layout(self.path, str(self))
        writable_parent(output_target(self.path, str(self)), str(self))

    def write(self, artifact: Artifact) -> Descriptor:
        from .layout import write_layout

        return write_layout(self.path, self.tag, artifact)


@dataclass(frozen=True, kw_only=True, slots=True)
class OciArchiveSink:
    """``oci-archive:FILE[:TAG]``: a tarred OCI layout; entries stamped ``mtime``. A symlink is
    followed (its target is replaced, the link kept). ``additions`` (untagged artifact manifests and
    their blobs: SBOMs, provenance) are written with the image."""

    path: Path
    tag: str | None = None
    mtime: int = 0
    additions: LayoutAdditions | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return str(OciArchive(path=self.path, tag=self.tag))

    def check(self) -> None:
        check_file_output(self.path, str(self))

    def write(self, artifact: Artifact) -> Descriptor:
        from .archive import write_oci_archive

        if self.additions is None:
            return write_oci_archive(self.path, self.tag, artifact, self.mtime)
        return write_oci_archive(self.path, self.tag, artifact, self.mtime, extra_entries=self.additions.entries,
                                 extra_blobs=self.additions.blobs)


@dataclass(frozen=True, kw_only=True, slots=True)
class DockerArchiveSink:
    """``docker-archive:FILE[:REPO:TAG]``: what ``docker load`` / ``podman load`` read (one platform)."""

    path: Path
    reference: str | None = None
    mtime: int = 0

    def __str__(self) -> str:
        return str(DockerArchive(path=self.path, reference=self.reference))

    def check(self) -> None:
        check_file_output(self.path, str(self))

    def write(self, artifact: Artifact) -> Descriptor:
        from .archive import write_docker_archive

        if isinstance(artifact, Index):
            raise OutputError(
                f"output {self}: a docker archive holds one platform, but this build made "
                f"{len(artifact.images)} ({', '.join(str(i.config.platform) for i in artifact.images)}); "
                "choose one with --platform, or write oci:/oci-archive: for all of them")
        return write_docker_archive(self.path, self.reference, artifact, self.mtime)


@dataclass(frozen=True, kw_only=True, slots=True)
class RegistrySink:
    """``docker://REGISTRY/REPO:TAG``: pushed through ``client`` (blobs first, the manifest last)."""

    reference: Reference
    client: RegistryClient = field(repr=False)

    def __str__(self) -> str:
        return f"docker://{self.reference}"

    def check(self) -> None:
        if self.reference.digest is not None:
            raise OutputError(f"output {self}: push to a tag (e.g. :latest), not to a digest")

    def write(self, artifact: Artifact) -> Descriptor:
        from .registry import push_image

        self.check()
        push_image(self.client, self.reference, artifact)
        return artifact.descriptor()


@dataclass(frozen=True, kw_only=True, slots=True)
class MultiSink:
    """Writes to every sink in turn (ko's ``MultiPublisher``); checks them all before writing any."""

    sinks: tuple[Sink, ...]

    def __str__(self) -> str:
        return ", ".join(map(str, self.sinks))

    def check(self) -> None:
        for sink in self.sinks:
            sink.check()

    def write(self, artifact: Artifact) -> Descriptor:
        descriptor = artifact.descriptor()
        for sink in self.sinks:
            descriptor = sink.write(artifact)
        return descriptor


def sink_for(location: Location | str, *, client: RegistryClient | None = None,
             session: requests.Session | None = None, mtime: int | None = None,
             on_event: EventHandler | None = None) -> Sink:
    """The sink for ``location`` (``oci:DIR[:TAG]``, ``oci-archive:FILE[:TAG]``,
    ``docker-archive:FILE[:REPO:TAG]``, ``docker://REF``).

    Registry sinks use ``client``, else a new ``RegistryClient`` over ``session`` (default: a new
    one) with the usual credential sources. Archive entries are stamped ``mtime`` (default:
    ``SOURCE_DATE_EPOCH``, else 0).

    >>> sink_for("oci:out/app:v1")
    LayoutSink(path=PosixPath('out/app'), tag='v1')
    """
    loc = parse_location(location) if isinstance(location, str) else location
    if mtime is None:
        from ..timestamps import source_date_epoch

        mtime = source_date_epoch()
    if isinstance(loc, OciLayout):
        return LayoutSink(path=loc.path, tag=loc.tag)
    if isinstance(loc, OciArchive):
        return OciArchiveSink(path=loc.path, tag=loc.tag, mtime=mtime)
    if isinstance(loc, DockerArchive):
        return DockerArchiveSink(path=loc.path, reference=loc.reference, mtime=mtime)
    if isinstance(loc, Registry):
        if client is None:
            from ..registry import RegistryClient

            extra: dict[str, Any] = {"on_event": on_event} if on_event is not None else {}
            client = RegistryClient(session, **extra)
        return RegistrySink(reference=loc.reference, client=client)
    if isinstance(loc, Scratch | DebianBase):
        raise OutputError(f"{loc} is not an output; use oci:DIR:TAG, oci-archive:FILE or docker-archive:FILE")
    raise OutputError(f"unsupported output {loc!r}")
