"""In-process hostile and faulty registry servers for the faults a real registry cannot produce
(another origin in an upload ``Location``, a cleartext token realm, a blob that drips, a manifest
that never ends, a lying ``Docker-Content-Digest``), an HTTP(S) forward proxy that gives loopback
servers non-loopback names, certificates for such names, and a subprocess runner that measures the
child's peak RSS.

- :class:`HostileRegistry`: a small distribution-API server (``/v2/``, blobs, uploads monolithic and
  chunked, manifests, ``/token``) on 127.0.0.1, plain or TLS, with Basic or Bearer challenges, knobs
  for the hostile answers, and :meth:`~HostileRegistry.on` hooks that take over any request. Two
  instances can share one :class:`Store` (an upload ``Location`` or a redirect to the other port
  still finds its blobs). Every request is recorded with **all its headers**.
- :class:`ForwardProxy`: an HTTP proxy (absolute-form requests and ``CONNECT`` tunnels) that routes
  ``name:port`` to loopback ports, optionally demands ``Proxy-Authorization``, and records every
  request with its headers.
- :func:`issue_server_context` / :func:`issue_client_cert`: certificates from the harness CA for any
  names; :func:`accept_client_certs` makes a server context ask for (and record) client certificates.
- :func:`run_measured`: run a command, return its output, exit code, wall time and the peak RSS of
  that one child (``os.wait4``), never of other children of the test process.
- :func:`tiny_image`: a one-layer image (OCI manifest, config with correct diff_ids, gzip layer).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import gzip
import hashlib
import io
import ipaddress
import json
import os
import re
import select
import socket
import ssl
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .credentials import DEFAULT_PASSWORD, DEFAULT_USER
from .net import Recorder, TLSThreadingServer
from .pki import PKI

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
_UPLOADS = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<id>[^/]*)$")
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------------
# images and certificates
# ---------------------------------------------------------------------------------------------------

@dataclass
class TinyImage:
    """A one-layer linux/amd64 image: ``manifest`` bytes, its ``digest``, and every blob by digest."""

    manifest: bytes
    digest: str
    config_digest: str
    layer_digest: str
    blobs: dict[str, bytes]
    media_type: str = OCI_MANIFEST


def tiny_image(text: str = "hello from a hostile registry\n") -> TinyImage:
    """One layer holding ``/hello.txt``; the config's diff_id is the sha256 of the uncompressed tar."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = text.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    layer = gzip.compress(tar_bytes, mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha256(tar_bytes)]}}, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256(layer), "size": len(layer)}],
    }, sort_keys=True).encode()
    return TinyImage(manifest=manifest, digest=sha256(manifest), config_digest=sha256(config),
                     layer_digest=sha256(layer), blobs={sha256(config): config, sha256(layer): layer})


def _load_ca(pki: PKI) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AssertionError("the harness CA key must be RSA")
    return ca, key


def _issue(pki: PKI, directory: Path, stem: str, names: Sequence[str], usage: x509.ObjectIdentifier) -> tuple[Path,
                                                                                                           Path]:
    ca, ca_key = _load_ca(pki)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else stem)]))
               .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.cert", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def issue_server_context(pki: PKI, directory: Path, names: Sequence[str]) -> ssl.SSLContext:
    """A TLS server context whose certificate (signed by the harness CA) is valid for ``names``
    (DNS names or IP addresses)."""
    cert, key = _issue(pki, directory, "server-" + re.sub(r"[^a-z0-9]+", "-", names[0].lower()), names,
                       ExtendedKeyUsageOID.SERVER_AUTH)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def issue_client_cert(pki: PKI, directory: Path, stem: str = "client") -> tuple[Path, Path]:
    """A client certificate + key (``STEM.cert``, ``STEM.key``: the certs.d naming) from the harness CA."""
    return _issue(pki, directory, stem, ["ocibuild-test-client"], ExtendedKeyUsageOID.CLIENT_AUTH)


def accept_client_certs(ctx: ssl.SSLContext, pki: PKI) -> ssl.SSLContext:
    """Make a server context ask for an optional client certificate (recorded as ``client_cert``)."""
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(str(pki.ca_cert))
    return ctx


# ---------------------------------------------------------------------------------------------------
# the hostile registry
# ---------------------------------------------------------------------------------------------------

@dataclass
class Store:
    """Blobs, manifests and upload sessions, shareable between servers."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_image(self, name: str, tag: str, image: TinyImage) -> None:
        with self.lock:
            self.blobs.update(image.blobs)
            self.manifests[(name, tag)] = (image.manifest, image.media_type)
            self.manifests[(name, image.digest)] = (image.manifest, image.media_type)


Hook = Callable[["RegistryHandler"], None]


class _QuietServer(TLSThreadingServer):
    """A client that hangs up mid-answer is what these servers provoke: no tracebacks for it."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class HostileRegistry(Recorder):
    """A distribution-API subset on ``127.0.0.1:PORT`` (``ctx``: TLS), in a thread.

    ``auth``: None (open), ``"basic"`` (``user``/``password``) or ``"bearer"`` (any ``Bearer`` header
    passes; the challenge names ``realm``). ``challenge`` replaces the ``WWW-Authenticate`` value
    outright. Knobs (settable while running): ``upload_origin`` (upload ``Location`` URLs point
    there: another server sharing the :class:`Store`), ``refuse_monolithic`` (a PUT with the whole
    blob gets 405, forcing the chunked PATCH path), ``blob_digest_header`` / ``manifest_digest_header``
    (lie in the ``Docker-Content-Digest`` of a finished upload / stored manifest), ``redirect_blobs``
    (blob GETs get a ``redirect_status`` 307 to that origin), ``token_body`` (what ``/token`` answers). ``on(method,
    regex, fn)`` lets ``fn(handler)`` answer matching requests (after the auth check unless
    ``auth_first=False``).

    ``requests``: dicts ``method``, ``path`` (with query), ``headers`` (every header, as sent),
    ``status``, ``client_cert`` (a client certificate was presented), ``time``.
    """

    def __init__(self, *, ctx: ssl.SSLContext | None = None, auth: str | None = None, user: str = DEFAULT_USER,
                 password: str = DEFAULT_PASSWORD, realm: str = "", store: Store | None = None) -> None:
        self.store = store or Store()
        self.auth = auth
        self.user, self.password = user, password
        self.realm = realm
        self.challenge: str | None = None
        self.upload_origin: str | None = None
        self.refuse_monolithic = False
        self.blob_digest_header: str | None = None
        self.manifest_digest_header: str | None = None
        self.redirect_blobs: str | None = None
        self.redirect_status = 307
        self.token_body: bytes = json.dumps({"token": "hostile-token", "expires_in": 300}).encode()
        self.requests: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self._hooks: list[tuple[str | None, re.Pattern[str], Hook, bool]] = []
        self._lock = threading.Lock()
        self._srv = _QuietServer(("127.0.0.1", 0), RegistryHandler, ctx)
        self._srv.registry = self  # type: ignore[attr-defined]
        self.port = int(self._srv.server_address[1])
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if ctx is not None else 'http'}://{self.host}"
        self._thread = threading.Thread(target=self._srv.serve_forever, name=f"hostile-registry-{self.port}",
                                        daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<HostileRegistry {self.url}>"

    def __enter__(self) -> HostileRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._srv.stop()
            self._thread.join(timeout=5)

    def on(self, method: str | None, path_regex: str, fn: Hook, *, auth_first: bool = True) -> None:
        """``fn(handler)`` answers requests with this method (None: any) whose path (with query) matches."""
        with self._lock:
            self._hooks.append((method, re.compile(path_regex), fn, auth_first))

    def requests_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def headers_seen(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` header of every request, in order."""
        return [(k, v) for r in self.requests_log() for k, v in r["headers"]]

    def _hook(self, method: str, path: str) -> tuple[Hook, bool] | None:
        with self._lock:
            for m, rx, fn, auth_first in self._hooks:
                if (m is None or m == method) and rx.search(path):
                    return fn, auth_first
        return None

    def _record(self, rec: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(rec)


class RegistryHandler(BaseHTTPRequestHandler):
    """One request to a :class:`HostileRegistry`; hooks write whole answers with the helpers below."""

    protocol_version = "HTTP/1.1"
    server_version = "hostile-registry/1"
    rec: dict[str, Any]

    @property
    def reg(self) -> HostileRegistry:
        return self.server.registry  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        if hasattr(self, "rec"):
            self.rec["status"] = code
        super().send_response(code, message)

    # --- helpers for hooks ------------------------------------------------------------------------

    def body(self) -> bytes:
        """The request body (Content-Length or chunked)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def answer(self, status: int, body: bytes = b"", headers: Iterable[tuple[str, str]] = (), *,
               content_type: str = "application/json") -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if body or status not in (204, 304):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def error(self, status: int, code: str, message: str = "", headers: Iterable[tuple[str, str]] = ()) -> None:
        self.answer(status, json.dumps({"errors": [{"code": code, "message": message or code.lower()}]}).encode(),
                    headers)

    def stream(self, blocks: Iterator[bytes], *, status: int = 200, length: int | None = None,
               content_type: str = "application/octet-stream", headers: Iterable[tuple[str, str]] = (),
               until_close: bool = False) -> None:
        """Send ``blocks`` as they come (Content-Length ``length``, else chunked, or with
        ``until_close`` neither: the body ends when the connection does) until they end, the client
        goes away or the server stops."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in headers:
            self.send_header(k, v)
        if length is not None:
            self.send_header("Content-Length", str(length))
        elif until_close:
            self.send_header("Connection", "close")
            length = -1
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with contextlib.suppress(OSError):
            for block in blocks:
                if self.reg.stopping.is_set():
                    break
                if length is None:
                    self.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")
                else:
                    self.wfile.write(block)
                self.wfile.flush()
            else:
                if length is None:
                    self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def drip(self, data: bytes, interval: float) -> Iterator[bytes]:
        """``data`` one byte per ``interval`` seconds (for :meth:`stream`)."""
        for i in range(len(data)):
            if self.reg.stopping.wait(interval):
                return
            yield data[i:i + 1]

    def raw_drip(self, data: bytes, interval: float) -> None:
        """Write ``data`` (a whole raw HTTP answer, status line included) one byte per ``interval``."""
        self.rec["status"] = int(data.split(b" ", 2)[1])
        with contextlib.suppress(OSError):
            for i in range(len(data)):
                if self.reg.stopping.wait(interval):
                    break
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
        self.close_connection = True

    def hold(self, seconds: float) -> None:
        """Say nothing for ``seconds`` (or until the server stops), then close."""
        self.rec["status"] = None
        self.reg.stopping.wait(seconds)
        self.close_connection = True

    # --- dispatch ---------------------------------------------------------------------------------

    def _handle(self) -> None:
        client_cert = False
        with contextlib.suppress(AttributeError, ValueError, OSError):
            client_cert = bool(self.connection.getpeercert())  # type: ignore[attr-defined]
        self.rec = {"method": self.command, "path": self.path, "headers": list(self.headers.items()), "status": None,
                    "client_cert": client_cert, "time": time.time()}
        self.reg._record(self.rec)
        path = urlsplit(self.path).path
        hook = self.reg._hook(self.command, self.path)
        if hook is not None and not hook[1]:
            hook[0](self)
            return
        if path != "/token" and not self._authorized():
            self.body()
            header = self.reg.challenge or ('Basic realm="hostile"' if self.reg.auth == "basic" else
                                            f'Bearer realm="{self.reg.realm}",service="hostile"')
            self.error(401, "UNAUTHORIZED", "authentication required", [("WWW-Authenticate", header)])
            return
        if hook is not None:
            hook[0](self)
            return
        self._route(path)

    def _authorized(self) -> bool:
        got = self.headers.get("Authorization", "")
        if self.reg.auth == "basic":
            return got == "Basic " + base64.b64encode(f"{self.reg.user}:{self.reg.password}".encode()).decode()
        if self.reg.auth == "bearer":
            return got.startswith("Bearer ")
        return True

    def _route(self, path: str) -> None:
        reg, store = self.reg, self.reg.store
        query = parse_qs(urlsplit(self.path).query)
        if path == "/v2/" and self.command in ("GET", "HEAD"):
            self.answer(200, b"{}")
            return
        if path == "/token":
            self.body()
            self.answer(200, reg.token_body)
            return
        m = _UPLOADS.match(path)
        if m and self.command == "POST":
            self.body()
            name = m["name"]
            mount = query.get("mount", [""])[0]
            with store.lock:
                mounted = mount in store.blobs
            if mounted:
                self.answer(201, headers=[("Docker-Content-Digest", mount), ("Location", f"/v2/{name}/blobs/{mount}")])
                return
            upload = uuid.uuid4().hex
            with store.lock:
                store.uploads[upload] = bytearray()
            where = f"{reg.upload_origin or ''}/v2/{name}/blobs/uploads/{upload}"
            self.answer(202, headers=[("Location", where), ("Range", "0-0"), ("Docker-Upload-UUID", upload)])
            return
        if m and self.command in ("PATCH", "PUT"):
            self._upload(m["name"], m["id"], query)
            return
        m = _BLOB.match(path)
        if m and self.command in ("GET", "HEAD"):
            if reg.redirect_blobs:
                self.answer(reg.redirect_status, headers=[("Location", f"{reg.redirect_blobs}{path}?signature=abc")])
                return
            with store.lock:
                data = store.blobs.get(m["digest"])
            if data is None:
                self.error(404, "BLOB_UNKNOWN", "blob unknown to registry")
                return
            self.answer(200, data, [("Docker-Content-Digest", m["digest"])], content_type="application/octet-stream")
            return
        m = _MANIFEST.match(path)
        if m and self.command in ("GET", "HEAD"):
            with store.lock:
                found = store.manifests.get((m["name"], m["ref"]))
            if found is None:
                self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
                return
            raw, media = found
            self.answer(200, raw, [("Docker-Content-Digest", sha256(raw))], content_type=media)
            return
        if m and self.command == "PUT":
            raw = self.body()
            media = self.headers.get("Content-Type", OCI_MANIFEST)
            with store.lock:
                store.manifests[(m["name"], m["ref"])] = (raw, media)
                store.manifests[(m["name"], sha256(raw))] = (raw, media)
            self.answer(201, headers=[("Docker-Content-Digest", reg.manifest_digest_header or sha256(raw)),
                                      ("Location", f"/v2/{m['name']}/manifests/{sha256(raw)}")])
            return
        self.body()
        self.error(404, "NAME_UNKNOWN", f"no route for {self.command} {path}")

    def _upload(self, name: str, upload: str, query: dict[str, list[str]]) -> None:
        store = self.reg.store
        data = self.body()
        with store.lock:
            buf = store.uploads.setdefault(upload, bytearray())  # another origin may see the session first
            if self.command == "PUT" and self.reg.refuse_monolithic and data and not buf:
                refused = True
            else:
                refused = False
                buf += data
            size = len(buf)
        if refused:
            self.error(405, "UNSUPPORTED", "monolithic uploads are not supported here")
            return
        if self.command == "PATCH":
            self.answer(202, headers=[("Location", f"/v2/{name}/blobs/uploads/{upload}"),
                                      ("Range", f"0-{max(size - 1, 0)}"), ("Docker-Upload-UUID", upload)])
            return
        digest = query.get("digest", [""])[0]
        with store.lock:
            content = bytes(store.uploads.pop(upload, b""))
        if sha256(content) != digest:
            self.error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
            return
        with store.lock:
            store.blobs[digest] = content
        self.answer(201, headers=[("Docker-Content-Digest", self.reg.blob_digest_header or digest),
                                  ("Location", f"/v2/{name}/blobs/{digest}")])

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET


def zeros(block: int = 64 << 10, total: int | None = None) -> Iterator[bytes]:
    """Blocks of zero bytes, ``total`` in all (None: forever). Never holds more than one block."""
    chunk = b"\0" * block
    sent = 0
    while total is None or sent < total:
        piece = chunk if total is None else chunk[:min(block, total - sent)]
        sent += len(piece)
        yield piece


def endless_json() -> Iterator[bytes]:
    """The start of a JSON document that never ends (``{"a": [[[[...``)."""
    yield b'{"schemaVersion": 2, "layers": ['
    while True:
        yield b'{"mediaType": "x", "digest": "sha256:0", "size": 1},' * 1000


# ---------------------------------------------------------------------------------------------------
# the forward proxy
# ---------------------------------------------------------------------------------------------------

class ForwardProxy(Recorder):
    """An HTTP proxy on ``127.0.0.1:PORT``: ``routes`` maps ``name:port`` (as the client asks for
    it) to a loopback port; anything else gets 502. ``CONNECT name:port`` opens a tunnel; an
    absolute-form request (``GET http://name/path``) is forwarded with ``Connection: close``.
    ``auth=(user, password)`` demands ``Proxy-Authorization`` (407 otherwise). ``requests``: dicts
    ``method``, ``path`` (the request target as sent), ``headers``, ``status``, ``time``.
    ``url()`` is the value for ``HTTP(S)_PROXY`` (with the credentials when ``auth`` is set)."""

    def __init__(self, routes: dict[str, int] | None = None, *, auth: tuple[str, str] | None = None) -> None:
        self.routes: dict[str, int] = dict(routes or {})
        self.auth = auth
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._srv = _QuietServer(("127.0.0.1", 0), _ProxyHandler, None)
        self._srv.proxy = self  # type: ignore[attr-defined]
        self.port = int(self._srv.server_address[1])
        self._thread = threading.Thread(target=self._srv.serve_forever, name=f"forward-proxy-{self.port}", daemon=True)
        self._thread.start()

    def url(self, *, user: str | None = None, password: str | None = None) -> str:
        user = user if user is not None else (self.auth[0] if self.auth else None)
        password = password if password is not None else (self.auth[1] if self.auth else None)
        cred = f"{user}:{password}@" if user is not None else ""
        return f"http://{cred}127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._srv.stop()
            self._thread.join(timeout=5)

    def __enter__(self) -> ForwardProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def _record(self, rec: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(rec)


_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer",
                  "transfer-encoding", "upgrade", "content-length"})


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def proxy(self) -> ForwardProxy:
        return self.server.proxy  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _refuse(self, status: int, rec: dict[str, Any], headers: Iterable[tuple[str, str]] = ()) -> None:
        rec["status"] = status
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _allowed(self, rec: dict[str, Any]) -> bool:
        if self.proxy.auth is None:
            return True
        want = "Basic " + base64.b64encode(":".join(self.proxy.auth).encode()).decode()
        if self.headers.get("Proxy-Authorization", "") == want:
            return True
        self._refuse(407, rec, [("Proxy-Authenticate", 'Basic realm="proxy"')])
        return False

    def do_CONNECT(self) -> None:
        rec = {"method": "CONNECT", "path": self.path, "headers": list(self.headers.items()), "status": None,
               "time": time.time()}
        self.proxy._record(rec)
        if not self._allowed(rec):
            return
        port = self.proxy.routes.get(self.path)
        if port is None:
            self._refuse(502, rec)
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            self._refuse(502, rec)
            return
        rec["status"] = 200
        self.send_response(200, "Connection Established")
        self.end_headers()
        self.wfile.flush()
        _relay(self.connection, upstream)
        self.close_connection = True

    def _forward(self) -> None:
        rec = {"method": self.command, "path": self.path, "headers": list(self.headers.items()), "status": None,
               "time": time.time()}
        self.proxy._record(rec)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if not self._allowed(rec):
            return
        target = urlsplit(self.path)
        key = f"{target.hostname}:{target.port or 80}"
        port = self.proxy.routes.get(key)
        if target.scheme != "http" or port is None:
            self._refuse(502, rec)
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            self._refuse(502, rec)
            return
        lines = [f"{self.command} {target.path or '/'}{'?' + target.query if target.query else ''} HTTP/1.1",
                 f"Host: {target.netloc.rpartition('@')[2]}", "Connection: close", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items() if k.lower() not in _HOP | {"host"}]
        upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        first = b""
        with contextlib.suppress(OSError):
            first = upstream.recv(65536)
        with contextlib.suppress(ValueError, IndexError):
            rec["status"] = int(first.split(b" ", 2)[1])
        if b"\r\n" in first:  # the connection ends with this answer: say so, as a proxy must
            status, _, rest = first.partition(b"\r\n")
            first = status + b"\r\nConnection: close\r\n" + rest
        with contextlib.suppress(OSError):
            self.connection.sendall(first)
        _relay(self.connection, upstream, one_way=True)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_HEAD = do_DELETE = _forward


def _relay(client: socket.socket, upstream: socket.socket, *, one_way: bool = False) -> None:
    """Copy bytes between the two sockets until one side closes (``one_way``: upstream to client only)."""
    socks = [upstream] if one_way else [client, upstream]
    try:
        while True:
            readable, _, _ = select.select(socks, [], [], 60)
            if not readable:
                return
            for s in readable:
                data = s.recv(65536)
                if not data:
                    return
                (upstream if s is client else client).sendall(data)
    except OSError:
        return
    finally:
        with contextlib.suppress(OSError):
            upstream.close()


# ---------------------------------------------------------------------------------------------------
# measured subprocesses
# ---------------------------------------------------------------------------------------------------

@dataclass
class Measured:
    """What :func:`run_measured` saw: exit code, output, wall seconds, the child's peak RSS in bytes."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_rss: int
    timed_out: bool


# Runs argv[3:] with RLIMIT_AS argv[2] (0: none) and writes its exit status and own peak RSS to argv[1].
# Measuring from this small process matters: a child forked straight from pytest (hundreds of MB by the
# end of the suite) starts with pytest's peak RSS as its own (Linux keeps the old mm's high-water mark
# across exec).
MEASURE = """
import json, os, resource, subprocess, sys
limit = int(sys.argv[2])
def cap():
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
proc = subprocess.Popen(sys.argv[3:], stdin=subprocess.DEVNULL, preexec_fn=cap)
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"returncode": os.waitstatus_to_exitcode(status), "max_rss_kb": usage.ru_maxrss}, f)
"""


def run_measured(cmd: Sequence[str | os.PathLike[str]], *, env: dict[str, str] | None = None,
                 timeout: float = 300, cwd: Path | None = None, address_space: int | None = 4 << 30) -> Measured:
    """Run ``cmd`` (stdin closed) from a small measuring process that waits for it with ``os.wait4``,
    so the rusage is this child's alone. After ``timeout`` seconds both are killed and ``timed_out`` is
    True. ``address_space`` caps the child's virtual memory (RLIMIT_AS), so a regression that reads an
    endless answer into memory fails with MemoryError instead of taking the machine down."""
    import sys

    with tempfile.TemporaryDirectory(prefix="measured-") as tmp, \
            tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        result = Path(tmp) / "result.json"
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", MEASURE, str(result), str(address_space or 0),
                                 *(os.fspath(c) for c in cmd)], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=env, cwd=cwd, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, 9)
            proc.wait()
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        measured = json.loads(result.read_text()) if result.exists() else {"returncode": -9, "max_rss_kb": 0}
        return Measured(returncode=measured["returncode"], stdout=out.read().decode(errors="replace"),
                        stderr=err.read().decode(errors="replace"), seconds=seconds,
                        max_rss=measured["max_rss_kb"] * 1024, timed_out=timed_out)
