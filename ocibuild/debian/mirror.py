"""Talking to a Debian mirror: find the host's mirror, fetch files over http(s) or ``file://``, and
stream downloads into the content store verified by sha256."""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

import requests

from ..errors import DigestMismatch, RemoteFileNotFound, SourceError
from ..spec import Digest
from ..store import CHUNK, ContentStore
from ..transfer import Transfer, TransferLimits, default_session, redact
from .control import iter_stanzas

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
APT_SOURCES = Path("/etc/apt/sources.list")
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")


NotFound = RemoteFileNotFound


def host_mirror(suite: str, *, sources: Path = APT_SOURCES, sources_dir: Path = APT_SOURCES_DIR) -> str | None:
    """The ``deb`` mirror this host's apt uses for ``suite`` (or, failing that, for any suite that is not
    a security mirror); ``None`` if apt has no http(s)/file mirror configured."""
    entries: list[tuple[str, tuple[str, ...]]] = []  # (uri, suites)
    if sources_dir.is_dir():
        for f in sorted(sources_dir.glob("*.sources")):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                for st in iter_stanzas(f.read_text()):
                    if "deb" in st.get("Types", "").split() and st.get("Enabled", "yes").lower() != "no":
                        for uri in st.get("URIs", "").split():
                            entries.append((uri, tuple(st.get("Suites", "").split())))
    files = [sources] + (sorted(sources_dir.glob("*.list")) if sources_dir.is_dir() else [])
    for f in files:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            for line in f.read_text().splitlines():
                words = line.split("#", 1)[0].split()
                if words[:1] != ["deb"]:
                    continue
                words = words[1:]
                if words and words[0].startswith("["):
                    while words and not words[0].endswith("]"):
                        words.pop(0)
                    words = words[1:]
                if len(words) >= 2:
                    entries.append((words[0], (words[1],)))
    usable = [(u.rstrip("/"), s) for u, s in entries if u.startswith(("http://", "https://", "file:"))]
    for uri, suites in usable:
        if suite in suites:
            return uri
    if suite.endswith("-security"):
        return None
    for uri, _ in usable:
        if "security" not in uri:
            return uri
    return None


def default_mirror(suite: str) -> str:
    """The host's apt mirror for ``suite``, else http://deb.debian.org/debian."""
    return host_mirror(suite) or DEFAULT_MIRROR


def default_security_mirror(suite: str) -> str:
    """The host's apt mirror for ``<suite>-security``, else http://deb.debian.org/debian-security."""
    return host_mirror(f"{suite}-security") or DEFAULT_SECURITY_MIRROR


def _local_path(url: str) -> Path | None:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if not parsed.scheme:
        return Path(url)
    return None


class _Body:
    """A mirror response's body as a readable stream under the transfer's bounds."""

    def __init__(self, transfer: Transfer, resp: requests.Response) -> None:
        self._transfer = transfer
        self._resp = resp

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all with ``n`` < 0), fewer only at the end."""
        parts: list[bytes] = []
        have = 0
        while n < 0 or have < n:
            chunk = self._transfer.read(self._resp, CHUNK if n < 0 else min(CHUNK, n - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts)


class Fetcher:
    """Downloads from one mirror base URL (``http(s)://`` or ``file://``), each under ``limits``
    (default: ``TransferLimits.from_env()``: aborted under 1 KiB/s for 60 s, or after 120 s plus
    1 s per 64 KiB moved)."""

    def __init__(self, mirror: str, *, limits: TransferLimits | None = None) -> None:
        self.mirror = mirror.rstrip("/")
        self.limits = limits or TransferLimits.from_env()
        self._session: requests.Session | None = None

    def url(self, path: str) -> str:
        return f"{self.mirror}/{path.lstrip('/')}"

    @contextlib.contextmanager
    def open(self, path: str) -> Iterator[BinaryIO]:
        """A readable stream of ``path`` below the mirror; ``NotFound`` if absent, ``SourceError`` if the
        mirror cannot be reached or the transfer stalls or passes its deadline."""
        url = self.url(path)
        local = _local_path(url)
        if local is not None:
            try:
                f = local.open("rb")
            except FileNotFoundError:
                raise NotFound(f"{url} does not exist") from None
            except OSError as exc:
                raise SourceError(f"cannot read {url}: {exc.strerror}") from None
            with f:
                yield f
            return
        if self._session is None:
            self._session = default_session()  # counted connections: the deadlines need them
        shown = redact(url)
        hint = ("check the mirror and the network, or choose another mirror (--mirror, [base.debian] mirror), or "
                "build offline from a lock file plus cache, or from a folder of .deb files (deb_dir)")
        with Transfer(f"GET {shown}", self.limits, error=SourceError, hint=hint) as transfer:
            try:
                resp = self._session.get(url, stream=True, timeout=self.limits.timeout)
            except requests.RequestException as exc:
                if transfer.reason is not None or isinstance(exc, requests.Timeout):
                    raise transfer.failed(exc) from None
                raise SourceError(
                    f"cannot reach the Debian mirror {redact(self.mirror)} ({type(exc).__name__}); check the "
                    "mirror URL and the network, or build offline from a lock file plus cache, or from a folder "
                    "of .deb files (deb_dir)") from None
            with resp:  # an error's body is never read
                if resp.status_code == 404:
                    raise NotFound(f"{shown} does not exist (HTTP 404)")
                if resp.status_code != 200:
                    raise SourceError(f"GET {shown} failed: HTTP {resp.status_code} {(resp.reason or '')[:200]}")
                resp.raw.decode_content = True
                yield typing.cast(BinaryIO, _Body(transfer, resp))

    def read(self, path: str, limit: int = 64 << 20) -> bytes:
        """The whole (small) file at ``path``; at most ``limit`` + 1 bytes are ever held."""
        with self.open(path) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise SourceError(f"{redact(self.url(path))} is larger than {limit} bytes")
        return data

    def download(self, path: str, store: ContentStore, sha256: str, size: int | None = None) -> Digest:
        """Stream ``path`` into ``store``, verified against ``sha256`` (and ``size``); a blob already in
        the store is not downloaded again. A mismatch stores nothing and raises ``DigestMismatch``."""
        expected = Digest("sha256", sha256)
        if store.has(expected):
            return expected
        with self.open(path) as src, store.writer() as w:
            got = 0
            while chunk := src.read(CHUNK):
                got += len(chunk)
                if size is not None and got > size:
                    raise DigestMismatch(f"{redact(self.url(path))} is larger than the {size} bytes the signed "
                                         "index or lock file gives; the mirror copy is corrupt or has been "
                                         "tampered with: try another mirror")
                w.write(chunk)
            try:
                return w.commit(expected, size)
            except DigestMismatch as exc:
                raise DigestMismatch(
                    f"{redact(self.url(path))} does not match the signed index or lock file ({exc}); the mirror "
                    "copy is corrupt or has been tampered with: try another mirror, or refresh the lock if the "
                    "archive really changed") from None
