"""Pull and push on a ``Repository``: manifests, configs and blobs, over a ``Transport`` (auth, TLS,
retries and error messages live there).

What it does that generic clients get wrong:
- every blob pulled is checked by digest and size while it streams to disk, and resumes with
  ``Range`` after a dropped connection; nothing unverified enters the store;
- pushes HEAD first, mount across repositories, stream a monolithic PUT from the store file
  (constant memory) and fall back to a chunked PATCH upload; a failure mid-way restarts the upload
  within the retry budget;
- what the registry reports after a push is checked: the ``Docker-Content-Digest`` of a finished
  (or mounted, or existing) blob and of a stored manifest must be the digest pushed;
- manifests, indexes and configs are read streamed and refused past their size limit; every
  operation runs under the transport's deadlines (see ``transport``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import BinaryIO
from urllib.parse import urlencode

import requests

from ..errors import DigestMismatch, ImageNotFound, RegistryError
from ..events import BlobTransferred, EventHandler, Progress, TransferKind, ignore
from ..spec import INDEX_TYPES, MANIFEST_TYPES, Descriptor, Digest, ImageIndex, MediaType, Reference, SpecError
from ..store import CHUNK, ContentStore
from .auth import CredentialProvider, scope_for
from .known import KnownBlobs
from .tls import TLSConfig
from .transport import (
    READ_ERRORS,
    RETRY_STATUSES,
    Repository,
    ResponseTooLarge,
    RetryPolicy,
    Transport,
    broken,
    clean,
    error_code,
    preload,
    read_limited,
    resolve,
    retry_after,
    shown,
)

__all__ = ["RegistryClient", "Repository", "RetryPolicy"]  # the last two are re-exported from .transport

log = logging.getLogger("ocibuild.registry")

ACCEPT_MANIFESTS = ", ".join([MediaType.OCI_INDEX, MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST_LIST,
                              MediaType.DOCKER_MANIFEST])
MAX_MANIFEST = 4 << 20
CHUNK_UPLOAD = 16 << 20
MAX_REFERRER_PAGES = 16
"""Most pages of a referrers answer followed (``Link: <...>; rel="next"``), each at most ``MAX_MANIFEST``."""
NO_REFERRERS_API = frozenset({400, 404, 405, 406, 501})
"""Answers to ``GET /v2/<name>/referrers/<digest>`` that mean: this registry has no referrers API."""
_PUSH = ("pull", "push")


class _ProgressReader:
    """File-like body for ``requests``: reports progress, has a length (so Content-Length is sent)."""

    def __init__(self, f: BinaryIO, length: int, report: Callable[[int], None]) -> None:
        self._f = f
        self._length = length
        self._report = report
        self._done = 0

    def __len__(self) -> int:
        return self._length - self._done

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._done += len(data)
        self._report(self._done)
        return data


class RegistryClient:
    """Talks to OCI distribution registries; ``transport`` carries the session, credentials, TLS and
    retry policy.

    >>> client = RegistryClient(requests.Session())  # doctest: +SKIP
    >>> raw, media_type, digest = client.get_manifest(Reference.parse("127.0.0.1:5000/app:1"))  # doctest: +SKIP
    >>> client.blob_exists(Repository(host="127.0.0.1:5000", name="app"), digest)  # doctest: +SKIP
    """

    def __init__(self, session: requests.Session | None = None, *, credentials: CredentialProvider | None = None,
                 tls: TLSConfig | None = None, retry: RetryPolicy | None = None,
                 on_event: EventHandler = ignore, known: KnownBlobs | None = None) -> None:
        self.transport = Transport(session, credentials=credentials, tls=tls, retry=retry)
        self.on_event = on_event
        self.known = known
        """Blobs the destination repositories are known to hold: pushes skip their ``HEAD`` (see ``known``)."""

    # --- pull ----------------------------------------------------------------------------------

    def get_manifest(self, ref: Reference) -> tuple[bytes, str, Digest]:
        """The manifest or index ``ref`` names: raw bytes, media type, digest (verified); at most
        ``MAX_MANIFEST`` bytes."""
        repo = Repository.from_reference(ref)
        with self.transport.operation(f"getting manifest '{ref.ref}' of {repo}"):
            resp = self.transport.request("GET", repo, f"/v2/{repo.name}/manifests/{ref.ref}",
                                          headers={"Accept": ACCEPT_MANIFESTS}, stream=True)
            if resp.status_code != 200:
                raise self.transport.error(resp, repo, f"getting manifest '{ref.ref}' of")
            raw = read_limited(resp, MAX_MANIFEST, f"{repo}: manifest '{ref.ref}'")
        digest = Digest.of(raw)
        if ref.digest and str(digest) != ref.digest:
            raise DigestMismatch(f"{repo}: manifest has digest {digest}, not the requested {ref.digest}")
        header = resp.headers.get("Docker-Content-Digest")
        if header and header.startswith("sha256:") and header != str(digest):
            raise DigestMismatch(f"{repo}: manifest {ref.ref} does not match its Docker-Content-Digest")
        media = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return raw, media, digest

    def get_small(self, repo: Repository, desc: Descriptor) -> bytes:
        """A manifest or config by descriptor, verified by digest and size."""
        kind = "manifests" if desc.media_type in MANIFEST_TYPES | INDEX_TYPES else "blobs"
        if desc.size > MAX_MANIFEST:
            raise RegistryError(f"{repo}: {desc.digest} is implausibly large ({desc.size} bytes)")
        with self.transport.operation(f"getting {desc.digest} from {repo}"):
            resp = self.transport.request("GET", repo, f"/v2/{repo.name}/{kind}/{desc.digest}", stream=True,
                                          headers={"Accept": ACCEPT_MANIFESTS} if kind == "manifests" else None)
            if resp.status_code != 200:
                raise self.transport.error(resp, repo, f"getting {desc.digest} from")
            try:
                data = read_limited(resp, desc.size, f"{repo}: {desc.digest}")
            except ResponseTooLarge:
                raise DigestMismatch(f"{repo}: {desc.digest} is larger than its descriptor's {desc.size} bytes; "
                                     "the registry returned corrupt content") from None
        if not desc.digest.verify(data) or len(data) != desc.size:
            raise DigestMismatch(f"{repo}: {desc.digest} does not match its digest or size; "
                                 "the registry returned corrupt content")
        return data

    def referrers(self, repo: Repository, digest: Digest) -> ImageIndex | None:
        """The OCI 1.1 referrers of manifest ``digest`` (``GET /v2/<name>/referrers/<digest>``): an index
        of the artifact manifests whose ``subject`` it is, pages joined (at most ``MAX_REFERRER_PAGES``
        of at most ``MAX_MANIFEST`` bytes each). None when the registry has no referrers API: it
        answers 404 (distribution 2.8, Docker Hub), 400/405/406/501, or 200 with something that is
        not an OCI image index (an ``OCI-Subject`` header alone proves nothing).

        >>> client.referrers(Repository(host="127.0.0.1:5000", name="app"), digest)  # doctest: +SKIP
        ImageIndex(manifests=(Descriptor(media_type=..., artifact_type='application/spdx+json', ...),), ...)
        """
        path = f"/v2/{repo.name}/referrers/{digest}"
        found: list[Descriptor] = []
        with self.transport.operation(f"getting the referrers of {digest} from {repo}"):
            for page in range(MAX_REFERRER_PAGES):
                resp = self.transport.request("GET", repo, path, headers={"Accept": MediaType.OCI_INDEX}, stream=True)
                if resp.status_code in NO_REFERRERS_API and page == 0:
                    preload(resp)
                    return None
                if resp.status_code != 200:
                    raise self.transport.error(resp, repo, f"getting the referrers of {digest} from")
                following = resp.links.get("next", {}).get("url")
                raw = read_limited(resp, MAX_MANIFEST, f"{repo}: the referrers of {digest}")
                try:
                    index = ImageIndex.from_json(raw)
                    if str(index.media_type) != MediaType.OCI_INDEX:
                        raise SpecError(f"its mediaType is {str(index.media_type)[:100]!r}, not {MediaType.OCI_INDEX}")
                except SpecError as exc:
                    if page == 0:
                        log.debug("%s: the referrers answer is not an OCI index (%s): no referrers API", repo, exc)
                        return None
                    raise RegistryError(f"{repo}: page {page + 1} of the referrers of {digest} is malformed "
                                        f"({clean(str(exc), 200)}); the registry is misbehaving") from None
                found += index.manifests
                if not following:
                    return ImageIndex(manifests=tuple(found))
                path = resolve(self.transport.base_url(repo.host) + path, following)
        raise RegistryError(f"{repo}: the referrers of {digest} run past {MAX_REFERRER_PAGES} pages; "
                            "the registry is misbehaving")

    def fetch_blob(self, repo: Repository, desc: Descriptor, store: ContentStore) -> TransferKind:
        """Stream a blob into the store, verified; resume with ``Range`` after a dropped connection.
        Returns "cached" or "downloaded"."""
        if store.has(desc.digest):
            return "cached"
        start = time.monotonic()
        what = f"downloading {desc.digest} from {repo}"
        with self.transport.operation(what) as guard, store.writer(desc.digest.algorithm) as w:
            deadline = self.transport.deadline()
            got = 0
            while True:
                headers = {"Range": f"bytes={w.size}-"} if w.size else None
                resp = self.transport.request("GET", repo, f"/v2/{repo.name}/blobs/{desc.digest}", headers=headers,
                                              stream=True)
                if resp.status_code == 200 and w.size:  # the server ignored Range: start over
                    resp.close()
                    w.abort()
                    return self.fetch_blob(repo, desc, store)
                if resp.status_code not in (200, 206):
                    raise self.transport.error(resp, repo, f"downloading {desc.digest} from")
                try:
                    for chunk in resp.iter_content(CHUNK):
                        w.write(chunk)
                        if w.size > desc.size:
                            break
                        self.on_event(Progress(digest=desc.digest, done=w.size, total=desc.size, action="pull"))
                except READ_ERRORS as exc:
                    if w.size > got:  # progress was made: a fresh retry budget (the guard bounds the whole)
                        deadline = self.transport.deadline()
                    got = w.size
                    if guard.tripped() is None and w.size < desc.size and deadline.wait():
                        continue
                    if guard.tripped() is not None:
                        raise broken(what, exc) from None
                    raise RegistryError(f"download of {desc.digest} from {repo} kept failing; retry") from None
                finally:
                    resp.close()
                break
            reason = guard.tripped()  # a cut connection may look like the end of a body without a length
            if reason is not None and w.size != desc.size:
                raise RegistryError(reason)
            try:
                w.commit(desc.digest, desc.size)
            except DigestMismatch as exc:
                raise DigestMismatch(f"{repo}: blob {desc.digest} is corrupt ({exc}); nothing was stored") from None
        self._transferred(repo, desc, "downloaded", start)
        return "downloaded"

    def _transferred(self, repo: Repository, desc: Descriptor, how: TransferKind, start: float) -> None:
        self.on_event(BlobTransferred(registry=repo.host, repository=repo.name, digest=desc.digest, size=desc.size,
                                      how=how, seconds=time.monotonic() - start))

    # --- push ----------------------------------------------------------------------------------

    def blob_size(self, repo: Repository, digest: Digest) -> int | None:
        """HEAD the blob with pull rights only: its size if ``repo`` has it, else None."""
        with self.transport.operation(f"checking blob {digest} in {repo}"):
            resp = self.transport.request("HEAD", repo, f"/v2/{repo.name}/blobs/{digest}", actions=("pull",))
        if resp.status_code == 200:
            _check_reported(resp, repo, digest, "has the blob")
            try:
                return int(resp.headers.get("Content-Length", ""))
            except ValueError:
                return None
        if resp.status_code == 404:
            return None
        raise self.transport.error(resp, repo, f"checking blob {digest} in")

    def blob_exists(self, repo: Repository, digest: Digest, actions: Sequence[str] = _PUSH) -> bool:
        """HEAD the blob: True if ``repo`` has it (the token asks for ``actions``, push by default)."""
        with self.transport.operation(f"checking blob {digest} in {repo}"):
            resp = self.transport.request("HEAD", repo, f"/v2/{repo.name}/blobs/{digest}", actions=actions)
        if resp.status_code == 200:
            _check_reported(resp, repo, digest, "has the blob")
            return True
        if resp.status_code == 404:
            return False
        raise self.transport.error(resp, repo, f"checking blob {digest} in")

    def _start_upload(self, repo: Repository, digest: Digest, mount_from: str | None) -> str | None:
        """POST an upload session (with a mount attempt); None when the mount succeeded."""
        query = f"?{urlencode({'mount': str(digest), 'from': mount_from})}" if mount_from else ""
        extra = (scope_for(mount_from, ("pull",)),) if mount_from else ()
        resp = self.transport.request("POST", repo, f"/v2/{repo.name}/blobs/uploads/{query}", actions=_PUSH,
                                      extra_scopes=extra, headers={"Content-Length": "0"})
        if resp.status_code == 201 and mount_from:
            _check_reported(resp, repo, digest, f"mounted the blob from {mount_from}")
            return None
        if resp.status_code != 202 or "Location" not in resp.headers:
            raise self.transport.error(resp, repo, "starting an upload to")
        try:
            location = resolve(self.transport.base_url(repo.host) + "/", resp.headers["Location"])
        except RegistryError:
            raise RegistryError(f"{repo}: the registry's upload location {clean(resp.headers['Location'], 100)!r} "
                                "is not an http(s) URL; the registry is misconfigured") from None
        if not self.transport.same_origin(location, repo.host):
            log.debug("%s: upload goes to another origin (%s): no credentials go there", repo, shown(location))
        return location

    def _put_monolithic(self, repo: Repository, location: str, desc: Descriptor,
                        source: Callable[[], BinaryIO]) -> requests.Response:
        def body() -> _ProgressReader:
            f = source()
            return _ProgressReader(f, desc.size, lambda done: self.on_event(
                Progress(digest=desc.digest, done=done, total=desc.size, action="push")))

        url = _with_query(location, {"digest": str(desc.digest)})
        return self.transport.request("PUT", repo, url, actions=_PUSH, body=body, retry=False,
                                      headers={"Content-Type": "application/octet-stream"})

    def _put_chunked(self, repo: Repository, location: str, desc: Descriptor,
                     source: Callable[[], BinaryIO]) -> requests.Response:
        with source() as f:
            offset = 0
            while offset < desc.size or offset == 0:
                data = f.read(CHUNK_UPLOAD)
                end = offset + len(data) - 1
                resp = self.transport.request("PATCH", repo, location, actions=_PUSH, retry=False,
                                              body=lambda data=data: data,  # type: ignore[misc]
                                              headers={"Content-Type": "application/octet-stream",
                                                       "Content-Range": f"{offset}-{max(end, offset)}",
                                                       "Content-Length": str(len(data))})
                if resp.status_code != 202:
                    raise self.transport.error(resp, repo, "uploading a chunk to")
                location = resolve(location, resp.headers.get("Location", location))
                offset += len(data)
                self.on_event(Progress(digest=desc.digest, done=offset, total=desc.size, action="push"))
                if not data:
                    break
        return self.transport.request("PUT", repo, _with_query(location, {"digest": str(desc.digest)}),
                                      actions=_PUSH, retry=False, headers={"Content-Length": "0"})

    def push_blob(self, repo: Repository, desc: Descriptor, source: ContentStore | Callable[[], BinaryIO], *,
                  mount_from: str | None = None, chunked: bool = False, check: bool = True) -> TransferKind:
        """Make ``desc`` present in ``repo``: "exists", "mounted" or "uploaded". ``source`` opens the
        blob's bytes (called again for each attempt), or is a store holding it. ``mount_from`` names a
        repository on the same registry to mount the blob from. A failure mid-way restarts the whole
        upload (new session), within the retry budget. ``check=False`` skips the first ``HEAD`` (for a
        small blob the repository is very likely not to have: uploading it again is harmless)."""
        start = time.monotonic()
        if not callable(source):
            store = source
            if not store.has(desc.digest):
                raise RegistryError(f"blob {desc.digest} is not in the cache {store.root}; build again")
            source = partial(store.open, desc.digest)
        path = source
        with self.transport.operation(f"uploading {desc.digest} to {repo}") as guard:
            deadline = self.transport.deadline()
            while True:
                try:
                    how = self._push_once(repo, desc, path, mount_from, chunked, check)
                    break
                except _Retryable as exc:
                    if guard.tripped() is None and deadline.wait(exc.retry_after):
                        continue
                    reason = guard.tripped()
                    if reason is not None:
                        raise RegistryError(reason) from None
                    raise RegistryError(f"upload of {desc.digest} to {repo} kept failing ({exc}); "
                                        "rerun: blobs already pushed are skipped") from None
        self._transferred(repo, desc, how, start)
        return how

    def _push_once(self, repo: Repository, desc: Descriptor, path: Callable[[], BinaryIO], mount_from: str | None,
                   chunked: bool, check: bool = True) -> TransferKind:
        if check and self.blob_exists(repo, desc.digest):
            return "exists"
        location = self._start_upload(repo, desc.digest, mount_from if mount_from != repo.name else None)
        if location is None:
            return "mounted"
        try:
            resp = (self._put_chunked if chunked else self._put_monolithic)(repo, location, desc, path)
        except DigestMismatch:
            raise
        except RegistryError as exc:  # connection trouble during the body: a new session is needed
            raise _Retryable(str(exc)) from None
        if resp.status_code in RETRY_STATUSES:
            raise _Retryable(f"HTTP {resp.status_code}", retry_after(resp))
        if resp.status_code in (400, 404, 405, 413, 416) and not chunked and error_code(resp) not in (
                "DIGEST_INVALID", "SIZE_INVALID"):
            log.debug("monolithic upload refused (HTTP %s); trying a chunked upload", resp.status_code)
            return self._push_once(repo, desc, path, None, chunked=True)
        if resp.status_code != 201:
            if error_code(resp) == "BLOB_UPLOAD_UNKNOWN":
                raise _Retryable("upload session lost")
            raise self.transport.error(resp, repo, f"uploading {desc.digest} to")
        _check_reported(resp, repo, desc.digest, "stored the uploaded blob")
        return "uploaded"

    def put_manifest(self, repo: Repository, reference: str, data: bytes, media_type: str) -> Digest:
        """PUT a manifest or index under a tag or its digest; checks the digest the registry reports."""
        digest = Digest.of(data)
        with self.transport.operation(f"pushing manifest {reference} to {repo}"):
            resp = self.transport.request("PUT", repo, f"/v2/{repo.name}/manifests/{reference}", actions=_PUSH,
                                          body=lambda: data, headers={"Content-Type": media_type})
        if resp.status_code not in (200, 201):
            raise self.transport.error(resp, repo, f"pushing manifest {reference} to")
        _check_reported(resp, repo, digest, f"stored manifest {reference}")
        return digest

    def update_manifest(self, repo: Repository, tag: str,
                        change: Callable[[bytes | None], tuple[bytes, str] | None], *, tries: int = 8) -> Digest | None:
        """Read-modify-write the manifest or index at ``tag``, for documents several writers share (the
        ``sha256-<hex>`` referrers tag). ``change`` gets what the tag holds (None if nothing) and returns
        the new bytes and media type, or None when they already say what it wants.

        Registries offer no conditional PUT for manifests (distribution ignores ``If-Match``), so after
        a PUT the tag is read again and ``change`` asked again, and once it is content, asked once more
        after a pause of a few round trips: a writer that read the tag before our PUT and wrote after
        it has then written, and is merged with instead of lost. At most ``tries`` reads and PUTs, with
        short random pauses. Returns the digest the tag holds (None if it holds nothing and needs nothing)."""
        ref = Reference(registry=repo.host, repository=repo.name, tag=tag)
        wrote = settled = False
        settle = 0.0
        for attempt in range(tries + 1):
            started = time.monotonic()
            try:
                try:
                    current: bytes | None = self.get_manifest(ref)[0]
                except ImageNotFound:
                    current = None
                update = change(current)
                if update is None:
                    if not wrote or settled:
                        return Digest.of(current) if current is not None else None
                    time.sleep(settle)
                    settled = True
                    continue
                settled = False
                if attempt == tries:
                    break
                if wrote:
                    time.sleep(random.uniform(0.05, 0.25) * attempt)
                self.put_manifest(repo, tag, *update)
            except RegistryError as exc:  # distribution answers 500 while another writer rewrites the tag
                if exc.status != 500 or attempt == tries:
                    raise
                log.debug("%s: tag %s is being written by another client (HTTP 500); trying again", repo, tag)
                time.sleep(random.uniform(0.1, 0.3))
                continue
            wrote = True
            settle = min(5.0, max(0.3, 4 * (time.monotonic() - started))) * random.uniform(1.0, 1.5)
        raise RegistryError(f"{repo}: tag {tag} kept being changed by another writer ({tries} tries); run again")


def _check_reported(resp: requests.Response, repo: Repository, digest: Digest, what: str) -> None:
    """The ``Docker-Content-Digest`` the registry reports, if any, must be ``digest``."""
    reported = resp.headers.get("Docker-Content-Digest", "").strip()
    if reported and reported != str(digest):
        raise DigestMismatch(f"{repo}: the registry {what} as {clean(reported, 100)!r}, not as the pushed {digest}; "
                             "it did not store what was sent: push again, or check the registry (or a proxy "
                             "in between)")


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _with_query(url: str, params: Mapping[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)
