"""Write the model server's weights folder, deterministically (fixed seed, standard library only).

    python3 make_weights.py                 # weights/model.json + weights/embeddings.bin (about 260 KB)
    python3 make_weights.py --big-mb 512    # also weights/big.safetensors: 512 MB of pseudo-random float32

The model is a toy sentiment classifier: every token is hashed (crc32) into one of BUCKETS rows of
float32 embeddings (weights/embeddings.bin, little-endian, BUCKETS x DIM); a text is the mean of its
tokens' rows, and its label is the nearest class centroid (weights/model.json). A few keywords are
planted near their class's centroid, so "a great, wonderful product" is positive and "an awful, broken
thing" negative. Same options, same bytes, on any machine.

big.safetensors (only with --big-mb N, N > 0) is a valid safetensors file holding one F32 tensor of
N MB of pseudo-random values: stand-in weights for tests and benchmarks of big model images. Without
--big-mb, a big.safetensors left by an earlier run is removed, so the folder always matches the options.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import sys
import tempfile
import zlib
from array import array
from pathlib import Path

FORMAT = "ocibuild-example/hashed-centroids-v1"
CLASSES = ["negative", "positive"]
KEYWORDS = {
    "positive": ["good", "great", "excellent", "love", "wonderful", "best", "happy", "fast", "works", "perfect"],
    "negative": ["bad", "terrible", "awful", "hate", "worst", "sad", "slow", "broken", "fails", "useless"],
}
DIM = 32
BUCKETS = 2048
SEED = 20240601


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def small_model(seed: int) -> tuple[bytes, bytes]:
    """(model.json bytes, embeddings.bin bytes)."""
    rnd = random.Random(seed)
    centroids = {c: [round(rnd.gauss(0.0, 1.0), 6) for _ in range(DIM)] for c in CLASSES}
    table = array("f", (rnd.gauss(0.0, 0.3) for _ in range(BUCKETS * DIM)))
    for label, words in KEYWORDS.items():
        for word in words:
            row = (zlib.crc32(word.encode()) % BUCKETS) * DIM
            for i in range(DIM):
                table[row + i] = 3.0 * centroids[label][i] + rnd.gauss(0.0, 0.1)
    if sys.byteorder != "little":
        table.byteswap()
    spec = {
        "format": FORMAT,
        "dim": DIM,
        "buckets": BUCKETS,
        "classes": CLASSES,
        "centroids": [centroids[c] for c in CLASSES],
        "embeddings": {"file": "embeddings.bin", "dtype": "float32", "byteorder": "little", "shape": [BUCKETS, DIM]},
        "seed": seed,
    }
    return (json.dumps(spec, indent=1, sort_keys=True) + "\n").encode(), table.tobytes()


def write_big(path: Path, mb: int, seed: int) -> None:
    """A safetensors file: u64 little-endian header length, JSON header, then mb MiB of F32 data."""
    nbytes = mb << 20
    header = json.dumps({"__metadata__": {"generator": "make_weights.py", "seed": str(seed)},
                         "big": {"dtype": "F32", "shape": [nbytes // 4], "data_offsets": [0, nbytes]}},
                        separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the format pads the header to 8 bytes with spaces
    rnd = random.Random(seed + 1)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header)
            for _ in range(mb):
                f.write(rnd.randbytes(1 << 20))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "weights",
                    help="the weights folder (default: weights/ beside this script)")
    ap.add_argument("--big-mb", type=int, default=0, metavar="N",
                    help="also write big.safetensors with N MiB of pseudo-random float32 (default 0: none)")
    ap.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    args = ap.parse_args()
    if args.big_mb < 0:
        ap.error("--big-mb must be >= 0")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    spec, table = small_model(args.seed)
    write_atomic(out / "model.json", spec)
    write_atomic(out / "embeddings.bin", table)
    big = out / "big.safetensors"
    if args.big_mb:
        write_big(big, args.big_mb, args.seed)
    else:
        big.unlink(missing_ok=True)
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"wrote {out} ({total:,} bytes)")


if __name__ == "__main__":
    main()
