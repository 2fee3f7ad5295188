"""Where packages come from: a (signed) Debian mirror or an offline folder of ``.deb`` files. Both
give a ``PackageIndex`` for an architecture and put verified ``.deb`` blobs into the content store."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import DigestMismatch, SourceError
from ..spec import Digest, canonical_json
from ..store import CHUNK, ContentStore
from .deb import control_fields, read_members
from .index import PackageIndex, PackageInfo
from .lock import LockedPackage
from .mirror import Fetcher, default_mirror, default_security_mirror
from .release import Release, fetch_release
from .spec import DebianSpec

INDEX_KEY_VERSION = "ocibuild-debian-index-1"
DOWNLOAD_THREADS = 4


@dataclass(frozen=True, kw_only=True, slots=True)
class IndexResult:
    """An architecture's index plus what the lock file records about where it came from."""

    index: PackageIndex
    mirror: str
    release: str = ""
    codename: str = ""


class PackageSource(Protocol):
    def index(self, arch: str, store: ContentStore) -> IndexResult: ...

    def fetch(self, package: LockedPackage, store: ContentStore) -> Path: ...


def _decompress(name: str, data: bytes) -> bytes:
    try:
        if name.endswith(".xz"):
            return lzma.decompress(data)
        if name.endswith(".gz"):
            return gzip.decompress(data)
        if name.endswith(".bz2"):
            return bz2.decompress(data)
    except (lzma.LZMAError, OSError, EOFError) as exc:
        raise SourceError(f"cannot decompress {name}: {exc}") from None
    return data


class _Suite:
    """One suite on one mirror: its verified release and its ``Packages`` indexes."""

    def __init__(self, spec: DebianSpec, mirror: str, suite: str) -> None:
        self.spec = spec
        self.suite = suite
        self.fetcher = Fetcher(mirror)
        self._release: Release | None = None

    def release(self) -> Release:
        if self._release is None:
            self._release, _ = fetch_release(self.fetcher, self.suite, keyring=self.spec.keyring,
                                             allow_unsigned=self.spec.allow_unsigned)
        return self._release

    def packages_text(self, component: str, arch: str, store: ContentStore) -> str:
        release = self.release()
        base = f"{component}/binary-{arch}/Packages"
        for suffix in (".xz", ".gz", ""):
            if base + suffix in release.files:
                break
        else:
            known = " ".join(release.architectures) or "?"
            raise SourceError(f"{self.fetcher.url('dists/' + self.suite)} has no {base} index: check the "
                              f"component {component!r} and architecture {arch!r} (suite architectures: {known}, "
                              f"components: {' '.join(release.components) or '?'})")
        path = f"dists/{self.suite}/{base}{suffix}"
        sha, size = release.files[base + suffix]
        key = hashlib.sha256(canonical_json([INDEX_KEY_VERSION, self.fetcher.url(path), sha])).hexdigest()
        record = store.get_selector(key)
        if record is not None:
            return store.read_bytes(Digest.parse(record["digest"])).decode("utf-8", errors="replace")
        compressed = self.fetcher.download(path, store, sha, size)
        data = _decompress(suffix, store.read_bytes(compressed))
        if suffix and base in release.files and hashlib.sha256(data).hexdigest() != release.files[base][0]:
            raise DigestMismatch(f"{self.fetcher.url(path)} decompresses to content the release file does not list")
        digest = store.put_bytes(data)
        store.put_selector(key, {"digest": str(digest), "size": len(data), "url": self.fetcher.url(path)})
        return data.decode("utf-8", errors="replace")


class MirrorSource:
    """A Debian mirror (``http(s)://`` or ``file://``), plus the security archive if the spec asks:
    InRelease verified with gpgv, indexes and ``.deb`` files checked by the sha256 the signed chain
    (or the lock) gives."""

    def __init__(self, spec: DebianSpec, mirror: str | None = None) -> None:
        self.spec = spec
        self.main = _Suite(spec, mirror or spec.mirror or default_mirror(spec.suite), spec.suite)
        self.suites = [self.main]
        if spec.security:
            security = spec.security_mirror or default_security_mirror(spec.suite)
            self.suites.append(_Suite(spec, security, f"{spec.suite}-security"))
        self._fetchers = {s.fetcher.mirror: s.fetcher for s in self.suites}

    @property
    def mirror(self) -> str:
        return self.main.fetcher.mirror

    def index(self, arch: str, store: ContentStore) -> IndexResult:
        index = PackageIndex(arch)
        for suite in self.suites:
            origin = "" if suite is self.main else suite.fetcher.mirror
            for component in self.spec.components:
                index.add_packages_file(suite.packages_text(component, arch, store), origin=origin)
        release = self.main.release()
        return IndexResult(index=index, mirror=self.mirror, release=release.version, codename=release.codename)

    def fetch(self, package: LockedPackage, store: ContentStore) -> Path:
        fetcher = self.main.fetcher
        if package.mirror:
            fetcher = self._fetchers.setdefault(package.mirror.rstrip("/"), Fetcher(package.mirror))
        digest = fetcher.download(package.filename, store, package.sha256, package.size)
        return store.blob_path(digest)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class DebDirSource:
    """An offline folder of ``.deb`` files; the control file of each is its index entry."""

    def __init__(self, spec: DebianSpec, folder: Path) -> None:
        self.spec = spec
        self.folder = folder

    def index(self, arch: str, store: ContentStore) -> IndexResult:
        if not self.folder.is_dir():
            raise SourceError(f"deb folder {self.folder} does not exist or is not a folder")
        index = PackageIndex(arch)
        debs = sorted(self.folder.glob("*.deb"))
        if not debs:
            raise SourceError(f"deb folder {self.folder} has no .deb files")
        for path in debs:
            sha = _file_sha256(path)
            digest = store.put_file(path, Digest("sha256", sha))
            fields = control_fields(read_members(store.blob_path(digest), str(path)))
            index.add(PackageInfo.from_fields(fields, filename=path.name, sha256=sha, size=path.stat().st_size))
        return IndexResult(index=index, mirror="", codename=self.spec.suite)

    def fetch(self, package: LockedPackage, store: ContentStore) -> Path:
        expected = Digest("sha256", package.sha256)
        if store.has(expected):
            return store.blob_path(expected)
        path = self.folder / package.filename
        if not path.is_file():
            raise SourceError(f"{package.filename} ({package.name} {package.version}) is not in the deb folder "
                              f"{self.folder}; add it or refresh the lock")
        try:
            store.put_file(path, expected, package.size)
        except DigestMismatch as exc:
            raise DigestMismatch(f"{path} does not match the lock file ({exc}); replace the file or refresh the "
                                 "lock") from None
        return store.blob_path(expected)


def open_source(spec: DebianSpec, mirror: str | None = None) -> PackageSource:
    """The source ``spec`` names: its deb folder if set, else its (or the default) mirror."""
    if spec.deb_dir is not None:
        return DebDirSource(spec, spec.deb_dir)
    return MirrorSource(spec, mirror)


def fetch_all(source: PackageSource, packages: list[LockedPackage], store: ContentStore) -> dict[str, Path]:
    """Download (in parallel) and verify every package; ``name -> blob path``."""
    with ThreadPoolExecutor(max_workers=DOWNLOAD_THREADS, thread_name_prefix="ocibuild-deb") as pool:
        paths = list(pool.map(lambda p: source.fetch(p, store), packages))
    return {p.name: path for p, path in zip(packages, paths, strict=True)}
