"""A registry client for the OCI distribution API, built on a ``requests.Session`` passed in.

What it does that generic clients get wrong:
- tokens are cached per (registry, scope): pull and push,pull, one repository and another;
- every blob pulled is checked by digest and size while it streams to disk, and resumes with
  ``Range`` after a dropped connection; nothing unverified enters the store;
- pushes HEAD first, mount across repositories, stream a monolithic PUT from the store file
  (constant memory) and fall back to a chunked PATCH upload;
- connection errors, 429 and 502/503/504 are retried with exponential backoff and jitter,
  honouring ``Retry-After``, within a total time budget;
- distribution error codes become messages that name registry, repository and what to do.
Secrets never appear in messages or logs.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO
from urllib.parse import urlencode, urljoin, urlparse

import requests
import requests.adapters

from ..errors import DigestMismatch, ImageNotFound, OcibuildError, RegistryError
from ..events import BlobTransferred, EventHandler, Progress, ignore
from ..spec import INDEX_TYPES, MANIFEST_TYPES, Descriptor, Digest, MediaType, Reference
from ..store import CHUNK, ContentStore
from ..version import __version__
from .auth import Challenge, CredentialProvider, Credentials, default_credentials, parse_challenge, scope_for
from .tls import TLSConfig

log = logging.getLogger("ocibuild.registry")

ACCEPT_MANIFESTS = ", ".join([MediaType.OCI_INDEX, MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST_LIST,
                              MediaType.DOCKER_MANIFEST])
MAX_MANIFEST = 4 << 20
RETRY_STATUSES = frozenset({429, 502, 503, 504})
CHUNK_UPLOAD = 16 << 20
_HINTS = {
    "UNAUTHORIZED": "log in with 'ocibuild login {host}' or pass --creds USER:PASSWORD",
    "DENIED": "the credentials lack permission for this repository; check them or ask the registry's admin",
    "NAME_UNKNOWN": "check the repository name",
    "NAME_INVALID": "check the repository name",
    "MANIFEST_UNKNOWN": "check the tag or digest",
    "MANIFEST_INVALID": "the registry rejected the manifest; it may not support this media type",
    "MANIFEST_BLOB_UNKNOWN": "a blob the manifest references is missing; push again",
    "BLOB_UNKNOWN": "the blob is missing in the registry; push again",
    "BLOB_UPLOAD_UNKNOWN": "the upload session expired; push again",
    "BLOB_UPLOAD_INVALID": "the registry rejected the upload; push again",
    "DIGEST_INVALID": "the uploaded content does not match its digest; clear the cache entry and build again",
    "SIZE_INVALID": "the uploaded content does not match its size; push again",
    "TOOMANYREQUESTS": "the registry rate-limits you; wait and retry, or log in",
    "UNSUPPORTED": "the registry does not support this operation",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """Timeouts and retries. ``budget`` bounds the total time spent retrying one operation."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 10.0
    budget: float = 120.0
    connect_timeout: float = 10.0
    read_timeout: float = 120.0


class _Deadline:
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.start = time.monotonic()
        self.attempt = 0

    def wait(self, retry_after: float | None = None) -> bool:
        """Sleep before the next try; False when attempts or budget are spent."""
        self.attempt += 1
        if self.attempt >= self.policy.attempts:
            return False
        backoff = min(self.policy.max_delay, self.policy.base_delay * 2 ** (self.attempt - 1))
        delay = retry_after if retry_after is not None else backoff * (0.5 + random.random() / 2)
        delay = min(delay, self.policy.max_delay * 3)
        if time.monotonic() - self.start + delay > self.policy.budget:
            return False
        time.sleep(delay)
        return True


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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


class _BigBlockAdapter(requests.adapters.HTTPAdapter):
    """Sends request bodies in 1 MiB blocks (urllib3's default 16 KiB costs ~15% on a fast link)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("blocksize", CHUNK)
        super().init_poolmanager(*args, **kwargs)


def default_session() -> requests.Session:
    """A session with connection pools big enough for parallel transfers and large send blocks."""
    session = requests.Session()
    adapter = _BigBlockAdapter(pool_connections=8, pool_maxsize=16)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class RegistryClient:
    """Talks to OCI distribution registries.

    >>> client = RegistryClient(requests.Session())  # doctest: +SKIP
    >>> raw, media_type, digest = client.get_manifest(Reference.parse("127.0.0.1:5000/app:1"))  # doctest: +SKIP
    """

    def __init__(self, session: requests.Session | None = None, *, credentials: CredentialProvider | None = None,
                 tls: TLSConfig | None = None, retry: RetryPolicy | None = None,
                 on_event: EventHandler = ignore) -> None:
        self.session = session or default_session()
        self.session.headers.setdefault("User-Agent", f"ocibuild/{__version__}")
        self.credentials = credentials or default_credentials()
        self.tls = tls or TLSConfig()
        self.retry = retry or RetryPolicy()
        self.on_event = on_event
        self._lock = threading.Lock()
        self._schemes: dict[str, str] = {}
        self._tokens: dict[tuple[str, tuple[str, ...]], tuple[str, float]] = {}
        self._basic: set[str] = set()
        self._token_locks: dict[tuple[str, tuple[str, ...]], threading.Lock] = {}
        self._creds: dict[str, Credentials | None] = {}

    # --- plumbing ------------------------------------------------------------------------------

    def _credentials(self, host: str) -> Credentials | None:
        with self._lock:
            if host not in self._creds:
                self._creds[host] = self.credentials.get(host)
            return self._creds[host]

    def _base(self, host: str) -> str:
        return f"{self._schemes.get(host, 'https')}://{host}"

    def _auth_header(self, host: str, scopes: tuple[str, ...]) -> dict[str, str]:
        with self._lock:
            token = self._tokens.get((host, scopes))
            if token and token[1] > time.monotonic():
                return {"Authorization": f"Bearer {token[0]}"}
            use_basic = host in self._basic
        creds = self._credentials(host) if use_basic else None
        if creds is not None and creds.username:
            import base64

            raw = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {}

    def _on_challenge(self, host: str, repo: str, challenge: Challenge, scopes: tuple[str, ...],
                      sent: Mapping[str, str]) -> bool:
        """Prepare credentials for a retry after 401; False if there is nothing new to try. Parallel
        requests that hit the same challenge share one token fetch."""
        if challenge.scheme == "basic":
            creds = self._credentials(host)
            if creds is None or not creds.username or sent.get("Authorization", "").startswith("Basic "):
                return False
            with self._lock:
                self._basic.add(host)
            return True
        if challenge.scheme == "bearer" and challenge.realm:
            with self._lock:
                key_lock = self._token_locks.setdefault((host, scopes), threading.Lock())
            with key_lock:
                current = self._auth_header(host, scopes)
                if current and current != dict(sent) and current["Authorization"].startswith("Bearer "):
                    return True  # another thread fetched a fresh token meanwhile
                token, ttl = self._fetch_token(host, repo, challenge, scopes)
                with self._lock:
                    self._tokens[(host, scopes)] = (token, time.monotonic() + max(10.0, ttl - 10))
            return True
        return False

    def _fetch_token(self, host: str, repo: str, challenge: Challenge, scopes: tuple[str, ...]) -> tuple[str, float]:
        creds = self._credentials(host)
        realm = challenge.realm
        realm_host = urlparse(realm).netloc
        service = challenge.params.get("service", "")
        wanted = list(scopes) or ([challenge.params["scope"]] if challenge.params.get("scope") else [])
        kwargs: dict[str, Any] = {"timeout": (self.retry.connect_timeout, self.retry.read_timeout),
                                  "verify": self.tls.verify(realm_host), "cert": self.tls.client_cert(realm_host)}
        deadline = _Deadline(self.retry)
        while True:
            try:
                if creds is not None and creds.identity_token:
                    form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token, "service": service,
                            "scope": " ".join(wanted), "client_id": "ocibuild"}
                    resp = self.session.post(realm, data=form, **kwargs)
                else:
                    query = [("service", service)] if service else []
                    query += [("scope", s) for s in wanted]
                    auth = creds.basic if creds is not None and creds.username else None
                    resp = self.session.get(realm, params=query, auth=auth, **kwargs)
            except requests.RequestException as exc:
                if deadline.wait():
                    continue
                raise RegistryError(f"cannot reach the token service of {host} ({realm_host}): "
                                    f"{type(exc).__name__}; check the network and retry") from None
            if resp.status_code in RETRY_STATUSES and deadline.wait(_retry_after(resp)):
                continue
            break
        if resp.status_code in (401, 403):
            who = f"the credentials from {creds.source}" if creds else "anonymous access"
            raise RegistryError(f"{host}/{repo}: the token service refused {who} "
                                f"(HTTP {resp.status_code}); log in with 'ocibuild login {host}' or pass --creds")
        if resp.status_code != 200:
            raise RegistryError(f"{host}: token service answered HTTP {resp.status_code}; retry later")
        try:
            body = resp.json()
            token = str(body.get("token") or body.get("access_token") or "")
            ttl = float(body.get("expires_in") or 60)
        except (ValueError, AttributeError):
            token, ttl = "", 0.0
        if not token:
            raise RegistryError(f"{host}: the token service returned no token")
        return token, ttl

    def request(self, method: str, host: str, path: str, *, repo: str, actions: Sequence[str] = ("pull",),
                extra_scopes: Sequence[str] = (), headers: Mapping[str, str] | None = None,
                body: Callable[[], Any] | None = None, stream: bool = False, retry: bool = True,
                allow_redirects: bool = True) -> requests.Response:
        """One API call with auth, TLS choice, timeouts and retries. ``path`` may be a full URL
        (upload locations). ``body`` is a factory so a retry can resend it."""
        scopes = (scope_for(repo, actions), *extra_scopes) if repo else tuple(extra_scopes)
        deadline = _Deadline(self.retry)
        challenged = False
        while True:
            url = path if path.startswith(("http://", "https://")) else self._base(host) + path
            all_headers = {**self._auth_header(host, scopes), **(headers or {})}
            try:
                resp = self.session.request(
                    method, url, headers=all_headers, data=body() if body else None, stream=stream,
                    timeout=(self.retry.connect_timeout, self.retry.read_timeout), verify=self.tls.verify(host),
                    cert=self.tls.client_cert(host), allow_redirects=allow_redirects)
            except requests.exceptions.SSLError as exc:
                if self._maybe_plain_http(host, url, exc):
                    continue
                raise RegistryError(
                    f"{host}: TLS failed ({_ssl_reason(exc)}); if the registry uses a private CA pass --ca-file "
                    f"or put it in /etc/containers/certs.d/{host}/ca.crt, or use --insecure-registry {host}"
                ) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if retry and deadline.wait():
                    log.debug("%s %s: %s; retrying", method, _redact(url), type(exc).__name__)
                    continue
                raise RegistryError(f"cannot reach registry {host}: {type(exc).__name__} after "
                                    f"{deadline.attempt + 1} tries; check that it is running and reachable") from None
            log.debug("%s %s -> %s", method, _redact(url), resp.status_code)
            if resp.status_code == 401 and not challenged:
                challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                challenged = True
                sent = {k: v for k, v in all_headers.items() if k == "Authorization"}
                if challenge is not None and self._on_challenge(host, repo, challenge, scopes, sent):
                    resp.close()
                    continue
            if resp.status_code in RETRY_STATUSES and retry and deadline.wait(_retry_after(resp)):
                resp.close()
                continue
            return resp

    def _maybe_plain_http(self, host: str, url: str, exc: Exception) -> bool:
        if not url.startswith("https://") or not self.tls.may_use_http(host) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return False
        with self._lock:  # another thread may have switched already: either way, retry over http
            self._schemes[host] = "http"
        return True

    def error(self, resp: requests.Response, host: str, repo: str, what: str) -> OcibuildError:
        """A clear error for a failed response (never includes credentials)."""
        codes: list[tuple[str, str]] = []
        try:
            for e in resp.json().get("errors", []):
                codes.append((str(e.get("code", "")), str(e.get("message", ""))))
        except (ValueError, AttributeError):
            pass
        code, message = codes[0] if codes else ("", "")
        if not code:
            code = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN", 429: "TOOMANYREQUESTS"}.get(
                resp.status_code, "")
        hint = _HINTS.get(code, "retry, or run with --debug for details").format(host=host)
        detail = f"{code}: {message}" if message else code or f"HTTP {resp.status_code}"
        cls = ImageNotFound if code in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN") else RegistryError
        return cls(f"{what} {host}/{repo} failed (HTTP {resp.status_code}, {detail}); {hint}")

    # --- pull ----------------------------------------------------------------------------------

    def check_login(self, registry: str) -> None:
        """Check this client's credentials against ``registry`` (``host[:port]``; ``docker.io`` means
        Docker Hub's API host) with ``GET /v2/``; ``RegistryError`` if they are refused."""
        api_host = Reference.parse(f"{registry}/probe").api_host
        resp = self.request("GET", api_host, "/v2/", repo="", extra_scopes=())
        if resp.status_code == 401:
            raise RegistryError(f"login to {registry} failed: the registry refused the user name or password")
        if resp.status_code != 200:
            raise RegistryError(f"login to {registry} failed: HTTP {resp.status_code} from /v2/")

    def get_manifest(self, ref: Reference) -> tuple[bytes, str, Digest]:
        """The manifest or index ``ref`` names: raw bytes, media type, digest (verified)."""
        host, repo = ref.api_host, ref.repository
        resp = self.request("GET", host, f"/v2/{repo}/manifests/{ref.ref}", repo=repo,
                            headers={"Accept": ACCEPT_MANIFESTS})
        if resp.status_code != 200:
            raise self.error(resp, host, repo, f"getting manifest '{ref.ref}' of")
        raw = resp.content
        if len(raw) > MAX_MANIFEST:
            raise RegistryError(f"{host}/{repo}: manifest {ref.ref} is implausibly large ({len(raw)} bytes)")
        digest = Digest.of(raw)
        if ref.digest and str(digest) != ref.digest:
            raise DigestMismatch(f"{host}/{repo}: manifest has digest {digest}, not the requested {ref.digest}")
        header = resp.headers.get("Docker-Content-Digest")
        if header and header.startswith("sha256:") and header != str(digest):
            raise DigestMismatch(f"{host}/{repo}: manifest {ref.ref} does not match its Docker-Content-Digest")
        media = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return raw, media, digest

    def get_small(self, host: str, repo: str, desc: Descriptor) -> bytes:
        """A manifest or config by descriptor, verified by digest and size."""
        kind = "manifests" if desc.media_type in MANIFEST_TYPES | INDEX_TYPES else "blobs"
        if desc.size > MAX_MANIFEST:
            raise RegistryError(f"{host}/{repo}: {desc.digest} is implausibly large ({desc.size} bytes)")
        resp = self.request("GET", host, f"/v2/{repo}/{kind}/{desc.digest}", repo=repo,
                            headers={"Accept": ACCEPT_MANIFESTS} if kind == "manifests" else None)
        if resp.status_code != 200:
            raise self.error(resp, host, repo, f"getting {desc.digest} from")
        data = resp.content
        if not desc.digest.verify(data) or len(data) != desc.size:
            raise DigestMismatch(f"{host}/{repo}: {desc.digest} does not match its digest or size; "
                                 "the registry returned corrupt content")
        return data

    def fetch_blob(self, host: str, repo: str, desc: Descriptor, store: ContentStore) -> str:
        """Stream a blob into the store, verified; resume with ``Range`` after a dropped connection.
        Returns "cached" or "downloaded"."""
        if store.has(desc.digest):
            return "cached"
        start = time.monotonic()
        deadline = _Deadline(self.retry)
        with store.writer(desc.digest.algorithm) as w:
            while True:
                headers = {"Range": f"bytes={w.size}-"} if w.size else None
                resp = self.request("GET", host, f"/v2/{repo}/blobs/{desc.digest}", repo=repo, headers=headers,
                                    stream=True)
                if resp.status_code == 200 and w.size:  # the server ignored Range: start over
                    w.abort()
                    return self.fetch_blob(host, repo, desc, store)
                if resp.status_code not in (200, 206):
                    raise self.error(resp, host, repo, f"downloading {desc.digest} from")
                try:
                    for chunk in resp.iter_content(CHUNK):
                        w.write(chunk)
                        if w.size > desc.size:
                            break
                        self.on_event(Progress(digest=desc.digest, done=w.size, total=desc.size, action="pull"))
                except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout):
                    if w.size < desc.size and deadline.wait():
                        continue
                    raise RegistryError(f"download of {desc.digest} from {host}/{repo} kept failing; retry") from None
                finally:
                    resp.close()
                break
            try:
                w.commit(desc.digest, desc.size)
            except DigestMismatch as exc:
                raise DigestMismatch(f"{host}/{repo}: blob {desc.digest} is corrupt ({exc}); "
                                     "nothing was stored") from None
        self.on_event(BlobTransferred(registry=host, repository=repo, digest=desc.digest, size=desc.size,
                                      how="downloaded", seconds=time.monotonic() - start))
        return "downloaded"

    # --- push ----------------------------------------------------------------------------------

    def blob_exists(self, host: str, repo: str, digest: Digest, actions: Sequence[str] = ("pull", "push")) -> bool:
        resp = self.request("HEAD", host, f"/v2/{repo}/blobs/{digest}", repo=repo, actions=actions)
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self.error(resp, host, repo, f"checking blob {digest} in")

    def _start_upload(self, host: str, repo: str, digest: Digest, mount_from: str | None) -> str | None:
        """POST an upload session (with a mount attempt); None when the mount succeeded."""
        query = f"?{urlencode({'mount': str(digest), 'from': mount_from})}" if mount_from else ""
        extra = (scope_for(mount_from, ("pull",)),) if mount_from else ()
        resp = self.request("POST", host, f"/v2/{repo}/blobs/uploads/{query}", repo=repo, actions=("pull", "push"),
                            extra_scopes=extra, headers={"Content-Length": "0"})
        if resp.status_code == 201 and mount_from:
            return None
        if resp.status_code != 202 or "Location" not in resp.headers:
            raise self.error(resp, host, repo, "starting an upload to")
        return urljoin(self._base(host) + "/", resp.headers["Location"])

    def _put_monolithic(self, host: str, repo: str, location: str, desc: Descriptor,
                        source: Callable[[], BinaryIO]) -> requests.Response:
        def body() -> _ProgressReader:
            f = source()
            return _ProgressReader(f, desc.size, lambda done: self.on_event(
                Progress(digest=desc.digest, done=done, total=desc.size, action="push")))

        url = _with_query(location, {"digest": str(desc.digest)})
        return self.request("PUT", host, url, repo=repo, actions=("pull", "push"), body=body, retry=False,
                            headers={"Content-Type": "application/octet-stream"})

    def _put_chunked(self, host: str, repo: str, location: str, desc: Descriptor,
                     source: Callable[[], BinaryIO]) -> requests.Response:
        with source() as f:
            offset = 0
            while offset < desc.size or offset == 0:
                data = f.read(CHUNK_UPLOAD)
                end = offset + len(data) - 1
                resp = self.request("PATCH", host, location, repo=repo, actions=("pull", "push"), retry=False,
                                    body=lambda data=data: data,  # type: ignore[misc]
                                    headers={"Content-Type": "application/octet-stream",
                                             "Content-Range": f"{offset}-{max(end, offset)}",
                                             "Content-Length": str(len(data))})
                if resp.status_code != 202:
                    raise self.error(resp, host, repo, "uploading a chunk to")
                location = urljoin(location, resp.headers.get("Location", location))
                offset += len(data)
                self.on_event(Progress(digest=desc.digest, done=offset, total=desc.size, action="push"))
                if not data:
                    break
        return self.request("PUT", host, _with_query(location, {"digest": str(desc.digest)}), repo=repo,
                            actions=("pull", "push"), retry=False, headers={"Content-Length": "0"})

    def push_blob(self, host: str, repo: str, desc: Descriptor, source: ContentStore | Callable[[], BinaryIO], *,
                  mount_from: str | None = None, chunked: bool = False) -> str:
        """Make ``desc`` present in ``host/repo``: "exists", "mounted" or "uploaded". ``source`` opens
        the blob's bytes (called again for each attempt), or is a store holding it. A failure mid-way
        restarts the whole upload (new session), within the retry budget."""
        start = time.monotonic()
        if not callable(source):
            store = source
            if not store.has(desc.digest):
                raise RegistryError(f"blob {desc.digest} is not in the cache {store.root}; build again")
            source = partial(store.open, desc.digest)
        path = source
        deadline = _Deadline(self.retry)
        while True:
            try:
                how = self._push_once(host, repo, desc, path, mount_from, chunked)
                break
            except _Retryable as exc:
                if deadline.wait(exc.retry_after):
                    continue
                raise RegistryError(f"upload of {desc.digest} to {host}/{repo} kept failing ({exc}); "
                                    "rerun: blobs already pushed are skipped") from None
        self.on_event(BlobTransferred(registry=host, repository=repo, digest=desc.digest, size=desc.size, how=how,
                                      seconds=time.monotonic() - start))
        return how

    def _push_once(self, host: str, repo: str, desc: Descriptor, path: Callable[[], BinaryIO], mount_from: str | None,
                   chunked: bool) -> str:
        if self.blob_exists(host, repo, desc.digest):
            return "exists"
        location = self._start_upload(host, repo, desc.digest, mount_from if mount_from != repo else None)
        if location is None:
            return "mounted"
        try:
            resp = (self._put_chunked if chunked else self._put_monolithic)(host, repo, location, desc, path)
        except RegistryError as exc:  # connection trouble during the body: a new session is needed
            raise _Retryable(str(exc)) from None
        if resp.status_code in RETRY_STATUSES:
            raise _Retryable(f"HTTP {resp.status_code}", _retry_after(resp))
        if resp.status_code in (400, 404, 405, 413, 416) and not chunked and _code(resp) not in (
                "DIGEST_INVALID", "SIZE_INVALID"):
            log.debug("monolithic upload refused (HTTP %s); trying a chunked upload", resp.status_code)
            return self._push_once(host, repo, desc, path, None, chunked=True)
        if resp.status_code != 201:
            if _code(resp) == "BLOB_UPLOAD_UNKNOWN":
                raise _Retryable("upload session lost")
            raise self.error(resp, host, repo, f"uploading {desc.digest} to")
        return "uploaded"

    def put_manifest(self, host: str, repo: str, reference: str, data: bytes, media_type: str) -> Digest:
        """PUT a manifest or index under a tag or its digest; checks the digest the registry reports."""
        digest = Digest.of(data)
        resp = self.request("PUT", host, f"/v2/{repo}/manifests/{reference}", repo=repo, actions=("pull", "push"),
                            body=lambda: data, headers={"Content-Type": media_type})
        if resp.status_code not in (200, 201):
            raise self.error(resp, host, repo, f"pushing manifest {reference} to")
        reported = resp.headers.get("Docker-Content-Digest")
        if reported and reported != str(digest):
            raise DigestMismatch(f"{host}/{repo}: registry stored the manifest as {reported}, expected {digest}")
        return digest


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _code(resp: requests.Response) -> str:
    try:
        return str(resp.json()["errors"][0]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def _with_query(url: str, params: Mapping[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _redact(url: str) -> str:
    """Drop query strings (upload state tokens) from logged URLs."""
    return url.split("?")[0]


def _ssl_reason(exc: Exception) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate verify failed"
    return "TLS handshake error"

