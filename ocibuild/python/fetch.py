"""Find and download the wheel of a pin that fits the target, verified by sha256, into the store.

Sources: ``--find-links`` folders (a wheelhouse) and pages, then package indexes through the simple
API (PEP 691 JSON, or PEP 503 HTML as a fallback; ``file://`` indexes too). Downloaded wheels are
content-addressed blobs; ``wheels/<sha256>/<filename>`` links give them their file names back. A pin
with no fitting wheel but an sdist gets a wheel built from it on this machine (``sdist.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import html.parser
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlparse

import requests

from ..errors import DigestMismatch, ResolutionError
from ..spec import Digest, canonical_json
from ..store import CHUNK, ContentStore
from ..transfer import Transfer, TransferLimits, guarded, redact
from .resolve import IndexSettings, Pin
from .target import TargetPython
from .wheel import normalize_name

FETCH_VERSION = "ocibuild-fetch-1"
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
SDIST_SUFFIXES = (".tar.gz", ".zip")  # the two sdist formats packaging (PEP 625 and legacy) names
PAGE_LIMIT = 64 << 20  # an index page larger than this is refused (only this much + 1 is ever held)
HINT = "check the network and the package index, or use --find-links DIR (a wheelhouse made by 'ocibuild fetch')"


@dataclass(frozen=True, kw_only=True, slots=True)
class Candidate:
    filename: str
    url: str  # http(s)://, file:// or a local path
    sha256: str = ""

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith(SDIST_SUFFIXES)

    @property
    def tags(self) -> frozenset[str]:
        """The wheel's tags (none for an sdist)."""
        if self.is_sdist:
            return frozenset()
        from packaging.utils import parse_wheel_filename

        _, _, _, tags = parse_wheel_filename(self.filename)
        return frozenset(str(t) for t in tags)


@dataclass(frozen=True, kw_only=True, slots=True)
class SdistOrigin:
    """The sdist a wheel was built from, and the build requirements (host wheels) it was built with."""

    filename: str
    sha256: str
    build_requirements: tuple[Pin, ...]
    url: str = ""  # where the sdist came from (credentials and query removed); "" if not recorded

    def to_dict(self) -> dict[str, object]:
        return {"filename": self.filename, "sha256": self.sha256,
                "build_requirements": [p.to_dict() for p in self.build_requirements],
                **({"url": self.url} if self.url else {})}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> SdistOrigin:
        reqs = d.get("build_requirements") or []
        assert isinstance(reqs, list)
        return cls(filename=str(d["filename"]), sha256=str(d["sha256"]),
                   build_requirements=tuple(Pin.from_dict(r) for r in reqs), url=str(d.get("url") or ""))


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchedWheel:
    pin: Pin
    path: Path  # a file named like the wheel, inside the store
    sha256: str
    filename: str
    downloaded: bool  # downloaded (or built from an sdist) by this call
    sdist: SdistOrigin | None = None  # set when the wheel was built from an sdist on this machine
    url: str = ""  # where the wheel came from (credentials and query removed); "" if built here or not recorded
    size: int = -1  # the file's size in bytes (-1: read it from ``path``)

    def file_size(self) -> int:
        """The wheel file's size, known without the file for a choice taken from a shared cache."""
        return self.size if self.size >= 0 else self.path.stat().st_size


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)


def _matches(filename: str, pin: Pin) -> bool:
    """``filename`` is a wheel or an sdist of exactly ``pin``."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )
    from packaging.version import InvalidVersion, Version

    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        elif filename.endswith(SDIST_SUFFIXES):
            name, version = parse_sdist_filename(filename)
        else:
            return False
        return normalize_name(str(name)) == pin.name and version == Version(pin.version)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return False


def _from_links(base: str, links: list[str], pin: Pin) -> list[Candidate]:
    out = []
    for href in links:
        url, _, fragment = href.partition("#")
        name = unquote(urlparse(url).path.rsplit("/", 1)[-1])
        if _matches(name, pin):
            sha = fragment.split("=", 1)[1] if fragment.startswith("sha256=") else ""
            out.append(Candidate(filename=name, url=urljoin(base, url), sha256=sha.lower()))
    return out


def _from_json(url: str, page: object, pin: Pin) -> list[Candidate]:
    """The files of ``pin`` on a PEP 691 JSON page (``TypeError`` / ``KeyError`` for a malformed one)."""
    if not isinstance(page, dict) or not isinstance(page.get("files", []), list):
        raise TypeError("not a PEP 691 project page")
    out = []
    for f in page.get("files", []):
        name = f["filename"]
        if isinstance(name, str) and _matches(name, pin) and not f.get("yanked"):
            hashes = f.get("hashes") or {}
            out.append(Candidate(filename=name, url=urljoin(url, str(f["url"])),
                                 sha256=str(hashes.get("sha256", "")).lower()))
    return out


def _read_url(session: requests.Session, url: str, accept: str,
              limits: TransferLimits | None = None) -> tuple[str, str]:
    """An index page (at most ``PAGE_LIMIT`` bytes, under the transfer limits) and its content type;
    ``("", "")`` for a 404. An error status raises ``requests.HTTPError`` (its body is not read)."""
    if url.startswith("file://") or "://" not in url:
        path = Path(unquote(urlparse(url).path) if url.startswith("file://") else url)
        target = path / "index.html" if path.is_dir() else path
        return target.read_text(encoding="utf-8", errors="replace"), "text/html"
    limits = limits or TransferLimits.from_env()
    with Transfer(f"GET {redact(url)}", limits, error=ResolutionError, hint=HINT) as transfer:
        try:
            resp = guarded(session).get(url, headers={"Accept": accept}, stream=True, timeout=limits.timeout)
        except requests.RequestException as exc:
            if transfer.reason is not None or isinstance(exc, requests.Timeout):
                raise transfer.failed(exc) from None
            raise
        with resp:
            if resp.status_code == 404:
                return "", ""
            resp.raise_for_status()
            data = transfer.read_all(resp, PAGE_LIMIT)
            return data.decode(resp.encoding or "utf-8", errors="replace"), resp.headers.get("Content-Type", "")


def candidates(pin: Pin, index: IndexSettings, session: requests.Session) -> list[Candidate]:
    """Every wheel and sdist file for exactly ``pin`` that the configured sources offer."""
    found: list[Candidate] = []
    errors: list[str] = []
    for link in index.find_links:
        local = Path(unquote(urlparse(link).path)) if link.startswith("file://") else Path(link)
        if "://" not in link or link.startswith("file://"):
            if local.is_dir():
                found += [Candidate(filename=p.name, url=str(p)) for p in sorted(local.iterdir())
                          if _matches(p.name, pin) and p.is_file()]
            continue
        try:
            text, _ = _read_url(session, link, "text/html")
        except (requests.RequestException, OSError, LookupError) as exc:
            errors.append(f"{redact(link)}: {type(exc).__name__}")
            continue
        except ResolutionError as exc:  # stalled, too slow or too big
            errors.append(str(exc))
            continue
        parser = _Links()
        parser.feed(text)
        found += _from_links(link, parser.links, pin)
    for base in index.indexes:
        url = base.rstrip("/") + f"/{pin.name}/"
        try:
            text, ctype = _read_url(session, url, JSON_ACCEPT)
        except (requests.RequestException, OSError, LookupError) as exc:
            errors.append(f"{redact(base)}: {type(exc).__name__}")
            continue
        except ResolutionError as exc:  # stalled, too slow or too big
            errors.append(str(exc))
            continue
        if "json" in ctype:
            try:
                found += _from_json(url, json.loads(text), pin)
            except (ValueError, RecursionError, TypeError, AttributeError, KeyError):
                errors.append(f"{redact(base)}: not a valid PEP 691 JSON page for {pin.name}")
        elif text:
            parser = _Links()
            parser.feed(text)
            found += _from_links(url, parser.links, pin)
    if not found and errors:
        raise ResolutionError(
            f"cannot fetch {pin.name}=={pin.version}: no package source answered ({'; '.join(errors)}); "
            "if this machine is offline, pass --find-links DIR with a wheelhouse made by 'ocibuild fetch'")
    return found


def pick(pin: Pin, found: list[Candidate], target: TargetPython) -> Candidate:
    """The wheel whose best tag ranks highest for the target; a clear error if none fits (sdists are
    never picked here: see :func:`fetch_wheel`)."""
    ranks = {str(t): i for i, t in enumerate(target.tags())}
    best: tuple[int, Candidate] | None = None
    for cand in found:
        rank = min((ranks[t] for t in cand.tags if t in ranks), default=None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, cand)
    if best is None:
        tags = sorted({t for c in found for t in c.tags})
        have = ", ".join(tags[:12]) + (" ..." if len(tags) > 12 else "") if tags else "no wheels at all"
        raise ResolutionError(
            f"{pin.name}=={pin.version} has no wheel for {target.platform} (CPython {target.version}, "
            f"{target.libc} {target.libc_version}); available wheel tags: {have}. Pick a version with a wheel "
            "for this platform, or a base image it supports")
    return best[1]


_WHEEL_NAME = re.compile(r"[A-Za-z0-9_.+!-]+\.whl")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _choice(record: Mapping[str, Any] | None) -> tuple[str, str, SdistOrigin | None] | None:
    """(sha256, file name, sdist origin) of a wheel-choice record, or None when it does not have that
    shape (a record from a shared cache is not trusted: the wheel is then chosen again)."""
    if record is None:
        return None
    try:
        sha = str(record["digest"]).removeprefix("sha256:")
        filename = str(record["filename"])
        origin = SdistOrigin.from_dict(record["sdist"]) if record.get("sdist") else None
    except (KeyError, TypeError, ValueError, AttributeError, AssertionError):
        return None
    if not _HEX64.fullmatch(sha) or not _WHEEL_NAME.fullmatch(filename):
        return None
    return sha, filename, origin


def local_wheel(wheel: FetchedWheel, target: TargetPython, index: IndexSettings, store: ContentStore,
                session: requests.Session) -> Path:
    """``wheel``'s file on this machine: as it is, or (a choice taken from the shared cache) the index's
    file with exactly that name and sha256, downloaded now (the layer it goes into is keyed by it)."""
    if store.has(Digest("sha256", wheel.sha256)):
        return stored_file(store, wheel.sha256, wheel.filename)
    found = [c for c in candidates(wheel.pin, index, session) if c.filename == wheel.filename]
    for cand in found:
        if cand.sha256 in ("", wheel.sha256):
            sha = _download(cand, replace(wheel.pin, hashes=frozenset({wheel.sha256})), store, session)
            if sha == wheel.sha256:
                return stored_file(store, sha, wheel.filename)
    raise ResolutionError(f"{wheel.filename} with sha256 {wheel.sha256} (the choice another build recorded in the "
                          "shared cache) is not on the index any more; build once with --cache-repo none")


def stored_file(store: ContentStore, sha256: str, filename: str) -> Path:
    """``wheels/<sha256>/<filename>``: a stored wheel (or sdist) blob under its file name (a hard link)."""
    link = store.root / "wheels" / sha256 / filename
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{filename}.tmp-{os.getpid()}-{threading.get_ident()}")  # platforms build in threads
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.link(store.blob_path(Digest("sha256", sha256)), tmp)
        except OSError:
            import shutil

            shutil.copyfile(store.blob_path(Digest("sha256", sha256)), tmp)
        os.replace(tmp, link)
    return link


def stream(cand: Candidate, session: requests.Session, write: Callable[[bytes], object], *,
           limits: TransferLimits | None = None) -> None:
    """Pass the bytes of ``cand`` (a local file or a URL, retried until the first byte) to ``write``,
    block by block; a download is bounded by ``limits`` (default ``TransferLimits.from_env()``), every
    attempt included."""
    if "://" not in cand.url or cand.url.startswith("file://"):
        path = Path(unquote(urlparse(cand.url).path)) if cand.url.startswith("file://") else Path(cand.url)
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                write(chunk)
        return
    limits = limits or TransferLimits.from_env()
    what = f"downloading {cand.filename} from {redact(cand.url)}"
    with Transfer(what, limits, error=ResolutionError, hint=HINT) as transfer:
        for attempt in range(4):
            started = False
            try:
                with guarded(session).get(cand.url, stream=True, timeout=limits.timeout) as resp:
                    resp.raise_for_status()  # an error's body is never read
                    while chunk := transfer.read(resp):
                        started = True
                        write(chunk)
                return
            except (requests.RequestException, ResolutionError) as exc:
                if transfer.reason is not None:
                    raise transfer.failed(exc) from None
                if attempt == 3 or started or not transfer.sleep(0.5 * 2 ** attempt):
                    if isinstance(exc, ResolutionError):
                        raise
                    if isinstance(exc, requests.Timeout):
                        raise transfer.failed(exc) from None
                    raise ResolutionError(f"downloading {cand.filename} failed: {type(exc).__name__}; "
                                          "check the network or use --find-links") from None


def check_hash(sha: str, cand: Candidate, pin: Pin) -> None:
    """``DigestMismatch`` unless ``sha`` is one the pin (or else the index) allows for the file."""
    allowed = pin.hashes or ({cand.sha256} if cand.sha256 else set())
    if allowed and sha not in allowed:
        where = pin.source or "the lock"
        hint = f"{where} has the wrong hash, or the file was tampered with" if pin.user_hashes else \
            "the index served a file that does not match its hash"
        raise DigestMismatch(f"hash mismatch for {cand.filename}: got sha256:{sha}, expected "
                             f"{' or '.join('sha256:' + h for h in sorted(allowed))}; {hint}")


def _download(cand: Candidate, pin: Pin, store: ContentStore, session: requests.Session) -> str:
    with store.writer() as w:
        stream(cand, session, w.write)
        sha = w.digest().hex
        check_hash(sha, cand, pin)  # before the blob enters the store
        w.commit()
    return sha


def fetch_wheel(pin: Pin, target: TargetPython, index: IndexSettings, store: ContentStore,
                session: requests.Session, *, build_sdists: bool = True, shared: bool = True) -> FetchedWheel:
    """The wheel for ``pin`` on ``target``: from the store if chosen before, else found and downloaded;
    with no fitting wheel but an sdist (and ``build_sdists``), built from the sdist on this machine.

    A choice another machine made (the store's shared cache, ``--cache-repo``; not with ``shared=False``)
    is taken without downloading: the wheel's ``path`` then does not exist until ``local_wheel`` fetches
    it, which only a layer that must be built again needs."""
    key = hashlib.sha256(canonical_json([FETCH_VERSION, pin.to_dict(), [str(t) for t in target.tags()[:400]],
                                         index.key()])).hexdigest()
    record = store.get_selector(f"wheel-{key}", shared=shared)
    chosen = _choice(record)
    if chosen is not None:
        sha, filename, origin = chosen
        assert record is not None
        if store.has(Digest("sha256", sha)) and (origin is None or store.has(Digest("sha256", origin.sha256))):
            return FetchedWheel(pin=pin, path=stored_file(store, sha, filename), sha256=sha, filename=filename,
                                downloaded=False, sdist=origin, url=str(record.get("url") or ""))
        # another machine's choice (--cache-repo): a wheel from the index, not one built from an sdist there
        # (that one may not be made again byte for byte here)
        if shared and store.shared is not None and origin is None and not store.has(Digest("sha256", sha)) \
                and isinstance(record.get("size"), int):
            return FetchedWheel(pin=pin, path=store.root / "wheels" / sha / filename, sha256=sha,
                                filename=filename, downloaded=False, url=str(record.get("url") or ""),
                                size=int(record["size"]))
    found = candidates(pin, index, session)
    sdists = sorted((c for c in found if c.is_sdist), key=lambda c: (not c.filename.endswith(".tar.gz"), c.filename))
    try:
        cand = pick(pin, found, target)
    except ResolutionError:
        if not sdists or not build_sdists:
            raise
        from .sdist import wheel_from_sdist

        built = wheel_from_sdist(pin, sdists[0], target, index, store, session,
                                 wheel_tags=sorted({t for c in found for t in c.tags}))
        assert built.sdist is not None
        store.put_selector(f"wheel-{key}", {"digest": f"sha256:{built.sha256}", "filename": built.filename,
                                            "sdist": built.sdist.to_dict(), "size": built.file_size()}, shared=True)
        return built
    if cand.sha256 and store.has(Digest("sha256", cand.sha256)) and \
            (not pin.hashes or cand.sha256 in pin.hashes):
        sha = cand.sha256
        downloaded = False
    else:
        sha = _download(cand, pin, store, session)
        downloaded = True
    url = redact(cand.url)
    store.put_selector(f"wheel-{key}", {"digest": f"sha256:{sha}", "filename": cand.filename, "url": url,
                                        "size": store.size(Digest("sha256", sha))}, shared=True)
    return FetchedWheel(pin=pin, path=stored_file(store, sha, cand.filename), sha256=sha, filename=cand.filename,
                        downloaded=downloaded, url=url)
