"""Helpers every sink uses: verified blob copies, where an output path really leads (symlinks are
followed) and atomic file destinations that sweep what killed builds left beside them."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import DigestMismatch, OutputError
from ..image import Blob
from ..spec import Digest
from ..store import CHUNK, atomic_writer, is_no_space, sweep_stale, write_error

OUTPUT_HINT = "free space there, or choose another output"


class Verified:
    """A read stream that hashes what passes through and raises ``DigestMismatch`` as soon as
    ``size`` bytes (or the end) have been read if they are not ``digest``, so nothing corrupt is ever
    committed by a sink, also by readers that stop at exactly ``size`` bytes (tarfile does)."""

    def __init__(self, raw: BinaryIO, digest: Digest, size: int, message: str | None = None) -> None:
        self._raw = raw
        self._digest = digest
        self._size = size
        self._message = message
        self._hasher = hashlib.new(digest.algorithm)
        self._read = 0
        self._checked = False

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._hasher.update(data)
        self._read += len(data)
        if self._read > self._size or (not self._checked and (not data or n < 0 or self._read == self._size)):
            self._check()
        return data

    def _check(self) -> None:
        self._checked = True
        if self._hasher.hexdigest() != self._digest.hex or self._read != self._size:
            raise DigestMismatch(self._message or (
                f"blob {self._digest} read back as {self._read}{'+' if self._read > self._size else ''} bytes "
                "with another digest; its source changed or is corrupt (for a cached blob: delete it from "
                "the cache and build again)"))

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Verified:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_verified(blob: Blob) -> Verified:
    """Open ``blob`` for reading, checked against its descriptor."""
    return Verified(blob.open(), blob.descriptor.digest, blob.descriptor.size)


def copy_blob(blob: Blob, out: BinaryIO, dest: Path) -> int:
    """Copy ``blob`` to ``out`` (the temp file of ``dest``), checking its digest and size on the way;
    return its size. A failed write is an ``OutputError`` (``DiskFull`` when full) naming ``dest``."""
    size = 0
    with open_verified(blob) as f:
        while chunk := f.read(CHUNK):
            try:
                out.write(chunk)
            except OSError as exc:
                raise write_error(exc, dest, OUTPUT_HINT, OutputError) from None
            size += len(chunk)
    return size


def output_target(path: Path, what: str) -> Path:
    """Where writing ``path`` lands: ``path`` itself, or, if it is a symlink (also one to a missing
    file or folder), what the link points to. Writing replaces the target, never the link."""
    if not path.is_symlink():
        return path
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: RuntimeError up to 3.12, OSError after
        raise OutputError(f"cannot write {what}: {path} is a symlink loop; point it at a file or folder") from None


def writable_parent(path: Path, what: str) -> Path:
    parent = path.absolute().parent
    if not parent.is_dir():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if is_no_space(exc):
                raise write_error(exc, parent, OUTPUT_HINT, OutputError) from None
            raise OutputError(f"cannot create {parent} for {what}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what}: folder {parent} is not writable; choose another output path")
    return parent


def check_file_output(path: Path, what: str) -> Path:
    """Fail early if the file ``path`` (or what it links to) cannot be written; return that target."""
    target = output_target(path, what)
    if target.is_dir():
        raise OutputError(f"cannot write {what}: {path} is a folder; name a file")
    writable_parent(target, what)
    return target


def sweep_beside(path: Path) -> None:
    """Remove stale ``.NAME.tmp-*`` temp files / folders killed builds left beside ``path``."""
    sweep_stale(path.parent, f".{glob.escape(path.name)}.tmp-*")


@contextlib.contextmanager
def atomic_file(path: Path, what: str) -> Iterator[BinaryIO]:
    """Yield a temp file beside ``path`` (or beside what it links to); rename it onto that target
    only if the block succeeds. Stale temp files of earlier, killed writes are swept first."""
    target = check_file_output(path, what)
    sweep_beside(target)
    with atomic_writer(target, tmp_dir=target.parent, mode=0o644, hint=OUTPUT_HINT) as f:
        yield f
