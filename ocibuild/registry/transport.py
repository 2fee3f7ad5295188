"""HTTP to OCI distribution registries: one ``Transport`` per client, over a ``requests.Session``
passed in (or :func:`default_session`).

- TLS per host from a ``TLSConfig``; HTTPS falls back to plain HTTP only for loopback and
  ``--insecure-registry`` hosts whose server does not speak TLS;
- registry challenges answered with basic auth or a bearer token; tokens are cached per
  (registry, scope), and parallel requests that meet the same challenge share one token fetch;
- connection errors, 429 and 502/503/504 are retried with exponential backoff and jitter,
  honouring ``Retry-After``, within a total time budget (``RetryPolicy``);
- distribution error codes become messages that name registry, repository and what to do.
Secrets never appear in messages or logs.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import requests
import requests.adapters

from ..errors import ImageNotFound, OcibuildError, RegistryError
from ..spec import Reference
from ..store import CHUNK
from ..version import __version__
from .auth import Challenge, CredentialProvider, Credentials, default_credentials, parse_challenge, scope_for
from .tls import TLSConfig

log = logging.getLogger("ocibuild.registry")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
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
class Repository:
    """One repository as the registry API addresses it: ``host`` serves the API (``host[:port]``,
    ``registry-1.docker.io`` for Docker Hub), ``name`` is the repository path.

    >>> Repository.from_reference(Reference.parse("busybox:1.36"))
    Repository(host='registry-1.docker.io', name='library/busybox')
    >>> str(Repository(host="127.0.0.1:5000", name="team/app"))
    '127.0.0.1:5000/team/app'
    """

    host: str
    name: str

    @classmethod
    def from_reference(cls, ref: Reference) -> Repository:
        """The repository ``ref`` lives in (its tag and digest are dropped)."""
        return cls(host=ref.api_host, name=ref.repository)

    def __str__(self) -> str:
        return f"{self.host}/{self.name}"


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """Timeouts and retries. ``budget`` bounds the total time spent retrying one operation."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 10.0
    budget: float = 120.0
    connect_timeout: float = 10.0
    read_timeout: float = 120.0


class Deadline:
    """The retry state of one operation under a ``RetryPolicy``: attempts made, time spent."""

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


def retry_after(resp: requests.Response) -> float | None:
    """Seconds the response's ``Retry-After`` (delta or HTTP date) asks to wait; None without one."""
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


class Transport:
    """Authenticated, retried requests to registries over one session; thread-safe.

    >>> tls = TLSConfig(insecure_registries=("reg.lan:5000",))
    >>> transport = Transport(requests.Session(), tls=tls)  # doctest: +SKIP
    >>> transport.check_login("reg.lan:5000")  # doctest: +SKIP
    """

    def __init__(self, session: requests.Session | None = None, *, credentials: CredentialProvider | None = None,
                 tls: TLSConfig | None = None, retry: RetryPolicy | None = None) -> None:
        self.session = session or default_session()
        self.session.headers.setdefault("User-Agent", f"ocibuild/{__version__}")
        self.credentials = credentials or default_credentials()
        self.tls = tls or TLSConfig()
        self.retry = retry or RetryPolicy()
        self._lock = threading.Lock()
        self._schemes: dict[str, str] = {}
        self._tokens: dict[tuple[str, tuple[str, ...]], tuple[str, float]] = {}
        self._basic: set[str] = set()
        self._token_locks: dict[tuple[str, tuple[str, ...]], threading.Lock] = {}
        self._creds: dict[str, Credentials | None] = {}

    def deadline(self) -> Deadline:
        """Fresh retry state for one operation under this transport's policy."""
        return Deadline(self.retry)

    def base_url(self, host: str) -> str:
        """``https://host``, or ``http://host`` once the host turned out to speak plain HTTP."""
        return f"{self._schemes.get(host, 'https')}://{host}"

    # --- auth ----------------------------------------------------------------------------------

    def _credentials(self, host: str) -> Credentials | None:
        with self._lock:
            if host not in self._creds:
                self._creds[host] = self.credentials.get(host)
            return self._creds[host]

    def _auth_header(self, host: str, scopes: tuple[str, ...]) -> dict[str, str]:
        with self._lock:
            token = self._tokens.get((host, scopes))
            if token and token[1] > time.monotonic():
                return {"Authorization": f"Bearer {token[0]}"}
            use_basic = host in self._basic
        creds = self._credentials(host) if use_basic else None
        if creds is not None and creds.username:
            raw = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {}

    def _on_challenge(self, host: str, where: str, challenge: Challenge, scopes: tuple[str, ...],
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
                token, ttl = self._fetch_token(host, where, challenge, scopes)
                with self._lock:
                    self._tokens[(host, scopes)] = (token, time.monotonic() + max(10.0, ttl - 10))
            return True
        return False

    def _fetch_token(self, host: str, where: str, challenge: Challenge,
                     scopes: tuple[str, ...]) -> tuple[str, float]:
        creds = self._credentials(host)
        realm = challenge.realm
        realm_host = urlparse(realm).netloc
        service = challenge.params.get("service", "")
        wanted = list(scopes) or ([challenge.params["scope"]] if challenge.params.get("scope") else [])
        kwargs: dict[str, Any] = {"timeout": (self.retry.connect_timeout, self.retry.read_timeout),
                                  "verify": self.tls.verify(realm_host), "cert": self.tls.client_cert(realm_host)}
        deadline = self.deadline()
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
            if resp.status_code in RETRY_STATUSES and deadline.wait(retry_after(resp)):
                continue
            break
        if resp.status_code in (401, 403):
            who = f"the credentials from {creds.source}" if creds else "anonymous access"
            raise RegistryError(f"{where}: the token service refused {who} "
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

    # --- requests ------------------------------------------------------------------------------

    def request(self, method: str, target: Repository | str, path: str, *, actions: Sequence[str] = ("pull",),
                extra_scopes: Sequence[str] = (), headers: Mapping[str, str] | None = None,
                body: Callable[[], Any] | None = None, stream: bool = False, retry: bool = True,
                allow_redirects: bool = True) -> requests.Response:
        """One API call with auth, TLS choice, timeouts and retries. ``target`` is a repository (its
        token scope asks for ``actions``), or a bare registry host for calls outside any repository
        such as ``GET /v2/``. ``path`` may be a full URL (upload locations). ``body`` is a factory so
        a retry can resend it."""
        if isinstance(target, Repository):
            host, scopes = target.host, (scope_for(target.name, actions), *extra_scopes)
        else:
            host, scopes = target, tuple(extra_scopes)
        deadline = self.deadline()
        challenged = False
        while True:
            url = path if path.startswith(("http://", "https://")) else self.base_url(host) + path
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
                if challenge is not None and self._on_challenge(host, str(target), challenge, scopes, sent):
                    resp.close()
                    continue
            if resp.status_code in RETRY_STATUSES and retry and deadline.wait(retry_after(resp)):
                resp.close()
                continue
            return resp

    def _maybe_plain_http(self, host: str, url: str, exc: Exception) -> bool:
        if not url.startswith("https://") or not self.tls.may_use_http(host) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return False
        with self._lock:  # another thread may have switched already: either way, retry over http
            self._schemes[host] = "http"
        return True

    def error(self, resp: requests.Response, repo: Repository, what: str) -> OcibuildError:
        """A clear error for a failed response (never includes credentials), e.g. ``getting manifest
        '1' of 127.0.0.1:5000/app failed (HTTP 404, MANIFEST_UNKNOWN: ...); check the tag or digest``."""
        codes = _error_codes(resp)
        code, message = codes[0] if codes else ("", "")
        if not code:
            code = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN", 429: "TOOMANYREQUESTS"}.get(
                resp.status_code, "")
        hint = _HINTS.get(code, "retry, or run with --debug for details").format(host=repo.host)
        detail = f"{code}: {message}" if message else code or f"HTTP {resp.status_code}"
        cls = ImageNotFound if code in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN") else RegistryError
        return cls(f"{what} {repo} failed (HTTP {resp.status_code}, {detail}); {hint}")

    def check_login(self, registry: str) -> None:
        """Check this transport's credentials against ``registry`` (``host[:port]``; ``docker.io`` means
        Docker Hub's API host) with ``GET /v2/``; ``RegistryError`` if they are refused."""
        api_host = Reference.parse(f"{registry}/probe").api_host
        resp = self.request("GET", api_host, "/v2/")
        if resp.status_code == 401:
            raise RegistryError(f"login to {registry} failed: the registry refused the user name or password")
        if resp.status_code != 200:
            raise RegistryError(f"login to {registry} failed: HTTP {resp.status_code} from /v2/")


def error_code(resp: requests.Response) -> str:
    """The first distribution error code in a response body (``BLOB_UPLOAD_UNKNOWN``, ...), or ""."""
    codes = _error_codes(resp)
    return codes[0][0] if codes else ""


def _error_codes(resp: requests.Response) -> list[tuple[str, str]]:
    """``(code, message)`` of each entry of a distribution ``{"errors": [...]}`` body, as far as it parses."""
    codes: list[tuple[str, str]] = []
    try:
        for e in resp.json().get("errors", []):
            codes.append((str(e.get("code", "")), str(e.get("message", ""))))
    except (ValueError, AttributeError, TypeError):
        pass
    return codes


def _redact(url: str) -> str:
    """Drop query strings (upload state tokens) from logged URLs."""
    return url.split("?")[0]


def _ssl_reason(exc: Exception) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate verify failed"
    return "TLS handshake error"
