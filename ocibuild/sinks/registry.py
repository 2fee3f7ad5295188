"""Push an image to a registry: blobs (HEAD first, cross-repository mount, streamed upload) in a
bounded thread pool, then the manifest(s): each platform's by digest, the top-level one by digest and
then by tag (the tag moves only once the registry said it stored exactly those bytes).

Blobs the client's ``known`` memory says the repository holds are not ``HEAD``ed. If the memory was
wrong (the registry lost a blob), the manifest ``PUT`` is answered ``MANIFEST_BLOB_UNKNOWN``: the
memory of that repository is dropped, every blob of the image made present the usual way, and the
manifest put again."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from ..errors import ImageNotFound, RegistryError
from ..events import BlobTransferred, Pushed
from ..image import Artifact, Blob, Image, Index, image_blobs, images_of, mount_source
from ..registry.client import RegistryClient, Repository
from ..spec import Digest, MediaType, Reference

PUSH_JOBS = 4
SMALL = 1 << 20
"""Blobs up to this size are uploaded without a ``HEAD`` first to a repository the client knows."""
BLOB_MISSING = frozenset({"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "MANIFEST_INVALID"})
"""Error codes of a manifest PUT that may mean a blob it names is missing (distribution says the first;
some registries the others): the pusher then checks every blob once and puts the manifest again."""
log = logging.getLogger("ocibuild.registry")


def push_blobs(client: RegistryClient, ref: Reference, blobs: list[Blob], *,
               jobs: int = PUSH_JOBS) -> dict[Digest, str]:
    """Make every blob present in ``ref``'s repository; returns digest -> known/exists/mounted/uploaded.
    A ``Mountable`` layer from the same registry is mounted from its repository; blobs the client's
    ``known`` memory holds for the repository are taken as present ("known")."""
    repo = Repository.from_reference(ref)
    unique = list({b.descriptor.digest: b for b in blobs}.values())
    known = client.known
    todo = [b for b in unique if known is None or not known.has(repo, b.descriptor.digest)]
    # a repository this client has pushed to before holds what it is known to hold: a small blob not
    # known to be there (a new code layer, a config) is uploaded without asking first
    warm = known is not None and len(todo) < len(unique)

    def push(blob: Blob) -> str:
        source = mount_source(blob.layer) if blob.layer is not None else None
        mount = source.repository if source is not None and source.api_host == repo.host else None
        check = not warm or mount is not None or blob.descriptor.size > SMALL
        return client.push_blob(repo, blob.descriptor, blob.open, mount_from=mount, check=check)

    done: dict[Digest, str] = {b.descriptor.digest: "known" for b in unique}
    asked = {b.descriptor.digest for b in todo}
    for blob in unique:  # taken as present without asking: reported as found there, like a HEAD that said so
        if blob.descriptor.digest not in asked:
            client.on_event(BlobTransferred(registry=repo.host, repository=repo.name, digest=blob.descriptor.digest,
                                            size=blob.descriptor.size, how="exists", seconds=0.0))
    if todo:
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(todo)))) as pool:
            futures = {b.descriptor.digest: pool.submit(push, b) for b in todo}
            done.update({digest: f.result() for digest, f in futures.items()})
    return done


def _put(client: RegistryClient, ref: Reference, reference: str, raw: bytes, media: str, blobs: list[Blob],
         jobs: int, skipped: bool) -> None:
    """PUT one manifest; refused after blobs were ``skipped`` as known (``MANIFEST_BLOB_UNKNOWN``, or any
    other refusal that is not about access: registries word it differently): forget what the repository
    was known to hold, push ``blobs`` with HEADs, PUT again."""
    repo = Repository.from_reference(ref)
    try:
        client.put_manifest(repo, reference, raw, media)
        return
    except (RegistryError, ImageNotFound) as exc:
        status = getattr(exc, "status", None)
        code = getattr(exc, "code", "")
        if not skipped or client.known is None or status in (401, 403, 429) or (
                status is not None and status >= 500 and code not in BLOB_MISSING):
            raise
        log.debug("%s: the manifest was refused (%s) after blobs were taken as present; pushing them again",
                  repo, exc)
    client.known.forget(repo)
    push_blobs(client, ref, blobs, jobs=jobs)
    client.put_manifest(repo, reference, raw, media)


def push_image(client: RegistryClient, ref: Reference, artifact: Artifact, *, jobs: int = PUSH_JOBS) -> Digest:
    """Push an image or an index to ``ref``: every blob once (shared layers of several platforms are
    uploaded once), each platform's manifest by digest, then the top-level manifest or index by digest
    and by tag."""
    images = images_of(artifact)
    blobs: dict[Digest, list[Blob]] = {image.digest: image_blobs(image) for image in images}
    done = push_blobs(client, ref, [b for image in images for b in blobs[image.digest]], jobs=jobs)
    skipped = "known" in done.values()
    repo = Repository.from_reference(ref)
    top: Image | None = artifact if isinstance(artifact, Image) else None
    for image in images:
        if image is not top:
            _put(client, ref, str(image.digest), image.manifest_bytes, str(image.manifest.media_type),
                 blobs[image.digest], jobs, skipped)
    if isinstance(artifact, Index):
        raw, media = artifact.index_bytes, str(MediaType.OCI_INDEX)
    else:
        raw, media = artifact.manifest_bytes, str(artifact.manifest.media_type)
    digest = Digest.of(raw)
    every = [b for image in images for b in blobs[image.digest]]
    # by digest first: what the registry says it stored is checked before the tag moves
    _put(client, ref, str(digest), raw, media, every, jobs, skipped)
    if ref.digest is None and ref.tag:
        client.put_manifest(repo, ref.tag, raw, media)
    if client.known is not None:
        client.known.add(repo, (b.descriptor.digest for b in every))
    client.on_event(Pushed(reference=str(ref.with_digest(str(digest)) if ref.digest is None else ref), digest=digest))
    return digest
