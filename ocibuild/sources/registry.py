"""Bases pulled from a registry (``docker://REF`` or a bare reference)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ..registry.client import RegistryClient
from ..spec import Descriptor, Platform, Reference
from ..store import ContentStore
from .base import BaseImage, resolve_manifest

PULL_JOBS = 4


def load_registry(client: RegistryClient, ref: Reference, store: ContentStore, platform: Platform | None,
                  jobs: int = PULL_JOBS) -> BaseImage:
    """Resolve ``ref`` (tag or digest; index or manifest) for ``platform`` and pull its blobs into the
    store in parallel, each verified by digest and size; blobs already stored are not downloaded."""
    host, repo = ref.api_host, ref.repository
    raw, media, digest = client.get_manifest(ref)
    top = Descriptor(media_type=media, digest=digest, size=len(raw))

    def fetch(desc: Descriptor) -> bytes:
        if desc.digest == digest:
            return raw
        if store.has(desc.digest):  # configs and child manifests are kept: no request on a rebuild
            return store.read_bytes(desc.digest)
        data = client.get_small(host, repo, desc)
        store.put_bytes(data)
        return data

    def ingest(layers: Sequence[Descriptor]) -> None:
        missing = [d for d in layers if not store.has(d.digest)]
        if not missing:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(missing)))) as pool:
            for future in [pool.submit(client.fetch_blob, host, repo, d, store) for d in missing]:
                future.result()

    base = resolve_manifest(fetch, top, store, platform, f"docker://{ref}", ingest)
    return BaseImage(manifest=base.manifest, config=base.config, digest=base.digest, name=str(ref),
                     platforms=base.platforms)
