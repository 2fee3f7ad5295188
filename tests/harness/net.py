"""Plumbing shared by the in-process servers (token server, fault proxy) and the registry client
side: request records, a threading HTTP(S) server, free ports, an environment-proof requests session.

Request records (registry, proxy and token server alike) are dicts with at least ``method``, ``path``
(the request target as sent, i.e. including the query string) and ``status`` (int, or None when the
proxy dropped the connection).
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


def http_session() -> requests.Session:
    """A requests session that ignores *_PROXY / REQUESTS_CA_BUNDLE from the environment."""
    s = requests.Session()
    s.trust_env = False
    return s


def wait_http(url: str, seconds: float = 60) -> bytes:
    """GET ``url`` until it answers (a server starting in a container), at most ``seconds``; its body."""
    import time
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bytes(resp.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _count(records: Iterable[dict[str, Any]], method: str | None, path_regex: str) -> int:
    rx = re.compile(path_regex)
    return sum(1 for r in records
               if (method is None or r["method"] == method.upper()) and rx.search(r["path"]))


class Recorder:
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



class TLSThreadingServer(ThreadingHTTPServer):
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

