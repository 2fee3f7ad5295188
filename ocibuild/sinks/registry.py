"""Push an image to a registry: blobs (HEAD first, cross-repository mount, streamed upload) in a
bounded thread pool, then the manifest by digest and by tag."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ..events import Pushed
from ..image import Image
from ..registry.client import RegistryClient
from ..spec import Descriptor, Digest, Reference
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


def push_image(client: RegistryClient, ref: Reference, image: Image, store: ContentStore, *,
               mount_from: Reference | None = None, jobs: int = PUSH_JOBS) -> Digest:
    """Push ``image`` to ``ref`` (its tag, or only by digest when ``ref`` has a digest)."""
    image.store_metadata(store)
    push_blobs(client, ref, image.blobs(), store, mount_from=mount_from, jobs=jobs)
    host, repo = ref.api_host, ref.repository
    media = str(image.manifest.media_type)
    digest = client.put_manifest(host, repo, str(image.digest), image.manifest_bytes, media)
    if ref.digest is None and ref.tag:
        client.put_manifest(host, repo, ref.tag, image.manifest_bytes, media)
    client.on_event(Pushed(reference=str(ref.with_digest(str(digest)) if ref.digest is None else ref), digest=digest))
    return digest
