"""Push an image to a registry: blobs (HEAD first, cross-repository mount, streamed upload) in a
bounded thread pool, then the manifest by digest and by tag."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ..events import Pushed
from ..image import Artifact, Index
from ..registry.client import RegistryClient
from ..spec import Descriptor, Digest, MediaType, Reference
from ..store import ContentStore

PUSH_JOBS = 4


def push_blobs(client: RegistryClient, ref: Reference, blobs: list[Descriptor], store: ContentStore, *,
               mount_from: Reference | None = None, jobs: int = PUSH_JOBS) -> dict[Digest, str]:
    """Make every blob present in ``ref``'s repository; returns digest -> exists/mounted/uploaded."""
    host, repo = ref.api_host, ref.repository
    source = mount_from.repository if mount_from is not None and mount_from.api_host == host else None
    unique = list({d.digest: d for d in blobs}.values())
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(unique)))) as pool:
        futures = {d.digest: pool.submit(client.push_blob, host, repo, d, store, mount_from=source) for d in unique}
        return {digest: f.result() for digest, f in futures.items()}


def push_image(client: RegistryClient, ref: Reference, artifact: Artifact, store: ContentStore, *,
               mount_from: Reference | None = None, jobs: int = PUSH_JOBS) -> Digest:
    """Push an image or an index to ``ref``: every blob once (shared layers of several platforms are
    uploaded once), each manifest by digest, then the top-level manifest or index by digest and tag."""
    artifact.store_metadata(store)
    images = artifact.images if isinstance(artifact, Index) else (artifact,)
    push_blobs(client, ref, [d for image in images for d in image.blobs()], store, mount_from=mount_from, jobs=jobs)
    host, repo = ref.api_host, ref.repository
    for image in images:
        client.put_manifest(host, repo, str(image.digest), image.manifest_bytes, str(image.manifest.media_type))
    if isinstance(artifact, Index):
        raw, media = artifact.index_bytes, str(MediaType.OCI_INDEX)
        client.put_manifest(host, repo, str(artifact.digest), raw, media)
    else:
        raw, media = artifact.manifest_bytes, str(artifact.manifest.media_type)
    digest = Digest.of(raw)
    if ref.digest is None and ref.tag:
        client.put_manifest(host, repo, ref.tag, raw, media)
    client.on_event(Pushed(reference=str(ref.with_digest(str(digest)) if ref.digest is None else ref), digest=digest))
    return digest
