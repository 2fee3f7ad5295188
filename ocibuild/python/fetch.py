"""Find and download the wheel of a pin that fits the target, verified by sha256, into the store.

Sources: ``--find-links`` folders (a wheelhouse) and pages, then package indexes through the simple
API (PEP 691 JSON, or PEP 503 HTML as a fallback; ``file://`` indexes too). Downloaded wheels are
content-addressed blobs; ``wheels/<sha256>/<filename>`` links give them their file names back.
"""

from __future__ import annotations

import contextlib
import hashlib
import html.parser
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import requests

from ..errors import DigestMismatch, ResolutionError
from ..spec import Digest, canonical_json
from ..store import CHUNK, ContentStore
from .resolve import IndexSettings, Pin
from .target import TargetPython
from .wheel import normalize_name

FETCH_VERSION = "ocibuild-fetch-1"
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


@dataclass(frozen=True, kw_only=True, slots=True)
class Candidate:
    filename: str
    url: str  # http(s)://, file:// or a local path
    sha256: str = ""

    @property
    def tags(self) -> frozenset[str]:
        from packaging.utils import parse_wheel_filename

        _, _, _, tags = parse_wheel_filename(self.filename)
        return frozenset(str(t) for t in tags)


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchedWheel:
    pin: Pin
    path: Path  # a file named like the wheel, inside the store
    sha256: str
    filename: str
    downloaded: bool


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
    if not filename.endswith(".whl"):
        return False
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename
    from packaging.version import InvalidVersion, Version

    try:
        name, version, _, _ = parse_wheel_filename(filename)
        return normalize_name(str(name)) == pin.name and version == Version(pin.version)
    except (InvalidWheelFilename, InvalidVersion):
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


def _read_url(session: requests.Session, url: str, accept: str) -> tuple[str, str]:
    if url.startswith("file://") or "://" not in url:
        path = Path(unquote(urlparse(url).path) if url.startswith("file://") else url)
        target = path / "index.html" if path.is_dir() else path
        return target.read_text(encoding="utf-8", errors="replace"), "text/html"
    resp = session.get(url, headers={"Accept": accept}, timeout=(10, 120))
    if resp.status_code == 404:
        return "", ""
    resp.raise_for_status()
    return resp.text, resp.headers.get("Content-Type", "")


def candidates(pin: Pin, index: IndexSettings, session: requests.Session) -> list[Candidate]:
    """Every wheel file for exactly ``pin`` that the configured sources offer."""
    found: list[Candidate] = []
    errors: list[str] = []
    for link in index.find_links:
        local = Path(unquote(urlparse(link).path)) if link.startswith("file://") else Path(link)
        if "://" not in link or link.startswith("file://"):
            if local.is_dir():
                found += [Candidate(filename=p.name, url=str(p)) for p in sorted(local.glob("*.whl"))
                          if _matches(p.name, pin)]
            continue
        try:
            text, _ = _read_url(session, link, "text/html")
        except (requests.RequestException, OSError) as exc:
            errors.append(f"{link}: {type(exc).__name__}")
            continue
        parser = _Links()
        parser.feed(text)
        found += _from_links(link, parser.links, pin)
    for base in index.indexes:
        url = base.rstrip("/") + f"/{pin.name}/"
        try:
            text, ctype = _read_url(session, url, JSON_ACCEPT)
        except (requests.RequestException, OSError) as exc:
            errors.append(f"{base}: {type(exc).__name__}")
            continue
        if "json" in ctype:
            for f in json.loads(text).get("files", []):
                if _matches(str(f.get("filename", "")), pin) and not f.get("yanked"):
                    found.append(Candidate(filename=f["filename"], url=urljoin(url, f["url"]),
                                           sha256=str(f.get("hashes", {}).get("sha256", "")).lower()))
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
    """The candidate whose best tag ranks highest for the target; a clear error if none fits."""
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


def _wheel_link(store: ContentStore, sha256: str, filename: str) -> Path:
    """``wheels/<sha256>/<filename>``: the blob under its wheel file name (a hard link)."""
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


def _download(cand: Candidate, pin: Pin, store: ContentStore, session: requests.Session) -> str:
    with store.writer() as w:
        if "://" not in cand.url or cand.url.startswith("file://"):
            path = Path(unquote(urlparse(cand.url).path)) if cand.url.startswith("file://") else Path(cand.url)
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    w.write(chunk)
        else:
            for attempt in range(4):
                try:
                    with session.get(cand.url, stream=True, timeout=(10, 120)) as resp:
                        resp.raise_for_status()
                        for chunk in resp.iter_content(CHUNK):
                            w.write(chunk)
                    break
                except requests.RequestException as exc:
                    if attempt == 3 or w.size:
                        raise ResolutionError(f"downloading {cand.filename} failed: {type(exc).__name__}; "
                                              "check the network or use --find-links") from None
                    time.sleep(0.5 * 2 ** attempt)
        sha = w.digest().hex
        allowed = pin.hashes or ({cand.sha256} if cand.sha256 else set())
        if allowed and sha not in allowed:  # checked before the blob enters the store
            where = pin.source or "the lock"
            hint = f"{where} has the wrong hash, or the file was tampered with" if pin.user_hashes else \
                "the index served a file that does not match its hash"
            raise DigestMismatch(f"hash mismatch for {cand.filename}: got sha256:{sha}, expected "
                                 f"{' or '.join('sha256:' + h for h in sorted(allowed))}; {hint}")
        w.commit()
    return sha


def fetch_wheel(pin: Pin, target: TargetPython, index: IndexSettings, store: ContentStore,
                session: requests.Session) -> FetchedWheel:
    """The wheel for ``pin`` on ``target``: from the store if chosen before, else found and downloaded."""
    key = hashlib.sha256(canonical_json([FETCH_VERSION, pin.to_dict(), [str(t) for t in target.tags()[:400]],
                                         index.key()])).hexdigest()
    record = store.get_selector(f"wheel-{key}")
    if record is not None:
        sha, filename = str(record["digest"]).split(":", 1)[1], str(record["filename"])
        return FetchedWheel(pin=pin, path=_wheel_link(store, sha, filename), sha256=sha, filename=filename,
                            downloaded=False)
    cand = pick(pin, candidates(pin, index, session), target)
    if cand.sha256 and store.has(Digest("sha256", cand.sha256)) and \
            (not pin.hashes or cand.sha256 in pin.hashes):
        sha = cand.sha256
        downloaded = False
    else:
        sha = _download(cand, pin, store, session)
        downloaded = True
    store.put_selector(f"wheel-{key}", {"digest": f"sha256:{sha}", "filename": cand.filename})
    return FetchedWheel(pin=pin, path=_wheel_link(store, sha, cand.filename), sha256=sha, filename=cand.filename,
                        downloaded=downloaded)
