"""Content-addressed blob store with a selector index (hash of a layer's inputs -> its descriptor).

Layout under the root (``~/.cache/ocibuild`` unless ``OCIBUILD_CACHE`` or ``--cache-dir`` say otherwise)::

    blobs/sha256/<hex>     verified content, written to tmp/ first and renamed into place
    selectors/<hex>.json   input key -> {"digest", "size", "diff_id", "media_type"}
    tmp/                   in-flight writes; what a killed build left there is swept when the store
                           is opened and the entry is older than ``STALE_TMP_SECONDS`` (6 hours)

Every write goes temp file -> digest check -> ``os.replace``, so readers only ever see complete,
verified blobs and two builds running at once can write the same blob safely. A failed write
(disk full included) always removes its temp file; ENOSPC is reported as ``DiskFull`` naming the file.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from .errors import DigestMismatch, DiskFull, OcibuildError, StoreError
from .spec import Descriptor, Digest, canonical_json

if TYPE_CHECKING:
    from .image import Layer

CHUNK = 1 << 20
STALE_TMP_SECONDS = 6 * 3600  # temp files (store tmp/, ``.NAME.tmp-*`` beside outputs) older than this are swept
STORE_HINT = "free space there, or choose another cache folder with --cache-dir (or OCIBUILD_CACHE)"
_NO_SPACE = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` is a write failing for lack of space (ENOSPC) or quota (EDQUOT)."""
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE


def write_error(exc: OSError, path: Path | str, hint: str,
                kind: type[OcibuildError] = StoreError) -> OcibuildError:
    """The one-line error for a failed write of ``path``: ``DiskFull`` (``no space left on device while
    writing PATH; HINT``) for ENOSPC / EDQUOT, else ``kind`` with the system's reason."""
    if exc.errno in _NO_SPACE:
        return DiskFull(f"{_NO_SPACE[exc.errno]} while writing {path}; {hint}")
    return kind(f"cannot write {path}: {exc.strerror or exc}; {hint}")


def _newest_mtime(entry: Path, cutoff: float) -> float:
    """``entry``'s mtime, or for a folder the newest mtime in it (stops at the first newer than ``cutoff``)."""
    st = entry.lstat()
    newest = st.st_mtime
    if newest >= cutoff or not entry.is_dir() or entry.is_symlink():
        return newest
    for root, dirs, files in os.walk(entry):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            if newest >= cutoff:
                return newest
    return newest


def sweep_stale(folder: Path, pattern: str = "*", max_age: float | None = None) -> int:
    """Remove entries of ``folder`` matching ``pattern`` that nothing touched for ``max_age`` seconds
    (default ``STALE_TMP_SECONDS``): temp files and folders of killed builds. Best effort (a file
    another process removes first, or one we may not remove, is skipped); returns how many went."""
    cutoff = time.time() - (STALE_TMP_SECONDS if max_age is None else max_age)
    removed = 0
    try:
        entries = list(folder.glob(pattern))
    except OSError:
        return 0
    for entry in entries:
        with contextlib.suppress(OSError):
            if _newest_mtime(entry, cutoff) < cutoff:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed += 1
    return removed


def default_cache_dir() -> Path:
    """``$OCIBUILD_CACHE``, else ``$XDG_CACHE_HOME/ocibuild``, else ``~/.cache/ocibuild``."""
    if os.environ.get("OCIBUILD_CACHE"):
        return Path(os.environ["OCIBUILD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ocibuild"


class BlobWriter:
    """Streams bytes into a temp file, hashing as it goes; ``commit`` verifies and renames.

    The temp file is written unbuffered (``os.write`` on the descriptor), so closing it never has to
    flush anything: ``abort`` (also on a full disk) always closes and removes it."""

    def __init__(self, store: ContentStore, algorithm: str = "sha256") -> None:
        self._store = store
        self._hasher = hashlib.new(algorithm)
        self.size = 0
        self._done = False
        try:
            fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="blob-")
        except OSError as exc:
            self._done = True
            raise write_error(exc, store.tmp_dir, STORE_HINT) from None
        self._fd = fd
        self._path = Path(name)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        n = view.nbytes
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            raise write_error(exc, self._path, STORE_HINT) from None
        self._hasher.update(data)
        self.size += n
        return n

    def digest(self) -> Digest:
        """The digest of what was written so far (the write can go on)."""
        return Digest.from_hasher(self._hasher.copy())

    def _close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def commit(self, expected: Digest | None = None, expected_size: int | None = None) -> Digest:
        """Finish the blob; raise ``DigestMismatch`` (and keep nothing) if it is not what was expected."""
        digest = Digest.from_hasher(self._hasher)
        try:
            try:
                self._close()
            except OSError as exc:
                raise write_error(exc, self._path, STORE_HINT) from None
            if expected is not None and digest != expected:
                raise DigestMismatch(f"content has digest {digest}, expected {expected}")
            if expected_size is not None and self.size != expected_size:
                raise DigestMismatch(f"content of {digest} is {self.size} bytes, expected {expected_size}")
            target = self._store.blob_path(digest)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self._path, target)
            except OSError as exc:
                raise write_error(exc, target, STORE_HINT) from None
        except BaseException:
            self.abort()
            raise
        self._done = True
        return digest

    def abort(self) -> None:
        """Drop the temp file (idempotent; never raises for the file itself)."""
        if self._done:
            return
        self._done = True
        try:
            with contextlib.suppress(OSError):
                self._close()
        finally:
            with contextlib.suppress(OSError):
                self._path.unlink()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self.abort()


SHARED_RECORDS = ("resolve-", "target-", "imagefs-walk-", "debian-lock-")
"""The records a shared cache (``--cache-repo``) holds besides layer selectors and wheel choices:
the Python resolution, a base's target interpreter, the file listings SBOMs read, the lock of the
default Debian base (its package set resolved)."""


class SharedCache(Protocol):
    """Records and layer blobs shared between machines (``ocibuild.cacherepo.CacheRepo``)."""

    def get(self, key: str) -> Any: ...
    def put(self, key: str, value: Any, layer: Descriptor | None = None) -> None: ...
    def has_blob(self, desc: Descriptor) -> bool: ...
    def layer(self, store: ContentStore, desc: Descriptor, diff_id: Digest) -> Layer: ...
    def flush(self, store: ContentStore, mount_from: Any = ()) -> None: ...


class ContentStore:
    """Blobs by digest plus the selector index. Safe to share between concurrent builds.

    ``shared`` (None unless set, e.g. by ``--cache-repo``) is a second tier for what other machines
    built: consulted when a shared record or layer selector is not here, written to when one is made."""

    shared: SharedCache | None = None

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
        self.shared_caches: dict[str, SharedCache] = {}  # the caches builds on this store opened, by repository
        self._clean_stale_tmp()

    def with_shared(self, cache: SharedCache | None) -> ContentStore:
        """This store (the same folder, blobs and records) with ``cache`` as its shared tier."""
        view = copy.copy(self)
        view.shared = cache
        return view

    @classmethod
    def default(cls) -> ContentStore:
        return cls(default_cache_dir())

    def _clean_stale_tmp(self) -> None:
        """Remove what killed builds left in tmp/ (``blob-*``, ``.NAME.tmp-*``, ``sdist-*`` folders, ...)
        once nothing touched it for ``STALE_TMP_SECONDS``; in-flight writes of running builds are fresh."""
        sweep_stale(self.tmp_dir)

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
        """The JSON value stored under ``key`` (None if absent or unreadable: records are a cache);
        a shared record (``SHARED_RECORDS``) missing here is looked up in ``shared`` and kept."""
        try:
            return json.loads(self._selector_path(key).read_bytes())
        except (OSError, ValueError):
            pass
        if self.shared is None or not key.startswith(SHARED_RECORDS):
            return None
        value = self.shared.get(key)
        if value is not None:
            with contextlib.suppress(OcibuildError):
                self._write_record(key, value)
        return value

    def has_record(self, key: str) -> bool:
        """Whether a record for ``key`` is here (the shared cache is not asked)."""
        return self._selector_path(key).is_file()

    def put_record(self, key: str, value: Any) -> None:
        self._write_record(key, value)
        if self.shared is not None and key.startswith(SHARED_RECORDS):
            self.shared.put(key, value)

    def _write_record(self, key: str, value: Any) -> None:
        try:
            atomic_write_bytes(self._selector_path(key), canonical_json(value), tmp_dir=self.tmp_dir,
                               hint=STORE_HINT)
        except OSError as exc:
            raise write_error(exc, self._selector_path(key), STORE_HINT) from None

    def get_selector(self, key: str, *, shared: bool = False) -> dict[str, Any] | None:
        """The record stored for ``key``, if any and if the blob it names is still present. With
        ``shared``, one missing here comes from the ``shared`` cache: a layer record (it has a
        ``diff_id``) only if the cache holds its blob (``image.store_layer`` then gives the layer), another
        record (a wheel choice) as it is."""
        record = self.get_record(key)
        try:
            if self.has(Digest.parse(record["digest"])):
                return dict(record)
        except (KeyError, ValueError, TypeError):
            pass
        if not shared or self.shared is None:
            return None
        remote = self.shared.get(key)
        try:
            digest = Digest.parse(remote["digest"])
            if "diff_id" in remote:
                Digest.parse(remote["diff_id"])
                if not self.has(digest) and not self.shared.has_blob(
                        Descriptor(media_type=str(remote["media_type"]), digest=digest, size=int(remote["size"]))):
                    return None
        except (KeyError, ValueError, TypeError):
            return None
        return dict(remote)

    def put_selector(self, key: str, record: Mapping[str, Any], *, shared: bool = False) -> None:
        self._write_record(key, dict(record))
        if shared and self.shared is not None:
            layer = None
            if "diff_id" in record:
                layer = Descriptor(media_type=str(record["media_type"]), digest=Digest.parse(record["digest"]),
                                   size=int(record["size"]))
            self.shared.put(key, dict(record), layer)

    def iter_blobs(self) -> Iterator[Digest]:
        for algo_dir in (self.root / "blobs").iterdir():
            for p in algo_dir.iterdir():
                yield Digest(algo_dir.name, p.name)


def _temp_name(folder: Path, name: str) -> str:
    return os.path.join(folder, f".{name}.tmp-{secrets.token_hex(6)}")


@contextlib.contextmanager
def atomic_writer(path: Path, *, tmp_dir: Path | None = None, mode: int | None = None,
                  hint: str = "free space on that file system") -> Iterator[BinaryIO]:
    """Yield a temp file (in ``tmp_dir``, default: beside ``path``) that becomes ``path`` by a rename
    only if the block succeeds; on any error (or Ctrl-C) the temp file is removed, also when closing
    it fails because the disk is full. The one atomic-write helper: the store, lock files,
    credentials and every sink use it. A full disk (ENOSPC / EDQUOT) raises ``DiskFull`` naming
    ``path`` and ``hint``; other ``OSError`` pass through unchanged."""
    folder = tmp_dir or path.parent
    name = _temp_name(folder, path.name)  # named before it exists: a Ctrl-C right after creating it removes it
    try:
        while True:
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                break
            except FileExistsError:
                name = _temp_name(folder, path.name)
        with os.fdopen(fd, "wb") as f:
            yield f
        if mode is not None:
            os.chmod(name, mode)
        os.replace(name, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(name)
        if isinstance(exc, OSError) and is_no_space(exc):
            raise write_error(exc, path, hint) from None
        raise


def atomic_write_bytes(path: Path, data: bytes, *, tmp_dir: Path | None = None,
                       hint: str = "free space on that file system") -> None:
    """Write ``data`` to ``path`` through a temp file and a rename."""
    with atomic_writer(path, tmp_dir=tmp_dir, hint=hint) as f:
        f.write(data)
