"""Fault-injecting plain-HTTP reverse proxy (fail / drop / delay / truncate / corrupt) with its own
request record, for retry and integrity tests against a real registry."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .net import Recorder, TLSThreadingServer

if TYPE_CHECKING:
    from .registry import Registry

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


class FaultProxy(Recorder):
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
        self._srv = TLSThreadingServer(("127.0.0.1", 0), _ProxyHandler, None)
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
    server_version = "harness-fault-proxy/1"

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
