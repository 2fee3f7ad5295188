"""One streaming pass per layer: tar -> sha256 (diff_id) -> compressor -> sha256 + size (digest)
-> temp file in the store -> rename. A layer is never held in memory.

Before building, the layer's *inputs* (paths, modes, content hashes, compression, owner, mtime and
this recipe's version) are hashed into a selector key; if the store knows the key, the stored
layer is reused without tarring or compressing anything (Jib's selector idea).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LayerError, OcibuildError
from ..explain import file_inputs, remember
from ..spec import Descriptor, Digest, canonical_json
from ..store import CHUNK, ContentStore
from .compress import Compression, Compressor
from .tarwriter import TarEntry, TarOptions, Writable, with_parents, write_tar

RECIPE_VERSION = "ocibuild-layer-1"
BATCH = 1 << 20


@dataclass(frozen=True, kw_only=True, slots=True)
class BuiltLayer:
    """A layer in the store: its descriptor, uncompressed digest and whether the cache served it."""

    descriptor: Descriptor
    diff_id: Digest
    cached: bool = False


class FileHashes:
    """Remembers the sha256 of big files by (path, size, mtime, inode, ctime) in the store, so an
    unchanged multi-GB weights file is not read again to find its layer in the cache."""

    MIN_SIZE = 1 << 20

    def __init__(self, store: ContentStore) -> None:
        self.dir = store.root / "filehashes"
        self.tmp = store.tmp_dir

    def _record(self, path: Path) -> tuple[Path, list[int]]:
        st = path.stat()
        key = hashlib.sha256(str(path.absolute()).encode()).hexdigest()
        return self.dir / f"{key}.json", [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]

    def get(self, path: Path) -> str | None:
        import json

        try:
            where, stamp = self._record(path)
            data = json.loads(where.read_text())
        except (OSError, ValueError):
            return None
        return str(data["sha256"]) if data.get("stat") == stamp else None

    def put(self, path: Path, sha256: str) -> None:
        from ..store import atomic_write_bytes

        try:
            where, stamp = self._record(path)
            self.dir.mkdir(exist_ok=True)
            atomic_write_bytes(where, canonical_json({"stat": stamp, "sha256": sha256}), tmp_dir=self.tmp)
        except (OSError, OcibuildError):  # DiskFull included: the layer's own write will say so
            pass  # a cache; never fatal


def content_hash(entry: TarEntry, hashes: FileHashes | None = None) -> str:
    """The sha256 of a file entry's content ("" for others); big files known to ``hashes`` are not read."""
    if entry.kind != "file":
        return ""
    if entry.data is not None:
        return hashlib.sha256(entry.data).hexdigest()
    if entry.opener is not None:
        h = hashlib.sha256()
        with entry.opener() as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        return h.hexdigest()
    if entry.source is None:
        raise LayerError(f"file entry {entry.path!r} has no content")
    use_cache = hashes is not None and entry.size >= FileHashes.MIN_SIZE
    if use_cache and hashes is not None and (known := hashes.get(entry.source)):
        return known
    stamp = _small_stamp(entry.source) if hashes is not None and not use_cache else None
    if stamp is not None and (remembered := _SMALL_HASHES.get(stamp)):
        return remembered
    h = hashlib.sha256()
    try:
        with entry.source.open("rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise LayerError(f"cannot read {entry.source}: {exc.strerror}") from None
    if use_cache and hashes is not None:
        hashes.put(entry.source, h.hexdigest())
    if stamp is not None and time.time() - stamp[2] / 1e9 > RACY_SECONDS:  # git's racy-clean rule: a file
        # written within the timestamps' granularity of now may change again with the same stamp
        if len(_SMALL_HASHES) >= SMALL_HASHES_MAX:
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):  # another thread trimmed it
                _SMALL_HASHES.pop(next(iter(_SMALL_HASHES)))
        _SMALL_HASHES[stamp] = h.hexdigest()
    return h.hexdigest()


SMALL_HASHES_MAX = 65536
RACY_SECONDS = 2.0
_SMALL_HASHES: dict[tuple[str, int, int, int, int], str] = {}
"""sha256 of small files by (path, size, mtime, inode, ctime), in memory only: a long-lived process
(``ocibuild dev``) does not read its unchanged source files again to find a layer's cache key (big
files have ``FileHashes`` records in the store for that, across processes)."""


def _small_stamp(path: Path) -> tuple[str, int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # the read below says what is wrong
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def input_rows(entries: Sequence[TarEntry], hashes: FileHashes | None = None) -> list[list[Any]]:
    """``[path, kind, mode, size, link, sha256]`` of every entry the layer holds (parents included)."""
    return [[e.path, e.kind, e.mode, e.size, e.linkname, content_hash(e, hashes)] for e in with_parents(entries)]


def _settings(compression: Compression, options: TarOptions, salt: str) -> list[Any]:
    return [RECIPE_VERSION, str(compression), options.uid, options.gid, options.mtime, salt]


def _key_of(rows: Sequence[Sequence[Any]], compression: Compression, options: TarOptions, salt: str) -> str:
    h = hashlib.sha256()
    h.update(canonical_json(_settings(compression, options, salt)))
    for row in rows:
        h.update(canonical_json(list(row)))
        h.update(b"\n")
    return h.hexdigest()


def input_key(entries: Sequence[TarEntry], compression: Compression, options: TarOptions,
              salt: str = "", hashes: FileHashes | None = None) -> str:
    """Hash of everything that determines the layer's bytes."""
    return _key_of(input_rows(entries, hashes), compression, options, salt)


def _file_inputs(rows: Sequence[Sequence[Any]], compression: Compression, options: TarOptions,
                 salt: str) -> dict[str, Any]:
    names = ("recipe", "compression", "uid", "gid", "mtime", "salt")
    return file_inputs(rows, dict(zip(names, _settings(compression, options, salt), strict=True)))


class _Pipeline:
    """tar bytes -> sha256 (diff_id) here; compression + digest + file write on a worker thread, so
    tarring and compressing use two cores. Tar writes are re-cut into exact 1 MiB chunks."""

    def __init__(self, compressor: Compressor, out: Writable) -> None:
        self.diff = hashlib.sha256()
        self._compressor = compressor
        self._out = out
        self._buf = bytearray()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._worker = threading.Thread(target=self._run, name="ocibuild-compress", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        try:
            while (chunk := self._queue.get()) is not None:
                if self._error is None and (packed := self._compressor.compress(chunk)):
                    self._out.write(packed)
            if self._error is None:
                self._out.write(self._compressor.flush())
        except BaseException as exc:  # handed to the producer thread
            self._error = exc
            while self._queue.get() is not None:  # drain so the producer never blocks
                pass

    def _put(self, item: bytes | None) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def write(self, data: bytes) -> int:
        # The compressor always sees exact BATCH-sized pieces: its output must not depend on how
        # tarfile happened to split its writes (deflate output can depend on input chunking).
        self._buf += data
        while len(self._buf) >= BATCH:
            chunk = bytes(self._buf[:BATCH])
            del self._buf[:BATCH]
            self.diff.update(chunk)
            self._put(chunk)
        return len(data)

    def close(self) -> None:
        """Flush everything through the compressor; re-raise a worker error."""
        if self._buf:
            chunk = bytes(self._buf)
            self._buf.clear()
            self.diff.update(chunk)
            self._put(chunk)
        self._queue.put(None)
        self._worker.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        self._error = self._error or RuntimeError("aborted")
        self._queue.put(None)
        self._worker.join()


def build_layer(entries: Sequence[TarEntry], store: ContentStore, *,
                compression: Compression = Compression(), options: TarOptions = TarOptions(),
                annotations: Mapping[str, str] | None = None, use_cache: bool = True,
                salt: str = "") -> BuiltLayer:
    """Write ``entries`` as one compressed layer blob into ``store`` (or reuse the cached one); what it
    was made from is noted for ``ocibuild diff`` (``explain.remember``)."""
    rows = input_rows(entries, FileHashes(store)) if use_cache else []
    key = _key_of(rows, compression, options, salt) if use_cache else ""
    if key and (record := store.get_selector(key, shared=True)):
        cached = from_record(record, compression, annotations)
        remember(store, cached.descriptor.digest, lambda: _file_inputs(rows, compression, options, salt))
        return cached
    with store.writer() as w:
        pipe = _Pipeline(compression.compressor(), w)
        try:
            write_tar(entries, pipe, options)
            pipe.close()
        except BaseException:
            pipe.abort()
            raise
        digest = w.commit()
        size = w.size
    built = BuiltLayer(
        descriptor=Descriptor(media_type=compression.media_type, digest=digest, size=size,
                              annotations=dict(annotations or {})),
        diff_id=Digest.from_hasher(pipe.diff),
    )
    if key:
        store.put_selector(key, to_record(built), shared=True)
        remember(store, digest, lambda: _file_inputs(rows, compression, options, salt))
    return built


def from_record(record: Mapping[str, Any], compression: Compression,
                annotations: Mapping[str, str] | None) -> BuiltLayer:
    """The cached layer a selector record describes."""
    return BuiltLayer(
        descriptor=Descriptor(media_type=compression.media_type, digest=Digest.parse(record["digest"]),
                              size=int(record["size"]), annotations=dict(annotations or {})),
        diff_id=Digest.parse(record["diff_id"]), cached=True)


def to_record(built: BuiltLayer) -> dict[str, Any]:
    """The selector record of ``built`` (what ``from_record`` reads back)."""
    return {"digest": str(built.descriptor.digest), "size": built.descriptor.size, "diff_id": str(built.diff_id),
            "media_type": str(built.descriptor.media_type)}


def keyed_layer(key: str, make_entries: Callable[[], Sequence[TarEntry]], store: ContentStore, *,
                compression: Compression = Compression(), options: TarOptions = TarOptions(),
                annotations: Mapping[str, str] | None = None, inputs: Mapping[str, Any] | None = None) -> BuiltLayer:
    """Like ``build_layer``, but cached under a caller-made ``key`` (e.g. a wheel's sha256 and the
    install target), checked before ``make_entries`` runs: a hit reads no input at all. ``inputs``
    (``explain.package_inputs``) are noted for ``ocibuild diff``, with the compression and owner added."""
    full = hashlib.sha256(canonical_json([RECIPE_VERSION, "keyed", key, str(compression), options.uid,
                                          options.gid, options.mtime])).hexdigest()
    if record := store.get_selector(full, shared=True):
        built = from_record(record, compression, annotations)
    else:
        built = build_layer(make_entries(), store, compression=compression, options=options,
                            annotations=annotations, use_cache=False)
        store.put_selector(full, to_record(built), shared=True)
    if inputs is not None:
        extra = {"compression": str(compression), "uid": options.uid, "gid": options.gid, "mtime": options.mtime}
        remember(store, built.descriptor.digest,
                 lambda: {**inputs, "settings": {**extra, **inputs.get("settings", {})}})
    return built
