"""Real CNCF distribution (2.8.2, ``docker-registry``) registries on 127.0.0.1: plain HTTP, HTTPS +
htpasswd basic auth, HTTPS + bearer tokens from an in-process :class:`~harness.tokens.TokenServer`.

- :func:`start_plain` / :func:`start_tls_basic` / :func:`start_token` -> :class:`Registry`, a running
  ``docker-registry serve`` process. Every registry logs one Apache-combined access-log line per request
  to ``access_log_path``; :meth:`Registry.requests_log`, :meth:`Registry.count`, :meth:`Registry.mark`
  and :meth:`Registry.requests_since` read them.
- :class:`RegistryFactory`: registries and :class:`~harness.proxy.FaultProxy` instances on demand, all
  stopped at fixture teardown.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from .credentials import DEFAULT_PASSWORD, DEFAULT_USER, htpasswd_line
from .net import Recorder, free_port, http_session
from .pki import PKI
from .proc import require_tool
from .proxy import FaultProxy
from .tokens import TOKEN_ISSUER, TOKEN_SERVICE, TokenServer

REGISTRY_BIN = "docker-registry"
READY_TIMEOUT = 10.0
# query parameter of the sentinel request used to flush/sync the access log (filtered from results)
_SYNC_PARAM = "_harness_sync"

# Apache combined log format as written by gorilla/handlers (distribution's accesslog), e.g.
# 127.0.0.1 - - [23/Nov/2026:12:28:30 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
ACCESS_LOG_RE = re.compile(
    r'^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] '
    r'"(?P<method>[A-Z]+) (?P<path>\S+) (?P<proto>[^"]*)" (?P<status>\d{3}) (?P<size>\d+|-) '
    r'"(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)"\s*$')




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


class Registry(Recorder):
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
        self._http = http_session()

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
        exe = require_tool(REGISTRY_BIN)
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
        s = http_session()
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
