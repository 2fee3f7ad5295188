"""One streaming pass per layer: tar -> sha256 (diff_id) -> compressor -> sha256 + size (digest)
-> temp file in the store -> rename. A layer is never held in memory.

Before building, the layer's *inputs* (paths, modes, content hashes, compression, owner, mtime and
this recipe's version) are hashed into a selector key; if the store knows the key, the stored
layer is reused without tarring or compressing anything (Jib's selector idea).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import LayerError
from ..spec import Descriptor, Digest, canonical_json
from ..store import CHUNK, ContentStore
from .compress import Compression, Compressor
from .tarwriter import TarEntry, TarOptions, with_parents, write_tar

RECIPE_VERSION = "ocibuild-layer-1"


@dataclass(frozen=True, kw_only=True, slots=True)
class BuiltLayer:
    """A layer in the store: its descriptor, uncompressed digest and whether the cache served it."""

    descriptor: Descriptor
    diff_id: Digest
    cached: bool = False


def _content_hash(entry: TarEntry) -> str:
    if entry.kind != "file":
        return ""
    if entry.data is not None:
        return hashlib.sha256(entry.data).hexdigest()
    if entry.source is None:
        raise LayerError(f"file entry {entry.path!r} has no content")
    h = hashlib.sha256()
    try:
        with entry.source.open("rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise LayerError(f"cannot read {entry.source}: {exc.strerror}") from None
    return h.hexdigest()


def input_key(entries: Sequence[TarEntry], compression: Compression, options: TarOptions,
              salt: str = "") -> str:
    """Hash of everything that determines the layer's bytes."""
    h = hashlib.sha256()
    h.update(canonical_json([RECIPE_VERSION, str(compression), options.uid, options.gid, options.mtime, salt]))
    for e in with_parents(entries):
        h.update(canonical_json([e.path, e.kind, e.mode, e.size, e.linkname, _content_hash(e)]))
        h.update(b"\n")
    return h.hexdigest()


class _Pipeline:
    def __init__(self, compressor: Compressor, out: object) -> None:
        self._compressor = compressor
        self._out = out
        self.diff = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.diff.update(data)
        packed = self._compressor.compress(data)
        if packed:
            self._out.write(packed)  # type: ignore[attr-defined]
        return len(data)


def build_layer(entries: Sequence[TarEntry], store: ContentStore, *,
                compression: Compression = Compression(), options: TarOptions = TarOptions(),
                annotations: Mapping[str, str] | None = None, use_cache: bool = True,
                salt: str = "") -> BuiltLayer:
    """Write ``entries`` as one compressed layer blob into ``store`` (or reuse the cached one)."""
    key = input_key(entries, compression, options, salt) if use_cache else ""
    if key and (record := store.get_selector(key)):
        return BuiltLayer(
            descriptor=Descriptor(media_type=compression.media_type, digest=Digest.parse(record["digest"]),
                                  size=int(record["size"]), annotations=dict(annotations or {})),
            diff_id=Digest.parse(record["diff_id"]),
            cached=True,
        )
    with store.writer() as w:
        compressor = compression.compressor()
        pipe = _Pipeline(compressor, w)
        write_tar(entries, pipe, options)
        w.write(compressor.flush())
        digest = w.commit()
        size = w.size
    diff_id = Digest.from_hasher(pipe.diff)
    if key:
        store.put_selector(key, {"digest": str(digest), "size": size, "diff_id": str(diff_id),
                                 "media_type": str(compression.media_type)})
    return BuiltLayer(
        descriptor=Descriptor(media_type=compression.media_type, digest=digest, size=size,
                              annotations=dict(annotations or {})),
        diff_id=diff_id,
    )
