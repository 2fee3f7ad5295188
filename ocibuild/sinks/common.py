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
from ..spec import Digest
from ..store import CHUNK, ContentStore


def copy_blob(store: ContentStore, digest: Digest, out: BinaryIO) -> int:
    """Copy a stored blob to ``out``, checking its digest on the way; return its size."""
    hasher = hashlib.new(digest.algorithm)
    size = 0
    with store.open(digest) as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
            out.write(chunk)
            size += len(chunk)
    if hasher.hexdigest() != digest.hex:
        raise DigestMismatch(
            f"cached blob {digest} is corrupt; delete {store.blob_path(digest)} and build again"
        )
    return size


def verify_blob(store: ContentStore, digest: Digest) -> None:
    """Re-hash a stored blob; raise ``DigestMismatch`` if it changed on disk."""

    class _Null:
        def write(self, data: bytes) -> int:
            return len(data)

    copy_blob(store, digest, _Null())  # type: ignore[arg-type]


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
    parent = writable_parent(path, what)
    fd, name = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


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
