"""Attached documents in a registry: artifact manifests pushed by digest, found through the OCI 1.1
referrers API where the registry has one, else through the fallback tag ``sha256-<hex>``: an OCI index
listing them, which several tools share.

The fallback index is read, merged and written back (``RegistryClient.update_manifest``): entries
other tools listed there are kept byte for byte, ours are added once (by digest: attaching the same
document again adds nothing), and after the PUT it is read again, so a writer that replaced it in the
meantime is merged with instead of lost. Whatever the registry answers is bounded (4 MiB a document)
and checked; a malformed index is one error naming the registry, the repository and the tag.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ImageNotFound, RegistryError
from ..events import Note
from ..spec import INDEX_TYPES, Descriptor, Digest, ImageIndex, MediaType, Reference, SpecError, canonical_json
from ..spec import parse_object as parse_json_object
from .artifact import EMPTY, EMPTY_JSON, Attachment, artifact_manifest, bytes_blob, fallback_tag

if TYPE_CHECKING:
    from ..registry.client import RegistryClient
    from ..registry.transport import Repository

log = logging.getLogger("ocibuild.referrers")

MAX_INDEX = 4 << 20
"""Largest fallback index written (what distribution accepts as a manifest, and what is read back)."""


def repository(where: Reference | Repository) -> Repository:
    """The repository ``where`` names (a reference's tag or digest is ignored)."""
    from ..registry.transport import Repository

    return where if isinstance(where, Repository) else Repository.from_reference(where)


def _tag_reference(repo: Repository, tag: str) -> Reference:
    return Reference(registry=repo.host, repository=repo.name, tag=tag)


def fallback_document(raw: bytes, where: str) -> dict[str, Any]:
    """The fallback index ``raw`` (read from ``where``, e.g. ``HOST/REPO:sha256-<hex>``) as a JSON object,
    after checking it is an OCI image index in every field; one ``RegistryError`` line if it is not."""
    try:
        doc = parse_json_object(raw, "it")
        declared = doc.get("mediaType")
        if "manifests" not in doc or (declared is not None and declared not in INDEX_TYPES):
            raise SpecError(f"it is not an image index (mediaType {str(declared)[:100]!r})")
        if declared is not None and declared != MediaType.OCI_INDEX:
            raise SpecError(f"it is a {declared}, not an OCI image index")
        ImageIndex.from_json(raw)
    except SpecError as exc:
        from ..registry.transport import clean

        raise RegistryError(f"{where}, the referrers tag, is malformed: {clean(str(exc), 200)}; delete or repair "
                            "that tag (it lists the documents attached to an image)") from None
    return doc


def merged_index(current: bytes | None, ours: Sequence[Descriptor], where: str) -> bytes | None:
    """The fallback index ``current`` (None: none yet) with ``ours`` appended where their digests are
    not listed yet; None if every one is. Other entries, and fields we do not know, stay as they were."""
    doc: dict[str, Any] = fallback_document(current, where) if current is not None else {
        "schemaVersion": 2, "mediaType": str(MediaType.OCI_INDEX), "manifests": []}
    listed = list(doc.get("manifests") or [])
    have = {entry.get("digest") for entry in listed if isinstance(entry, dict)}
    missing = [d.to_dict() for d in ours if str(d.digest) not in have]
    if not missing:
        return None
    data = canonical_json({**doc, "manifests": [*listed, *missing]})
    if len(data) > MAX_INDEX:
        raise RegistryError(f"{where}: the referrers index would pass {MAX_INDEX} bytes with {len(listed)} entries; "
                            "delete stale attachments from that tag")
    return data


def attach(client: RegistryClient, where: Reference | Repository, subject: Descriptor,
           attachments: Sequence[Attachment], *, present: frozenset[Digest] = frozenset()) -> list[Descriptor]:
    """Attach each document to ``subject`` (a manifest or index already in ``where``'s repository) as
    an OCI 1.1 referrer: its blobs and artifact manifest are pushed by digest (no tag); without the
    referrers API the fallback tag ``sha256-<hex>`` lists them, merged with what others put there.
    Idempotent. Returns the artifact manifests' descriptors, in order. Blobs in ``present`` are known
    to be in the repository already (the caller pushed them) and are not pushed again.

    >>> attach(client, Reference.parse("127.0.0.1:5000/app"), image.descriptor(),  # doctest: +SKIP
    ...        [Attachment.of(SPDX_JSON, sbom_bytes)])
    [Descriptor(media_type=<MediaType.OCI_MANIFEST: ...>, ..., artifact_type='application/spdx+json')]
    """
    repo = repository(where)
    built = [(artifact_manifest(subject, a), a) for a in attachments]
    push_attachment_blobs(client, repo, attachments, present=present)
    for (raw, desc), _ in built:
        client.put_manifest(repo, str(desc.digest), raw, str(MediaType.OCI_MANIFEST))
    descs = [desc for (_, desc), _ in built]
    if client.referrers(repo, subject.digest) is not None:
        how = "the registry's referrers API lists it"
    else:
        tag = fallback_tag(subject.digest)
        place = f"{repo}:{tag}"

        def change(current: bytes | None) -> tuple[bytes, str] | None:
            data = merged_index(current, descs, place)
            return None if data is None else (data, str(MediaType.OCI_INDEX))

        client.update_manifest(repo, tag, change)
        how = f"listed in tag {tag}"
    for desc in descs:
        client.on_event(Note(text=f"attach  {desc.artifact_type} {desc.digest.short} to "
                                  f"{repo}@{subject.digest.short} ({how})"))
    return descs


def listed_referrers(client: RegistryClient, repo: Repository, subject: Digest) -> tuple[Descriptor, ...]:
    """What the registry lists as attached to ``subject``: the referrers API's answer, else the
    fallback tag's index (nothing if that tag does not exist)."""
    index = client.referrers(repo, subject)
    if index is not None:
        return index.manifests
    tag = fallback_tag(subject)
    try:
        raw = client.get_manifest(_tag_reference(repo, tag))[0]
    except ImageNotFound:
        return ()
    return ImageIndex.from_dict(fallback_document(raw, f"{repo}:{tag}")).manifests


def push_attachment_blobs(client: RegistryClient, where: Reference | Repository, attachments: Sequence[Attachment],
                          *, present: frozenset[Digest] = frozenset()) -> frozenset[Digest]:
    """Push the blobs of ``attachments`` (and the empty config) once each, one at a time, except those
    ``present`` already; returns their digests. Pushed once before several ``attach`` calls side by
    side: two uploads of one blob at once can make the registry answer a HEAD with an error while the
    other completes."""
    repo = repository(where)
    done: set[Digest] = set(present)
    for blob in [bytes_blob(EMPTY, EMPTY_JSON), *(bytes_blob(a.layer, a.payload) for a in attachments)]:
        if blob.descriptor.digest not in done:
            client.push_blob(repo, blob.descriptor, blob.open)
            done.add(blob.descriptor.digest)
    return frozenset(done)
