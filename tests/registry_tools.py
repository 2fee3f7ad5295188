"""Independent registry test infrastructure: real CNCF distribution registries, a bearer-token server,
a fault-injecting reverse proxy, credential files and helpers.

Like ``tools.py`` this module must NOT import ``ocibuild``: registry tests measure the client against
these. Only the standard library, ``cryptography`` and ``requests`` are used, plus external tools
(``docker-registry`` = distribution 2.8.2, ``htpasswd`` from apache2-utils, ``skopeo``). A missing tool
is a hard failure, never a skip. All traffic stays on 127.0.0.1.

Pieces
------
- :func:`make_pki` -> :class:`PKI`: CA, server cert (127.0.0.1 + localhost), token-signing key/cert and
  a ``certs_dir`` holding ``ca.crt`` (for skopeo ``--cert-dir``/``--dest-cert-dir``/``--src-cert-dir``).
- :func:`start_plain` / :func:`start_tls_basic` / :func:`start_token` -> :class:`Registry`, a running
  ``docker-registry serve`` process (plain HTTP / HTTPS + htpasswd / HTTPS + bearer tokens from an
  in-process :class:`TokenServer`). Every registry logs one Apache-combined access-log line per request
  to ``access_log_path``; :meth:`Registry.requests_log`, :meth:`Registry.count`, :meth:`Registry.mark`
  and :meth:`Registry.requests_since` read them.
- :class:`FaultProxy`: plain-HTTP reverse proxy with fault rules (fail / drop / delay / truncate /
  corrupt) and its own request record.
- :func:`docker_config`, :func:`containers_auth`, :func:`credential_helper`: credential files/helpers.
- :func:`skopeo`, :func:`skopeo_copy`: run skopeo, AssertionError with stderr on failure.

Request records (registry, proxy and token server alike) are dicts with at least ``method``, ``path``
(the request target as sent, i.e. including the query string) and ``status`` (int, or None when the
proxy dropped the connection).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as dt
import http.client
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REGISTRY_BIN = "docker-registry"
READY_TIMEOUT = 10.0
TOKEN_SERVICE = "test-registry"
TOKEN_ISSUER = "test-issuer"
DEFAULT_USER = "testuser"
DEFAULT_PASSWORD = "testpass"
# query parameter of the sentinel request used to flush/sync the access log (filtered from results)
_SYNC_PARAM = "_registry_tools_sync"

# Apache combined log format as written by gorilla/handlers (distribution's accesslog), e.g.
# 127.0.0.1 - - [23/Nov/2026:12:28:30 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
ACCESS_LOG_RE = re.compile(
    r'^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] '
    r'"(?P<method>[A-Z]+) (?P<path>\S+) (?P<proto>[^"]*)" (?P<status>\d{3}) (?P<size>\d+|-) '
    r'"(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)"\s*$')


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"required tool not found on PATH: {name} (install it; tests never skip)")
    return path


def _session() -> requests.Session:
    """A requests session that ignores *_PROXY / REQUESTS_CA_BUNDLE from the environment."""
    s = requests.Session()
    s.trust_env = False
    return s


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------------
# PKI
# ---------------------------------------------------------------------------------------------------

@dataclass
class PKI:
    """Test PKI (PEM files in ``dir``). ``ca_cert`` is what clients trust (``verify=str(pki.ca_cert)``);
    ``certs_dir`` holds only ``ca.crt`` for containers/image tools' ``--cert-dir``."""

    __test__ = False  # never collected by pytest

    dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    token_cert: Path
    token_key: Path
    certs_dir: Path


TestPKI = PKI


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(directory: Path) -> PKI:
    """Generate a CA, a CA-signed server cert (SAN IP:127.0.0.1, DNS:localhost; EKU serverAuth) and a
    self-signed token-signing cert, all RSA 2048, valid from yesterday for 30 days."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = now - dt.timedelta(days=1), now + dt.timedelta(days=30)

    ca_key = _new_key()
    ca_name = _name("ocibuild-test-ca")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(not_before).not_valid_after(not_after)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))

    srv_key = _new_key()
    srv = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca_name)
           .public_key(srv_key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(not_before).not_valid_after(not_after)
           .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
           .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                        data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                        crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
           .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
           .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                       x509.DNSName("localhost")]), critical=False)
           .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
           .sign(ca_key, hashes.SHA256()))

    # token signer: self-signed, no EKU (Go's chain verification defaults to ServerAuth when EKU present)
    tok_key = _new_key()
    tok_name = _name("ocibuild-token-signer")
    tok = (x509.CertificateBuilder().subject_name(tok_name).issuer_name(tok_name)
           .public_key(tok_key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(not_before).not_valid_after(not_after)
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .sign(tok_key, hashes.SHA256()))

    pki = PKI(dir=d, ca_cert=d / "ca.crt", ca_key=d / "ca.key", server_cert=d / "server.crt",
              server_key=d / "server.key", token_cert=d / "token.crt", token_key=d / "token.key",
              certs_dir=d / "certs")
    _write_cert(pki.ca_cert, ca)
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.server_cert, srv)
    _write_key(pki.server_key, srv_key)
    _write_cert(pki.token_cert, tok)
    _write_key(pki.token_key, tok_key)
    pki.certs_dir.mkdir(exist_ok=True)
    shutil.copyfile(pki.ca_cert, pki.certs_dir / "ca.crt")
    return pki


def _server_ssl_context(pki: PKI) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    return ctx


# ---------------------------------------------------------------------------------------------------
# request records shared by Registry / FaultProxy / TokenServer
# ---------------------------------------------------------------------------------------------------

def _count(records: Iterable[dict[str, Any]], method: str | None, path_regex: str) -> int:
    rx = re.compile(path_regex)
    return sum(1 for r in records
               if (method is None or r["method"] == method.upper()) and rx.search(r["path"]))


class _Recorder:
    """Mixin: ``requests_log()`` plus count / mark / requests_since over it."""

    def requests_log(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def mark(self) -> int:
        """Position in the request record; pass it to :meth:`requests_since` / :meth:`count`."""
        return len(self.requests_log())

    def requests_since(self, mark: int) -> list[dict[str, Any]]:
        return self.requests_log()[mark:]

    def count(self, method: str | None, path_regex: str, *, since: int = 0) -> int:
        """Requests with this method (None = any) whose ``path`` (incl. query) matches ``re.search``."""
        return _count(self.requests_since(since), method, path_regex)


# ---------------------------------------------------------------------------------------------------
# distribution registry processes
# ---------------------------------------------------------------------------------------------------

_LIVE: dict[int, subprocess.Popen[bytes]] = {}
_LIVE_LOCK = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    with _LIVE_LOCK:
        procs = list(_LIVE.values())
        _LIVE.clear()
    for p in procs:
        if p.poll() is None:
            p.kill()
            with contextlib.suppress(Exception):
                p.wait(timeout=5)


class RegistryError(AssertionError):
    """The registry process did not come up (message carries the log tail)."""


class Registry(_Recorder):
    """A running ``docker-registry serve CONFIG`` (CNCF distribution 2.8.2) on 127.0.0.1.

    ``kind`` is ``plain``, ``tls`` (htpasswd basic auth) or ``token`` (bearer auth via ``token_server``).
    Logs: ``access_log_path`` (stdout: one Apache-combined line per request, parsed by
    :meth:`requests_log`) and ``log_path`` (stderr: logrus JSON lines, :meth:`json_log`). Both files are
    appended to across :meth:`restart`, so marks stay valid.
    """

    def __init__(self, *, kind: str, port: int, workdir: Path, config: dict[str, Any], scheme: str,
                 ca_cert: Path | None = None, certs_dir: Path | None = None, user: str | None = None,
                 password: str | None = None) -> None:
        self.kind = kind
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.scheme = scheme
        self.url = f"{scheme}://{self.host}"
        self.workdir = workdir
        self.data_dir = Path(config["storage"]["filesystem"]["rootdirectory"])
        self.config = config
        self.config_path = workdir / "config.yml"
        self.log_path = workdir / "registry.log"
        self.access_log_path = workdir / "access.log"
        self.ca_cert = ca_cert
        self.certs_dir = certs_dir
        self.user = user
        self.password = password
        self.token_server: TokenServer | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = _session()

    def __repr__(self) -> str:
        return f"<Registry {self.kind} {self.url} pid={self.pid}>"

    # --- process control ---------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def verify(self) -> str | bool:
        """``verify=`` value for requests (the CA file, or False for plain HTTP)."""
        return str(self.ca_cert) if self.ca_cert is not None else False

    @property
    def creds(self) -> str | None:
        """``user:password`` (for ``--creds``) or None when the registry has no auth."""
        return f"{self.user}:{self.password}" if self.user is not None else None

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Start the process (config written from ``self.config``) and wait until ``/v2/`` answers."""
        if self.running:
            raise AssertionError(f"{self!r} is already running")
        exe = _tool(REGISTRY_BIN)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: distribution's yaml.v2 parser reads it, and paths need no quoting rules
        self.config_path.write_text(json.dumps(self.config, indent=2) + "\n")
        with self.access_log_path.open("ab") as out, self.log_path.open("ab") as err:
            proc = subprocess.Popen([exe, "serve", str(self.config_path)], stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.workdir)
        self._proc = proc
        with _LIVE_LOCK:
            _LIVE[proc.pid] = proc
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last: str = "no answer yet"
        while time.monotonic() < deadline:
            if not self.running:
                raise RegistryError(f"{self.kind} registry on {self.host} exited with "
                                    f"{self._proc.returncode if self._proc else '?'}\n{self.log_tail()}")
            try:
                r = self._http.get(f"{self.url}/v2/", verify=self.verify, timeout=1)
                if r.status_code in (200, 401):
                    return
                last = f"HTTP {r.status_code}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        raise RegistryError(f"{self.kind} registry on {self.host} not ready after {timeout}s ({last})\n"
                            f"{self.log_tail()}")

    def _forget(self) -> None:
        if self._proc is not None:
            with _LIVE_LOCK:
                _LIVE.pop(self._proc.pid, None)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. No-op if not running."""
        p = self._proc
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self._forget()

    def kill(self) -> None:
        """SIGKILL (crash simulation) and reap."""
        p = self._proc
        if p is None:
            return
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        self._forget()

    def restart(self, timeout: float = READY_TIMEOUT) -> None:
        """Stop if running, then start again with the same config, port and data; wait until ready."""
        self.stop()
        self.start(timeout)

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self.token_server is not None:
            self.token_server.stop()

    # --- logs ---------------------------------------------------------------------------------------

    def log_tail(self, n: int = 30) -> str:
        parts = []
        for p in (self.log_path, self.access_log_path):
            lines = p.read_text(errors="replace").splitlines()[-n:] if p.exists() else []
            parts.append(f"--- {p} (last {len(lines)} lines) ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def json_log(self) -> list[dict[str, Any]]:
        """All logrus JSON lines of ``log_path`` (stderr). Note 2.8.2 writes no 'response completed'
        line for auth challenges (401); use :meth:`requests_log` for a complete per-request record."""
        out: list[dict[str, Any]] = []
        if self.log_path.exists():
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        out.append(json.loads(line))
        return out

    def sync_log(self, timeout: float = 5.0) -> None:
        """Send a sentinel request and wait until it is in the access log: every request answered
        before this call is then logged (gorilla writes the line just after the handler returns)."""
        if not self.running:
            return
        token = uuid.uuid4().hex
        with contextlib.suppress(requests.RequestException):
            self._http.get(f"{self.url}/v2/?{_SYNC_PARAM}={token}", verify=self.verify, timeout=5)
        deadline = time.monotonic() + timeout
        needle = f"{_SYNC_PARAM}={token}"
        while time.monotonic() < deadline:
            if self.access_log_path.exists() and needle in self.access_log_path.read_text(errors="replace"):
                return
            time.sleep(0.02)
        raise AssertionError(f"sentinel request never appeared in {self.access_log_path}\n{self.log_tail()}")

    def requests_log(self, *, sync: bool = True) -> list[dict[str, Any]]:
        """Parsed access-log lines, oldest first (sentinel requests removed). Keys: ``method``,
        ``path`` (request URI incl. query), ``route`` (path without query), ``query`` (parse_qs dict),
        ``status`` (int), ``size`` (int, body bytes written), ``user_agent``, ``remote``, ``time``."""
        if sync:
            self.sync_log()
        out: list[dict[str, Any]] = []
        if not self.access_log_path.exists():
            return out
        for line in self.access_log_path.read_text(errors="replace").splitlines():
            m = ACCESS_LOG_RE.match(line)
            if m is None or _SYNC_PARAM in m["path"]:
                continue
            u = urlsplit(m["path"])
            out.append({"method": m["method"], "path": m["path"], "route": u.path, "query": parse_qs(u.query),
                        "status": int(m["status"]), "size": 0 if m["size"] == "-" else int(m["size"]),
                        "user_agent": m["user_agent"], "remote": m["remote"], "time": m["time"]})
        return out

    # --- client conveniences ------------------------------------------------------------------------

    def ref(self, name: str) -> str:
        """``docker://HOST/NAME`` (NAME = ``repo:tag`` or ``repo@digest``)."""
        return f"docker://{self.host}/{name}"

    def skopeo_args(self, role: str = "", *, creds: bool = True) -> list[str]:
        """TLS/credential flags for skopeo: role ``""`` (inspect, delete...), ``"src"`` or ``"dest"``."""
        pre = f"--{role}-" if role else "--"
        tls = [f"{pre}tls-verify=false"] if self.scheme == "http" else [f"{pre}cert-dir", str(self.certs_dir)]
        args = list(tls)
        if creds and self.creds is not None:
            args += [f"{pre}creds", self.creds]
        elif not creds:
            args += [f"{pre}no-creds"]
        return args

    def session(self) -> requests.Session:
        """requests session trusting the test CA, with basic auth for ``tls`` registries."""
        s = _session()
        s.verify = self.verify
        if self.kind == "tls" and self.user is not None and self.password is not None:
            s.auth = (self.user, self.password)
        return s

    def blob_path(self, digest: str) -> Path:
        """Where the filesystem driver stores a blob's bytes (for corrupting/deleting behind its back)."""
        alg, _, hexd = digest.partition(":")
        return self.data_dir / "docker/registry/v2/blobs" / alg / hexd[:2] / hexd / "data"


def _registry_config(data_dir: Path, port: int, *, tls: PKI | None = None,
                     auth: dict[str, Any] | None = None) -> dict[str, Any]:
    http_cfg: dict[str, Any] = {
        "addr": f"127.0.0.1:{port}",
        # fixed secret: upload-session state (the _state= HMAC) survives a restart
        "secret": "ocibuild-test-secret",
        "headers": {"X-Content-Type-Options": ["nosniff"]},
    }
    if tls is not None:
        http_cfg["tls"] = {"certificate": str(tls.server_cert), "key": str(tls.server_key)}
    cfg: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "info", "formatter": "json", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(data_dir)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": http_cfg,
    }
    if auth is not None:
        cfg["auth"] = auth
    return cfg


def _start_registry(kind: str, workdir: Path, *, make_config: Callable[[int], dict[str, Any]], scheme: str,
                    pki: PKI | None = None, user: str | None = None, password: str | None = None) -> Registry:
    """Start on a free port; retry with another port if it was taken in between (free_port race)."""
    last: Exception | None = None
    for _ in range(3):
        port = free_port()
        reg = Registry(kind=kind, port=port, workdir=workdir, config=make_config(port), scheme=scheme,
                       ca_cert=pki.ca_cert if pki else None, certs_dir=pki.certs_dir if pki else None,
                       user=user, password=password)
        try:
            reg.start()
            return reg
        except RegistryError as e:
            reg.kill()
            last = e
            if "address already in use" not in str(e):
                raise
    raise AssertionError(f"could not start {kind} registry: {last}")


def _workdir(tmp: Path, kind: str) -> Path:
    d = Path(tmp) / f"registry-{kind}-{uuid.uuid4().hex[:8]}"
    d.mkdir(parents=True)
    return d


def start_plain(tmp: Path) -> Registry:
    """Plain HTTP, no auth, deletes enabled."""
    wd = _workdir(tmp, "plain")
    return _start_registry("plain", wd, scheme="http",
                           make_config=lambda port: _registry_config(wd / "data", port))


def htpasswd_line(user: str, password: str) -> str:
    """bcrypt htpasswd line (the only hash distribution accepts) via ``htpasswd -Bbn``."""
    p = subprocess.run([_tool("htpasswd"), "-Bbn", user, password], capture_output=True, text=True,
                       check=False, timeout=30)
    if p.returncode != 0:
        raise AssertionError(f"htpasswd failed: {p.stderr}")
    return p.stdout.strip() + "\n"


def start_tls_basic(tmp: Path, pki: PKI, user: str = DEFAULT_USER, password: str = DEFAULT_PASSWORD,
                    *, extra_users: dict[str, str] | None = None) -> Registry:
    """HTTPS (server cert from ``pki``) + htpasswd basic auth."""
    wd = _workdir(tmp, "tls")
    htp = wd / "htpasswd"
    htp.write_text("".join(htpasswd_line(u, p) for u, p in {user: password, **(extra_users or {})}.items()))
    auth = {"htpasswd": {"realm": "basic-realm", "path": str(htp)}}
    return _start_registry("tls", wd, scheme="https", pki=pki, user=user, password=password,
                           make_config=lambda port: _registry_config(wd / "data", port, tls=pki, auth=auth))


def start_token(tmp: Path, pki: PKI, user: str = DEFAULT_USER,
                password: str = DEFAULT_PASSWORD) -> tuple[Registry, TokenServer]:
    """HTTPS + bearer-token auth; the :class:`TokenServer` runs in-process (also ``registry.token_server``)."""
    ts = TokenServer(pki, user, password)
    try:
        wd = _workdir(tmp, "token")
        auth = {"token": {"realm": ts.realm, "service": TOKEN_SERVICE, "issuer": TOKEN_ISSUER,
                          "rootcertbundle": str(pki.token_cert)}}
        reg = _start_registry("token", wd, scheme="https", pki=pki, user=user, password=password,
                              make_config=lambda port: _registry_config(wd / "data", port, tls=pki, auth=auth))
    except BaseException:
        ts.stop()
        raise
    reg.token_server = ts
    return reg, ts


def start_registry(kind: str, tmp: Path, pki: PKI | None = None) -> Registry:
    """``kind`` in plain / tls / token (token: the server is ``registry.token_server``)."""
    if kind == "plain":
        return start_plain(tmp)
    if pki is None:
        raise AssertionError(f"{kind} registry needs a PKI")
    if kind == "tls":
        return start_tls_basic(tmp, pki)
    if kind == "token":
        return start_token(tmp, pki)[0]
    raise AssertionError(f"unknown registry kind {kind!r} (plain, tls, token)")


# ---------------------------------------------------------------------------------------------------
# bearer-token server
# ---------------------------------------------------------------------------------------------------

def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class _TLSThreadingServer(ThreadingHTTPServer):
    """ThreadingHTTPServer doing the TLS handshake in the worker thread (a stuck client cannot block
    accept)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 ctx: ssl.SSLContext | None) -> None:
        self.ssl_ctx = ctx
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(60)  # idle keep-alive connections end eventually
        sock = request
        try:
            if self.ssl_ctx is not None:
                try:
                    sock = self.ssl_ctx.wrap_socket(request, server_side=True)
                except (OSError, ssl.SSLError):
                    return
            with self._conns_lock:
                self._conns.add(sock)
            super().finish_request(sock, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(sock)
            if sock is not request:
                with contextlib.suppress(OSError):
                    sock.close()

    def stop(self) -> None:
        """Stop accepting, close the listening socket and every open (keep-alive) connection."""
        self.shutdown()
        self.server_close()
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


class TokenServer(_Recorder):
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
        self._srv = _TLSThreadingServer(("127.0.0.1", 0), _TokenHandler, _server_ssl_context(pki))
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
    server_version = "registry-tools-token/1"

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


# ---------------------------------------------------------------------------------------------------
# fault-injecting reverse proxy
# ---------------------------------------------------------------------------------------------------

_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
                  "te", "trailer", "trailers", "transfer-encoding", "upgrade", "expect", "host", "content-length"})
_BLOB_GET = re.compile(r"^/v2/.+/blobs/(?P<digest>[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+)$")
_CHUNK = 64 * 1024


@dataclass
class _Rule:
    kind: str  # fail | drop | delay | truncate
    remaining: int
    match: re.Pattern[str] | None
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0
    after: int = 0
    body: bytes = b""
    hits: list[str] = field(default_factory=list)


class FaultProxy(_Recorder):
    """Plain-HTTP reverse proxy on 127.0.0.1:PORT in front of ``upstream`` (a registry URL), in a thread.

    Rules (thread-safe, settable while running; each consumes one matching request, FIFO; ``match`` is
    a regex searched in ``"METHOD /path?query"``, None = any request):
    - :meth:`fail_next`: answer with a status (+ Retry-After) without forwarding;
    - :meth:`drop_next`: close the connection without answering;
    - :meth:`delay_next`: sleep, then forward;
    - :meth:`truncate_next`: forward, but cut the response body after ``after`` bytes and close;
    - :meth:`corrupt_blob`: every ``GET /v2/<repo>/blobs/<digest>`` answer gets one byte flipped
      (headers incl. Content-Length and Docker-Content-Digest unchanged) until :meth:`clear`.
    Request bodies are drained before a fail/drop, streamed upstream otherwise (Content-Length or
    chunked); ``Location`` headers pointing at the upstream are rewritten to the proxy.
    ``requests``: dicts method, path, status (None when dropped), action, bytes_in, bytes_out, time.
    """

    def __init__(self, upstream: str, *, verify: str | bool = False, upstream_timeout: float = 60) -> None:
        u = urlsplit(upstream)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise AssertionError(f"bad upstream URL {upstream!r}")
        self.upstream = f"{u.scheme}://{u.netloc}"
        self._up_scheme = u.scheme
        self._up_host = u.hostname
        self._up_port = u.port or (443 if u.scheme == "https" else 80)
        self._up_ctx: ssl.SSLContext | None = None
        if u.scheme == "https":
            self._up_ctx = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
            if verify is False:
                self._up_ctx.check_hostname = False
                self._up_ctx.verify_mode = ssl.CERT_NONE
        self.upstream_timeout = upstream_timeout
        self.registry: Registry | None = None  # set by for_registry()
        self.requests: list[dict[str, Any]] = []
        self.corrupt: dict[str, int] = {}  # digest -> times corrupted
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._srv = _TLSThreadingServer(("127.0.0.1", 0), _ProxyHandler, None)
        self._srv.proxy = self  # type: ignore[attr-defined]
        self.port = int(self._srv.server_address[1])
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self._srv.serve_forever, name=f"fault-proxy-{self.port}",
                                        daemon=True)
        self._thread.start()

    @classmethod
    def for_registry(cls, registry: Registry, **kw: Any) -> FaultProxy:
        """Proxy in front of ``registry`` (``proxy.registry``); verifies TLS upstreams with its CA."""
        fp = cls(registry.url, verify=registry.verify, **kw)
        fp.registry = registry
        return fp

    def __repr__(self) -> str:
        return f"<FaultProxy {self.url} -> {self.upstream}>"

    def ref(self, name: str) -> str:
        """``docker://PROXYHOST/NAME`` (skopeo needs ``--tls-verify=false``: the proxy speaks plain HTTP)."""
        return f"docker://{self.host}/{name}"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._srv.stop()
            self._thread.join(timeout=5)
        else:
            self._srv.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- rules --------------------------------------------------------------------------------------

    def _add(self, rule: _Rule) -> _Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    @staticmethod
    def _rx(match: str | None) -> re.Pattern[str] | None:
        return re.compile(match) if match is not None else None

    def fail_next(self, n: int, status: int = 503, retry_after: str | None = "1", *, match: str | None = None,
                  body: bytes | None = None) -> None:
        """Answer the next ``n`` (matching) requests with ``status`` and ``Retry-After`` (None = omit)."""
        if body is None:
            body = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "injected by FaultProxy",
                                           "detail": None}]}).encode()
        self._add(_Rule("fail", n, self._rx(match), status=status, retry_after=retry_after, body=body))

    def drop_next(self, n: int, *, match: str | None = None) -> None:
        """Close the connection of the next ``n`` (matching) requests without answering."""
        self._add(_Rule("drop", n, self._rx(match)))

    def delay_next(self, n: int, seconds: float, *, match: str | None = None) -> None:
        """Sleep ``seconds`` before forwarding the next ``n`` (matching) requests."""
        self._add(_Rule("delay", n, self._rx(match), seconds=seconds))

    def truncate_next(self, n: int, after: int, *, match: str | None = None) -> None:
        """Forward the next ``n`` (matching) requests but close the connection after ``after`` body bytes
        of the response (headers, incl. the full Content-Length, are sent as received)."""
        self._add(_Rule("truncate", n, self._rx(match), after=after))

    def corrupt_blob(self, digest: str) -> None:
        """Flip a byte in every forwarded ``GET /v2/<repo>/blobs/<digest>`` response body."""
        with self._lock:
            self.corrupt.setdefault(digest, 0)

    def clear(self) -> None:
        """Remove all pending rules and blob corruptions."""
        with self._lock:
            self._rules.clear()
            self.corrupt.clear()

    def pending(self) -> int:
        """Requests still to be affected by rules."""
        with self._lock:
            return sum(r.remaining for r in self._rules)

    def _take_rule(self, method: str, path: str) -> _Rule | None:
        key = f"{method} {path}"
        with self._lock:
            for r in self._rules:
                if r.remaining > 0 and (r.match is None or r.match.search(key)):
                    r.remaining -= 1
                    r.hits.append(key)
                    if r.remaining == 0:
                        self._rules.remove(r)
                    return r
        return None

    def requests_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.requests]

    def _record(self, rec: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(rec)

    def _rewrite_location(self, value: str) -> str:
        for base in (self.upstream, f"{self._up_scheme}://{self._up_host}:{self._up_port}"):
            if value.startswith(base + "/") or value == base:
                return self.url + value[len(base):]
        return value

    def _connect(self) -> http.client.HTTPConnection:
        if self._up_ctx is not None:
            return http.client.HTTPSConnection(self._up_host, self._up_port, timeout=self.upstream_timeout,
                                               context=self._up_ctx)
        return http.client.HTTPConnection(self._up_host, self._up_port, timeout=self.upstream_timeout)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "registry-tools-proxy/1"

    @property
    def proxy(self) -> FaultProxy:
        return self.server.proxy  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- request body ---------------------------------------------------------------------------------

    def _is_chunked(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower()

    def _body(self) -> Iterator[bytes]:
        if self._is_chunked():
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("client closed inside chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                left = size
                while left:
                    data = self.rfile.read(min(left, _CHUNK))
                    if not data:
                        raise ConnectionError("client closed inside chunk")
                    left -= len(data)
                    yield data
                self.rfile.readline(65537)  # CRLF after chunk
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                data = self.rfile.read(min(left, _CHUNK))
                if not data:
                    raise ConnectionError("client closed inside body")
                left -= len(data)
                yield data

    # --- dispatch -----------------------------------------------------------------------------------

    def _handle(self) -> None:
        p = self.proxy
        rec: dict[str, Any] = {"method": self.command, "path": self.path, "status": None, "action": "forward",
                               "bytes_in": 0, "bytes_out": 0, "time": time.time()}
        p._record(rec)  # recorded before answering, updated in place
        rule = p._take_rule(self.command, self.path)
        try:
            if rule is not None and rule.kind in ("fail", "drop"):
                for chunk in self._body():
                    rec["bytes_in"] += len(chunk)
                if rule.kind == "drop":
                    rec["action"] = "drop"
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                rec["action"], rec["status"] = "fail", rule.status
                self.send_response(rule.status)
                if rule.retry_after is not None:
                    self.send_header("Retry-After", rule.retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(rule.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(rule.body)
                return
            if rule is not None and rule.kind == "delay":
                rec["action"] = "delay"
                time.sleep(rule.seconds)
            self._forward(rec, truncate_after=rule.after if rule is not None and rule.kind == "truncate" else None)
        except (ConnectionError, OSError) as e:
            rec.setdefault("error", repr(e))
            self.close_connection = True

    def _forward(self, rec: dict[str, Any], truncate_after: int | None) -> None:
        p = self.proxy
        conn = p._connect()
        try:
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", f"{p._up_host}:{p._up_port}")
                for k, v in self.headers.items():
                    if k.lower() not in _HOP:
                        conn.putheader(k, v)
                if self._is_chunked():
                    conn.putheader("Transfer-Encoding", "chunked")
                    conn.endheaders()
                    for chunk in self._body():
                        rec["bytes_in"] += len(chunk)
                        conn.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    conn.send(b"0\r\n\r\n")
                elif self.headers.get("Content-Length") is not None:
                    conn.putheader("Content-Length", self.headers["Content-Length"])
                    conn.endheaders()
                    for chunk in self._body():
                        rec["bytes_in"] += len(chunk)
                        conn.send(chunk)
                else:
                    conn.endheaders()
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                # upstream down / reset: answer 502 like a real reverse proxy
                rec["action"], rec["status"], rec["error"] = "upstream-error", 502, repr(e)
                body = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": f"upstream: {e!r}"}]}).encode()
                self.send_response(502)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True
                return
            self._relay(resp, rec, truncate_after)
        finally:
            conn.close()

    def _relay(self, resp: http.client.HTTPResponse, rec: dict[str, Any], truncate_after: int | None) -> None:
        p = self.proxy
        rec["status"] = resp.status
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            lk = k.lower()
            if lk in _HOP:
                continue
            self.send_header(k, p._rewrite_location(v) if lk == "location" else v)
        length = resp.getheader("Content-Length")
        no_body = self.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
        if no_body:
            if length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            return
        # corruption target?
        flip_at: int | None = None
        m = _BLOB_GET.match(urlsplit(self.path).path)
        if self.command == "GET" and m and resp.status in (200, 206):
            with p._lock:
                if m["digest"] in p.corrupt:
                    p.corrupt[m["digest"]] += 1
                    flip_at = int(length) // 2 if length is not None else 0
        if flip_at is not None:
            rec["corrupted"] = True
        chunked_out = length is None and self.request_version >= "HTTP/1.1"
        if length is not None:
            self.send_header("Content-Length", length)
        elif chunked_out:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True
        if truncate_after is not None:
            rec["action"] = "truncate"
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        sent = 0
        while True:
            data = resp.read(_CHUNK)
            if not data:
                break
            if flip_at is not None and sent <= flip_at < sent + len(data):
                i = flip_at - sent
                data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
            if truncate_after is not None and sent + len(data) >= truncate_after:
                data = data[:max(0, truncate_after - sent)]
                self._write(data, chunked_out)
                sent += len(data)
                rec["bytes_out"] = sent
                self.wfile.flush()
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._write(data, chunked_out)
            sent += len(data)
            rec["bytes_out"] = sent
        if chunked_out:
            self.wfile.write(b"0\r\n\r\n")

    def _write(self, data: bytes, chunked: bool) -> None:
        if not data:
            return
        if chunked:
            self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
        else:
            self.wfile.write(data)

    do_GET = _handle
    do_HEAD = _handle
    do_POST = _handle
    do_PUT = _handle
    do_PATCH = _handle
    do_DELETE = _handle
    do_OPTIONS = _handle


class RegistryFactory:
    """Starts registries / proxies on demand and stops all of them in :meth:`close` (fixture teardown).
    ``factory("plain" | "tls" | "token")`` -> :class:`Registry` (token: ``.token_server``);
    ``factory.proxy(registry)`` -> :class:`FaultProxy` in front of it."""

    def __init__(self, tmp: Path, pki: PKI) -> None:
        self.tmp = Path(tmp)
        self.pki = pki
        self.registries: list[Registry] = []
        self.proxies: list[FaultProxy] = []

    def __call__(self, kind: str = "plain") -> Registry:
        reg = start_registry(kind, self.tmp, self.pki)
        self.registries.append(reg)
        return reg

    def proxy(self, registry: Registry, **kw: Any) -> FaultProxy:
        fp = FaultProxy.for_registry(registry, **kw)
        self.proxies.append(fp)
        return fp

    def close(self) -> None:
        errors: list[str] = []
        for fp in self.proxies:
            fp.stop()
        for reg in self.registries:  # SIGTERM all first, then wait: stopping is parallel
            if reg.running and reg.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(reg.pid, signal.SIGTERM)
        for reg in self.registries:
            try:
                reg.stop()
            except Exception as e:
                errors.append(f"{reg!r}: {e!r}")
            if reg.token_server is not None:
                reg.token_server.stop()
        self.registries.clear()
        self.proxies.clear()
        if errors:
            raise AssertionError("could not stop: " + "; ".join(errors))


# ---------------------------------------------------------------------------------------------------
# credentials
# ---------------------------------------------------------------------------------------------------

def _auth_entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def docker_config(directory: Path, registry_host: str, user: str | None, password: str | None, *,
                  cred_helpers: dict[str, str] | None = None, creds_store: str | None = None) -> Path:
    """Write ``DIR/config.json`` (use with ``DOCKER_CONFIG=DIR``): ``auths.<host>.auth`` =
    base64(user:pass) when ``user`` is given, plus optional ``credHelpers`` / ``credsStore``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = {"auths": {}}
    if user is not None and password is not None:
        cfg["auths"][registry_host] = _auth_entry(user, password)
    if cred_helpers:
        cfg["credHelpers"] = cred_helpers
    if creds_store:
        cfg["credsStore"] = creds_store
    path = d / "config.json"
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    path.chmod(0o600)
    return path


def containers_auth(directory: Path, host: str, user: str, password: str) -> Path:
    """Write ``DIR/auth.json`` (containers-auth.json(5): same ``auths`` format; ``REGISTRY_AUTH_FILE``)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "auth.json"
    path.write_text(json.dumps({"auths": {host: _auth_entry(user, password)}}, indent=2) + "\n")
    path.chmod(0o600)
    return path


_HELPER = r'''#!{python}
"""docker-credential-{name}: test credential helper (get/store/erase/list), store = {store}"""
import json, sys, time
from pathlib import Path

STORE = Path({store!r})
CALLS = Path({calls!r})
NOT_FOUND = "credentials not found in native keychain"


def norm(url):
    url = url.strip()
    for p in ("https://", "http://"):
        if url.startswith(p):
            url = url[len(p):]
    return url.split("/", 1)[0]


def load():
    return json.loads(STORE.read_text()) if STORE.exists() else {{}}


def save(d):
    STORE.write_text(json.dumps(d, indent=2))


def main():
    action = sys.argv[1] if len(sys.argv) > 1 else ""
    data = sys.stdin.read()
    with CALLS.open("a") as f:
        f.write(json.dumps({{"action": action, "input": data.strip() if action != "store" else "<redacted>",
                            "time": time.time()}}) + "\n")
    creds = load()
    if action == "get":
        key = norm(data)
        for url, c in creds.items():
            if norm(url) == key:
                print(json.dumps({{"ServerURL": url, "Username": c["Username"], "Secret": c["Secret"]}}))
                return 0
        print(NOT_FOUND)
        return 1
    if action == "store":
        d = json.loads(data)
        creds[d["ServerURL"]] = {{"Username": d["Username"], "Secret": d["Secret"]}}
        save(creds)
        return 0
    if action == "erase":
        key = norm(data)
        hit = [u for u in creds if norm(u) == key]
        if not hit:
            print(NOT_FOUND)
            return 1
        for u in hit:
            del creds[u]
        save(creds)
        return 0
    if action == "list":
        print(json.dumps({{u: c["Username"] for u, c in creds.items()}}))
        return 0
    print("unknown action: " + action, file=sys.stderr)
    return 2


sys.exit(main())
'''


def credential_helper(bin_dir: Path, name: str, host: str | None, user: str | None = None,
                      password: str | None = None) -> Path:
    """Write an executable ``BIN_DIR/docker-credential-NAME`` implementing get/store/erase/list.

    Credentials live in ``BIN_DIR/docker-credential-NAME.json`` ({server: {Username, Secret}}), seeded
    with ``host`` -> user/password when given. Server URLs match after dropping scheme and path, so
    ``https://127.0.0.1:5000/v2/`` finds ``127.0.0.1:5000``. Unknown server: prints
    ``credentials not found in native keychain``, exit 1. Each call appends
    ``{"action", "input", "time"}`` to ``BIN_DIR/docker-credential-NAME.calls.jsonl`` (store input
    redacted). Put BIN_DIR first on PATH for the client under test."""
    d = Path(bin_dir)
    d.mkdir(parents=True, exist_ok=True)
    script = d / f"docker-credential-{name}"
    store = d / f"docker-credential-{name}.json"
    calls = d / f"docker-credential-{name}.calls.jsonl"
    seed: dict[str, dict[str, str]] = {}
    if host is not None and user is not None and password is not None:
        seed[host] = {"Username": user, "Secret": password}
    store.write_text(json.dumps(seed, indent=2))
    store.chmod(0o600)
    script.write_text(_HELPER.format(python=sys.executable, name=name, store=str(store), calls=str(calls)))
    script.chmod(0o755)
    return script


def credential_helper_calls(script: Path) -> list[dict[str, Any]]:
    """The recorded invocations of a :func:`credential_helper` script."""
    calls = Path(f"{script}.calls.jsonl")
    if not calls.exists():
        return []
    return [json.loads(line) for line in calls.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------
# skopeo
# ---------------------------------------------------------------------------------------------------

def skopeo(*args: str | os.PathLike[str], timeout: float = 180, check: bool = True,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``skopeo ARGS`` (stdin closed). ``check``: AssertionError with stderr on a non-zero exit."""
    argv = [_tool("skopeo"), *(os.fspath(a) for a in args)]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"skopeo timed out after {timeout}s: {' '.join(argv)}") from e
    if check and p.returncode != 0:
        raise AssertionError(f"skopeo failed (exit {p.returncode}): {' '.join(argv)}\n"
                             f"--- stderr ---\n{p.stderr}\n--- stdout ---\n{p.stdout[-4000:]}")
    return p


def skopeo_copy(src: str, dest: str, *extra_args: str | os.PathLike[str], timeout: float = 180,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``skopeo copy EXTRA_ARGS SRC DEST``; AssertionError with stderr on failure."""
    return skopeo("copy", *extra_args, src, dest, timeout=timeout, env=env)


def skopeo_inspect_json(ref: str, *extra_args: str | os.PathLike[str], raw: bool = False) -> dict[str, Any]:
    """``skopeo inspect [--raw] EXTRA_ARGS REF`` parsed as JSON."""
    p = skopeo("inspect", *(["--raw"] if raw else []), *extra_args, ref)
    result: dict[str, Any] = json.loads(p.stdout)
    return result
