"""Deadlines for registry traffic, enforced under ``requests``: the bytes each connection moves (both
ways, headers included) are counted on its socket, and one watchdog thread shuts the socket down as
soon as an operation passes a bound, which wakes a read or write blocked in the kernel at once.

An *operation* (a manifest GET, a token fetch, a blob download, a blob upload with its HEAD, POST,
PUT and retries) runs under one :class:`Guard`, entered on the thread that does the I/O:

- **low speed**: while bytes flow (a request body going out, a response coming in), fewer than
  ``low_speed_limit`` bytes/s averaged over ``low_speed_time`` seconds aborts it (curl's
  ``--speed-limit`` / ``--speed-time``): a stalled or dripping peer. Waiting for the answer after a
  whole request was sent is not slowness (a registry may take a while to commit a big upload); the
  socket read timeout and the total bound cover that wait.
- **total**: it ends within ``timeout + moved / min_rate`` seconds, every retry and pause included,
  where ``moved`` is what was sent and received so far: a small document ends within about
  ``timeout`` seconds, and a transfer averaging at least ``min_rate`` bytes/s is never cut.

Only connections made by a :class:`GuardedAdapter` are counted (``default_session()`` mounts one, and
a ``Transport`` mounts one on a session that has requests' stock adapters). No guard, no cost beyond
a thread-local lookup per socket call.
"""

from __future__ import annotations

import collections
import contextlib
import io
import socket
import threading
import time
from types import TracebackType
from typing import Any

import requests.adapters
import urllib3.connection
import urllib3.connectionpool

__all__ = ["Guard", "GuardTripped", "GuardedAdapter", "current_guard"]

BLOCK = 1 << 20  # request bodies are sent in blocks of this size (urllib3's 16 KiB costs ~15% on a fast link)

_IDLE, _SEND, _WAIT, _RECV = "idle", "send", "wait", "recv"
_local = threading.local()


class GuardTripped(OSError):
    """Raised by a guarded socket once its operation passed a bound (requests wraps it)."""


def current_guard() -> Guard | None:
    """The guard of the operation running on this thread, if any."""
    guard: Guard | None = getattr(_local, "guard", None)
    return guard


class Guard:
    """The clock and byte count of one operation; a context manager (the watchdog watches it while
    entered). ``reason`` is the one-line message once a bound has been passed."""

    def __init__(self, what: str, *, timeout: float, min_rate: int, low_speed_limit: int, low_speed_time: float,
                 hint: str = "check the network and the registry") -> None:
        self.what = what
        self.timeout = timeout
        self.min_rate = min_rate
        self.low_speed_limit = low_speed_limit
        self.low_speed_time = low_speed_time
        self.hint = hint
        self.start = time.monotonic()
        self.moved = 0
        self.reason: str | None = None
        self.tick = max(0.05, min(1.0, low_speed_time / 8, timeout / 8))
        # sendall() is cut into slices so progress shows at well under the low-speed window
        self.slice = int(max(1024, min(BLOCK, low_speed_limit * low_speed_time / 4)))
        self._lock = threading.Lock()
        self._phase = _IDLE
        self._phase_start = self.start
        self._samples: collections.deque[tuple[float, int]] = collections.deque([(self.start, 0)])
        self._sock: Any = None
        self._outer: Guard | None = None

    def __enter__(self) -> Guard:
        self._outer = current_guard()
        _local.guard = self
        _MONITOR.add(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _MONITOR.remove(self)
        _local.guard = self._outer

    # --- for the code running the operation --------------------------------------------------------

    def bound(self) -> float:
        """Seconds the operation may take, given what it has moved so far."""
        return self.timeout + self.moved / self.min_rate

    def remaining(self) -> float:
        """Seconds left before the total bound (negative once passed)."""
        return self.start + self.bound() - time.monotonic()

    def pause(self) -> None:
        """Nothing is in flight (between attempts, before a request): no low-speed check until bytes move."""
        with self._lock:
            self._phase = _IDLE

    def tripped(self) -> str | None:
        """The message if a bound has been passed (checked now, not only at the last tick)."""
        if self.reason is None:
            self.reason = self._violation(time.monotonic())
        return self.reason

    # --- called by the guarded socket (on the operation's thread) ------------------------------------

    def _io(self, sock: Any, phase: str, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._sock = sock
            if phase == _WAIT:
                if self._phase != _RECV:
                    self._phase = _WAIT
            elif self._phase != phase:
                self._phase, self._phase_start = phase, now
                self._samples = collections.deque([(now, self.moved)])
            self.moved += n
        if self.reason is not None:
            raise GuardTripped(self.reason)

    # --- called by the watchdog ------------------------------------------------------------------------

    def _violation(self, now: float) -> str | None:
        with self._lock:
            bound = self.timeout + self.moved / self.min_rate
            if now - self.start > bound:
                return (f"{self.what}: not done within {bound:.0f} s ({self.moved} bytes moved, retries included); "
                        f"{self.hint}, or raise OCIBUILD_TRANSFER_TIMEOUT (now {self.timeout:g} s)")
            window = self.low_speed_time
            if self._phase in (_SEND, _RECV) and now - self._phase_start >= window:
                then, had = self._samples[0]
                if now > then and (self.moved - had) / (now - then) < self.low_speed_limit:
                    return (f"{self.what}: the transfer stalled (under {self.low_speed_limit} bytes/s for "
                            f"{window:g} s); {self.hint}, or change OCIBUILD_LOW_SPEED_LIMIT / "
                            f"OCIBUILD_LOW_SPEED_TIME")
        return None

    def _on_tick(self, now: float) -> None:
        with self._lock:
            self._samples.append((now, self.moved))
            while len(self._samples) >= 2 and self._samples[1][0] <= now - self.low_speed_time:
                self._samples.popleft()
            sock = self._sock
        if self.reason is None:
            self.reason = self._violation(now)
        if self.reason is not None and sock is not None:
            with contextlib.suppress(OSError, ValueError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # not SSLSocket's: it would drop its TLS state


class _Monitor:
    """One daemon thread that ticks every active guard."""

    def __init__(self) -> None:
        self._guards: set[Guard] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, guard: Guard) -> None:
        with self._cond:
            self._guards.add(guard)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ocibuild-registry-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def remove(self, guard: Guard) -> None:
        with self._cond:
            self._guards.discard(guard)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._guards:
                    self._cond.wait()
                tick = min(g.tick for g in self._guards)
                self._cond.wait(tick)
                guards = list(self._guards)
            now = time.monotonic()
            for guard in guards:
                guard._on_tick(now)


_MONITOR = _Monitor()


def _inner_socket(sock: Any) -> socket.socket | None:
    """The OS socket under ``sock`` (an SSLSocket is one; urllib3's TLS-in-TLS transport holds one)."""
    if isinstance(sock, socket.socket):
        return sock
    inner = getattr(sock, "socket", None)
    return inner if isinstance(inner, socket.socket) else None


class _CountingSocket:
    """A connection's socket that reports every byte to the thread's guard and refuses I/O once the
    guard has tripped; everything else is the wrapped socket's."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._os = _inner_socket(sock)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def sendall(self, data: Any, *args: Any) -> None:
        guard = current_guard()
        if guard is None:
            self._sock.sendall(data, *args)
            return
        view = memoryview(data).cast("B")
        if not len(view):
            guard._io(self._os, _SEND, 0)
            self._sock.sendall(data, *args)
            return
        for i in range(0, len(view), guard.slice):
            piece = view[i:i + guard.slice]
            guard._io(self._os, _SEND, 0)
            self._sock.sendall(piece, *args)
            guard._io(self._os, _SEND, len(piece))

    def send(self, data: Any, *args: Any) -> int:
        guard = current_guard()
        if guard is not None:
            guard._io(self._os, _SEND, 0)
        n = int(self._sock.send(data, *args))
        if guard is not None:
            guard._io(self._os, _SEND, n)
        return n

    def recv_into(self, buffer: Any, *args: Any) -> int:
        guard = current_guard()
        if guard is not None:
            guard._io(self._os, _WAIT, 0)
        n = int(self._sock.recv_into(buffer, *args))
        if guard is not None and n:
            guard._io(self._os, _RECV, n)
        return n

    def recv(self, bufsize: int, *args: Any) -> bytes:
        guard = current_guard()
        if guard is not None:
            guard._io(self._os, _WAIT, 0)
        data = bytes(self._sock.recv(bufsize, *args))
        if guard is not None and data:
            guard._io(self._os, _RECV, len(data))
        return data

    def makefile(self, mode: str = "r", buffering: int | None = None, **kwargs: Any) -> Any:
        """A buffered reader over this object (so reads are counted), as ``socket.makefile('rb')`` is."""
        if mode not in ("r", "rb") or self._os is None:
            return self._sock.makefile(mode, buffering, **kwargs)
        raw = socket.SocketIO(self, "r")  # type: ignore[arg-type]
        self._os._io_refs += 1  # type: ignore[attr-defined]  # as socket.makefile does: close() waits for it
        return io.BufferedReader(raw, buffering if buffering and buffering > 0 else io.DEFAULT_BUFFER_SIZE)

    def _decref_socketios(self) -> None:
        if self._os is not None:
            self._os._decref_socketios()  # type: ignore[attr-defined]

    def close(self) -> None:
        self._sock.close()


class _GuardedHTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _CountingSocket(self.sock)


class _GuardedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _CountingSocket(self.sock)


class _GuardedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


_POOLS: dict[str, type[urllib3.connectionpool.HTTPConnectionPool]] = {
    "http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


class GuardedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter with counted connections (direct or through an HTTP(S) proxy; SOCKS
    proxies are not counted) and 1 MiB send blocks."""

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        pool_kwargs.setdefault("blocksize", BLOCK)
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        known = proxy in self.proxy_manager
        if not proxy.lower().startswith("socks"):
            proxy_kwargs.setdefault("blocksize", BLOCK)
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not known and not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager
