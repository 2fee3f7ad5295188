"""In-process Docker-registry bearer-token server (RS256 JWTs with an ``x5c`` header, HTTPS)."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .credentials import DEFAULT_PASSWORD, DEFAULT_USER
from .net import Recorder, TLSThreadingServer
from .pki import PKI, server_ssl_context

TOKEN_SERVICE = "test-registry"
TOKEN_ISSUER = "test-issuer"


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class TokenServer(Recorder):
    """In-process Docker-registry bearer-token server (HTTPS, thread) on ``https://127.0.0.1:PORT/token``.

    - GET /token?service=S&scope=A&scope=B[&account=][&offline_token=true] with optional Basic auth;
    - POST /token form (OAuth2): grant_type=password (username, password) or refresh_token
      (refresh_token), service, scope (space separated), client_id, access_type=offline.
    Known user with the right password -> every requested action (or ``users`` allow-list);
    anonymous -> ``pull`` only; wrong password -> 401. Tokens are RS256 JWTs with an ``x5c`` header
    (the PKI's token cert, trusted by the registry via ``rootcertbundle``).

    Every request is recorded in ``requests`` (dicts: method, path, status, user, scopes, granted,
    service, grant_type, offline, time). Mutable knobs: ``expires_in`` (s, reported to the client),
    ``lifetime`` (s, JWT exp offset; None = expires_in), ``allow_post`` (False: POST -> 404),
    :meth:`fail_next`, :meth:`add_user`.
    """

    def __init__(self, pki: PKI, user: str = DEFAULT_USER, password: str = DEFAULT_PASSWORD, *,
                 service: str = TOKEN_SERVICE, issuer: str = TOKEN_ISSUER, expires_in: int = 300) -> None:
        self.pki = pki
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        # JWT exp = now + lifetime (None: expires_in). distribution 2.8.2 allows 60 s of clock-skew leeway
        # on exp, so a token the registry rejects at once needs lifetime <= -61.
        self.lifetime: int | None = None
        self.allow_post = True
        self.requests: list[dict[str, Any]] = []
        # user -> (password, allowed actions or None = all)
        self.users: dict[str, tuple[str, frozenset[str] | None]] = {user: (password, None)}
        self.refresh_tokens: dict[str, str] = {}
        self._fail: list[int] = []  # statuses to answer next requests with
        self._lock = threading.Lock()
        key = serialization.load_pem_private_key(pki.token_key.read_bytes(), None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise AssertionError("token key must be RSA")
        self._key = key
        cert = x509.load_pem_x509_certificate(pki.token_cert.read_bytes())
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self._srv = TLSThreadingServer(("127.0.0.1", 0), _TokenHandler, server_ssl_context(pki))
        self._srv.token_server = self  # type: ignore[attr-defined]
        self.port = int(self._srv.server_address[1])
        self.host = f"127.0.0.1:{self.port}"
        self.realm = f"https://{self.host}/token"
        self._thread = threading.Thread(target=self._srv.serve_forever, name=f"token-server-{self.port}",
                                        daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<TokenServer {self.realm}>"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._srv.stop()
            self._thread.join(timeout=5)
        else:
            self._srv.server_close()

    def add_user(self, user: str, password: str, actions: Iterable[str] | None = None) -> None:
        """Add a user; ``actions`` limits what they get (e.g. ``["pull"]``), None = all requested."""
        with self._lock:
            self.users[user] = (password, frozenset(actions) if actions is not None else None)

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` token requests with ``status`` (no token)."""
        with self._lock:
            self._fail.extend([status] * n)

    def requests_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def scopes_requested(self) -> list[str]:
        """Every scope string of every recorded request, in order."""
        return [s for r in self.requests_log() for s in r["scopes"]]

    # --- used by the handler ------------------------------------------------------------------------

    def _take_failure(self) -> int | None:
        with self._lock:
            return self._fail.pop(0) if self._fail else None

    def _check(self, user: str, password: str) -> bool:
        with self._lock:
            entry = self.users.get(user)
        return entry is not None and secrets.compare_digest(entry[0], password)

    def _grant(self, user: str | None, scopes: Sequence[str]) -> list[dict[str, Any]]:
        access = []
        allowed: frozenset[str] | None = frozenset({"pull"})
        if user is not None:
            with self._lock:
                allowed = self.users[user][1]
        for s in scopes:  # type:name:actions, name may contain ':' (registry:catalog:*)
            typ, _, rest = s.partition(":")
            name, _, acts = rest.rpartition(":")
            wanted = [a for a in acts.split(",") if a]
            got = [a for a in wanted if allowed is None or a in allowed]
            access.append({"type": typ, "name": name, "actions": got})
        return access

    def make_token(self, user: str | None, service: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        hdr = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        lifetime = self.expires_in if self.lifetime is None else self.lifetime
        claims = {"iss": self.issuer, "sub": user or "", "aud": service, "exp": now + lifetime,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(hdr).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(sig)}"

    def _new_refresh_token(self, user: str) -> str:
        tok = secrets.token_urlsafe(24)
        with self._lock:
            self.refresh_tokens[tok] = user
        return tok

    def _record(self, rec: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(rec)


def _split_scopes(values: Iterable[str]) -> list[str]:
    return [s for v in values for s in v.split(" ") if s]


class _TokenHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "harness-token-server/1"

    @property
    def ts(self) -> TokenServer:
        return self.server.token_server  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, obj: dict[str, Any], rec: dict[str, Any]) -> None:
        rec["status"] = status
        self.ts._record(rec)
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="token"')
        self.end_headers()
        self.wfile.write(body)

    def _basic_user(self) -> tuple[bool, str | None]:
        """(ok, user): no Authorization -> (True, None); wrong password -> (False, user)."""
        a = self.headers.get("Authorization", "")
        if not a.lower().startswith("basic "):
            return True, None
        try:
            user, _, pw = base64.b64decode(a[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False, None
        return self.ts._check(user, pw), user

    def do_GET(self) -> None:
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        rec: dict[str, Any] = {"method": "GET", "path": self.path, "status": None, "time": time.time(),
                               "service": q.get("service", [""])[0], "scopes": _split_scopes(q.get("scope", [])),
                               "account": q.get("account", [None])[0], "grant_type": None,
                               "offline": q.get("offline_token", [""])[0] == "true", "user": None, "granted": []}
        if u.path != "/token":
            self._json(404, {"errors": [{"code": "NOT_FOUND"}]}, rec)
            return
        fail = self.ts._take_failure()
        if fail is not None:
            self._json(fail, {"errors": [{"code": "UNAVAILABLE", "message": "injected failure"}]}, rec)
            return
        ok, user = self._basic_user()
        rec["user"] = user
        if not ok:
            self._json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}, rec)
            return
        access = self.ts._grant(user, rec["scopes"])
        rec["granted"] = access
        tok = self.ts.make_token(user, rec["service"], access)
        body: dict[str, Any] = {"token": tok, "access_token": tok, "expires_in": self.ts.expires_in,
                                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if rec["offline"] and user is not None:
            body["refresh_token"] = self.ts._new_refresh_token(user)
        self._json(200, body, rec)

    def do_POST(self) -> None:
        u = urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(n).decode(errors="replace")) if n else {}
        f = {k: v[0] for k, v in form.items()}
        rec: dict[str, Any] = {"method": "POST", "path": self.path, "status": None, "time": time.time(),
                               "service": f.get("service", ""), "scopes": _split_scopes(form.get("scope", [])),
                               "account": f.get("username"), "grant_type": f.get("grant_type"),
                               "offline": f.get("access_type") == "offline", "user": None, "granted": [],
                               "client_id": f.get("client_id")}
        if u.path != "/token" or not self.ts.allow_post:
            self._json(404, {"error": "not_found"}, rec)
            return
        fail = self.ts._take_failure()
        if fail is not None:
            self._json(fail, {"error": "temporarily_unavailable"}, rec)
            return
        gt = f.get("grant_type")
        user: str | None
        if gt == "password":
            user = f.get("username", "")
            rec["user"] = user
            if not self.ts._check(user, f.get("password", "")):
                self._json(401, {"error": "invalid_grant", "error_description": "bad credentials"}, rec)
                return
        elif gt == "refresh_token":
            with self.ts._lock:
                user = self.ts.refresh_tokens.get(f.get("refresh_token", ""))
            rec["user"] = user
            if user is None:
                self._json(401, {"error": "invalid_grant", "error_description": "unknown refresh token"}, rec)
                return
        else:
            self._json(400, {"error": "unsupported_grant_type"}, rec)
            return
        access = self.ts._grant(user, rec["scopes"])
        rec["granted"] = access
        tok = self.ts.make_token(user, rec["service"], access)
        body: dict[str, Any] = {"access_token": tok, "expires_in": self.ts.expires_in, "scope": " ".join(rec["scopes"]),
                                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if rec["offline"]:
            body["refresh_token"] = (f["refresh_token"] if gt == "refresh_token"
                                     else self.ts._new_refresh_token(user))
        self._json(200, body, rec)
