"""Helpers every sink uses: verified blob copies and atomic destinations."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import DigestMismatch, OutputError
from ..image import Blob
from ..spec import Digest
from ..store import CHUNK, atomic_writer


class Verified:
    """A read stream that hashes what passes through and raises ``DigestMismatch`` at the end if
    the bytes are not ``digest`` (so nothing corrupt is ever committed by a sink)."""

    def __init__(self, raw: BinaryIO, digest: Digest, size: int) -> None:
        self._raw = raw
        self._digest = digest
        self._size = size
        self._hasher = hashlib.new(digest.algorithm)
        self._read = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._hasher.update(data)
        self._read += len(data)
        if not data or (n < 0):
            self._check()
        return data

    def _check(self) -> None:
        if self._hasher.hexdigest() != self._digest.hex or self._read != self._size:
            raise DigestMismatch(
                f"blob {self._digest} read back as {self._read} bytes with another digest; its source "
                "changed or is corrupt (for a cached blob: delete it from the cache and build again)"
            )

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Verified:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_verified(blob: Blob) -> Verified:
    """Open ``blob`` for reading, checked against its descriptor."""
    return Verified(blob.open(), blob.descriptor.digest, blob.descriptor.size)


def copy_blob(blob: Blob, out: BinaryIO) -> int:
    """Copy ``blob`` to ``out``, checking its digest and size on the way; return its size."""
    size = 0
    with open_verified(blob) as f:
        while chunk := f.read(CHUNK):
            out.write(chunk)
            size += len(chunk)
    return size


def writable_parent(path: Path, what: str) -> Path:
    parent = path.absolute().parent
    if not parent.is_dir():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {parent} for {what}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what}: folder {parent} is not writable; choose another output path")
    return parent


@contextlib.contextmanager
def atomic_file(path: Path, what: str) -> Iterator[BinaryIO]:
    """Yield a temp file beside ``path``; rename it to ``path`` only if the block succeeds."""
    if path.is_dir():
        raise OutputError(f"cannot write {what}: {path} is a folder; name a file")
    with atomic_writer(path, tmp_dir=writable_parent(path, what), mode=0o644) as f:
        yield f


@contextlib.contextmanager
def atomic_dir(path: Path, what: str) -> Iterator[Path]:
    """Yield a temp folder beside ``path``; rename it to ``path`` only if the block succeeds."""
    parent = writable_parent(path, what)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{path.name}.tmp-"))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
