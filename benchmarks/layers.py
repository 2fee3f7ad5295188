"""Layer build benchmarks (issue 2), each compared in the same run with a baseline:

1. throughput: ocibuild building one layer from a ~300 MB tree (copies of this Python's standard
   library: many small text files, like a site-packages folder) vs GNU `tar -c | gzip` of the same tree
   (gzip -6, its default, and gzip -1), reported as MB/s and as ratios;
2. peak memory: building a layer from a 2 GB file vs from a 1 MB file (must stay flat), each in a fresh
   process, ru_maxrss.

    python3 benchmarks/layers.py [--size-mb 300] [--big-gb 2] [--out benchmarks/results]

Writes results/layers.json and results/layers.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_tree(dest: Path, size_mb: int) -> int:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    total, copy = 0, 0
    while total < size_mb * 1_000_000:
        target = dest / f"copy{copy}"
        shutil.copytree(stdlib, target, ignore=shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc"),
                        symlinks=True)
        total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file() and not p.is_symlink())
        copy += 1
    return total


def timed(cmd: list[str] | str, **kw: object) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start


CHILD = """
import resource, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from ocibuild.layers import Compression, build_layer, collect
from ocibuild.store import ContentStore
store = ContentStore(sys.argv[3])
start = time.perf_counter()
layer = build_layer(collect(Path(sys.argv[2]), "/data/"), store, compression=Compression.parse(sys.argv[4]),
                    use_cache=False)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, layer.descriptor.size)
"""


def ocibuild_layer(src: Path, store: Path, compression: str) -> tuple[float, int, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), str(src), str(store), compression],
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=300)
    ap.add_argument("--big-gb", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    results: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
                    "kernel": platform.release()},
        "command": "python3 benchmarks/layers.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
    }
    with tempfile.TemporaryDirectory(prefix="ocibuild-bench-", dir=os.environ.get("BENCH_TMP")) as td:
        tmp = Path(td)
        tree = tmp / "tree"
        size = make_tree(tree, args.size_mb)
        rows = []
        # warm the page cache once so every contender reads from memory
        subprocess.run(f"tar -cf - -C {tree} . > /dev/null", shell=True, check=True)
        for label, cmd in (("tar | gzip -6 (GNU)", f"tar -cf - -C {tree} . | gzip -6 > {tmp}/g6.tgz"),
                           ("tar | gzip -1 (GNU)", f"tar -cf - -C {tree} . | gzip -1 > {tmp}/g1.tgz")):
            seconds = timed(cmd, shell=True)
            rows.append({"tool": label, "seconds": seconds, "mb_per_s": size / seconds / 1e6,
                         "bytes": (tmp / ("g6.tgz" if "6" in label else "g1.tgz")).stat().st_size})
        for comp in ("gzip:1", "gzip:6", "zstd:3", "none"):
            shutil.rmtree(tmp / "store", ignore_errors=True)
            seconds, _, nbytes = ocibuild_layer(tree, tmp / "store", comp)
            rows.append({"tool": f"ocibuild {comp}", "seconds": seconds, "mb_per_s": size / seconds / 1e6,
                         "bytes": nbytes})
        base = next(r for r in rows if r["tool"] == "tar | gzip -6 (GNU)")
        for r in rows:
            r["speed_vs_tar_gzip6"] = base["seconds"] / r["seconds"]  # type: ignore[operator]
        results["throughput"] = {"tree_bytes": size, "rows": rows}
        shutil.rmtree(tree)
        shutil.rmtree(tmp / "store", ignore_errors=True)

        memory = []
        for label, nbytes in (("1 MB file", 1_000_000), (f"{args.big_gb:g} GB file", int(args.big_gb * 1e9))):
            src = tmp / "big"
            shutil.rmtree(src, ignore_errors=True)
            src.mkdir()
            with (src / "weights.bin").open("wb") as f:  # compressible but not trivially: repeated random block
                block = os.urandom(1 << 20)
                written = 0
                while written < nbytes:
                    n = min(len(block), nbytes - written)
                    f.write(block[:n])
                    written += n
            shutil.rmtree(tmp / "store", ignore_errors=True)
            seconds, rss_kb, _ = ocibuild_layer(src, tmp / "store", "gzip:1")
            memory.append({"input": label, "bytes": nbytes, "seconds": seconds, "peak_rss_mb": rss_kb / 1024})
        memory[1]["rss_ratio_vs_small"] = memory[1]["peak_rss_mb"] / memory[0]["peak_rss_mb"]
        results["memory"] = memory

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "layers.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# Layer benchmarks ({results['date']})", "",
             f"Command: `{results['command']}`  ", f"Machine: {results['machine']}", "",
             f"## Throughput: one layer from a {size / 1e6:.0f} MB tree", "",
             "| tool | seconds | MB/s | output MB | speed vs tar \\| gzip -6 |", "|---|---|---|---|---|"]
    for r in rows:
        tool = str(r["tool"]).replace("|", "\\|")
        lines.append(f"| {tool} | {r['seconds']:.2f} | {r['mb_per_s']:.0f} | {r['bytes'] / 1e6:.1f} | "
                     f"{r['speed_vs_tar_gzip6']:.2f}x |")
    lines += ["", "## Peak memory of a layer build (fresh process, ru_maxrss)", "",
              "| input | seconds | peak RSS MB |", "|---|---|---|"]
    for m in memory:
        lines.append(f"| {m['input']} | {m['seconds']:.2f} | {m['peak_rss_mb']:.1f} |")
    lines.append(f"\nPeak RSS for the big file is {memory[1]['rss_ratio_vs_small']:.2f}x the 1 MB case.")
    (args.out / "layers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
