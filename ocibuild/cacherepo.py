"""A registry repository as a cache shared by every machine that builds (``--cache-repo``).

What a build learns that another machine can reuse is stored in one repository of a registry:

- **records**: the Python resolution (``resolve-…``), the target interpreter of a base (``target-…``),
  which wheel a pin took (``wheel-…``), the file listings the SBOM reads (``imagefs-walk-…``), and
  every **layer selector** (the hash of a layer's inputs -> its descriptor and diff_id);
- **layers**: each layer a build created, as a blob of that repository.

Layout: **one tag per key**. A record is a small OCI image manifest (``artifactType``
``application/vnd.ocibuild.cache.v1+json``, the empty config) tagged ``c-<sha256 of the key>``; the
record itself is the ``org.ocibuild.cache.record`` annotation (JSON) and ``org.ocibuild.cache.key`` repeats
the tag's hash. A layer record lists the layer blob as its one layer, so the registry's garbage
collector keeps the blob as long as the record is tagged. Why tags, not an index of keys: a lookup is
one ``GET`` of a manifest (no list to download and search), and workers writing at once never race on
a shared document (registries have no conditional PUT). The cost is one tag per key; a registry's
retention rules (delete ``c-*`` tags older than N days) keep it bounded.

Trust: whoever can write the cache repository chooses the bytes of your layers. Keep it writable by
CI only. Reads are verified: a record must carry the key it is tagged for, and a layer record counts
only if the repository holds a blob of exactly that digest and size (``HEAD``); bytes fetched from it
are digest-checked like every pull. A record that fails is ignored and written again.

Best effort, both ways: the cache never fails a build. When the registry is unreachable or answers
with an error, one warning line is printed and the build goes on without it; when the credentials
allow pulls but not pushes, reads go on and writes are skipped (one warning). Writes are queued while
the build runs and pushed by ``flush`` after the outputs are written (``publish`` calls it), layer blobs
mounted from the output repository when it is on the same registry, so a layer crosses the network
once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ImageNotFound, OcibuildError
from .events import EventHandler, Note, ignore
from .image import BlobLayer, Layer, Mountable, lazy_layer
from .spec import Descriptor, Digest, MediaType, Reference, SpecError, canonical_json

if TYPE_CHECKING:
    import requests

    from .registry import RegistryClient
    from .registry.transport import Repository
    from .store import ContentStore

__all__ = ["ARTIFACT_TYPE", "CacheRepo", "cache_tag", "open_cache_repo", "parse_cache_repo"]

ARTIFACT_TYPE = "application/vnd.ocibuild.cache.v1+json"
"""The ``artifactType`` of a cache record manifest."""
RECORD_ANNOTATION = "org.ocibuild.cache.record"
KEY_ANNOTATION = "org.ocibuild.cache.key"
ENV = "OCIBUILD_CACHE_REPO"
_PUSH_JOBS = 4
RECORD_LIMIT = 1 << 20
"""The largest record shared (bytes of JSON): manifests are read with a 4 MiB bound."""


def cache_tag(key: str) -> str:
    """The tag a record of ``key`` is stored under: ``c-`` and the sha256 of the key (any key fits a tag).

    >>> cache_tag("resolve-abc")[:10]
    'c-d5e0110d'
    """
    return "c-" + hashlib.sha256(key.encode()).hexdigest()


def parse_cache_repo(text: str, where: str = "--cache-repo") -> Reference:
    """``REGISTRY/REPO`` (no tag, no digest) as a reference; a ``ConfigError`` naming ``where`` otherwise.

    >>> ref = parse_cache_repo("127.0.0.1:5000/team/cache")
    >>> ref.registry, ref.repository
    ('127.0.0.1:5000', 'team/cache')
    """
    bare = text.removeprefix("docker://")
    try:
        ref = Reference.parse(bare)
    except SpecError as exc:
        raise ConfigError(f"{where} {text!r}: {exc}; give REGISTRY/REPO, e.g. 127.0.0.1:5000/ocibuild-cache") from None
    if ref.digest or ":" in bare.rsplit("/", 1)[-1]:
        raise ConfigError(f"{where} {text!r}: name a repository without a tag or digest, e.g. "
                          f"{ref.registry}/{ref.repository}")
    host = bare.split("/", 1)[0]
    if "/" not in bare or not ("." in host or ":" in host or host == "localhost"):
        raise ConfigError(f"{where} {text!r}: name the registry too, e.g. registry.example.com/team/cache")
    return ref


def open_cache_repo(text: str, client: RegistryClient | None = None, session: requests.Session | None = None,
                    on_event: EventHandler = ignore) -> CacheRepo:
    """The cache at ``text`` (``REGISTRY/REPO``), spoken to with ``client``'s credentials and TLS settings
    (else the docker/podman logins) but a short retry policy: a cache that does not answer within
    seconds is not worth waiting for."""
    from .registry import RegistryClient
    from .registry.transport import RetryPolicy

    retry = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0, budget=5.0, connect_timeout=5.0,
                        read_timeout=60.0)
    if client is not None:
        own = RegistryClient(session, credentials=client.transport.credentials, tls=client.transport.tls,
                             retry=retry)
    else:
        own = RegistryClient(session, retry=retry)
    return CacheRepo(parse_cache_repo(text, "cache_repo"), own, on_event=on_event)


@dataclass
class _Write:
    key: str
    text: str  # the record as compact, sorted JSON
    layer: Descriptor | None


class CacheRepo:
    """Records and layers shared through registry repository ``ref`` (see the module docstring).
    ``client`` carries the credentials and TLS settings; give it a short retry policy, since a cache
    that does not answer quickly is not worth waiting for. Thread-safe."""

    def __init__(self, ref: Reference, client: RegistryClient, *, on_event: EventHandler = ignore) -> None:
        from .registry.transport import Repository

        self.ref = ref
        self.repo: Repository = Repository.from_reference(ref)
        self.client = client
        self.on_event = on_event
        self.readable = True
        self.writable = True
        self._lock = threading.Lock()
        self._pending: dict[str, _Write] = {}
        self._blobs: dict[Digest, bool] = {}  # digest -> held by the cache repository (HEAD answered)

    def __str__(self) -> str:
        return str(self.repo)

    # --- reading ----------------------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The record stored for ``key``, or None (absent, unreadable, or the cache is off)."""
        from .registry.transport import ResponseTooLarge

        if not self.readable:
            return None
        tag = cache_tag(key)
        try:
            raw, _, _ = self.client.get_manifest(self.ref.with_tag(tag))
        except ImageNotFound:
            return None
        except ResponseTooLarge:  # not one this code wrote: ignored, like any record that does not check out
            self.on_event(Note(text=f"cache   {self.repo}: record {tag} ignored (too large); it is written again",
                               warning=True))
            return None
        except OcibuildError as exc:
            self._off("reading", exc)
            return None
        try:
            doc = json.loads(raw)
            notes = doc["annotations"]
            if notes[KEY_ANNOTATION] != tag.removeprefix("c-"):
                raise ValueError("the record names another key")
            value = json.loads(notes[RECORD_ANNOTATION])
        except (ValueError, KeyError, TypeError) as exc:
            self.on_event(Note(text=f"cache   {self.repo}: record {tag} ignored ({exc}); it is written again",
                               warning=True))
            return None
        return value

    def has_blob(self, desc: Descriptor) -> bool:
        """Whether the cache repository holds ``desc``'s blob with its size (remembered per digest)."""
        with self._lock:
            known = self._blobs.get(desc.digest)
        if known is not None:
            return known
        if not self.readable:
            return False
        try:
            found = self.client.blob_size(self.repo, desc.digest) == desc.size
        except OcibuildError as exc:
            self._off("reading", exc)
            return False
        with self._lock:
            self._blobs[desc.digest] = found
        return found

    def layer(self, store: ContentStore, desc: Descriptor, diff_id: Digest) -> Layer:
        """The layer whose blob the cache repository holds: mounted by a push to the same registry,
        fetched into ``store`` the first time its bytes are read (digest-checked, and its diff_id checked
        before any byte is handed out)."""
        from .sources.base import check_layer

        fetch = lambda d, s: self.client.fetch_blob(self.repo, d, s)  # noqa: E731
        inner: BlobLayer = lazy_layer(store, desc, diff_id, fetch,
                                      check=lambda: check_layer(store, desc, diff_id, f"cache repository {self.repo}"))
        return Mountable(layer=inner, source=self.ref)

    # --- writing ----------------------------------------------------------------------------------

    def put(self, key: str, value: Any, layer: Descriptor | None = None) -> None:
        """Queue ``value`` (and, for a layer record, the layer blob in the store) for ``flush``. A record
        over ``RECORD_LIMIT`` bytes (the file listing of a huge layer) is not shared: every reader would
        have to refuse it."""
        text = json.dumps(value, sort_keys=True, separators=(",", ":")) if self.writable else ""
        if text and len(text) <= RECORD_LIMIT:
            with self._lock:
                self._pending[key] = _Write(key=key, text=text, layer=layer)

    def flush(self, store: ContentStore, mount_from: Sequence[Reference] = ()) -> None:
        """Push what ``put`` queued: layer blobs (mounted from a repository of ``mount_from`` on the same
        registry that holds them, else uploaded from ``store``), then one record manifest per key.
        Never raises: a failure is one warning line and turns writing off."""
        from .referrers.artifact import EMPTY, EMPTY_JSON, bytes_blob

        with self._lock:
            writes, self._pending = list(self._pending.values()), {}
        if not writes or not self.writable:
            return
        mount = next((r.repository for r in mount_from if r.api_host == self.repo.host
                      and r.repository != self.repo.name), None)
        layers = {w.layer.digest: w.layer for w in writes if w.layer is not None and store.has(w.layer.digest)}
        try:
            self.client.push_blob(self.repo, EMPTY, bytes_blob(EMPTY, EMPTY_JSON).open)
            with ThreadPoolExecutor(max_workers=_PUSH_JOBS) as pool:
                list(pool.map(lambda d: self.client.push_blob(self.repo, d, store, mount_from=mount),
                              layers.values()))
            with ThreadPoolExecutor(max_workers=_PUSH_JOBS) as pool:
                list(pool.map(lambda w: self._put_record(w, layers), writes))
        except OcibuildError as exc:
            self._off("writing", exc)
            return
        with self._lock:
            self._blobs.update(dict.fromkeys(layers, True))
        self.on_event(Note(text=f"cache   wrote {len(writes)} records and {len(layers)} layers to {self.repo}"))

    def _put_record(self, write: _Write, layers: dict[Digest, Descriptor]) -> None:
        from .referrers.artifact import EMPTY

        tag = cache_tag(write.key)
        blob = layers.get(write.layer.digest) if write.layer is not None else None
        manifest = {
            "schemaVersion": 2,
            "mediaType": str(MediaType.OCI_MANIFEST),
            "artifactType": ARTIFACT_TYPE,
            "config": EMPTY.to_dict(),
            "layers": [blob.to_dict() if blob is not None else EMPTY.to_dict()],
            "annotations": {KEY_ANNOTATION: tag.removeprefix("c-"), RECORD_ANNOTATION: write.text},
        }
        self.client.put_manifest(self.repo, tag, canonical_json(manifest), str(MediaType.OCI_MANIFEST))

    # --- failures ---------------------------------------------------------------------------------

    def _off(self, doing: str, exc: OcibuildError) -> None:
        """Turn the cache off after a failure: reads and writes after a read failure (the registry is
        unreachable or broken), writes only after a refused write (pull-only credentials)."""
        status = getattr(exc, "status", None)
        denied = doing == "writing" and status in (401, 403)
        with self._lock:
            was = self.readable and self.writable if not denied else self.writable
            self.writable = False
            if not denied:
                self.readable = False
        if was:
            reason = str(exc).split("; ")[0]
            what = "writes skipped (the credentials allow pulls only)" if denied else \
                "building without it" if doing == "reading" else "nothing more is written to it"
            self.on_event(Note(text=f"warning: cache repository {self.repo}: {doing} failed ({reason}); {what}",
                               warning=True))
