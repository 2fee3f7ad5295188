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

Credentials stay with their origin (scheme, host, port), as browsers and containers/image scope them:

- the ``Authorization`` header (Basic credentials or a bearer token) and the registry's client
  certificate go only to the registry's own origin. An upload ``Location`` or a redirect to another
  origin is requested without them, verified by that host's own TLS settings (``--ca-file``, its
  ``certs.d`` folder). Redirects are followed here, not by requests, so this holds for every hop;
- credentials (or a refresh token) go to a token service (the ``realm`` of a ``Bearer`` challenge)
  only over HTTPS, or on the registry's own origin, or when registry and token service are both
  loopback addresses; otherwise the operation fails naming the realm. A realm that is not an
  http(s) URL is one clear error. Token requests follow no redirects;
- plain HTTP is only ever used for a registry on a loopback address or one named with
  ``--insecure-registry`` (after its HTTPS handshake failed), so credentials travel in cleartext
  only to such a registry: the user's choice, or the local machine;
- ``--creds`` / ``OCIBUILD_REGISTRY_USERNAME`` apply to every registry the command talks to (its
  base and its outputs), and by the rules above never leave those registries' origins.

``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` are honoured as requests does (``trust_env``); no
message shows a proxy URL (or its credentials), only the registry's host.

Deadlines and bounds (``RetryPolicy``, enforced by :mod:`ocibuild.transfer`, the one mechanism the
Debian-mirror and package-index downloads use too, with the same environment variables):

- a transfer that moves under ``low_speed_limit`` = 1024 bytes/s (``OCIBUILD_LOW_SPEED_LIMIT``)
  averaged over ``low_speed_time`` = 60 s (``OCIBUILD_LOW_SPEED_TIME``) is aborted, in either
  direction, headers included;
- one operation (a manifest, config, index or token GET, a HEAD, a manifest PUT, a blob download or
  upload), every retry and pause included, ends within ``timeout`` = 120 s
  (``OCIBUILD_TRANSFER_TIMEOUT``) plus one second per ``min_rate`` = 64 KiB moved: about two minutes
  for a small document; a blob moving at least 64 KiB/s on average is never cut;
- a single socket read or write waits at most ``read_timeout`` = 120 s, a connect ``connect_timeout``
  = 10 s;
- manifests, indexes and configs are read streamed and refused at their size limit + 1 byte
  (4 MiB for a manifest or index, the descriptor's size for the rest); token answers are read up to
  64 KiB, error answers up to 16 KiB (and at most 300 characters of them reach a message);
- malformed or over-deep JSON in token and error answers is one clear error (or, for an error
  answer, the HTTP status alone).
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions

from ..errors import ImageNotFound, OcibuildError, RegistryError
from ..spec import Reference
from ..transfer import Guard, TransferLimits, current_guard, env_limits, guarded
from ..transfer import default_session as default_session  # re-exported: the registry package's API
from ..version import __version__
from .auth import Challenge, CredentialProvider, Credentials, default_credentials, parse_challenge, scope_for
from .tls import TLSConfig, is_loopback

log = logging.getLogger("ocibuild.registry")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
ERROR_BODY_LIMIT = 16 << 10
TOKEN_LIMIT = 64 << 10
MESSAGE_LIMIT = 300
# what reading a streamed body can raise (requests wraps only part of urllib3's); sending, also OSError
READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError)
NET_ERRORS = (OSError, *READ_ERRORS)
_DEFAULT_PORTS = {"http": 80, "https": 443}
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


_LIMITS = TransferLimits()


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """Timeouts, deadlines and retries (the module docstring says what each bounds). ``budget``
    bounds the time spent retrying one operation; ``timeout`` + 1 s per ``min_rate`` bytes moved
    bounds the whole operation; ``low_speed_limit`` bytes/s over ``low_speed_time`` s is a stall.

    >>> RetryPolicy.from_env({"OCIBUILD_LOW_SPEED_TIME": "5"}).low_speed_time
    5.0
    """

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 10.0
    budget: float = 120.0
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    timeout: float = _LIMITS.max_time
    min_rate: int = _LIMITS.min_rate
    low_speed_limit: int = _LIMITS.low_speed_limit
    low_speed_time: float = _LIMITS.low_speed_time

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        """The defaults, changed by ``OCIBUILD_TRANSFER_TIMEOUT`` (s), ``OCIBUILD_LOW_SPEED_LIMIT``
        (bytes/s) and ``OCIBUILD_LOW_SPEED_TIME`` (s), read as :meth:`TransferLimits.from_env` reads them."""
        values = env_limits(environ)
        if "max_time" in values:
            values["timeout"] = values.pop("max_time")
        return cls(**values)

    @property
    def limits(self) -> TransferLimits:
        """The bounds of one operation under this policy."""
        return TransferLimits(connect_timeout=self.connect_timeout, low_speed_limit=self.low_speed_limit,
                              low_speed_time=self.low_speed_time, max_time=self.timeout, min_rate=self.min_rate)


class Deadline:
    """The retry state of one operation under a ``RetryPolicy``: attempts made, time spent."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.start = time.monotonic()
        self.attempt = 0

    def wait(self, retry_after: float | None = None) -> bool:
        """Sleep before the next try; False when attempts, budget or the operation's bound are spent."""
        self.attempt += 1
        if self.attempt >= self.policy.attempts:
            return False
        backoff = min(self.policy.max_delay, self.policy.base_delay * 2 ** (self.attempt - 1))
        delay = retry_after if retry_after is not None else backoff * (0.5 + random.random() / 2)
        delay = min(delay, self.policy.max_delay * 3)
        if time.monotonic() - self.start + delay > self.policy.budget:
            return False
        guard = current_guard()
        if guard is not None:
            if guard.tripped() is not None or guard.remaining() < delay:
                return False
            guard.pause()
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
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --- origins ------------------------------------------------------------------------------------------

Origin = tuple[str, str, int]


def origin(url: str) -> Origin | None:
    """``(scheme, host, port)`` of an http(s) URL (default ports filled in); None if it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def resolve(base: str, reference: str) -> str:
    """``reference`` (a ``Location``) resolved against ``base``; ``RegistryError`` if it does not
    resolve to an http(s) URL."""
    try:
        url = urljoin(base, reference)
    except ValueError:
        url = ""
    if origin(url) is None:
        raise RegistryError(f"{shown(base)} answered with a Location {clean(reference, 100)!r} that is not an "
                            "http(s) URL; the registry is misconfigured")
    return url


def _netloc(url: str) -> str:
    """``host[:port]`` of a URL, without user info (the key of TLS settings)."""
    return urlsplit(url).netloc.rpartition("@")[2]


def shown(url: str) -> str:
    """A URL fit for a message: no user info, no query (upload state, signatures), at most 200 characters."""
    try:
        parts = urlsplit(url)
        text = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}" if parts.scheme else parts.path
    except ValueError:
        text = url.split("?")[0]
    return clean(text, 200)


def clean(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` from a server, fit for a one-line message: control characters as spaces, cut at ``limit``."""
    text = re.sub(r"[\x00-\x1f\x7f-\x9f\s]+", " ", text).strip()
    return text if len(text) <= limit else text[:limit] + "..."


# --- bounded bodies -------------------------------------------------------------------------------------

class ResponseTooLarge(RegistryError):
    """A response body passed the size allowed for it (raised by :func:`read_limited`)."""


def read_limited(resp: requests.Response, limit: int, what: str) -> bytes:
    """The body of a streamed response, refused (``RegistryError`` naming ``what``) once it passes
    ``limit`` bytes: at most ``limit`` + 1 bytes are ever held. The response is closed."""
    drained = False
    try:
        length = resp.headers.get("Content-Length", "").strip()
        if length.isdigit() and int(length) > limit:
            raise ResponseTooLarge(f"{what} is {int(length)} bytes, more than the {limit} allowed; refusing it")
        parts: list[bytes] = []
        have = 0
        try:
            for chunk in resp.iter_content(min(64 << 10, limit + 1)):
                parts.append(chunk)
                have += len(chunk)
                if have > limit:
                    raise ResponseTooLarge(f"{what} is larger than the {limit} bytes allowed; refusing it")
        except NET_ERRORS as exc:
            raise broken(what, exc) from None
        drained = True
        return b"".join(parts)
    finally:
        _close(resp, drained=drained)


def broken(what: str, exc: BaseException) -> RegistryError:
    """The error for a request or read that failed: the deadline that was passed, else the connection."""
    guard = current_guard()
    reason = guard.tripped() if guard is not None else None
    if reason is not None:
        return RegistryError(reason)
    return RegistryError(f"{what}: the connection broke ({type(exc).__name__}); check the network and retry")


def _close(resp: requests.Response, *, drained: bool) -> None:
    """Release the connection; one whose body was not read to its end is closed, not reused."""
    with contextlib.suppress(*NET_ERRORS):
        if not drained and resp.raw is not None:
            resp.raw.close()
        resp.close()


def preload(resp: requests.Response, limit: int = ERROR_BODY_LIMIT) -> bytes:
    """Read at most ``limit`` bytes of a streamed response's body into ``resp.content`` (an error
    document or an empty answer; the rest is dropped with the connection) and release it."""
    if resp._content_consumed:  # already read (by this function, or by requests)
        return resp._content or b""
    data = bytearray()
    done = False
    try:
        for chunk in resp.iter_content(4096):
            data += chunk
            if len(data) > limit:
                break
        else:
            done = True
    except NET_ERRORS:
        pass
    resp._content = bytes(data[:limit])
    resp._content_consumed = True
    _close(resp, drained=done)
    return resp._content


def json_document(data: bytes) -> Any:
    """``data`` parsed as JSON, or None if it is not JSON (malformed, not UTF-8, nested too deeply)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _covers(have: tuple[str, ...], want: tuple[str, ...]) -> bool:
    """Every ``repository:NAME:ACTIONS`` scope in ``want`` is granted by one in ``have`` (the same name,
    at least those actions): a push,pull token serves a pull."""
    granted: dict[str, set[str]] = {}
    for scope in have:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        granted.setdefault(f"{kind}:{name}", set()).update(actions.split(","))
    for scope in want:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if not set(actions.split(",")) <= granted.get(f"{kind}:{name}", set()):
            return False
    return bool(want)


class Transport:
    """Authenticated, retried, bounded requests to registries over one session; thread-safe. A
    session that has requests' stock adapters gets a :class:`~ocibuild.transfer.GuardedAdapter` mounted (the
    deadlines count bytes on its connections); one with adapters of its own keeps them, without the
    low-speed and total bounds (the socket timeouts still apply).

    >>> tls = TLSConfig(insecure_registries=("reg.lan:5000",))
    >>> transport = Transport(requests.Session(), tls=tls)  # doctest: +SKIP
    >>> transport.check_login("reg.lan:5000")  # doctest: +SKIP
    """

    def __init__(self, session: requests.Session | None = None, *, credentials: CredentialProvider | None = None,
                 tls: TLSConfig | None = None, retry: RetryPolicy | None = None) -> None:
        self.session = guarded(session or default_session())  # counted connections: the deadlines need them
        self.session.headers.setdefault("User-Agent", f"ocibuild/{__version__}")
        self.credentials = credentials or default_credentials()
        self.tls = tls or TLSConfig()
        self.retry = retry or RetryPolicy.from_env()
        self._lock = threading.Lock()
        self._schemes: dict[str, str] = {}
        self._tokens: dict[tuple[str, tuple[str, ...]], tuple[str, float]] = {}
        self._basic: set[str] = set()
        self._token_locks: dict[tuple[str, tuple[str, ...]], threading.Lock] = {}
        self._creds: dict[str, Credentials | None] = {}

    def deadline(self) -> Deadline:
        """Fresh retry state for one operation under this transport's policy."""
        return Deadline(self.retry)

    def operation(self, what: str) -> contextlib.AbstractContextManager[Guard]:
        """The deadlines of one operation named ``what`` (for messages), covering every request and
        body read made on this thread until it ends; inside another operation, that one."""
        active = current_guard()
        if active is not None:
            return contextlib.nullcontext(active)
        return Guard(what, self.retry.limits)

    def base_url(self, host: str) -> str:
        """``https://host``, or ``http://host`` once the host turned out to speak plain HTTP."""
        return f"{self._schemes.get(host, 'https')}://{host}"

    def same_origin(self, url: str, host: str) -> bool:
        """Whether ``url`` is on the registry ``host``'s origin (the only place its credentials go)."""
        mine = origin(self.base_url(host))
        return mine is not None and origin(url) == mine

    # --- auth ----------------------------------------------------------------------------------

    def _credentials(self, host: str) -> Credentials | None:
        with self._lock:
            if host not in self._creds:
                self._creds[host] = self.credentials.get(host)
            return self._creds[host]

    def _auth_header(self, host: str, scopes: tuple[str, ...]) -> dict[str, str]:
        with self._lock:
            now = time.monotonic()
            token = self._tokens.get((host, scopes))
            if token is None or token[1] <= now:  # a token for more actions serves fewer (push,pull for pull)
                token = next((t for (h, have), t in self._tokens.items()
                              if h == host and t[1] > now and _covers(have, scopes)), None)
            if token and token[1] > now:
                return {"Authorization": f"Bearer {token[0]}"}
            use_basic = host in self._basic
        creds = self._credentials(host) if use_basic else None
        if creds is not None and creds.username:
            raw = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {}

    def _secrets(self, host: str) -> list[str]:
        """Every secret of ``host`` a message must never show (a hostile registry may echo them)."""
        creds = self._creds.get(host)
        found = [t for (h, _), (t, _) in list(self._tokens.items()) if h == host]
        if creds is not None:
            found += [creds.password, creds.identity_token,
                      base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()]
        return [s for s in found if len(s) >= 4]

    def redact(self, host: str, text: str) -> str:
        """``text`` with the secrets of ``host`` replaced by ``***``."""
        for secret in self._secrets(host):
            text = text.replace(secret, "***")
        return text

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

    def _realm_may_get_credentials(self, host: str, realm: str) -> bool:
        """HTTPS, the registry's own origin, or loopback to loopback (see the module docstring)."""
        target = origin(realm)
        if target is None:
            return False
        if target[0] == "https" or self.same_origin(realm, host):
            return True
        return is_loopback(host) and is_loopback(_netloc(realm))

    def _fetch_token(self, host: str, where: str, challenge: Challenge,
                     scopes: tuple[str, ...]) -> tuple[str, float]:
        creds = self._credentials(host)
        realm = challenge.realm
        service_name = f"the token service {shown(realm)}"
        if origin(realm) is None:
            raise RegistryError(f"{host}: the token service address {shown(realm)!r} in its WWW-Authenticate "
                                "challenge (realm) is not an http(s) URL; the registry is misconfigured")
        secret = creds is not None and bool(creds.identity_token or creds.username)
        if secret and not self._realm_may_get_credentials(host, realm):
            raise RegistryError(
                f"{host}: refusing to send credentials in cleartext to its token service {shown(realm)}: it is "
                "plain HTTP on another origin (credentials go to a token service only over HTTPS, or between "
                "loopback addresses); fix the registry's token realm")
        realm_host = _netloc(realm)
        service = challenge.params.get("service", "")
        wanted = list(scopes) or ([challenge.params["scope"]] if challenge.params.get("scope") else [])
        kwargs: dict[str, Any] = {"timeout": (self.retry.connect_timeout, self.retry.read_timeout),
                                  "verify": self.tls.verify(realm_host), "cert": self.tls.client_cert(realm_host),
                                  "stream": True, "allow_redirects": False,
                                  "headers": {"Accept-Encoding": "identity", "Accept": "application/json"}}
        deadline = self.deadline()
        while True:
            guard = current_guard()
            if guard is not None:
                guard.pause()
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
            except (requests.ConnectionError, requests.Timeout) as exc:
                refused = isinstance(exc, requests.exceptions.ProxyError) and " 407 " in str(exc)
                if (guard is None or guard.tripped() is None) and not refused and deadline.wait():
                    continue
                if isinstance(exc, requests.exceptions.ProxyError) and (guard is None or guard.tripped() is None):
                    raise RegistryError(f"{host}: cannot reach {service_name} through the proxy (it refused or "
                                        "failed the connection); check HTTPS_PROXY / HTTP_PROXY / NO_PROXY and the "
                                        "proxy's credentials") from None
                raise broken(f"{host}: cannot reach {service_name}", exc) from None
            except NET_ERRORS as exc:
                raise broken(f"{host}: cannot reach {service_name}", exc) from None
            if resp.status_code in RETRY_STATUSES and deadline.wait(retry_after(resp)):
                preload(resp)
                continue
            break
        if resp.status_code in (401, 403):
            preload(resp)
            who = f"the credentials from {creds.source}" if creds else "anonymous access"
            raise RegistryError(f"{where}: the token service refused {who} "
                                f"(HTTP {resp.status_code}); log in with 'ocibuild login {host}' or pass --creds")
        if resp.status_code != 200:
            preload(resp)
            raise RegistryError(f"{host}: {service_name} answered HTTP {resp.status_code}; retry later")
        body = json_document(read_limited(resp, TOKEN_LIMIT, f"{host}: the answer of {service_name}"))
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not re.fullmatch(r"[!-~]{1,16384}", token):
            raise RegistryError(f"{host}: {service_name} answered with no usable token (expected a JSON object "
                                "with 'token' or 'access_token'); check the registry's auth setup")
        ttl = body.get("expires_in") if isinstance(body, dict) else None
        if not isinstance(ttl, int | float) or not 0 < ttl < 86400 * 365:
            ttl = 60
        return token, float(ttl)

    # --- requests ------------------------------------------------------------------------------

    def request(self, method: str, target: Repository | str, path: str, *, actions: Sequence[str] = ("pull",),
                extra_scopes: Sequence[str] = (), headers: Mapping[str, str] | None = None,
                body: Callable[[], Any] | None = None, stream: bool = False, retry: bool = True,
                allow_redirects: bool = True) -> requests.Response:
        """One API call with auth, TLS choice, deadlines and retries. ``target`` is a repository (its
        token scope asks for ``actions``), or a bare registry host for calls outside any repository
        such as ``GET /v2/``. ``path`` may be a full URL (upload locations); on another origin it gets
        no credentials. ``body`` is a factory so a retry can resend it. Without ``stream``, at most
        16 KiB of the body are kept (an error document); read bigger ones with ``stream=True`` and
        :func:`read_limited` inside :meth:`operation`."""
        if isinstance(target, Repository):
            host, scopes = target.host, (scope_for(target.name, actions), *extra_scopes)
        else:
            host, scopes = target, tuple(extra_scopes)
        with self.operation(f"{method} {shown(path)} on {target}") as guard:
            resp = self._request(guard, method, host, str(target), scopes, path, headers, body, retry,
                                 allow_redirects)
            if not stream:
                preload(resp)
            return resp

    def _request(self, guard: Guard, method: str, host: str, where: str, scopes: tuple[str, ...], path: str,
                 headers: Mapping[str, str] | None, body: Callable[[], Any] | None, retry: bool,
                 allow_redirects: bool) -> requests.Response:
        deadline = self.deadline()
        challenged = False
        redirected: str | None = None
        hops = 0
        while True:
            reason = guard.tripped()
            if reason is not None:
                raise RegistryError(reason)
            guard.pause()
            url = redirected or (path if path.startswith(("http://", "https://")) else self.base_url(host) + path)
            own = self.same_origin(url, host)
            peer = host if own else _netloc(url)
            if origin(url) is None:
                raise RegistryError(f"{host} sent ocibuild to {shown(url)!r}, which is not an http(s) URL; "
                                    "the registry is misconfigured")
            all_headers = {"Accept-Encoding": "identity", **(self._auth_header(host, scopes) if own else {}),
                           **(headers or {})}
            if not own:
                all_headers.pop("Authorization", None)
            try:
                resp = self.session.request(
                    method, url, headers=all_headers, data=body() if body else None, stream=True,
                    timeout=(self.retry.connect_timeout, self.retry.read_timeout), verify=self.tls.verify(peer),
                    cert=self.tls.client_cert(peer), allow_redirects=False)
            except requests.exceptions.SSLError as exc:
                if guard.tripped() is None and own and self._maybe_plain_http(host, url, exc):
                    continue
                if guard.tripped() is not None:
                    raise broken(where, exc) from None
                moved = "" if own else f" (where {host} sent ocibuild)"
                raise RegistryError(
                    f"{peer}{moved}: TLS failed ({_ssl_reason(exc)}); if the registry uses a private CA pass "
                    f"--ca-file or put it in /etc/containers/certs.d/{peer}/ca.crt, or use --insecure-registry {peer}"
                ) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                refused = isinstance(exc, requests.exceptions.ProxyError) and " 407 " in str(exc)
                if guard.tripped() is None and retry and not refused and deadline.wait():
                    log.debug("%s %s: %s; retrying", method, shown(url), type(exc).__name__)
                    continue
                if guard.tripped() is not None:
                    raise broken(where, exc) from None
                if isinstance(exc, requests.exceptions.ProxyError):
                    raise RegistryError(f"cannot reach registry {peer} through the proxy (it refused or failed the "
                                        "connection); check HTTPS_PROXY / HTTP_PROXY / NO_PROXY and the proxy's "
                                        "credentials") from None
                moved = "" if own else f" at {peer}, where it sent ocibuild,"
                raise RegistryError(f"cannot reach registry {host}{moved}: {type(exc).__name__} after "
                                    f"{deadline.attempt + 1} tries; check that it is running and reachable") from None
            except NET_ERRORS as exc:
                raise broken(f"{method} {shown(url)} on {where}", exc) from None
            log.debug("%s %s -> %s", method, shown(url), resp.status_code)
            location = resp.headers.get("Location")
            if allow_redirects and resp.status_code in REDIRECT_STATUSES and location:
                preload(resp)
                hops += 1
                if hops > MAX_REDIRECTS:
                    raise RegistryError(f"{host}: more than {MAX_REDIRECTS} redirects for {method} {shown(path)}; "
                                        "the registry is misconfigured")
                redirected = resolve(url, location)
                if (resp.status_code == 303 and method != "HEAD") or (resp.status_code in (301, 302)
                                                                      and method == "POST"):
                    method, body = "GET", None
                continue
            if resp.status_code == 401 and own and not challenged:
                challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                challenged = True
                sent = {k: v for k, v in all_headers.items() if k == "Authorization"}
                if challenge is not None and self._on_challenge(host, where, challenge, scopes, sent):
                    preload(resp)
                    continue
            if resp.status_code in RETRY_STATUSES and retry and deadline.wait(retry_after(resp)):
                preload(resp)
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
        detail = self.redact(repo.host, f", {code}: {message}" if message else f", {code}" if code else "")
        message = f"{what} {repo} failed (HTTP {resp.status_code}{detail}); {hint}"
        if code in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN"):
            return ImageNotFound(message)
        error = RegistryError(message)
        error.status = resp.status_code
        error.code = code
        return error

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
    """``(code, message)`` of each entry of a distribution ``{"errors": [...]}`` body, as far as it
    parses; reads at most 16 KiB of it."""
    doc = json_document(preload(resp))
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return []
    codes: list[tuple[str, str]] = []
    for e in errors[:8]:
        if isinstance(e, dict) and isinstance(e.get("code"), str):
            message = e.get("message")
            codes.append((clean(e["code"], 64), clean(message if isinstance(message, str) else "")))
    return codes


def _ssl_reason(exc: Exception) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate verify failed"
    return "TLS handshake error"
