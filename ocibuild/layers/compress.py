"""Layer compression that gives the same bytes on every machine.

gzip goes through zlib-ng (same stream on every CPU, unlike isal) with a fixed 10-byte header
(no mtime, no file name, OS "unknown"); zstd uses ``zstandard`` in streaming mode with a fixed
thread setting >= 1 (0 and >= 1 give different frames). Library versions are pinned in
pyproject.toml because the compressed bytes are only stable per library version.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, Literal, Protocol, cast

from ..spec import MediaType

Algorithm = Literal["gzip", "zstd", "none"]
ALGORITHMS: tuple[Algorithm, ...] = ("gzip", "zstd", "none")
DEFAULT_LEVELS: dict[str, int] = {"gzip": 1, "zstd": 3, "none": 0}
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
ZSTD_THREADS = 2


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Compression:
    """How layers are compressed: ``gzip`` (default, read by every runtime), ``zstd`` or ``none``.

    >>> Compression.parse("zstd:9").level
    9
    """

    algorithm: Algorithm = "gzip"
    level: int = DEFAULT_LEVELS["gzip"]

    @classmethod
    def parse(cls, text: str) -> Compression:
        """``gzip``, ``zstd``, ``none``, optionally with ``:LEVEL``."""
        name, _, level_text = text.strip().lower().partition(":")
        if name not in ALGORITHMS:
            raise ValueError(f"unknown compression {text!r}: use gzip, zstd or none (optionally ':LEVEL')")
        try:
            level = int(level_text) if level_text else DEFAULT_LEVELS[name]
        except ValueError:
            raise ValueError(f"invalid compression level in {text!r}: expected a whole number") from None
        limits = {"gzip": (1, 9), "zstd": (1, 19), "none": (0, 0)}[name]
        if not limits[0] <= level <= limits[1]:
            raise ValueError(f"compression level {level} for {name} is out of range {limits[0]}..{limits[1]}")
        return cls(algorithm=name, level=level)

    @property
    def media_type(self) -> MediaType:
        return {
            "gzip": MediaType.OCI_LAYER_GZIP,
            "zstd": MediaType.OCI_LAYER_ZSTD,
            "none": MediaType.OCI_LAYER,
        }[self.algorithm]

    def compressor(self) -> Compressor:
        if self.algorithm == "gzip":
            return _Gzip(self.level)
        if self.algorithm == "zstd":
            return _Zstd(self.level)
        return _Identity()

    def __str__(self) -> str:
        return self.algorithm if self.algorithm == "none" else f"{self.algorithm}:{self.level}"


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _Gzip:
    def __init__(self, level: int) -> None:
        from zlib_ng import zlib_ng

        self._zlib = zlib_ng
        self._deflate = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -15, 9)
        self._crc = 0
        self._size = 0
        self._started = False

    def compress(self, data: bytes) -> bytes:
        self._crc = self._zlib.crc32(data, self._crc)
        self._size += len(data)
        out: bytes = self._deflate.compress(data)
        if not self._started:
            self._started = True
            return _GZIP_HEADER + out
        return out

    def flush(self) -> bytes:
        head = b"" if self._started else _GZIP_HEADER
        self._started = True
        tail: bytes = self._deflate.flush()
        return head + tail + struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)


class _Zstd:
    def __init__(self, level: int) -> None:
        import zstandard

        self._obj = zstandard.ZstdCompressor(level=level, threads=ZSTD_THREADS).compressobj()

    def compress(self, data: bytes) -> bytes:
        out: bytes = self._obj.compress(data)
        return out

    def flush(self) -> bytes:
        out: bytes = self._obj.flush()
        return out


_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def sniff(head: bytes) -> Algorithm:
    """What a layer blob's first bytes say it is: ``gzip``, ``zstd`` or ``none`` (a plain tar)."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "none"


class _Decoded(io.RawIOBase):
    """Reads decompressed bytes from ``inner``; closing it also closes the raw blob stream."""

    def __init__(self, inner: IO[bytes], raw: IO[bytes]) -> None:
        self._inner = inner
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            if self._inner is not self._raw:
                self._inner.close()
        finally:
            self._raw.close()
            super().close()


def open_decompressed(raw: BinaryIO) -> BinaryIO:
    """The tar inside a layer blob stream, as a stream (bounded memory); the compression is taken
    from the magic bytes, not from a media type. Closing the result closes ``raw``."""
    if raw.seekable():
        head = raw.read(4)
        raw.seek(0)
    else:
        raw = cast(BinaryIO, io.BufferedReader(cast(Any, raw)))
        head = cast(io.BufferedReader, raw).peek(4)[:4]
    algorithm = sniff(head)
    inner: IO[bytes]
    if algorithm == "gzip":
        from zlib_ng import gzip_ng

        inner = cast(IO[bytes], gzip_ng.GzipNGFile(fileobj=raw, mode="rb"))  # type: ignore[no-untyped-call]
    elif algorithm == "zstd":
        import zstandard

        inner = cast(IO[bytes], zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True,
                                                                             closefd=False))
    else:
        inner = raw
    return cast(BinaryIO, io.BufferedReader(_Decoded(inner, raw), buffer_size=1 << 20))


def decode_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a corrupt compressed stream raises while it is read."""
    import tarfile

    import zstandard
    from zlib_ng import zlib_ng

    return (tarfile.TarError, OSError, EOFError, cast(type[BaseException], zlib_ng.error), zstandard.ZstdError)
