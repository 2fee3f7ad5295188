"""Deadlines and bounds for every transfer over HTTP(S): registry traffic, Debian mirrors and Python
package indexes all run on this one mechanism.

The bytes each connection moves (both ways, headers included) are counted on its socket, and one
watchdog thread shuts the socket down as soon as an operation passes a bound, which wakes a read or
write blocked in the kernel at once. An *operation* (a registry manifest GET, a token fetch, a blob
download or upload with its HEAD, POST, PUT and retries; a mirror file; an index page; a wheel with
its retries) runs under one :class:`Guard`, entered on the thread that does the I/O:

- **low speed**: while bytes flow (a request body going out, a response coming in), fewer than
  ``low_speed_limit`` bytes/s averaged over ``low_speed_time`` seconds aborts it (curl's
  ``--speed-limit`` / ``--speed-time``): a stalled or dripping peer. Waiting for the answer after a
  whole request was sent is not slowness (a registry may take a while to commit a big upload); the
  socket read timeout and the total bound cover that wait;
- **total**: it ends within ``max_time + moved / min_rate`` seconds, every retry and pause included,
  where ``moved`` is what was sent and received so far: a small document ends within about
  ``max_time`` seconds, and a transfer averaging at least ``min_rate`` bytes/s is never cut (an
  announced size is not trusted to extend that).

Defaults (:class:`TransferLimits`): 1024 bytes/s over 60 s, 120 s + 1 s per 64 KiB moved (a small
file ends within about two minutes). ``OCIBUILD_LOW_SPEED_LIMIT`` (bytes/s),
``OCIBUILD_LOW_SPEED_TIME`` (seconds) and ``OCIBUILD_TRANSFER_TIMEOUT`` (seconds, the ``max_time``)
change them, for every kind of transfer alike.

Only connections made by a :class:`GuardedAdapter` are counted (:func:`default_session` mounts one,
:func:`guarded` mounts one on a session that has requests' stock adapters). No guard, no cost beyond
a thread-local lookup per socket call. :class:`Transfer` is a guard for plain downloads: it reads
bodies in blocks of at most ``CHUNK`` bytes as they arrive, never whole (callers bound how much they
keep), and turns a passed bound or a broken connection into the caller's error class with its hint.
"""

from __future__ import annotations

import collections
import contextlib
import io
import math
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

from .errors import ConfigError, OcibuildError

__all__ = ["READ_ERRORS", "Guard", "GuardTripped", "GuardedAdapter", "Transfer", "TransferLimits", "current_guard",
           "default_session", "env_limits", "guarded", "redact"]

CHUNK = 1 << 20
BLOCK = 1 << 20  # request bodies are sent in blocks of this size (urllib3's 16 KiB costs ~15% on a fast link)
# what a read of a response body can raise (requests wraps only its own iterators)
READ_ERRORS = (OSError, requests.RequestException, urllib3.exceptions.HTTPError)
ENV = {"low_speed_limit": "OCIBUILD_LOW_SPEED_LIMIT", "low_speed_time": "OCIBUILD_LOW_SPEED_TIME",
       "max_time": "OCIBUILD_TRANSFER_TIMEOUT"}


def redact(url: str) -> str:
    """``url`` without user name and password (private indexes put a token there) or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# --- the limits -------------------------------------------------------------------------------------------

def env_limits(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The :class:`TransferLimits` fields the environment sets (``low_speed_limit``, ``low_speed_time``,
    ``max_time``); ``ConfigError`` for a value that is not a positive finite number."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, var in ENV.items():
        text = env.get(var, "").strip()
        if not text:
            continue
        try:
            number = float(text)
        except ValueError:
            number = -1.0
        if not number > 0 or math.isinf(number):
            raise ConfigError(f"{var}={text!r} is not a positive number; unset it or give e.g. {var}=60")
        values[name] = int(number) if name == "low_speed_limit" else number
    return values


@dataclass(frozen=True, kw_only=True, slots=True)
class TransferLimits:
    """The bounds of one operation (see the module docstring).

    >>> TransferLimits.from_env({"OCIBUILD_LOW_SPEED_TIME": "5"}).low_speed_time
    5.0
    """

    connect_timeout: float = 15.0
    low_speed_limit: int = 1024
    low_speed_time: float = 60.0
    max_time: float = 120.0
    min_rate: int = 64 << 10

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TransferLimits:
        """The defaults, changed by ``OCIBUILD_LOW_SPEED_LIMIT`` / ``_LOW_SPEED_TIME`` / ``_TRANSFER_TIMEOUT``."""
        return cls(**env_limits(environ))

    @property
    def timeout(self) -> tuple[float, float]:
        """requests' ``(connect, read)`` timeout for a download: a read that waits ``low_speed_time``
        for one byte has stalled."""
        return (self.connect_timeout, self.low_speed_time)

    def bound(self, moved: int) -> float:
        """Seconds an operation that moved ``moved`` bytes may take, every attempt included (plus one
        watchdog tick)."""
        return self.max_time + moved / self.min_rate


# --- the guard --------------------------------------------------------------------------------------------

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
    entered, and it counts the guarded connections this thread uses meanwhile). ``reason`` is the
    one-line message once a bound has been passed."""

    def __init__(self, what: str, limits: TransferLimits, *, hint: str = "check the network and the registry") -> None:
        self.what = what
        self.limits = limits
        self.hint = hint
        self.start = time.monotonic()
        self.moved = 0
        self.reason: str | None = None
        self.tick = max(0.05, min(1.0, limits.low_speed_time / 8, limits.max_time / 8))
        # sendall() is cut into slices so progress shows at well under the low-speed window
        self.slice = int(max(1024, min(BLOCK, limits.low_speed_limit * limits.low_speed_time / 4)))
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
        return self.limits.bound(self.moved)

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

    def stalled(self) -> str:
        """The message for a transfer under the low-speed limit (also for a socket read that timed out)."""
        limits = self.limits
        return (f"{self.what}: the transfer stalled (under {limits.low_speed_limit} bytes/s for "
                f"{limits.low_speed_time:g} s, {self.moved} bytes moved); {self.hint}, or change "
                f"{ENV['low_speed_limit']} / {ENV['low_speed_time']}")

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
        limits = self.limits
        with self._lock:
            bound = limits.bound(self.moved)
            if now - self.start > bound:
                return (f"{self.what}: the transfer did not finish within {bound:.0f} s ({self.moved} bytes moved, "
                        f"retries included; one not done within {limits.max_time:g} s + 1 s per {limits.min_rate} "
                        f"bytes is cut off); {self.hint}, or raise {ENV['max_time']}")
            window = limits.low_speed_time
            stalled = False
            if self._phase in (_SEND, _RECV) and now - self._phase_start >= window:
                then, had = self._samples[0]
                stalled = now > then and (self.moved - had) / (now - then) < limits.low_speed_limit
        return self.stalled() if stalled else None

    def _on_tick(self, now: float) -> None:
        with self._lock:
            self._samples.append((now, self.moved))
            while len(self._samples) >= 2 and self._samples[1][0] <= now - self.limits.low_speed_time:
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
                self._thread = threading.Thread(target=self._run, name="ocibuild-transfer-watchdog", daemon=True)
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


# --- counted connections ----------------------------------------------------------------------------------
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


def guarded(session: requests.Session) -> requests.Session:
    """``session``, with a :class:`GuardedAdapter` mounted where it has requests' stock adapters (the
    deadlines count bytes on its connections); adapters of its own are kept, without the low-speed and
    total bounds (the socket timeouts still apply)."""
    for prefix in ("https://", "http://"):
        if type(session.adapters.get(prefix)) is requests.adapters.HTTPAdapter:
            session.mount(prefix, GuardedAdapter(pool_connections=8, pool_maxsize=16))
    return session


def default_session() -> requests.Session:
    """A session with connection pools big enough for parallel transfers, large send blocks and
    counted connections (the deadlines need them)."""
    return guarded(requests.Session())


# --- plain downloads --------------------------------------------------------------------------------------

class Transfer:
    """One download (every attempt of it) under a :class:`Guard`, raising the caller's ``error`` class
    with its ``hint``; a context manager. The session must count its connections (:func:`guarded`).

    >>> with Transfer("GET https://deb.example/dists/trixie/InRelease", TransferLimits(),
    ...               error=SourceError, hint="try another mirror") as t:  # doctest: +SKIP
    ...     resp = session.get(url, stream=True, timeout=t.limits.timeout)
    ...     data = t.read_all(resp, 64 << 20)
    """

    def __init__(self, what: str, limits: TransferLimits, *, error: type[OcibuildError], hint: str) -> None:
        self.what = what
        self.limits = limits
        self.error = error
        self.hint = hint
        self.guard = Guard(what, limits, hint=hint)

    def __enter__(self) -> Transfer:
        self.guard.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.guard.__exit__(exc_type, exc, tb)

    @property
    def reason(self) -> str | None:
        """The message once a bound has been passed."""
        return self.guard.tripped()

    def read(self, resp: requests.Response, amt: int = CHUNK) -> bytes:
        """The next block of the body as it arrives (``b""`` at its end); the error on a passed bound or a
        broken connection."""
        raw = resp.raw
        try:
            # read1: what has arrived, so a slow-but-fine transfer is seen as such (urllib3 1.26 lacks it:
            # small blocking reads there, the watchdog still ends them)
            data: bytes = raw.read1(amt) if hasattr(raw, "read1") else raw.read(min(amt, 16 << 10))
        except READ_ERRORS as exc:
            raise self.failed(exc) from None
        self.check()
        return data

    def read_all(self, resp: requests.Response, limit: int) -> bytes:
        """The whole body, at most ``limit`` bytes (the error beyond: only ``limit`` + 1 are ever held)."""
        parts: list[bytes] = []
        have = 0
        while chunk := self.read(resp, min(CHUNK, limit + 1 - have)):
            parts.append(chunk)
            have += len(chunk)
            if have > limit:
                raise self.error(f"{self.what}: the response is larger than {limit} bytes; {self.hint}")
        return b"".join(parts)

    def sleep(self, seconds: float) -> bool:
        """Pause before a retry; False (no pause) when the pause would pass the deadline."""
        if self.guard.tripped() is not None or self.guard.remaining() < seconds:
            return False
        self.guard.pause()
        time.sleep(seconds)
        return self.guard.tripped() is None

    def check(self) -> None:
        """The error if a bound has been passed."""
        reason = self.guard.tripped()
        if reason is not None:
            raise self.error(reason)

    def failed(self, exc: BaseException) -> OcibuildError:
        """The error for ``exc``, raised while requesting or reading: the bound that was passed (the
        watchdog shut the connection down), a stall for a read timeout, else the broken connection."""
        reason = self.guard.tripped()
        if reason is not None:
            return self.error(reason)
        if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
            return self.error(self.guard.stalled())
        return self.error(f"{self.what}: the connection failed ({type(exc).__name__}); {self.hint}")
