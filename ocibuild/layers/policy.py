"""How a tree of files is cut into layers: big files and model weights in layers of their own (so a
code edit never re-uploads them), incompressible ones stored uncompressed, the rest together."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from .compress import Compression
from .tarwriter import TarEntry

MODEL_SUFFIXES = (".safetensors", ".onnx", ".joblib", ".pkl", ".pt", ".pth", ".bin", ".gguf", ".ggml", ".h5",
                  ".keras", ".tflite", ".npy", ".npz", ".parquet", ".ckpt", ".msgpack", ".pb")
LARGE_FILE = 16 << 20  # any file this big gets its own layer
MODEL_FILE = 1 << 20  # a model/data file this big gets its own layer


def is_large(entry: TarEntry) -> bool:
    """Model weights and other big files: kept out of the code layer so a code edit never re-uploads them."""
    return entry.kind == "file" and (entry.size >= LARGE_FILE or (
        entry.size >= MODEL_FILE and entry.path.lower().endswith(MODEL_SUFFIXES)))


def compression_for(entry: TarEntry, chosen: Compression) -> Compression:
    """Big files that gzip cannot shrink (float weights) are stored uncompressed: readable by every
    runtime, and no CPU is burnt for nothing. zstd (fast on such data) and none are kept as chosen."""
    if chosen.algorithm != "gzip" or entry.source is None:
        return chosen
    with entry.source.open("rb") as f:
        f.seek(max(0, entry.size // 2 - (1 << 19)))
        sample = f.read(1 << 20)
    if sample and len(zlib.compress(sample, 1)) > 0.9 * len(sample):
        return Compression.parse("none")
    return chosen


def split(entries: Sequence[TarEntry]) -> tuple[list[TarEntry], list[TarEntry]]:
    """(big files, one layer each, sorted by path; everything else, one layer)."""
    big = sorted((e for e in entries if is_large(e)), key=lambda e: e.path)
    return big, [e for e in entries if not is_large(e)]
