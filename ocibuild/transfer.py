"""Deadlines and bounds for downloads over HTTP(S): Debian mirrors and Python package indexes.

One download (every attempt of it) is aborted, with one error line naming its URL, when

- it averages under ``low_speed_limit`` bytes/s over ``low_speed_time`` seconds (curl's
  ``--speed-limit`` / ``--speed-time``): a stalled or dripping server; or
- it has run longer than ``max_time`` seconds plus one second per ``min_rate`` bytes received,
  retries and their pauses included (so a file of N bytes ends within ``max_time + N / min_rate``
  seconds; its announced size is not trusted to extend that).

Bodies are read in blocks of at most ``CHUNK`` bytes as they arrive, never whole (callers bound
how much they keep); error bodies are not read at all. A watchdog thread shuts the connection down
once a bound is passed, so no blocking read outlives it by more than a tick.

Defaults: 1024 bytes/s over 60 s, 120 s + 1 s per 64 KiB (a small file ends within about two
minutes). ``OCIBUILD_LOW_SPEED_LIMIT`` (bytes/s), ``OCIBUILD_LOW_SPEED_TIME`` (seconds) and
``OCIBUILD_TRANSFER_TIMEOUT`` (seconds, the ``max_time``) change them.

Known gap: the bounds start to act once response headers have arrived; before that, each socket
read waits at most ``low_speed_time`` (requests' read timeout), and http.client bounds the header size.
"""

from __future__ import annotations

import collections
import contextlib
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
import urllib3.exceptions

from .errors import ConfigError, OcibuildError

__all__ = ["READ_ERRORS", "Transfer", "TransferLimits", "redact"]

CHUNK = 1 << 20
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


@dataclass(frozen=True, kw_only=True, slots=True)
class TransferLimits:
    """The bounds of one download (see the module docstring)."""

    connect_timeout: float = 15.0
    low_speed_limit: int = 1024
    low_speed_time: float = 60.0
    max_time: float = 120.0
    min_rate: int = 64 << 10

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TransferLimits:
        """The defaults, changed by ``OCIBUILD_LOW_SPEED_LIMIT`` / ``_LOW_SPEED_TIME`` / ``_TRANSFER_TIMEOUT``."""
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
            if not number > 0 or number == float("inf"):
                raise ConfigError(f"{var}={text!r} is not a positive number; unset it or give e.g. {var}=60")
            values[name] = int(number) if name == "low_speed_limit" else number
        return cls(**values)

    @property
    def timeout(self) -> tuple[float, float]:
        """requests' ``(connect, read)`` timeout: a read that waits ``low_speed_time`` for one byte has stalled."""
        return (self.connect_timeout, self.low_speed_time)

    def bound(self, size: int) -> float:
        """Seconds a download of ``size`` bytes may take, every attempt included (plus one watchdog tick)."""
        return self.max_time + size / self.min_rate


def _socket(resp: requests.Response) -> socket.socket | None:
    """The socket a streamed response reads from (urllib3 2.x keeps its connection)."""
    conn = getattr(resp.raw, "connection", None) or getattr(resp.raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


class Transfer:
    """The clock of one download over all its attempts; a context manager that runs the watchdog.

    >>> with Transfer("GET https://deb.example/dists/trixie/InRelease", TransferLimits(),
    ...               error=SourceError, hint="try another mirror") as t:  # doctest: +SKIP
    ...     resp = session.get(url, stream=True, timeout=t.limits.timeout)
    ...     t.attempt(resp)
    ...     data = t.read_all(resp, 64 << 20)
    """

    def __init__(self, what: str, limits: TransferLimits, *, error: type[OcibuildError], hint: str) -> None:
        self.what = what
        self.limits = limits
        self.error = error
        self.hint = hint
        self.received = 0
        self.start = time.monotonic()
        self.reason: str | None = None  # set once a bound is passed
        self._lock = threading.Lock()
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._attempt_start = self.start
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tick = max(0.05, min(1.0, limits.low_speed_time / 4, limits.max_time / 4))

    def __enter__(self) -> Transfer:
        self._thread = threading.Thread(target=self._watch, name="ocibuild-transfer-watchdog", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    # --- the reading side -------------------------------------------------------------------------

    def attempt(self, resp: requests.Response) -> None:
        """A new response (the first, or a retry's) is being read: watch its connection."""
        now = time.monotonic()
        with self._lock:
            self._sock = _socket(resp)
            self._attempt_start = now
            self._samples.clear()
            self._samples.append((now, self.received))
        self.check()

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
        with self._lock:
            self.received += len(data)
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
        if time.monotonic() + seconds > self.start + self._allowed():
            return False
        time.sleep(seconds)
        return self.reason is None

    def check(self) -> None:
        """The error if a bound has been passed."""
        reason = self.reason or self._violation(time.monotonic())
        if reason is not None:
            self.reason = reason
            raise self.error(reason)

    def failed(self, exc: BaseException) -> OcibuildError:
        """The error for ``exc``, raised while requesting or reading: the bound that was passed (the
        watchdog shut the connection down), a stall for a read timeout, else the broken connection."""
        if self.reason is not None:
            return self.error(self.reason)
        if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
            return self.error(self._stalled())
        return self.error(f"{self.what}: the connection failed ({type(exc).__name__}); {self.hint}")

    # --- the watchdog -----------------------------------------------------------------------------

    def _allowed(self) -> float:
        return self.limits.bound(self.received)

    def _stalled(self) -> str:
        return (f"{self.what}: the transfer stalled (under {self.limits.low_speed_limit} bytes/s for "
                f"{self.limits.low_speed_time:g} s, {self.received} bytes received); {self.hint}, or raise "
                f"{ENV['low_speed_time']}")

    def _violation(self, now: float) -> str | None:
        with self._lock:
            allowed = self._allowed()
            if now - self.start > allowed:
                return (f"{self.what}: the transfer did not finish within {allowed:.0f} s ({self.received} bytes "
                        f"received, under {self.limits.min_rate} bytes/s on average); {self.hint}, or raise "
                        f"{ENV['max_time']}")
            window = self.limits.low_speed_time
            if self._samples and now - self._attempt_start >= window:
                then, had = self._samples[0]
                if now - then >= window and (self.received - had) / (now - then) < self.limits.low_speed_limit:
                    return self._stalled()
        return None

    def _watch(self) -> None:
        while not self._stop.wait(self._tick):
            now = time.monotonic()
            with self._lock:
                self._samples.append((now, self.received))
                while len(self._samples) >= 2 and self._samples[1][0] <= now - self.limits.low_speed_time:
                    self._samples.popleft()
            reason = self._violation(now)
            if reason is None:
                continue
            self.reason = reason
            with self._lock:
                sock = self._sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in recv
            return
