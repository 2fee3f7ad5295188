"""Bases pulled from a registry (``docker://REF`` or a bare reference).

Only the manifests and the config are read up front; each layer is a lazy ``Layer`` fetched into
the store (verified by digest and size) the first time its bytes are read, and ``Mountable`` so a
push to the same registry mounts it instead of downloading and uploading it.

A layer's diff_id is checked (one streamed pass, remembered in the store) the first time the layer
is opened in a build: when it is downloaded, or when it is already in the store from an earlier
pull. A layer that is only mounted registry-to-registry is never downloaded and so never checked:
the output then carries the base's diff_ids as the registry serves them.
"""

from __future__ import annotations

from ..image import Image, Layer, Mountable, lazy_layer
from ..registry.client import RegistryClient, Repository
from ..spec import INDEX_TYPES, MANIFEST_TYPES, Descriptor, Digest, Platform, Reference
from ..store import ContentStore
from .base import ManifestSource, check_layer, platforms, resolve


def registry_source(client: RegistryClient, ref: Reference, store: ContentStore) -> ManifestSource:
    """The image or index ``ref`` names, as a ``ManifestSource`` (its manifest is read now)."""
    repo = Repository.from_reference(ref)
    raw, media, digest = client.get_manifest(ref)
    where = f"docker://{ref}"
    # a Content-Type that names no manifest type (application/json, none) says nothing: go by the document
    top = Descriptor(media_type=media if media in MANIFEST_TYPES | INDEX_TYPES else "", digest=digest, size=len(raw))

    def fetch(desc: Descriptor) -> bytes:
        if desc.digest == digest:
            return raw
        if store.has(desc.digest):  # configs and child manifests are kept: no request on a rebuild
            return store.read_bytes(desc.digest)
        data = client.get_small(repo, desc)
        store.put_bytes(data)
        return data

    def make_layer(desc: Descriptor, diff_id: Digest) -> Layer:
        layer = lazy_layer(store, desc, diff_id, lambda d, s: client.fetch_blob(repo, d, s),
                           check=lambda: check_layer(store, desc, diff_id, where))
        return Mountable(layer=layer, source=ref)

    return ManifestSource(where=where, top=top, fetch=fetch, make_layer=make_layer)


def load_registry(client: RegistryClient, ref: Reference, store: ContentStore, platform: Platform | None) -> Image:
    """Resolve ``ref`` (tag or digest; index or manifest) for ``platform``; no layer is downloaded yet."""
    return resolve(registry_source(client, ref, store), platform)


def registry_platforms(client: RegistryClient, ref: Reference, store: ContentStore) -> tuple[Platform, ...]:
    """The platforms ``ref`` offers, from its index (or its one manifest's config)."""
    return platforms(registry_source(client, ref, store))
