"""Reading the documents attached to an image, from a registry (referrers API or fallback tag), an
OCI layout or an OCI archive. Everything read is verified (digest and size) and bounded: artifact
manifests 4 MiB, documents ``MAX_DOCUMENT``; an artifact whose ``subject`` is another image is not
counted as attached, whatever lists it."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ..errors import DigestMismatch, MalformedImage, SourceError
from ..spec import Descriptor, Digest, ImageIndex, ImageManifest, MediaType, Platform, SpecError
from ..spec.annotations import REF_NAME
from ..store import CHUNK, ContentStore
from ..transports import Location, OciArchive, OciLayout, Registry, parse_location

if TYPE_CHECKING:
    from ..registry.client import RegistryClient
    from ..registry.transport import Repository
    from ..sources.base import ManifestSource
    from ..sources.layout import BlobReader

log = logging.getLogger("ocibuild.referrers")

MAX_DOCUMENT = 256 << 20
"""Largest attached document read (an SBOM of a big image is a few MB)."""
MAX_MANIFEST = 4 << 20


class Attached(NamedTuple):
    """One document attached to an image: its artifact manifest's descriptor (``artifact_type`` and
    annotations set) and the document's bytes."""

    descriptor: Descriptor
    payload: bytes


class _Documents(Protocol):
    """Where attached documents are read from: what is listed for a subject, and verified blobs."""

    where: str

    def listed(self, subject: Digest) -> Sequence[Descriptor]: ...
    def manifest(self, desc: Descriptor) -> bytes: ...
    def document(self, desc: Descriptor) -> bytes: ...


class _RegistryDocuments:
    def __init__(self, client: RegistryClient, repo: Repository, store: ContentStore, where: str) -> None:
        self.client, self.repo, self.store, self.where = client, repo, store, where

    def listed(self, subject: Digest) -> Sequence[Descriptor]:
        from .remote import listed_referrers

        return listed_referrers(self.client, self.repo, subject)

    def manifest(self, desc: Descriptor) -> bytes:
        return self.client.get_small(self.repo, desc)

    def document(self, desc: Descriptor) -> bytes:
        if desc.size <= MAX_MANIFEST:
            return self.client.get_small(self.repo, desc)
        self.client.fetch_blob(self.repo, desc, self.store)  # streamed, verified
        return self.store.read_bytes(desc.digest)


class _LayoutDocuments:
    def __init__(self, source: ManifestSource, reader: BlobReader) -> None:
        self.source, self.reader, self.where = source, reader, source.where

    def listed(self, subject: Digest) -> Sequence[Descriptor]:
        index = ImageIndex.from_json(self.reader.read("index.json"))  # checked once already by the source
        # referrers are untagged or carry an artifactType; tagged images are not looked into
        return [d for d in index.manifests if d.artifact_type or not d.annotations.get(REF_NAME)]

    def manifest(self, desc: Descriptor) -> bytes:
        return self.source.fetch(desc)

    def document(self, desc: Descriptor) -> bytes:
        if desc.size <= MAX_MANIFEST:
            return self.source.fetch(desc)
        from ..sources.layout import bounded

        try:
            with bounded(self.reader.open(desc.digest.blob_name), desc.size) as f:
                data = io.BytesIO()
                while chunk := f.read(CHUNK):
                    data.write(chunk)
        except OSError as exc:
            raise SourceError(f"{self.where}: blob {desc.digest} cannot be read: {exc}") from None
        if len(data.getbuffer()) != desc.size or not desc.digest.verify(data.getvalue()):
            raise DigestMismatch(f"{self.where}: blob {desc.digest} does not match its digest or size")
        return data.getvalue()


@contextlib.contextmanager
def _opened(location: Location, store: ContentStore,
            client: RegistryClient | None) -> Iterator[tuple[ManifestSource, _Documents]]:
    """The image at ``location`` (its top manifest or index) and where its attached documents are."""
    if isinstance(location, Registry):
        from ..registry.client import RegistryClient
        from ..registry.transport import Repository
        from ..sources.registry import registry_source

        client = client or RegistryClient()
        source = registry_source(client, location.reference, store)
        yield source, _RegistryDocuments(client, Repository.from_reference(location.reference), store, source.where)
    elif isinstance(location, OciLayout | OciArchive):
        from ..sources.layout import open_layout_source

        with open_layout_source(location.path, location.tag, store, archive=isinstance(location, OciArchive)) as (
                source, reader):
            yield source, _LayoutDocuments(source, reader)
    else:
        raise SourceError(f"{location} holds no attached documents; read them from an oci:, oci-archive: or "
                          "docker:// location")


def _payload_layer(manifest: ImageManifest, artifact_type: str) -> Descriptor | None:
    if len(manifest.layers) == 1:
        return manifest.layers[0]
    return next((layer for layer in manifest.layers if str(layer.media_type) == artifact_type), None)


def _attached(docs: _Documents, subject: Digest, artifact_types: Sequence[str]) -> list[Attached]:
    found: list[Attached] = []
    for desc in docs.listed(subject):
        if str(desc.media_type) != MediaType.OCI_MANIFEST or desc.digest == subject:
            continue
        if artifact_types and desc.artifact_type and desc.artifact_type not in artifact_types:
            continue  # not read at all
        raw = docs.manifest(desc)
        try:
            manifest = ImageManifest.from_json(raw)
        except SpecError as exc:
            raise MalformedImage(f"{docs.where}: artifact manifest {desc.digest} (listed as attached to "
                                 f"{subject}) is malformed: {exc}") from None
        if manifest.subject is None or manifest.subject.digest != subject:
            log.debug("%s: %s is listed for %s but its subject is another", docs.where, desc.digest, subject)
            continue
        artifact_type = manifest.artifact_type or str(manifest.config.media_type)
        if artifact_types and artifact_type not in artifact_types:
            continue
        layer = _payload_layer(manifest, artifact_type)
        if layer is None:
            continue
        if layer.size > MAX_DOCUMENT:
            raise MalformedImage(f"{docs.where}: the {artifact_type} document attached to {subject} is "
                                 f"{layer.size} bytes, more than the {MAX_DOCUMENT} read")
        found.append(Attached(
            descriptor=Descriptor(media_type=MediaType.OCI_MANIFEST, digest=desc.digest, size=desc.size,
                                  artifact_type=artifact_type, annotations=dict(manifest.annotations)),
            payload=docs.document(layer)))
    return found


def resolve_subjects(location: Location | str, platform: Platform | None = None, *, store: ContentStore,
                     client: RegistryClient | None = None) -> tuple[Descriptor, ...]:
    """The descriptors documents may be attached to at ``location``: ``(manifest,)`` for an image,
    ``(index, manifest)`` for an index (its image for ``platform``, default the host's). Reads only
    indexes (and a lone image's config when ``platform`` is given)."""
    from ..sources.base import manifest_chain

    loc = parse_location(location) if isinstance(location, str) else location
    with _opened(loc, store, client) as (source, _):
        return manifest_chain(source, platform)


def list_attached(location: Location | str, subject_or_platform: Descriptor | Digest | Platform | None = None, *,
                  store: ContentStore, client: RegistryClient | None = None,
                  artifact_types: Sequence[str] = ()) -> list[Attached]:
    """The documents attached to an image at ``location`` (``docker://``, ``oci:``, ``oci-archive:``):
    to the manifest or index ``subject_or_platform`` names by descriptor or digest, else to the image
    for that platform (None: the host's, or the only one). ``artifact_types`` keeps those types only
    (others are not downloaded). In the order the registry or layout lists them.

    >>> store = ContentStore.default()  # doctest: +SKIP
    >>> [a.descriptor.artifact_type for a in list_attached("oci:out/app:v1", store=store)]  # doctest: +SKIP
    ['application/spdx+json', 'application/vnd.in-toto+json']
    """
    from ..sources.base import manifest_chain

    loc = parse_location(location) if isinstance(location, str) else location
    with _opened(loc, store, client) as (source, docs):
        if isinstance(subject_or_platform, Descriptor):
            subject = subject_or_platform.digest
        elif isinstance(subject_or_platform, Digest):
            subject = subject_or_platform
        else:
            subject = manifest_chain(source, subject_or_platform)[-1].digest
        return _attached(docs, subject, artifact_types)


def find_attached(location: Location, platform: Platform | None, artifact_types: Sequence[str], *,
                  store: ContentStore, client: RegistryClient | None = None,
                  index_first: bool = False) -> tuple[tuple[Descriptor, ...], list[Attached]]:
    """The documents of ``artifact_types`` attached to the image at ``location`` for ``platform``, or
    if it has none, to its index (``index_first``: the index's first); with the subjects looked at
    (``resolve_subjects``'s answer). What ``ocibuild sbom`` and ``ocibuild provenance`` show."""
    from ..sources.base import manifest_chain

    with _opened(location, store, client) as (source, docs):
        chain = manifest_chain(source, platform)
        for subject in (chain if index_first else chain[::-1]):
            found = _attached(docs, subject.digest, artifact_types)
            if found:
                return chain, found
    return chain, []
