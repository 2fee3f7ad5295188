"""Do our compressors give the same bytes on every CPU? Runs the same compression natively and under
qemu-user with older x86-64 CPU models (SSE4.2-only Nehalem, AVX2 Haswell), and compares digests.

    python3 benchmarks/compress_determinism.py [SAMPLE_FILE]

Prints a Markdown table; exit 1 if any configuration differs between CPUs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CONFIGS = ["gzip:1", "gzip:2", "gzip:6", "zstd:3", "zstd:9"]
CPUS = ["native", "Nehalem", "Haswell", "Skylake-Server"]

CHILD = r"""
import hashlib, json, sys
sys.path.insert(0, sys.argv[2])
from ocibuild.layers.compress import Compression
data = open(sys.argv[1], "rb").read()
out = {}
for cfg in sys.argv[3:]:
    c = Compression.parse(cfg).compressor()
    h = hashlib.sha256()
    for i in range(0, len(data), 1 << 20):
        h.update(c.compress(data[i:i + (1 << 20)]))
    h.update(c.flush())
    out[cfg] = h.hexdigest()[:16]
print(json.dumps(out))
"""


def sample() -> Path:
    """A tar of part of this Python's standard library: mixed text and binary, ~180 MB."""
    path = Path(tempfile.gettempdir()) / "ocibuild-compress-sample.tar"
    if not path.exists():
        lib = Path(tarfile.__file__).parent
        with tarfile.open(path, "w") as tar:
            for p in sorted(lib.rglob("*"))[:6000]:
                if p.is_file():
                    tar.add(p, arcname=str(p.relative_to(lib)))
    return path


def main() -> int:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else sample()
    repo = str(Path(__file__).resolve().parents[1])
    qemu = shutil.which("qemu-x86_64-static") or shutil.which("qemu-x86_64")
    results: dict[str, dict[str, str]] = {}
    for cpu in CPUS:
        cmd = [sys.executable, "-c", CHILD, str(src), repo, *CONFIGS]
        if cpu != "native":
            if qemu is None:
                print("qemu-x86_64-static not found: apt-get install qemu-user-static", file=sys.stderr)
                return 2
            cmd = [qemu, "-cpu", cpu, *cmd]
        results[cpu] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    sample_digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    print(f"sample: {src} ({src.stat().st_size / 1e6:.1f} MB), sha256 {sample_digest}")
    print("| compression | " + " | ".join(CPUS) + " | same on all |")
    print("|---" * (len(CPUS) + 2) + "|")
    ok = True
    for cfg in CONFIGS:
        values = [results[c][cfg] for c in CPUS]
        same = len(set(values)) == 1
        ok &= same
        print(f"| {cfg} | " + " | ".join(values) + f" | {'yes' if same else '**no**'} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
