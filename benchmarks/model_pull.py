"""Model images (issue 13): pulling and unpacking a multi-GB model image whose weights are uncompressed layers
(`ocibuild model`) vs the same weights gzip-compressed in an app image (a Dockerfile `COPY weights /models`),
side by side in one run; and the peak memory of `ocibuild model` for a big vs a small weights file (must stay flat).

1. Weights: --shards files `model-0000N-of-0000M.safetensors` of --shard-mb MiB each (float16 values of a normal
   distribution, std 0.02, like trained weights: gzip -6 shrinks them only ~8%), plus a few small json files
   (config, generation config, shard index, a ~2 MB tokenizer). Three images of them in one loopback Debian
   `docker-registry`:
   - ours: `ocibuild model weights --output docker://127.0.0.1:PORT/model:v1` (each shard its own uncompressed
     `application/vnd.oci.image.layer.v1.tar` layer, the json files in one gzip layer);
   - buildah (the peer): `buildah build --layers` (vfs storage) of `FROM scratch` + `COPY weights /models`, then
     `buildah push --tls-verify=false ... docker://127.0.0.1:PORT/buildah:v1` (buildah gzips the layer on push;
     the media type is checked in the registry's manifest);
   - gzip6: the same /models tree as one tar layer gzipped at level 6 (zlib-ng, 64 MiB gzip members on 2 threads),
     an OCI layout written here, `skopeo copy` to docker://127.0.0.1:PORT/gzip6:v1 (what `docker push` ships for
     a `COPY` layer: gzip at the default level; buildah's gzip barely compresses this data, see the results).
   Then --reps times, rotating which image goes first, each from an empty local side:
   `skopeo copy --dest-oci-accept-uncompressed-layers docker://127.0.0.1:PORT/IMG oci:DST:v1` (pull; the flag keeps
   uncompressed layers as they are: by default skopeo gzips them into an oci: layout) and
   `umoci raw unpack --image DST:v1 ROOTFS` (unpack), each timed; `sync` (untimed) and delete between runs. Every
   rootfs must hold the same /models files (names and sizes). Medians, ratios other / ours. Then ours once more
   with skopeo's default (it gzips the uncompressed layers on the way), for reference.
2. Peak RSS (GNU time's %M, else wait4 ru_maxrss) of `ocibuild model FILE --output oci:DIR:v1` for one
   --big-mb MiB .safetensors file vs a --small-mb MiB one, fresh store each; the big one twice: its file evicted
   from the page cache first (posix_fadvise DONTNEED, read from disk) and with it cached.

    python3 benchmarks/model_pull.py [--out benchmarks/results] [--shards 3] [--shard-mb 1024] [--reps 3]
                                     [--big-mb 5120] [--small-mb 50] [--no-skopeo-default] [--keep]

Writes results/model_pull.json and results/model_pull.md. Needs buildah, skopeo, umoci, docker-registry (root).
numpy makes the weights ~2x faster (a stdlib generator of the same kind of data is the fallback); zlib-ng the gzip
-6 layer (else zlib). Peak disk use ~7x the weights (~23 GB with the defaults), all under one temp dir in /tmp,
deleted at the end (also on failure). ~12 minutes on 2 cores with the defaults. Nothing is asserted about timing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import python_deps as pd  # noqa: E402  (buildah config, run() with wait4 rusage)
from e2e import machine  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
CONTAINERFILE = "FROM scratch\nCOPY weights /models\n"
CHUNK = 32 << 20  # bytes generated and written at a time


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool_versions() -> dict[str, str]:
    v = pd.version_of
    return {"ocibuild": v(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
            "buildah": v(["buildah", "--version"]), "skopeo": v(["skopeo", "--version"]),
            "umoci": v(["umoci", "--version"]), "docker-registry": v(["docker-registry", "--version"]),
            "numpy": v([sys.executable, "-c", "import numpy; print(numpy.__version__)"])}


# ---------------------------------------------------------------------------------------------------
# weights: float16 values of N(0, 0.02), as trained weights look to a compressor
# ---------------------------------------------------------------------------------------------------

class Weights:
    """Chunks of float16 N(0, 0.02) values. numpy: one 64 MiB pool of real float16 normals, each chunk a random
    rotation of it with the low 8 mantissa bits redrawn (same distribution, same gzip ratio as fresh values,
    ~500 MB/s). Without numpy: the high bytes (sign, exponent, top mantissa bits) from a pool of normals packed
    with struct, the low bytes random."""

    def __init__(self, seed: int = 0) -> None:
        np: Any
        try:
            import numpy as np
        except ImportError:
            np = None
        self.np = np
        if np is not None:
            self.rng = np.random.default_rng(seed)
            self.pool = (self.rng.standard_normal(CHUNK, dtype=np.float32) * 0.02).astype(np.float16).view(np.uint16)
            self.kind = f"numpy {np.__version__}"
        else:
            self.rnd = random.Random(seed)
            n = 4 << 20
            packed = struct.pack(f"<{n}e", *(self.rnd.gauss(0.0, 0.02) for _ in range(n)))
            self.high = packed[1::2]
            self.kind = "stdlib (random + struct)"

    def chunk(self, size: int) -> bytes:
        if self.np is not None:
            np = self.np
            a = np.roll(self.pool, int(self.rng.integers(0, self.pool.size)))
            a ^= self.rng.integers(0, 256, size=a.size, dtype=np.uint16)
            return bytes(a.tobytes()[:size])
        half = (size + 1) // 2
        high = bytearray()
        while len(high) < half:  # high bytes: random windows of the pool
            off = self.rnd.randrange(len(self.high))
            high += self.high[off: off + half - len(high)]
        out = bytearray(2 * half)
        out[0::2] = self.rnd.randbytes(half)
        out[1::2] = high
        return bytes(out[:size])

    def write(self, path: Path, size: int, *, evict: bool = False) -> None:
        with path.open("wb") as f:
            left = size
            while left:
                data = self.chunk(min(left, CHUNK))
                f.write(data)
                left -= len(data)
            if evict:
                f.flush()
                os.fsync(f.fileno())
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def evict(path: Path) -> None:
    """Drop ``path``'s pages from the page cache (after writing them back), so the next read comes from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def generate(*argv: Any) -> dict[str, Any]:
    """Run this script's generator (--make-model DIR / --make-file FILE) in a child process: this process stays
    small (no numpy, no buffers), so the peak RSS of the commands it starts is theirs alone."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, *map(str, argv)], check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    return {**json.loads(out), "generate_seconds": time.perf_counter() - start}


def gzip6_ratio(path: Path, n: int = 32 << 20) -> float:
    """zlib level 6 (gzip -6) output / input on the first ``n`` bytes of ``path``."""
    with path.open("rb") as f:
        data = f.read(n)
    return len(zlib.compress(data, 6)) / len(data)


def make_model(folder: Path, gen: Weights, shards: int, shard_bytes: int) -> dict[str, Any]:
    folder.mkdir(parents=True)
    names = [f"model-{i:05d}-of-{shards:05d}.safetensors" for i in range(1, shards + 1)]
    for name in names:
        gen.write(folder / name, shard_bytes)
    config = {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 11008,
              "num_attention_heads": 32, "num_hidden_layers": 32, "torch_dtype": "float16", "vocab_size": 32000}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}) + "\n")
    weight_map = {f"model.layers.{i}.w{j}": names[i % shards] for i in range(32) for j in range(8)}
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": shards * shard_bytes}, "weight_map": weight_map}, indent=2) + "\n")
    rnd = random.Random(1)
    vocab = {"".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 10))) + f"_{i}": i
             for i in range(32000)}
    words = list(vocab)
    merges = [f"{rnd.choice(words)} {rnd.choice(words)}" for _ in range(40000)]
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": vocab, "merges": merges}},
                                                      indent=1) + "\n")
    files = sorted(p for p in folder.iterdir())
    return {"files": len(files), "shards": shards, "shard_bytes": shard_bytes,
            "bytes": sum(p.stat().st_size for p in files),
            "small_files_bytes": sum(p.stat().st_size for p in files if not p.name.endswith(".safetensors"))}


class _GzipMembers:
    """A file-like sink: hashes what it is given (the layer's diff_id), cuts it into MEMBER-byte pieces and gzips
    each as its own gzip member (RFC 1952 allows a file of several members; Go's gzip reader, umoci's, reads them
    all) on a pool of threads, written in order; hashes the compressed bytes (the blob digest)."""

    MEMBER = 64 << 20

    def __init__(self, out: Any, level: int = 6, threads: int = 2) -> None:
        import hashlib
        from concurrent.futures import ThreadPoolExecutor

        z: Any
        try:
            import zlib_ng.zlib_ng as z
            self.lib = "zlib-ng"
        except ImportError:
            z = zlib
            self.lib = "zlib"
        self.z, self.level, self.out = z, level, out
        self.diff, self.blob = hashlib.sha256(), hashlib.sha256()
        self.size = 0
        self.buf = bytearray()
        self.pool = ThreadPoolExecutor(threads)
        self.pending: list[Any] = []
        self.threads = threads

    def _gzip(self, data: bytes) -> bytes:
        c = self.z.compressobj(self.level, zlib.DEFLATED, 31)  # wbits 31: a gzip member (header, crc32, size)
        return bytes(c.compress(data) + c.flush())

    def _drain(self, keep: int) -> None:
        while len(self.pending) > keep:
            data = self.pending.pop(0).result()
            self.out.write(data)
            self.blob.update(data)
            self.size += len(data)

    def write(self, data: bytes) -> int:
        self.diff.update(data)
        self.buf += data
        while len(self.buf) >= self.MEMBER:
            self.pending.append(self.pool.submit(self._gzip, bytes(self.buf[: self.MEMBER])))
            del self.buf[: self.MEMBER]
            self._drain(self.threads)
        return len(data)

    def close(self) -> None:
        if self.buf:
            self.pending.append(self.pool.submit(self._gzip, bytes(self.buf)))
            self.buf = bytearray()
        self._drain(0)
        self.pool.shutdown()


def make_gzip_layout(layout: Path, weights: Path) -> dict[str, Any]:
    """An OCI layout of one tar+gzip (level 6) layer holding WEIGHTS as models/... (root-owned, as `COPY` makes
    them), the way `docker build` + `docker push` ship a `COPY weights /models` layer (gzip, default level)."""
    import hashlib
    import tarfile

    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    tmp_blob = layout / "layer.tmp"
    with tmp_blob.open("wb") as f:
        sink = _GzipMembers(f)
        with tarfile.open(fileobj=cast(Any, sink), mode="w|", format=tarfile.PAX_FORMAT, bufsize=1 << 20) as tar:
            tar.copybufsize = 1 << 20  # type: ignore[attr-defined]  # addfile reads 1 MiB at a time, not 16 KiB
            def info(name: str, **kw: Any) -> tarfile.TarInfo:
                ti = tarfile.TarInfo(name)
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = "root"
                ti.mtime = 0
                for k, v in kw.items():
                    setattr(ti, k, v)
                return ti
            tar.addfile(info("models", type=tarfile.DIRTYPE, mode=0o755))
            for p in sorted(weights.iterdir()):
                with p.open("rb") as src:
                    tar.addfile(info(f"models/{p.name}", size=p.stat().st_size, mode=0o644), src)
        sink.close()
    layer_digest = sink.blob.hexdigest()
    tmp_blob.rename(blobs / layer_digest)

    def put(doc: dict[str, Any]) -> tuple[str, int]:
        data = json.dumps(doc, separators=(",", ":")).encode()
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}", len(data)

    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sink.diff.hexdigest()}"]},
              "history": [{"created_by": "COPY weights /models (tar + gzip level 6)"}]}
    cfg_digest, cfg_size = put(config)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest,
                           "size": cfg_size},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": f"sha256:{layer_digest}", "size": sink.size}]}
    m_digest, m_size = put(manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(json.dumps(
        {"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": m_digest, "size": m_size,
                                            "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
    return {"layer_bytes": sink.size, "compressor": f"{sink.lib} level 6, {sink.MEMBER >> 20} MiB gzip members "
                                                    f"on {sink.threads} threads"}


# ---------------------------------------------------------------------------------------------------
# registry, builds, pulls
# ---------------------------------------------------------------------------------------------------

def start_registry(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cfg = tmp / "registry.yml"
    cfg.write_text(f"version: 0.1\nlog: {{level: error}}\n"
                   f"storage:\n  filesystem: {{rootdirectory: {tmp / 'registry'}}}\n"
                   f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("model_pull: docker-registry did not start (apt-get install docker-registry)")


def registry_manifest(host: str, repo: str, tag: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{tag}",
                                 headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        doc: dict[str, Any] = json.loads(r.read())
    return doc


def image_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    layers = manifest["layers"]
    return {"manifest_media_type": manifest.get("mediaType"), "layers": len(layers),
            "compressed_bytes": sum(int(x["size"]) for x in layers),
            "layer_media_types": sorted({x["mediaType"] for x in layers}),
            "layer_sizes": [int(x["size"]) for x in layers]}


TIME = shutil.which("time", path="/usr/bin:/bin")


def run(cmd: list[Any], *, env: dict[str, str], log_path: Path) -> tuple[float, float, str]:
    """pd.run, through GNU time when present: (wall s, peak RSS MB of the command's process tree, stdout).
    wait4 alone would count this Python process too: a forked child's ru_maxrss starts at its parent's RSS
    and survives exec; GNU time's own child starts from the tiny `time` process."""
    if TIME is None:
        seconds, kb, out = pd.run(cmd, env=env, log=log_path)
        return seconds, kb / 1024, out
    rss_file = log_path.parent / "rss.txt"
    seconds, _, out = pd.run([TIME, "-f", "%M", "-o", rss_file, *cmd], env=env, log=log_path)
    return seconds, int(rss_file.read_text().split()[-1]) / 1024, out


def ocibuild_env(tmp: Path) -> dict[str, str]:
    env = pd.ocibuild_env(tmp)
    env["PYTHONPATH"] = str(REPO)  # this checkout, whatever the installed ocibuild points at
    return env


def ocibuild_model(src: Path, output: str, store: Path, env: dict[str, str], log_path: Path) -> dict[str, Any]:
    seconds, rss_mb, stdout = run([sys.executable, "-m", "ocibuild", "model", src, "--output", output,
                                   "--cache-dir", store, "--json"], env=env, log_path=log_path)
    doc = json.loads(stdout)
    return {"seconds": seconds, "peak_rss_mb": rss_mb, "digest": doc["digest"],
            "layers": [{"mediaType": x["mediaType"], "size": x["size"]} for x in doc["layers"]]}


def buildah_build_push(tmp: Path, weights: Path, ref: str, log_path: Path) -> dict[str, Any]:
    ctx = tmp / "ctx"
    ctx.mkdir()
    (ctx / "weights").mkdir()
    for p in weights.iterdir():  # hard links: the same bytes, no copy
        os.link(p, ctx / "weights" / p.name)
    (ctx / "Containerfile").write_text(CONTAINERFILE)
    env, policy = pd.buildah_env(tmp / "buildah", "vfs")
    build_s, build_mb, _ = run(["buildah", "build", "--signature-policy", policy, "--layers", "--quiet",
                                "-t", "localhost/model-bench:v1", "-f", ctx / "Containerfile", ctx],
                               env=env, log_path=log_path)
    push_s, push_mb, _ = run(["buildah", "push", "--signature-policy", policy, "--tls-verify=false", "--quiet",
                              "localhost/model-bench:v1", f"docker://{ref}"], env=env, log_path=log_path)
    return {"build_seconds": build_s, "push_seconds": push_s, "seconds": build_s + push_s,
            "build_peak_rss_mb": build_mb, "push_peak_rss_mb": push_mb}


def buildah_cleanup(tmp: Path) -> None:
    if (tmp / "buildah" / "cfg").is_dir():
        env = pd.buildah_env_existing(tmp / "buildah")
        for args in (["rm", "--all"], ["rmi", "--all", "--force"]):
            subprocess.run(["buildah", *args], env=env, capture_output=True, check=False)


def tree_listing(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def pull_and_unpack(tmp: Path, host: str, image: str, policy: Path, env: dict[str, str], log_path: Path, *,
                    keep_uncompressed: bool = True) -> dict[str, Any]:
    """One cold pull (skopeo copy to an empty OCI layout) + unpack (umoci raw unpack to an empty rootfs).
    ``keep_uncompressed``: `--dest-oci-accept-uncompressed-layers` (without it skopeo gzips every uncompressed
    layer on its way into an oci: layout, rewriting its digest)."""
    load1 = os.getloadavg()[0]
    work = tmp / "pull"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    dst, rootfs = work / "dst", work / "rootfs"
    flags = ["--dest-oci-accept-uncompressed-layers"] if keep_uncompressed else []
    pull_s, pull_mb, _ = run(["skopeo", "--policy", policy, "copy", "--quiet", "--src-tls-verify=false", *flags,
                              f"docker://{host}/{image}", f"oci:{dst}:v1"], env=env, log_path=log_path)
    layers = pd.manifest_of(dst, "v1")["layers"]
    unpack_s, unpack_mb, _ = run(["umoci", "raw", "unpack", "--image", f"{dst}:v1", rootfs], env=env,
                                 log_path=log_path)
    files = tree_listing(rootfs / "models")
    shutil.rmtree(work)
    subprocess.run(["sync"], check=False)  # the next run starts with no dirty pages of this one
    return {"pull_seconds": pull_s, "unpack_seconds": unpack_s, "total_seconds": pull_s + unpack_s,
            "pull_peak_rss_mb": pull_mb, "unpack_peak_rss_mb": unpack_mb, "load1_at_start": load1,
            "local_layer_media_types": sorted({x["mediaType"] for x in layers}),
            "local_bytes": sum(int(x["size"]) for x in layers), "files": files}


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)


# ---------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------

IMAGES = ("ours", "buildah", "gzip6")  # ours first; the others are compared with it
REFS = {"ours": "model:v1", "buildah": "buildah:v1", "gzip6": "gzip6:v1"}
LABELS = {"ours": "ours: `ocibuild model` (uncompressed weight layers)",
          "buildah": "buildah: `COPY weights /models` + `buildah push` (gzip)",
          "gzip6": "gzip -6: one tar+gzip level 6 layer, pushed by skopeo"}


def part_pull(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    blog = tmp / "log.txt"
    log(f"weights: {args.shards} x {args.shard_mb} MiB .safetensors + json files ...")
    model = generate("--make-model", tmp / "weights", "--shards", args.shards, "--shard-mb", args.shard_mb)
    model["gzip6_ratio_sample"] = gzip6_ratio(tmp / "weights" / f"model-00001-of-{args.shards:05d}.safetensors")
    proc, host = start_registry(tmp)
    env, policy = pd.buildah_env(tmp / "skopeo", "vfs")  # policy.json / registries.conf of our own for skopeo
    try:
        builds: dict[str, dict[str, Any]] = {}
        log(f"ours: ocibuild model weights --output docker://{host}/{REFS['ours']} ...")
        builds["ours"] = ocibuild_model(tmp / "weights", f"docker://{host}/{REFS['ours']}", tmp / "store",
                                        ocibuild_env(tmp / "ocibuild-env"), blog)
        shutil.rmtree(tmp / "store")
        log(f"  {builds['ours']['seconds']:.1f} s")
        log(f"buildah: buildah build (FROM scratch, COPY weights /models) + push docker://{host}/{REFS['buildah']} ...")
        try:
            builds["buildah"] = buildah_build_push(tmp, tmp / "weights", f"{host}/{REFS['buildah']}", blog)
        finally:
            buildah_cleanup(tmp)
            shutil.rmtree(tmp / "buildah", ignore_errors=True)
            shutil.rmtree(tmp / "ctx", ignore_errors=True)
        log(f"  {builds['buildah']['build_seconds']:.1f} s build + {builds['buildah']['push_seconds']:.1f} s push")
        log(f"gzip6: tar + gzip level 6 layer into an OCI layout, skopeo copy to docker://{host}/{REFS['gzip6']} ...")
        builds["gzip6"] = generate("--make-gzip-layout", tmp / "gzip6", "--weights", tmp / "weights")
        push_s, _, _ = run(["skopeo", "--policy", policy, "copy", "--quiet", "--dest-tls-verify=false",
                            f"oci:{tmp / 'gzip6'}:v1", f"docker://{host}/{REFS['gzip6']}"], env=env, log_path=blog)
        builds["gzip6"].update(push_seconds=push_s, seconds=builds["gzip6"]["generate_seconds"] + push_s)
        shutil.rmtree(tmp / "gzip6")
        log(f"  {builds['gzip6']['generate_seconds']:.1f} s tar + gzip + {push_s:.1f} s push")
        shutil.rmtree(tmp / "weights")  # every image is in the registry now
        images = {name: image_facts(registry_manifest(host, *REFS[name].split(":"))) for name in IMAGES}
        for name in ("buildah", "gzip6"):
            if not all(t.endswith("gzip") for t in images[name]["layer_media_types"]):
                raise SystemExit(f"model_pull: {name}'s layers are not all gzip: {images[name]['layer_media_types']}")
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in IMAGES}
        for rep in range(args.reps):
            order = IMAGES[rep % len(IMAGES):] + IMAGES[:rep % len(IMAGES)]  # rotate who goes first
            for name in order:
                r = pull_and_unpack(tmp, host, REFS[name], policy, env, blog)
                log(f"  rep {rep + 1} {name}: pull {r['pull_seconds']:.1f} s + unpack {r['unpack_seconds']:.1f} s")
                runs[name].append(r)
        skopeo_default = None
        if args.skopeo_default:
            log("  ours once more, skopeo copy without --dest-oci-accept-uncompressed-layers (it gzips them) ...")
            skopeo_default = pull_and_unpack(tmp, host, REFS["ours"], policy, env, blog, keep_uncompressed=False)
            skopeo_default.pop("files")
            log(f"  pull {skopeo_default['pull_seconds']:.1f} s + unpack {skopeo_default['unpack_seconds']:.1f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(tmp / "registry", ignore_errors=True)
    listings = {name: [r.pop("files") for r in rs] for name, rs in runs.items()}
    ref_listing = listings["ours"][0]
    for name, xs in listings.items():
        if any(x != ref_listing for x in xs):
            raise SystemExit(f"model_pull: the unpacked /models of {name} differ from ours: {xs[0]} vs {ref_listing}")
    keys = ("pull_seconds", "unpack_seconds", "total_seconds")
    summary: dict[str, dict[str, float]] = {}
    for name, rs in runs.items():
        summary[name] = {k: median_of(rs, k) for k in keys}
        summary[name]["pull_peak_rss_mb"] = max(r["pull_peak_rss_mb"] for r in rs)
        summary[name]["unpack_peak_rss_mb"] = max(r["unpack_peak_rss_mb"] for r in rs)
    return {"model": model, "builds": builds, "images": images,
            "unpacked_files": len(ref_listing), "unpacked_bytes": sum(ref_listing.values()),
            "runs": runs, "median": summary, "ours_skopeo_default_gzips": skopeo_default,
            "ratio_over_ours": {name: {k: ratio(summary[name][k], summary["ours"][k]) for k in keys}
                                for name in IMAGES[1:]},
            "size_ratio_over_ours": {name: ratio(images[name]["compressed_bytes"], images["ours"]["compressed_bytes"])
                                     for name in IMAGES[1:]}}


def part_rss(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    blog = tmp / "log.txt"
    cases = (("small", args.small_mb, True), ("big (from disk)", args.big_mb, True),
             ("big (page cache)", args.big_mb, False))
    for label, mb, cold in cases:
        folder = tmp / f"rss-{mb}"
        src = folder / "model.safetensors"
        if not src.exists():
            folder.mkdir()
            log(f"rss: writing a {mb} MiB .safetensors file ...")
            generate("--make-file", src, "--size-mb", mb)
        subprocess.run(["sync"], check=False)  # no writeback of the previous run during this one
        if cold:
            evict(src)
        else:
            with src.open("rb") as f:  # read it once so it is cached
                while f.read(8 << 20):
                    pass
        log(f"rss: ocibuild model ({label}, {mb} MiB) --output oci: ...")
        r = ocibuild_model(src, f"oci:{tmp / 'rss-out'}:v1", tmp / "rss-store", ocibuild_env(tmp / "rss-env"), blog)
        shutil.rmtree(tmp / "rss-store")
        shutil.rmtree(tmp / "rss-out")
        size = mb << 20
        rows.append({"case": label, "file_mib": mb, "bytes": size, "source_in_page_cache": not cold,
                     "seconds": r["seconds"], "mb_per_s": size / r["seconds"] / 1e6, "peak_rss_mb": r["peak_rss_mb"],
                     "layer_media_types": sorted({x["mediaType"] for x in r["layers"]})})
        log(f"  {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.1f} MB")
        if label != "big (from disk)":
            shutil.rmtree(folder)
    small = rows[0]["peak_rss_mb"]
    return {"rows": rows, "rss_ratio_big_over_small": max(r["peak_rss_mb"] for r in rows[1:]) / small}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--shards", type=int, default=3)
    ap.add_argument("--shard-mb", type=int, default=1024, help="MiB per weights shard")
    ap.add_argument("--reps", type=int, default=3, help="pull + unpack runs per image (median)")
    ap.add_argument("--big-mb", type=int, default=5120, help="MiB of the big file of the memory check")
    ap.add_argument("--small-mb", type=int, default=50, help="MiB of the small file of the memory check")
    ap.add_argument("--no-skopeo-default", dest="skopeo_default", action="store_false",
                    help="skip the extra pull of ours with skopeo's default (gzip uncompressed layers into oci:)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (for debugging)")
    ap.add_argument("--make-model", type=Path, help=argparse.SUPPRESS)  # the generator, in a child process
    ap.add_argument("--make-file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--size-mb", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--make-gzip-layout", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make_gzip_layout:
        print(json.dumps(make_gzip_layout(args.make_gzip_layout, args.weights)))
        return 0
    if args.make_model or args.make_file:
        gen = Weights()
        if args.make_model:
            doc = make_model(args.make_model, gen, args.shards, args.shard_mb << 20)
        else:
            gen.write(args.make_file, args.size_mb << 20, evict=True)
            doc = {"bytes": args.size_mb << 20}
        print(json.dumps({**doc, "generator": gen.kind}))
        return 0
    for tool in ("buildah", "skopeo", "umoci", "docker-registry", "sync"):
        if shutil.which(tool) is None:
            raise SystemExit(f"model_pull: {tool} not found on PATH")
    argv = " ".join(sys.argv[1:])
    result: dict[str, Any] = {"command": f"python3 benchmarks/model_pull.py {argv}".rstrip(),
                              "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
                              "tools": tool_versions()}
    started = time.perf_counter()
    result["load_average_at_start"] = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="ocibuild-model-bench-", dir="/tmp"))
    try:
        result["pull"] = part_pull(tmp, args)
        result["generator"] = result["pull"]["model"]["generator"]
        result["rss"] = part_rss(tmp, args)
    except BaseException:
        if (tmp / "log.txt").exists():
            log(f"model_pull: failed; log tail:\n{(tmp / 'log.txt').read_text(errors='replace')[-3000:]}")
        raise
    finally:
        buildah_cleanup(tmp)
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result["seconds"] = time.perf_counter() - started
    result["load_average_at_end"] = os.getloadavg()
    write_reports(result, args.out)
    return 0


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f}"


def write_reports(r: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_pull.json").write_text(json.dumps(r, indent=2) + "\n")
    p, m, t = r["pull"], r["machine"], r["tools"]
    med, rat, img, b = p["median"], p["ratio_over_ours"], p["images"], p["builds"]
    model = p["model"]
    lines = [f"# Model image pull + unpack, and `ocibuild model` memory ({r['date']})", "",
             f"Command: `{r['command']}` ({r['seconds'] / 60:.1f} min)  ",
             f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB RAM, {m['os']}, kernel {m['kernel']}, "
             f"Python {m['python']}  ",
             "Tools: " + ", ".join(f"{k} `{v}`" for k, v in t.items()) + "  ",
             "Load average (1, 5, 15 min) at start " + ", ".join(f"{x:.1f}" for x in r["load_average_at_start"])
             + "; at end " + ", ".join(f"{x:.1f}" for x in r["load_average_at_end"])
             + " (2 CPUs: anything above ~1 is other work on the machine competing with the benchmark).", "",
             f"Model: {model['shards']} x {model['shard_bytes'] >> 20} MiB `model-0000N-of-{model['shards']:05d}"
             f".safetensors` (float16 N(0, 0.02) values, {r['generator']}) + 4 json files "
             f"({model['small_files_bytes'] / 1e6:.1f} MB), {mb(model['bytes'])} MB in all; `gzip -6` (zlib) of the "
             f"first 32 MiB of a shard: {model['gzip6_ratio_sample']:.3f} of the input.", "",
             "- **ours**: `ocibuild model weights --output docker://127.0.0.1:PORT/model:v1` "
             f"({img['ours']['layers']} layers: {', '.join(img['ours']['layer_media_types'])})",
             "- **buildah** (the peer): `buildah build --layers` (vfs) of `FROM scratch` + `COPY weights /models`, "
             f"`buildah push --tls-verify=false` ({img['buildah']['layers']} layer: "
             f"{', '.join(img['buildah']['layer_media_types'])})",
             f"- **gzip -6**: the same `/models` tree as one tar layer gzipped at level 6 ({b['gzip6']['compressor']}; "
             "what `docker push` does with a `COPY` layer: gzip at its default level), an OCI layout written in "
             "Python, "
             "`skopeo copy` to the registry",
             "", "All three in the same loopback Debian `docker-registry`. Pull = `skopeo copy "
             "--dest-oci-accept-uncompressed-layers docker://... oci:DST:v1` (keeps the layers as pushed), unpack = "
             f"`umoci raw unpack`, each run from an empty local side (`sync` between runs); median of "
             f"{len(p['runs']['ours'])} runs each, rotating which image goes first. Ratio = other / ours (> 1: the "
             "uncompressed model image is faster / smaller).", "",
             "| image | compressed size MB | pull s | unpack s | pull + unpack s |", "|---|---|---|---|---|"]
    for name in IMAGES:
        lines.append(f"| {LABELS[name]} | {mb(img[name]['compressed_bytes'])} | {med[name]['pull_seconds']:.2f} | "
                     f"{med[name]['unpack_seconds']:.2f} | {med[name]['total_seconds']:.2f} |")
    for name in IMAGES[1:]:
        lines.append(f"| **{name} / ours** | {p['size_ratio_over_ours'][name]:.3f}x | {rat[name]['pull_seconds']:.2f}x "
                     f"| {rat[name]['unpack_seconds']:.2f}x | **{rat[name]['total_seconds']:.2f}x** |")
    lines += ["", "All runs (pull + unpack s): " + "; ".join(
                  f"{name} " + ", ".join(f"{x['pull_seconds']:.1f} + {x['unpack_seconds']:.1f}"
                                         for x in p["runs"][name])
                  for name in IMAGES) + ".  ",
              "Layers in the local layout after the pull: " + "; ".join(
                  f"{name} {', '.join(p['runs'][name][0]['local_layer_media_types'])}" for name in IMAGES) + ".  ",
              "Peak RSS (max over runs), skopeo / umoci: " + "; ".join(
                  f"{name} {med[name]['pull_peak_rss_mb']:.0f} / {med[name]['unpack_peak_rss_mb']:.0f} MB"
                  for name in IMAGES) + ".  ",
              f"Build + push (once each, not the point here): ocibuild {b['ours']['seconds']:.1f} s (peak RSS "
              f"{b['ours']['peak_rss_mb']:.0f} MB); buildah {b['buildah']['build_seconds']:.1f} s build + "
              f"{b['buildah']['push_seconds']:.1f} s push = {b['buildah']['seconds']:.1f} s "
              f"({ratio(b['buildah']['seconds'], b['ours']['seconds']):.2f}x); gzip -6 "
              f"{b['gzip6']['generate_seconds']:.1f} s tar + gzip + {b['gzip6']['push_seconds']:.1f} s skopeo push.  "]
    d = p.get("ours_skopeo_default_gzips")
    if d:
        lines.append(f"Ours pulled once more with skopeo's default (no `--dest-oci-accept-uncompressed-layers`: skopeo "
                     f"gzips uncompressed layers on their way into an oci: layout, local layers "
                     f"{', '.join(d['local_layer_media_types'])}, {mb(d['local_bytes'])} MB): pull "
                     f"{d['pull_seconds']:.2f} s + unpack {d['unpack_seconds']:.2f} s = {d['total_seconds']:.2f} s.")
    lines += ["",
              "## `ocibuild model` peak memory, big vs small file", "",
              "One `.safetensors` file, `ocibuild model FILE --output oci:DIR:v1`, empty `--cache-dir` each; peak RSS "
              "= GNU time's %M (ru_maxrss of the command alone). MB/s = file bytes / wall s (the build writes them "
              "twice: store, then layout). The big file once evicted from the page cache (read from disk) and once "
              "cached.", "",
              "| file | source | wall s | MB/s | peak RSS MB |", "|---|---|---|---|---|"]
    for x in r["rss"]["rows"]:
        lines.append(f"| {x['file_mib']} MiB | {'page cache' if x['source_in_page_cache'] else 'disk'} | "
                     f"{x['seconds']:.2f} | {x['mb_per_s']:.0f} | {x['peak_rss_mb']:.1f} |")
    lines.append(f"\nPeak RSS, big vs small file: **{r['rss']['rss_ratio_big_over_small']:.2f}x** (the larger of the "
                 "two big runs).")
    (out / "model_pull.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
