"""Push an image to a registry: blobs (HEAD first, cross-repository mount, streamed upload) in a
bounded thread pool, then the manifest by digest and by tag."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ..events import Pushed
from ..image import Artifact, Blob, Index, image_blobs, images_of, mount_source
from ..registry.client import RegistryClient, Repository
from ..spec import Digest, MediaType, Reference

PUSH_JOBS = 4


def push_blobs(client: RegistryClient, ref: Reference, blobs: list[Blob], *,
               jobs: int = PUSH_JOBS) -> dict[Digest, str]:
    """Make every blob present in ``ref``'s repository; returns digest -> exists/mounted/uploaded.
    A ``Mountable`` layer from the same registry is mounted from its repository."""
    repo = Repository.from_reference(ref)
    unique = list({b.descriptor.digest: b for b in blobs}.values())

    def push(blob: Blob) -> str:
        source = mount_source(blob.layer) if blob.layer is not None else None
        mount = source.repository if source is not None and source.api_host == repo.host else None
        return client.push_blob(repo, blob.descriptor, blob.open, mount_from=mount)

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(unique)))) as pool:
        futures = {b.descriptor.digest: pool.submit(push, b) for b in unique}
        return {digest: f.result() for digest, f in futures.items()}


def push_image(client: RegistryClient, ref: Reference, artifact: Artifact, *, jobs: int = PUSH_JOBS) -> Digest:
    """Push an image or an index to ``ref``: every blob once (shared layers of several platforms are
    uploaded once), each manifest by digest, then the top-level manifest or index by digest and tag."""
    images = images_of(artifact)
    push_blobs(client, ref, [b for image in images for b in image_blobs(image)], jobs=jobs)
    repo = Repository.from_reference(ref)
    for image in images:
        client.put_manifest(repo, str(image.digest), image.manifest_bytes, str(image.manifest.media_type))
    if isinstance(artifact, Index):
        raw, media = artifact.index_bytes, str(MediaType.OCI_INDEX)
        client.put_manifest(repo, str(artifact.digest), raw, media)
    else:
        raw, media = artifact.manifest_bytes, str(artifact.manifest.media_type)
    digest = Digest.of(raw)
    if ref.digest is None and ref.tag:
        client.put_manifest(repo, ref.tag, raw, media)
    client.on_event(Pushed(reference=str(ref.with_digest(str(digest)) if ref.digest is None else ref), digest=digest))
    return digest
