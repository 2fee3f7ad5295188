"""Push benchmark (issue 3): ocibuild's blob push to a loopback registry (Debian's docker-registry) vs a
single raw streamed PUT of the same file with curl, in the same run; and ocibuild's peak memory pushing
a big blob vs a small one (must stay flat).

    python3 benchmarks/registry_push.py [--size-mb 1024] [--out benchmarks/results]

Writes results/registry_push.json and results/registry_push.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import resource, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from ocibuild.registry import RegistryClient, Repository
from ocibuild.spec import Descriptor, Digest, MediaType
from ocibuild.store import ContentStore
store = ContentStore(sys.argv[2])
digest = Digest.parse(sys.argv[4])
desc = Descriptor(media_type=MediaType.OCI_LAYER, digest=digest, size=store.size(digest))
client = RegistryClient()
start = time.perf_counter()
how = client.push_blob(Repository(host=sys.argv[3], name=sys.argv[5]), desc, store)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, how)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cfg = tmp / "registry.yml"
    cfg.write_text(f"version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {tmp / 'data'}}}\n"
                   f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("docker-registry did not start (apt-get install docker-registry)")


def make_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    block = os.urandom(1 << 20)
    with path.open("wb") as f:
        left = size
        while left:
            chunk = block[: min(left, len(block))]
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return f"sha256:{h.hexdigest()}"


def raw_put(host: str, repo: str, path: Path, digest: str) -> float:
    """POST an upload session with curl, then one streamed PUT of the whole file (the baseline)."""
    start = time.perf_counter()
    headers = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "-X", "POST",
                              f"http://{host}/v2/{repo}/blobs/uploads/"], check=True, capture_output=True,
                             text=True).stdout
    location = next(line.split(":", 1)[1].strip() for line in headers.splitlines()
                    if line.lower().startswith("location:"))
    if location.startswith("/"):
        location = f"http://{host}{location}"
    sep = "&" if "?" in location else "?"
    code = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", str(path),
                           "-H", "Content-Type: application/octet-stream", f"{location}{sep}digest={digest}"],
                          check=True, capture_output=True, text=True).stdout
    if code != "201":
        raise SystemExit(f"raw PUT failed: HTTP {code}")
    return time.perf_counter() - start


def ocibuild_push(store: Path, host: str, digest: str, repo: str) -> tuple[float, int, str]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), str(store), host, digest, repo], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1]), out[2]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from ocibuild.spec import Digest
    from ocibuild.store import ContentStore

    result: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        "command": "python3 benchmarks/registry_push.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
    }
    with tempfile.TemporaryDirectory(prefix="ocibuild-push-bench-") as td:
        tmp = Path(td)
        proc, host = start_registry(tmp)
        try:
            rows = []
            for label, size in (("10 MB", 10 << 20), (f"{args.size_mb} MB", args.size_mb << 20)):
                blob = tmp / "blob.bin"
                digest = make_file(blob, size)
                store = ContentStore(tmp / "store")
                store.put_file(blob, Digest.parse(digest), size)
                raw_s = raw_put(host, f"raw/{size}", blob, digest)
                ours_s, rss_kb, how = ocibuild_push(tmp / "store", host, digest, f"ours/{size}")
                assert how == "uploaded", how
                rows.append({"blob": label, "bytes": size, "raw_put_s": raw_s, "ocibuild_s": ours_s,
                             "raw_mb_per_s": size / raw_s / 1e6, "ocibuild_mb_per_s": size / ours_s / 1e6,
                             "ocibuild_vs_raw_speed": raw_s / ours_s, "ocibuild_peak_rss_mb": rss_kb / 1024})
                blob.unlink()
                shutil.rmtree(tmp / "store")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    result["rows"] = rows
    result["rss_ratio_big_vs_small"] = rows[1]["ocibuild_peak_rss_mb"] / rows[0]["ocibuild_peak_rss_mb"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "registry_push.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Registry push benchmark ({result['date']})", "", f"Command: `{result['command']}`  ",
             f"Machine: {result['machine']}", "",
             "| blob | raw curl PUT s | ocibuild s | raw MB/s | ocibuild MB/s | ocibuild speed vs raw | "
             "ocibuild peak RSS MB |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['blob']} | {r['raw_put_s']:.2f} | {r['ocibuild_s']:.2f} | {r['raw_mb_per_s']:.0f} | "
                     f"{r['ocibuild_mb_per_s']:.0f} | {r['ocibuild_vs_raw_speed']:.2f}x | "
                     f"{r['ocibuild_peak_rss_mb']:.1f} |")
    lines.append(f"\nPeak RSS pushing the big blob is {result['rss_ratio_big_vs_small']:.2f}x the 10 MB case.")
    (args.out / "registry_push.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
