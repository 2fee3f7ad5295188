"""Content-addressed blob store with a selector index (hash of a layer's inputs -> its descriptor).

Layout under the root (``~/.cache/ocibuild`` unless ``OCIBUILD_CACHE`` or ``--cache-dir`` say otherwise)::

    blobs/sha256/<hex>     verified content, written to tmp/ first and renamed into place
    selectors/<hex>.json   input key -> {"digest", "size", "diff_id", "media_type"}
    tmp/                   in-flight writes; anything left by a killed process is removed later

Every write goes temp file -> digest check -> ``os.replace``, so readers only ever see complete,
verified blobs and two builds running at once can write the same blob safely.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from .errors import DigestMismatch, StoreError
from .spec import Digest, canonical_json

CHUNK = 1 << 20
_STALE_TMP_SECONDS = 24 * 3600


def default_cache_dir() -> Path:
    """``$OCIBUILD_CACHE``, else ``$XDG_CACHE_HOME/ocibuild``, else ``~/.cache/ocibuild``."""
    if os.environ.get("OCIBUILD_CACHE"):
        return Path(os.environ["OCIBUILD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ocibuild"


class BlobWriter:
    """Streams bytes into a temp file, hashing as it goes; ``commit`` verifies and renames."""

    def __init__(self, store: ContentStore, algorithm: str = "sha256") -> None:
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="blob-")
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._path = Path(name)
        self._hasher = hashlib.new(algorithm)
        self.size = 0
        self._done = False

    def write(self, data: bytes) -> int:
        self._hasher.update(data)
        self._file.write(data)
        self.size += len(data)
        return len(data)

    def digest(self) -> Digest:
        """The digest of what was written so far (the write can go on)."""
        return Digest.from_hasher(self._hasher.copy())

    def commit(self, expected: Digest | None = None, expected_size: int | None = None) -> Digest:
        """Finish the blob; raise ``DigestMismatch`` (and keep nothing) if it is not what was expected."""
        self._file.close()
        digest = Digest.from_hasher(self._hasher)
        try:
            if expected is not None and digest != expected:
                raise DigestMismatch(f"content has digest {digest}, expected {expected}")
            if expected_size is not None and self.size != expected_size:
                raise DigestMismatch(f"content of {digest} is {self.size} bytes, expected {expected_size}")
            target = self._store.blob_path(digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._path, target)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return digest

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
        self._done = True

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self.abort()


class ContentStore:
    """Blobs by digest plus the selector index. Safe to share between concurrent builds."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()
        try:
            for sub in ("blobs/sha256", "selectors", "tmp"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot use cache directory {self.root}: {exc.strerror}; "
                "choose another with --cache-dir or OCIBUILD_CACHE"
            ) from None
        self.tmp_dir = self.root / "tmp"
        self._clean_stale_tmp()

    @classmethod
    def default(cls) -> ContentStore:
        return cls(default_cache_dir())

    def _clean_stale_tmp(self) -> None:
        cutoff = time.time() - _STALE_TMP_SECONDS
        for entry in self.tmp_dir.iterdir():
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()

    # blobs
    def blob_path(self, digest: Digest) -> Path:
        return self.root / digest.blob_name

    def has(self, digest: Digest) -> bool:
        return self.blob_path(digest).is_file()

    def size(self, digest: Digest) -> int:
        return self.blob_path(digest).stat().st_size

    def open(self, digest: Digest) -> BinaryIO:
        """Open a stored blob for reading; ``StoreError`` if absent."""
        try:
            return self.blob_path(digest).open("rb")
        except FileNotFoundError:
            raise StoreError(
                f"blob {digest} is not in the cache {self.root}; rebuild, or clear the cache entry"
            ) from None

    def read_bytes(self, digest: Digest) -> bytes:
        """Read a (small) blob and check its digest."""
        with self.open(digest) as f:
            data = f.read()
        if not digest.verify(data):
            raise DigestMismatch(
                f"cached blob {digest} is corrupt; delete {self.blob_path(digest)} and build again"
            )
        return data

    def writer(self, algorithm: str = "sha256") -> BlobWriter:
        return BlobWriter(self, algorithm)

    def put_bytes(self, data: bytes) -> Digest:
        digest = Digest.of(data)
        if not self.has(digest):
            with self.writer() as w:
                w.write(data)
                w.commit(digest, len(data))
        return digest

    def put_stream(self, src: BinaryIO, expected: Digest, expected_size: int | None = None) -> Digest:
        """Copy ``src`` into the store, verifying digest (and size). No-op if already stored."""
        if self.has(expected):
            return expected
        with self.writer(expected.algorithm) as w:
            while chunk := src.read(CHUNK):
                w.write(chunk)
            return w.commit(expected, expected_size)

    def put_file(self, path: Path, expected: Digest, expected_size: int | None = None) -> Digest:
        if self.has(expected):
            return expected
        with path.open("rb") as f:
            return self.put_stream(f, expected, expected_size)

    # selectors
    def _selector_path(self, key: str) -> Path:
        return self.root / "selectors" / f"{key}.json"

    def get_record(self, key: str) -> Any:
        """The JSON value stored under ``key`` (None if absent or unreadable: records are a cache)."""
        try:
            return json.loads(self._selector_path(key).read_bytes())
        except (OSError, ValueError):
            return None

    def put_record(self, key: str, value: Any) -> None:
        atomic_write_bytes(self._selector_path(key), canonical_json(value), tmp_dir=self.tmp_dir)

    def get_selector(self, key: str) -> dict[str, Any] | None:
        """The record stored for ``key``, if any and if the blob it names is still present."""
        record = self.get_record(key)
        try:
            if not self.has(Digest.parse(record["digest"])):
                return None
        except (KeyError, ValueError, TypeError):
            return None
        return dict(record)

    def put_selector(self, key: str, record: Mapping[str, Any]) -> None:
        self.put_record(key, dict(record))

    def iter_blobs(self) -> Iterator[Digest]:
        for algo_dir in (self.root / "blobs").iterdir():
            for p in algo_dir.iterdir():
                yield Digest(algo_dir.name, p.name)


@contextlib.contextmanager
def atomic_writer(path: Path, *, tmp_dir: Path | None = None, mode: int | None = None) -> Iterator[BinaryIO]:
    """Yield a temp file (in ``tmp_dir``, default: beside ``path``) that becomes ``path`` by a rename
    only if the block succeeds; on any error (or Ctrl-C) the temp file is removed. The one
    atomic-write helper: the store, lock files, credentials and every sink use it."""
    fd, name = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=f".{path.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        if mode is not None:
            os.chmod(name, mode)
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def atomic_write_bytes(path: Path, data: bytes, *, tmp_dir: Path | None = None) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename."""
    with atomic_writer(path, tmp_dir=tmp_dir) as f:
        f.write(data)
