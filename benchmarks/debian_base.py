"""Debian base image benchmark: `ocibuild base debian` against mmdebstrap for the same package set
(python3, ca-certificates; bookworm; linux/amd64), in the same run:

1. ocibuild cold (empty --cache-dir, no lock file yet: it resolves against the verified indexes and writes
   the lock) and warm (same store, with the lock the cold run wrote: must rebuild nothing; checked by the
   same manifest digest, an unchanged store and lock, and one extra untimed run with every HTTP request
   sent to a dead proxy);
2. mmdebstrap `--variant=minbase` (the usual "equivalent root filesystem": Essential packages + apt),
   `--variant=essential` (Essential packages, no apt) and `--variant=extract` (the requested packages and
   their dependencies only unpacked, no maintainer script: mechanically closest to ocibuild, but no CA
   bundle, users or dpkg database), each cold (mmdebstrap downloads every run) from the host's apt mirror
   (tests/harness/bases.py apt_mirror()), plain `mmdebstrap --variant=V --include=python3,ca-certificates bookworm
   OUT.tar MIRROR` run as root; its output is an uncompressed tarball, so `gzip -1 -n` of it (ocibuild's
   default layer compression is gzip level 1) is timed separately and added for the image-layer equivalent;
3. sizes: ocibuild = sum of the compressed layer sizes in its manifest and of the uncompressed layer tars
   (diff); mmdebstrap = the tar and its gzip -1;
4. every image is run with umoci + runc (tests/harness/runtime.py run_image; mmdebstrap's tarballs wrapped as
   one-layer OCI layouts by harness.bases.layout_from_rootfs_tar, untimed): `python3 -c "import ssl;
   print(ssl.OPENSSL_VERSION)"` must succeed in each, and the number of CA certificates OpenSSL loads by
   default is reported.

    python3 benchmarks/debian_base.py [--out benchmarks/results] [--variants minbase,essential,extract] [--keep]

Writes results/debian_base.json and results/debian_base.md. Needs mmdebstrap, gzip, tar, umoci, runc and a
Debian mirror. Ratios are mmdebstrap / ocibuild: above 1 means ocibuild is faster (or smaller). Nothing is
asserted about timing; the run fails only if a build fails, the warm run rebuilds something, or the
ocibuild image does not run the check.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SUITE = "bookworm"
PACKAGES = "python3,ca-certificates"
ARCH = "amd64"
PLATFORM = "linux/amd64"
SSL_CHECK = ["python3", "-c", "import ssl; print(ssl.OPENSSL_VERSION)"]
CA_CHECK = ["python3", "-c", "import ssl; print(ssl.create_default_context().cert_store_stats()['x509_ca'])"]
DEAD_PROXY = "http://127.0.0.1:9"
VARIANTS = ("minbase", "essential", "extract")


def load_test_tools() -> SimpleNamespace:
    """The tests/harness helpers used here (base images, layouts, run_image), as one namespace."""
    if str(REPO / "tests") not in sys.path:
        sys.path.insert(0, str(REPO / "tests"))
    from harness import bases, layout, runtime

    return SimpleNamespace(DEBIAN_SUITE=bases.DEBIAN_SUITE, apt_mirror=bases.apt_mirror,
                           layout_from_rootfs_tar=bases.layout_from_rootfs_tar, image_config=layout.image_config,
                           layout_index_of=layout.layout_index_of, host_arch=runtime.host_arch,
                           ensure_binfmt=runtime.ensure_binfmt, run_image=runtime.run_image)


def run(cmd: Sequence[str | os.PathLike[str]], *, log: Path, env: dict[str, str] | None = None,
        stdout_path: Path | None = None) -> tuple[float, int, str]:
    """Run a command to completion; returns (wall seconds, peak RSS in KiB of its process tree as wait4 reports
    it, stdout). stderr is appended to ``log``; stdout goes to ``stdout_path`` if given; a failure raises
    SystemExit with the log's tail."""
    argv = [os.fspath(c) for c in cmd]
    if shutil.which(argv[0]) is None:
        raise SystemExit(f"debian_base: required tool not found on PATH: {argv[0]}")
    with log.open("ab") as err:
        err.write(f"\n$ {' '.join(argv)}\n".encode())
    with (stdout_path.open("wb") if stdout_path else tempfile.TemporaryFile()) as out, log.open("ab") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout = ""
        if stdout_path is None:
            out.seek(0)
            stdout = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"debian_base: failed (exit {proc.returncode}): {' '.join(argv)}\n"
                         f"{log.read_text(errors='replace')[-3000:]}\n{stdout[-1000:]}")
    return seconds, usage.ru_maxrss, stdout


def version_of(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    except OSError:
        return "missing"
    text = (p.stdout or p.stderr).strip()
    return text.splitlines()[0] if text else "?"


# ---------------------------------------------------------------------------------------------------
# image and tarball facts
# ---------------------------------------------------------------------------------------------------

def blob(layout: Path, digest: str) -> Path:
    alg, _, hexd = digest.partition(":")
    return layout / "blobs" / alg / hexd


def manifest_of(layout: Path, tag: str) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    for m in index["manifests"]:
        if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag:
            result: dict[str, Any] = json.loads(blob(layout, m["digest"]).read_bytes())
            result["_digest"] = m["digest"]
            return result
    raise SystemExit(f"debian_base: tag {tag} not in {layout}")


def tar_facts(paths: Iterable[Path]) -> dict[str, Any]:
    """One streaming pass over (possibly gzipped) tars, applied in order like image layers: regular files,
    uncompressed tar bytes, packages recorded by dpkg (var/lib/dpkg/status or ocibuild's status.d) and
    top-level entries of /usr/share/doc (one per package, also when dpkg keeps no database)."""
    files: set[str] = set()
    docs: set[str] = set()
    status_d: set[str] = set()
    status_packages = 0
    tar_bytes = 0
    for path in paths:
        with path.open("rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else path.open("rb")) as f:
            with tarfile.open(fileobj=f, mode="r|") as tf:
                for member in tf:
                    name = member.name.removeprefix("./").rstrip("/")
                    if member.isfile():
                        files.add(name)
                    parts = name.split("/")
                    if parts[:3] == ["usr", "share", "doc"] and len(parts) >= 4:
                        docs.add(parts[3])
                    if parts[:4] == ["var", "lib", "dpkg", "status.d"] and len(parts) == 5 \
                            and not parts[4].endswith(".md5sums"):
                        status_d.add(parts[4])
                    if name == "var/lib/dpkg/status" and member.isfile():
                        data = tf.extractfile(member)
                        text = data.read().decode(errors="replace") if data else ""
                        status_packages = sum(1 for line in text.splitlines() if line.startswith("Package:"))
            # tar bytes = the decompressed stream length (reading on to the end past tar's trailer)
            while f.read(1 << 20):
                pass
            tar_bytes += f.tell()
    return {"files": len(files), "uncompressed_bytes": tar_bytes,
            "dpkg_packages": status_packages or len(status_d) or None, "usr_share_doc_entries": len(docs)}


def store_snapshot(store: Path) -> dict[str, int]:
    return {str(p.relative_to(store)): p.stat().st_size for p in store.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------------------------------
# contenders
# ---------------------------------------------------------------------------------------------------

def ocibuild_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This checkout's ocibuild (PYTHONPATH), no inherited cache location or proxy exceptions."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OCIBUILD_CACHE", "NO_PROXY", "no_proxy", "OCIBUILD_DEBIAN_MIRROR")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


def ocibuild_base(layout: Path, tag: str, lock: Path, store: Path, log: Path,
                  extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    argv: list[str | os.PathLike[str]] = [
        sys.executable, "-m", "ocibuild", "base", "debian", "--suite", SUITE, "--packages", PACKAGES,
        "--platform", PLATFORM, "--output", f"oci:{layout}:{tag}", "--lock", lock, "--cache-dir", store, "-q"]
    seconds, rss_kb, stdout = run(argv, env=ocibuild_env(extra_env), log=log)
    return {"seconds": seconds, "peak_rss_mb": rss_kb / 1024, "digest": stdout.strip().splitlines()[-1]}


def mmdebstrap(variant: str, mirror: str, tmp: Path, log: Path) -> tuple[dict[str, Any], Path, Path]:
    tar = tmp / f"{variant}.tar"
    seconds, rss_kb, _ = run(["mmdebstrap", "--quiet", f"--variant={variant}", f"--include={PACKAGES}",
                              f"--architectures={ARCH}", SUITE, tar, mirror], log=log)
    gz = tmp / f"{variant}.tar.gz"
    gzip_s, _, _ = run(["gzip", "-1", "-n", "-c", tar], log=log, stdout_path=gz)
    facts = tar_facts([tar])
    return ({"seconds": seconds, "peak_rss_tree_mb": rss_kb / 1024, "gzip1_seconds": gzip_s,
             "with_gzip1_seconds": seconds + gzip_s, "tar_bytes": tar.stat().st_size,
             "gzip1_bytes": gz.stat().st_size, **facts}, tar, gz)


def check_image(tools: SimpleNamespace, layout: Path, tag: str, *, required: bool) -> dict[str, Any]:
    """Run SSL_CHECK (must print an OpenSSL version if ``required``) and CA_CHECK in the image."""
    p = tools.run_image(layout, tag, SSL_CHECK, timeout=300)
    line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    ok = p.returncode == 0 and line.startswith("OpenSSL ")
    if required and not ok:
        raise SystemExit(f"debian_base: {layout}:{tag} {SSL_CHECK} printed {p.stdout!r} (exit {p.returncode})\n"
                         f"{p.stderr[-3000:]}")
    c = tools.run_image(layout, tag, CA_CHECK, timeout=300)
    ca = c.stdout.strip().splitlines()[-1] if c.returncode == 0 and c.stdout.strip() else None
    return {"ssl_check_ok": ok, "openssl_version": line if ok else None,
            "ssl_check_error": None if ok else (p.stderr.strip()[-500:] or p.stdout.strip()[-500:]),
            "default_ca_certificates": int(ca) if ca and ca.isdigit() else None}


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


# ---------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="mmdebstrap variants (comma-separated)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (images, tarballs, logs)")
    args = ap.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    tools = load_test_tools()
    if tools.host_arch() != ARCH:
        raise SystemExit(f"debian_base: compares {ARCH} images; this host is {tools.host_arch()}")
    mirror = tools.apt_mirror()
    results: dict[str, Any] = {
        "command": " ".join(["python3 benchmarks/debian_base.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
                    "kernel": platform.release(),
                    "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)},
        "tools": {"mmdebstrap": version_of(["mmdebstrap", "--version"]), "gzip": version_of(["gzip", "--version"]),
                  "umoci": version_of(["umoci", "--version"]), "runc": version_of(["runc", "--version"])},
        "ocibuild_commit": version_of(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
        "suite": SUITE, "packages": PACKAGES, "platform": PLATFORM, "mirror": mirror,
    }
    td = tempfile.mkdtemp(prefix="ocibuild-bench-debian-", dir=os.environ.get("BENCH_TMP"))
    tmp = Path(td)
    try:
        log = tmp / "log.txt"
        # ---- ocibuild -------------------------------------------------------------------------------
        print("ocibuild: cold, warm (lock), offline check ...", file=sys.stderr)
        layout, lock, store = tmp / "ocibuild-image", tmp / "debian.lock", tmp / "ocibuild-store"
        cold = ocibuild_base(layout, "cold", lock, store, log)
        if not lock.is_file():
            raise SystemExit("debian_base: the cold run wrote no lock file")
        lock_text, before = lock.read_bytes(), store_snapshot(store)
        warm = ocibuild_base(layout, "warm", lock, store, log)
        after = store_snapshot(store)
        dead = {k: DEAD_PROXY for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
        offline = ocibuild_base(layout, "offline", lock, store, log, dead)
        warm_checks = {"same_digest": warm["digest"] == cold["digest"] == offline["digest"],
                       "store_unchanged": after == before and store_snapshot(store) == before,
                       "lock_unchanged": lock.read_bytes() == lock_text,
                       "offline_run_ok_seconds": offline["seconds"]}
        if not all(v for k, v in warm_checks.items() if k != "offline_run_ok_seconds"):
            raise SystemExit(f"debian_base: the warm run with an unchanged lock rebuilt something: {warm_checks}")
        m = manifest_of(layout, "cold")
        layer_paths = [blob(layout, x["digest"]) for x in m["layers"]]
        facts = tar_facts(layer_paths)
        locked = sum(1 for line in lock.read_text().splitlines() if line.strip().startswith("[[arch."))
        image = {"digest": m["_digest"], "layers": len(m["layers"]), "layer_media_types": sorted(
                     {x["mediaType"] for x in m["layers"]}),
                 "compressed_bytes": sum(int(x["size"]) for x in m["layers"]),
                 "layer_compressed_bytes": [int(x["size"]) for x in m["layers"]],
                 "store_bytes": sum(before.values()), "locked_packages": locked, **facts}
        print("ocibuild: running the image ...", file=sys.stderr)
        o_run = check_image(tools, layout, "cold", required=True)
        results["ocibuild"] = {"cold": cold, "warm": warm, "warm_checks": warm_checks, "image": image, "run": o_run}

        # ---- mmdebstrap -----------------------------------------------------------------------------
        mm: dict[str, Any] = {}
        for variant in variants:
            print(f"mmdebstrap --variant={variant} ...", file=sys.stderr)
            row, tar, gz = mmdebstrap(variant, mirror, tmp, log)
            tar.unlink()
            mlayout = tmp / f"{variant}-image"
            tools.layout_from_rootfs_tar(gz, mlayout, variant, arch=ARCH)  # the gzip -1 blob as the one layer
            row["run"] = check_image(tools, mlayout, variant, required=False)
            if not args.keep:
                shutil.rmtree(mlayout)
                gz.unlink()
            row["ratios_mmdebstrap_over_ocibuild"] = {
                "time_vs_cold": ratio(row["seconds"], cold["seconds"]),
                "time_with_gzip1_vs_cold": ratio(row["with_gzip1_seconds"], cold["seconds"]),
                "time_vs_warm": ratio(row["seconds"], warm["seconds"]),
                "time_with_gzip1_vs_warm": ratio(row["with_gzip1_seconds"], warm["seconds"]),
                "gzip1_bytes_vs_compressed": ratio(row["gzip1_bytes"], image["compressed_bytes"]),
                "tar_bytes_vs_uncompressed": ratio(row["tar_bytes"], image["uncompressed_bytes"]),
            }
            mm[variant] = row
        results["mmdebstrap"] = mm
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    write_reports(results, args.out)
    return 0


def write_reports(r: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "debian_base.json").write_text(json.dumps(r, indent=2) + "\n")
    o, mm, mb = r["ocibuild"], r["mmdebstrap"], 1e6
    oi, wc = o["image"], o["warm_checks"]
    lines = [
        f"# Debian base image: ocibuild vs mmdebstrap ({r['date']})", "",
        f"Command: `{r['command']}` (ocibuild at {r['ocibuild_commit']})  ", f"Machine: {r['machine']}  ",
        f"Tools: {r['tools']}  ",
        f"Input: Debian {r['suite']}, packages `{r['packages']}`, {r['platform']}, mirror {r['mirror']}", "",
        f"ocibuild: `ocibuild base debian --suite {r['suite']} --packages {r['packages']} --platform {r['platform']} "
        "--output oci:DIR:TAG --lock LOCK --cache-dir STORE` (cold = empty store, no lock file yet: indexes fetched "
        "and verified, packages resolved, downloaded, unpacked, layers gzip -1 compressed, OCI layout written; warm "
        "= same store and the lock the cold run wrote). mmdebstrap: `mmdebstrap --variant=V "
        f"--include={r['packages']} --architectures=amd64 {r['suite']} OUT.tar MIRROR` as root (downloads every "
        "run); its output is an uncompressed tarball, so `gzip -1 -n` of it is timed separately and added in "
        "the \"+ gzip -1\" column (ocibuild's layers are gzip level 1 too).", "",
        "| contender | seconds | + gzip -1 s | ratio vs ocibuild cold | with gzip -1 | with gzip -1 vs ocibuild warm | "
        "peak RSS MB |", "|---|---|---|---|---|---|---|",
        f"| ocibuild cold | {o['cold']['seconds']:.2f} | (included) | 1.00x | 1.00x | | "
        f"{o['cold']['peak_rss_mb']:.0f} |",
        f"| ocibuild warm (unchanged lock) | {o['warm']['seconds']:.2f} | (included) | | | 1.00x | "
        f"{o['warm']['peak_rss_mb']:.0f} |"]
    for v, x in mm.items():
        q = x["ratios_mmdebstrap_over_ocibuild"]
        lines.append(f"| mmdebstrap --variant={v} | {x['seconds']:.2f} | {x['gzip1_seconds']:.2f} | "
                     f"{q['time_vs_cold']:.1f}x | {q['time_with_gzip1_vs_cold']:.1f}x | "
                     f"{q['time_with_gzip1_vs_warm']:.0f}x | {x['peak_rss_tree_mb']:.0f} (tree) |")
    lines += [
        "", "Ratios are mmdebstrap / ocibuild: above 1 means ocibuild is faster (or smaller). mmdebstrap has no "
        "warm mode (every run downloads and installs again); the warm column compares its run with gzip -1 "
        "against ocibuild's warm rebuild.", "",
        "| image | packages | files | compressed MB | uncompressed MB | ratio compressed | ratio uncompressed | "
        "OpenSSL CA certs loaded |", "|---|---|---|---|---|---|---|---|",
        f"| ocibuild ({oi['layers']} layers) | {oi['locked_packages']} | {oi['files']} | "
        f"{oi['compressed_bytes'] / mb:.1f} | {oi['uncompressed_bytes'] / mb:.1f} | 1.00x | 1.00x | "
        f"{o['run']['default_ca_certificates']} |"]
    for v, x in mm.items():
        q = x["ratios_mmdebstrap_over_ocibuild"]
        pk = x["dpkg_packages"] if x["dpkg_packages"] else f"~{x['usr_share_doc_entries']} (no dpkg database)"
        lines.append(f"| mmdebstrap {v} (tar, gzip -1) | {pk} | {x['files']} | {x['gzip1_bytes'] / mb:.1f} | "
                     f"{x['tar_bytes'] / mb:.1f} | {q['gzip1_bytes_vs_compressed']:.2f}x | "
                     f"{q['tar_bytes_vs_uncompressed']:.2f}x | {x['run']['default_ca_certificates']} |")
    runs = [f"ocibuild: `{o['run']['openssl_version']}`"]
    for v, x in mm.items():
        runs.append(f"mmdebstrap {v}: " + (f"`{x['run']['openssl_version']}`" if x["run"]["ssl_check_ok"]
                                           else f"failed ({x['run']['ssl_check_error']})"))
    lines += [
        "", f"Uncompressed = the layer tars (ocibuild: sum of its {oi['layers']} diffs) or mmdebstrap's tarball. "
        "Packages: ocibuild's lock; mmdebstrap's dpkg database (extract keeps none: entries in /usr/share/doc).", "",
        f"Warm run with the unchanged lock: same manifest digest {'yes' if wc['same_digest'] else 'no'}, content "
        f"store unchanged {'yes' if wc['store_unchanged'] else 'no'}, lock unchanged "
        f"{'yes' if wc['lock_unchanged'] else 'no'}; the same run with every HTTP request sent to a dead proxy "
        f"also succeeded ({wc['offline_run_ok_seconds']:.2f} s) with the same digest: no index or package was "
        "fetched and no layer rebuilt.", "",
        f"Images run with umoci + runc, `{' '.join(SSL_CHECK[:2])} \"{SSL_CHECK[2]}\"`: " + "; ".join(runs) + ".", "",
        "Notes: ocibuild runs no maintainer script and drops man pages, locales and docs (except copyright "
        "files) by default; mmdebstrap minbase/essential run dpkg with every maintainer script and keep docs, "
        "man pages and locales, and include the Essential set (bash, coreutils, dpkg, perl-base, ...; minbase "
        "also apt). mmdebstrap's extract variant unpacks only the requested packages and their dependencies "
        "without running anything, like ocibuild, but then has no CA bundle "
        "(update-ca-certificates never ran), no /etc/passwd and no dpkg database; ocibuild generates those.",
    ]
    (out / "debian_base.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
