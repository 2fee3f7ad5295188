"""Python dependency image benchmark: the numpy + scikit-learn app (tests/data/sklearn-app) built on the
same Debian bookworm python3 base by ocibuild and by `buildah build` (Dockerfile with `RUN pip install`),
in the same run:

1. base: Debian bookworm minbase + python3, python3-venv, python3-pip, ca-certificates (mmdebstrap), made
   once and cached as an OCI layout under $OCIBUILD_BENCH_CACHE (default /var/cache/ocibuild-bench);
2. ocibuild: cold build (empty content store, empty uv cache), then warm builds, each after a one-line
   edit of app.py (median of --repeat), then a no-op rebuild; wall seconds and the peak RSS of the
   ocibuild process (and of uv);
3. buildah: `buildah build --layers --isolation chroot` (storage in a temp dir, base pulled into it
   first, untimed) cold, after the same edits, and no-op, each followed by `buildah push` to an OCI
   layout (timed separately: ocibuild's build already ends with the OCI layout written);
4. both images are run with umoci + runc and must print the same line;
5. image sizes: sum of the compressed layer sizes in each manifest.

    python3 benchmarks/python_deps.py [--out benchmarks/results] [--repeat 3] [--driver overlay|vfs] [--keep]

Writes results/python_deps.json and results/python_deps.md. Needs mmdebstrap, buildah, umoci, runc, uv and
network access to a Debian mirror (base, once) and to PyPI (both contenders download the wheels, every cold
run). Ratios are buildah / ocibuild: above 1 means ocibuild is faster or smaller. Nothing is asserted about
timing; the run fails only if a build fails or the two images do not print the same line.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "tests" / "data" / "sklearn-app"
BASE_TAG = "bookworm-py"
BASE_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
BASE_VERSION = "v1"  # bump when the base recipe changes
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
EXPECTED = "prediction: 1 proba: 0.997"
DEBIAN_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# the one-line edit before each warm build (the docstring's first line; output unchanged)
EDIT_FROM = '"""Trains a tiny classifier'

DOCKERFILE = f"""\
FROM {{base}}
ARG PIP_CERT
ARG PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
COPY requirements.txt /app/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir -r /app/requirements.txt
COPY app.py /app/app.py
ENV VIRTUAL_ENV=/opt/venv {DEBIAN_PATH.replace("PATH=", "PATH=/opt/venv/bin:")}
ENTRYPOINT ["python", "/app/app.py"]
"""

# ocibuild run in a fresh process: wall time is measured outside, peak RSS of the ocibuild process itself
# (RUSAGE_SELF) and of its children (uv) inside
CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from ocibuild.cli import main
code = main(sys.argv[3:])
with open(sys.argv[2], "w") as f:
    json.dump({"self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               "children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, f)
sys.exit(code)
"""


def load_test_tools() -> SimpleNamespace:
    """The tests/harness helpers used here (base images, layouts, run_image), as one namespace."""
    if str(REPO / "tests") not in sys.path:
        sys.path.insert(0, str(REPO / "tests"))
    from harness import bases, layout, runtime

    return SimpleNamespace(DEBIAN_SUITE=bases.DEBIAN_SUITE, apt_mirror=bases.apt_mirror,
                           layout_from_rootfs_tar=bases.layout_from_rootfs_tar, image_config=layout.image_config,
                           layout_index_of=layout.layout_index_of, host_arch=runtime.host_arch,
                           ensure_binfmt=runtime.ensure_binfmt, run_image=runtime.run_image)


# ---------------------------------------------------------------------------------------------------
# running commands
# ---------------------------------------------------------------------------------------------------

def run(cmd: Sequence[str | os.PathLike[str]], *, log: Path, env: dict[str, str] | None = None,
        cwd: Path | None = None, stdout_to_log: bool = False) -> tuple[float, int, str]:
    """Run a command to completion; returns (wall seconds, peak RSS in KiB of its process tree as wait4
    reports it, stdout). stderr (and stdout if ``stdout_to_log``) is appended to ``log``; a failure raises
    SystemExit with the log's tail."""
    argv = [os.fspath(c) for c in cmd]
    if shutil.which(argv[0]) is None:
        raise SystemExit(f"python_deps: required tool not found on PATH: {argv[0]}")
    with log.open("ab") as err:
        err.write(f"\n$ {' '.join(argv)}\n".encode())
    with tempfile.TemporaryFile() as out, log.open("ab") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err if stdout_to_log else out, stderr=err,
                                env=env, cwd=cwd)
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # rusage of the child and all it waited for
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"python_deps: failed (exit {proc.returncode}): {' '.join(argv)}\n"
                         f"{log.read_text(errors='replace')[-3000:]}\n{stdout[-1000:]}")
    return seconds, usage.ru_maxrss, stdout


def version_of(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    except OSError:
        return "missing"
    return (p.stdout or p.stderr).strip().splitlines()[0] if (p.stdout or p.stderr).strip() else "?"


# ---------------------------------------------------------------------------------------------------
# 1. the base image (cached)
# ---------------------------------------------------------------------------------------------------

def bench_cache() -> Path:
    p = Path(os.environ.get("OCIBUILD_BENCH_CACHE", "/var/cache/ocibuild-bench"))
    p.mkdir(parents=True, exist_ok=True)
    return p


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    with path.open("a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def base_layout(tools: SimpleNamespace, arch: str) -> tuple[Path, float | None]:
    """The cached base layout (tag bookworm-py); returns (layout, seconds it took to make it now or None)."""
    cache = bench_cache()
    final = cache / f"bookworm-py-venv-pip-{arch}-{BASE_VERSION}"
    if (final / "index.json").is_file():
        return final, None
    with file_lock(cache / f"{final.name}.lock"):
        if (final / "index.json").is_file():
            return final, None
        start = time.perf_counter()
        tmp = cache / f"{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            tar = tmp / "rootfs.tar"
            print(f"making the base image with mmdebstrap ({BASE_PACKAGES}) ...", file=sys.stderr)
            run(["mmdebstrap", f"--arch={arch}", "--variant=minbase", f"--include={BASE_PACKAGES}",
                 "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
                 "--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata",
                 "--dpkgopt=path-exclude=/usr/share/man/*",
                 "--dpkgopt=path-exclude=/usr/share/locale/*",
                 "--dpkgopt=path-include=/usr/share/locale/locale.alias",
                 "--dpkgopt=path-exclude=/usr/share/doc/*",
                 "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                 tools.DEBIAN_SUITE, tar, tools.apt_mirror()],
                env={**os.environ, "SOURCE_DATE_EPOCH": "0"}, log=tmp / "mmdebstrap.log")
            layout = tmp / "layout"
            tools.layout_from_rootfs_tar(tar, layout, BASE_TAG, arch=arch, env=[DEBIAN_PATH], cmd=["python3"])
            layout.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------
# image facts
# ---------------------------------------------------------------------------------------------------

def manifest_of(layout: Path, tag: str) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    for m in index["manifests"]:
        if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag:
            alg, _, hexd = m["digest"].partition(":")
            result: dict[str, Any] = json.loads((layout / "blobs" / alg / hexd).read_bytes())
            result["_digest"] = m["digest"]
            return result
    raise SystemExit(f"python_deps: tag {tag} not in {layout}")


def amd64_base(tools: SimpleNamespace) -> tuple[Path, dict[str, Any]]:
    """The cached amd64 base layout (made with mmdebstrap on the first run) and what a report says of it."""
    print("base images (cached; made with mmdebstrap on the first run) ...", file=sys.stderr)
    base, made = base_layout(tools, "amd64")
    return base, {"amd64": str(base), "packages": BASE_PACKAGES, "made_now_seconds": made,
                  "digest_amd64": manifest_of(base, BASE_TAG)["_digest"]}


def image_facts(layout: Path, tag: str, base_layers: int) -> dict[str, Any]:
    m = manifest_of(layout, tag)
    sizes = [int(layer["size"]) for layer in m["layers"]]
    return {"digest": m["_digest"], "layers": len(sizes), "compressed_bytes": sum(sizes),
            "added_layers": len(sizes) - base_layers, "added_compressed_bytes": sum(sizes[base_layers:])}


# ---------------------------------------------------------------------------------------------------
# 2. ocibuild
# ---------------------------------------------------------------------------------------------------

def ocibuild_env(tmp: Path) -> dict[str, str]:
    """The caller's environment with a fresh XDG cache (so uv's metadata cache starts empty too) and without
    the machine's local wheel folders / indexes: both contenders install from PyPI alone."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("UV_") and k not in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
                                                    "PIP_NO_INDEX", "OCIBUILD_CACHE")}
    env["XDG_CACHE_HOME"] = str(tmp / "xdg-cache")
    return env


def ocibuild_build(project: Path, base: Path, out: Path, tag: str, store: Path, env: dict[str, str],
                   log: Path) -> dict[str, Any]:
    rss_file = out.parent / f"rss-{tag}.json"
    argv = [sys.executable, "-c", CHILD, str(REPO), str(rss_file), "build", str(project),
            "--base", f"oci:{base}:{BASE_TAG}", "--output", f"oci:{out}:{tag}", "--cache-dir", str(store),
            "--json"]
    seconds, _, stdout = run(argv, env=env, log=log)
    result = json.loads(stdout)
    rss = json.loads(rss_file.read_text())
    layers = result.get("layers") or []
    return {"seconds": seconds, "peak_rss_mb": rss["self_kb"] / 1024, "uv_peak_rss_mb": rss["children_kb"] / 1024,
            "layers_cached": sum(1 for x in layers if x.get("cached")), "layers_total": len(layers),
            "python": result.get("python")}


# ---------------------------------------------------------------------------------------------------
# 3. buildah
# ---------------------------------------------------------------------------------------------------

def buildah_env(state: Path, driver: str) -> tuple[dict[str, str], Path]:
    """containers.conf / storage.conf / registries.conf / policy.json under ``state`` (nothing in /etc is
    read for storage or touched). This VM: no systemd, hybrid cgroup v1 (crun refuses it: runc), no
    CAP_SYS_RESOURCE (ulimits must stay at 1024)."""
    cfg = state / "cfg"
    cfg.mkdir(parents=True)
    (state / "tmp").mkdir()
    (cfg / "containers.conf").write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{state / "events.log"}"\n'
        'runtime = "runc"\n'
        f'tmp_dir = "{state / "tmp"}"\n')
    storage = f'[storage]\ndriver = "{driver}"\ngraphroot = "{state / "root"}"\nrunroot = "{state / "run"}"\n'
    if driver == "overlay":
        storage += '[storage.options.overlay]\nmountopt = "nodev"\n'
    (cfg / "storage.conf").write_text(storage)
    (cfg / "registries.conf").write_text('unqualified-search-registries = []\nshort-name-mode = "disabled"\n')
    policy = cfg / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "BUILDAH_"))}
    env.update(CONTAINERS_CONF=str(cfg / "containers.conf"), CONTAINERS_STORAGE_CONF=str(cfg / "storage.conf"),
               CONTAINERS_REGISTRIES_CONF=str(cfg / "registries.conf"), TMPDIR=str(state / "tmp"))
    return env, policy


def buildah_build(ctx: Path, image: str, out: Path, tag: str, env: dict[str, str], policy: Path,
                  log: Path) -> dict[str, Any]:
    build_s, rss_kb, _ = run(
        ["buildah", "build", "--signature-policy", policy, "--isolation", "chroot", "--layers",
         "-v", f"{HOST_CA}:/run/host-ca.crt:ro", "--build-arg", "PIP_CERT=/run/host-ca.crt",
         "-t", image, "-f", ctx / "Dockerfile", ctx], env=env, log=log, stdout_to_log=True)
    push_s, _, _ = run(["buildah", "push", "--signature-policy", policy, "--quiet", image, f"oci:{out}:{tag}"],
                       env=env, log=log)
    return {"seconds": build_s, "push_seconds": push_s, "build_and_push_seconds": build_s + push_s,
            "peak_rss_tree_mb": rss_kb / 1024}


# ---------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------

def edit_app(project: Path, n: int) -> None:
    """Edit n: one line of app.py differs from the original and from edit n - 1."""
    original = (APP / "app.py").read_text()
    if EDIT_FROM not in original:
        raise SystemExit(f"python_deps: {APP / 'app.py'} no longer contains {EDIT_FROM!r}; update EDIT_FROM")
    (project / "app.py").write_text(original.replace(EDIT_FROM, f'"""(edit {n}) Trains a tiny classifier', 1))


def median_run(runs: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """One run with each of ``keys`` replaced by its median over all runs (peak RSS: the max), plus the runs."""
    summary = dict(runs[len(runs) // 2])
    for key in keys:
        summary[key] = statistics.median(float(r[key]) for r in runs)
        summary[f"{key}_runs"] = [r[key] for r in runs]
    for key in ("peak_rss_mb", "uv_peak_rss_mb", "peak_rss_tree_mb"):
        if key in summary:
            summary[key] = max(float(r[key]) for r in runs)
    summary["runs"] = len(runs)
    return summary


# runs the image's own entrypoint + cmd twice and reports how long each took: the first start compiles
# every imported module's .pyc when the image has none (ocibuild writes no .pyc yet; pip does)
TIMED_TWICE = ('a=$(date +%s%N); "$@" || exit $?; b=$(date +%s%N); "$@" >/dev/null || exit $?; '
               'c=$(date +%s%N); echo "startup-ns $((b - a)) $((c - b))" >&2')


def verify(tools: SimpleNamespace, layout: Path, tag: str) -> dict[str, Any]:
    cfg = tools.image_config(layout, tag).get("config") or {}
    argv = [*(cfg.get("Entrypoint") or []), *(cfg.get("Cmd") or [])]
    start = time.perf_counter()
    p = tools.run_image(layout, tag, ["/bin/sh", "-c", TIMED_TWICE, "sh", *argv], timeout=300)
    seconds = time.perf_counter() - start
    line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    if p.returncode != 0 or line != EXPECTED:
        raise SystemExit(f"python_deps: {layout}:{tag} printed {p.stdout!r} (exit {p.returncode}), expected "
                         f"{EXPECTED!r}\n{p.stderr[-3000:]}")
    first_ns, second_ns = (int(x) for x in p.stderr.split("startup-ns ")[-1].split()[:2])
    return {"output": line, "entrypoint": argv, "unpack_and_run_seconds": seconds,
            "first_run_seconds": first_ns / 1e9, "second_run_seconds": second_ns / 1e9}


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--driver", choices=("overlay", "vfs"), default="overlay", help="buildah storage driver")
    ap.add_argument("--repeat", type=int, default=3, help="warm builds (one edit each); the median is reported")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (images, stores, logs)")
    args = ap.parse_args()
    tools = load_test_tools()
    arch = tools.host_arch()
    results: dict[str, Any] = {
        "command": " ".join(["python3 benchmarks/python_deps.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
                    "kernel": platform.release(),
                    "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)},
        "tools": {"buildah": version_of(["buildah", "--version"]), "uv": version_of(["uv", "--version"]),
                  "umoci": version_of(["umoci", "--version"]), "runc": version_of(["runc", "--version"]),
                  "mmdebstrap": version_of(["mmdebstrap", "--version"])},
        "app": "tests/data/sklearn-app (" + ", ".join((APP / "requirements.txt").read_text().split()) + ")",
        "buildah_storage_driver": args.driver,
        "ocibuild_commit": version_of(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
    }
    base, base_seconds = base_layout(tools, arch)
    base_manifest = manifest_of(base, BASE_TAG)
    base_layers = len(base_manifest["layers"])
    results["base"] = {"layout": str(base), "packages": BASE_PACKAGES, "digest": base_manifest["_digest"],
                       "compressed_bytes": sum(int(x["size"]) for x in base_manifest["layers"]),
                       "made_now_seconds": base_seconds}

    # lowercase hex only: buildah turns the layout path into an image name, and mkdtemp's "_" can make it invalid
    root = Path(os.environ.get("BENCH_TMP") or tempfile.gettempdir())
    td = str(root / f"ocibuild-bench-pydeps-{uuid.uuid4().hex[:12]}")
    Path(td).mkdir(parents=True)
    tmp = Path(td)
    try:
        log = tmp / "log.txt"
        # ---- ocibuild -------------------------------------------------------------------------------
        print("ocibuild: cold, warm (edit), no-op ...", file=sys.stderr)
        proj = tmp / "ocibuild-app"
        shutil.copytree(APP, proj)
        oenv = ocibuild_env(tmp)
        oout, store = tmp / "ocibuild-image", tmp / "ocibuild-store"
        o_cold = ocibuild_build(proj, base, oout, "cold", store, oenv, log)
        o_runs = []
        for n in range(1, args.repeat + 1):
            edit_app(proj, n)
            o_runs.append(ocibuild_build(proj, base, oout, "warm" if n == args.repeat else f"warm{n}", store, oenv,
                                         log))
        o_warm = median_run(o_runs, ("seconds",))
        o_noop = ocibuild_build(proj, base, oout, "noop", store, oenv, log)

        # ---- buildah --------------------------------------------------------------------------------
        print("buildah: pull base, cold, warm (edit), no-op ...", file=sys.stderr)
        benv, policy = buildah_env(tmp / "buildah", args.driver)
        pull_s, _, _ = run(["buildah", "pull", "--signature-policy", policy, "--quiet", f"oci:{base}:{BASE_TAG}"],
                           env=benv, log=log)
        ctx = tmp / "buildah-app"
        ctx.mkdir()
        for name in ("requirements.txt", "app.py"):
            shutil.copy2(APP / name, ctx / name)
        (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=f"oci:{base}:{BASE_TAG}"))
        bout = tmp / "buildah-image"
        b_cold = buildah_build(ctx, "localhost/bench-app:cold", bout, "cold", benv, policy, log)
        b_runs = []
        for n in range(1, args.repeat + 1):
            edit_app(ctx, n)
            tag = "warm" if n == args.repeat else f"warm{n}"
            b_runs.append(buildah_build(ctx, f"localhost/bench-app:{tag}", bout, tag, benv, policy, log))
        b_warm = median_run(b_runs, ("seconds", "push_seconds", "build_and_push_seconds"))
        b_noop = buildah_build(ctx, "localhost/bench-app:noop", bout, "noop", benv, policy, log)

        # ---- verify ---------------------------------------------------------------------------------
        print("verifying both images with umoci + runc ...", file=sys.stderr)
        o_run = verify(tools, oout, "warm")
        b_run = verify(tools, bout, "warm")
        o_img = image_facts(oout, "warm", base_layers)
        b_img = image_facts(bout, "warm", base_layers)
        o_same = manifest_of(oout, "noop")["_digest"] == manifest_of(oout, "warm")["_digest"]
        b_same = manifest_of(bout, "noop")["_digest"] == manifest_of(bout, "warm")["_digest"]
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
    finally:
        if not args.keep:
            # buildah's overlay storage may hold mounts: let buildah remove what it made first
            if (tmp / "buildah" / "cfg").is_dir():
                subprocess.run(["buildah", "rm", "--all"], env=buildah_env_existing(tmp / "buildah"),
                               capture_output=True, check=False)
                subprocess.run(["buildah", "rmi", "--all", "--force"], env=buildah_env_existing(tmp / "buildah"),
                               capture_output=True, check=False)
            shutil.rmtree(tmp, ignore_errors=True)

    results["ocibuild"] = {"cold": o_cold, "warm_edit": o_warm, "noop": o_noop, "image": o_img, "run": o_run,
                           "noop_same_digest": o_same}
    results["buildah"] = {"pull_base_seconds": pull_s, "cold": b_cold, "warm_edit": b_warm, "noop": b_noop,
                          "image": b_img, "run": b_run, "noop_same_digest": b_same}
    results["ratios_buildah_over_ocibuild"] = {
        "cold_build": ratio(b_cold["seconds"], o_cold["seconds"]),
        "cold_build_and_push": ratio(b_cold["build_and_push_seconds"], o_cold["seconds"]),
        "warm_build": ratio(b_warm["seconds"], o_warm["seconds"]),
        "warm_build_and_push": ratio(b_warm["build_and_push_seconds"], o_warm["seconds"]),
        "noop_build_and_push": ratio(b_noop["build_and_push_seconds"], o_noop["seconds"]),
        "image_compressed_bytes": ratio(b_img["compressed_bytes"], o_img["compressed_bytes"]),
        "added_compressed_bytes": ratio(b_img["added_compressed_bytes"], o_img["added_compressed_bytes"]),
    }
    write_reports(results, args.out)
    return 0


def buildah_env_existing(state: Path) -> dict[str, str]:
    cfg = state / "cfg"
    return {**os.environ, "CONTAINERS_CONF": str(cfg / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(cfg / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(cfg / "registries.conf")}


def write_reports(r: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "python_deps.json").write_text(json.dumps(r, indent=2) + "\n")
    o, b, q = r["ocibuild"], r["buildah"], r["ratios_buildah_over_ocibuild"]
    mb = 1e6
    lines = [
        f"# Python dependency image: ocibuild vs buildah ({r['date']})", "",
        f"Command: `{r['command']}` (ocibuild at {r['ocibuild_commit']})  ", f"Machine: {r['machine']}  ",
        f"Tools: {r['tools']}  ",
        f"App: {r['app']}, on the same base `{r['base']['digest'][:19]}...` "
        f"({r['base']['packages']}, {r['base']['compressed_bytes'] / mb:.1f} MB compressed)", "",
        "ocibuild: `ocibuild build APP --base oci:BASE --output oci:DIR:TAG --cache-dir STORE` (cold = empty store "
        "and empty uv cache; the time includes reading the base and writing the OCI layout). buildah: "
        f"`buildah build --layers --isolation chroot` ({r['buildah_storage_driver']} storage in a temp dir, base "
        f"pulled into it beforehand in {b['pull_base_seconds']:.1f} s, untimed; cold = empty layer cache), Dockerfile "
        "`RUN python3 -m venv` / `COPY requirements.txt` / `RUN pip install --no-cache-dir` / `COPY app.py`, then "
        "`buildah push IMAGE oci:DIR:TAG`. Warm = after a one-line edit of app.py. Both download the wheels from "
        "PyPI on the cold build.", "",
        "| build | ocibuild s | buildah build s | buildah push s | buildah build+push s | "
        "ratio build | ratio build+push |", "|---|---|---|---|---|---|---|"]
    warm_label = f"warm (one-line edit; median of {o['warm_edit']['runs']})"
    for label, key in (("cold", "cold"), (warm_label, "warm_edit"), ("no-op", "noop")):
        ox, bx = o[key], b[key]
        lines.append(f"| {label} | {ox['seconds']:.2f} | {bx['seconds']:.2f} | {bx['push_seconds']:.2f} | "
                     f"{bx['build_and_push_seconds']:.2f} | {bx['seconds'] / ox['seconds']:.1f}x | "
                     f"{bx['build_and_push_seconds'] / ox['seconds']:.1f}x |")
    oi, bi = o["image"], b["image"]
    lines += [
        "", "Ratios are buildah / ocibuild: above 1 means ocibuild is faster (or smaller).", "",
        "| image | layers | compressed MB (all layers) | added on top of the base: layers | MB |",
        "|---|---|---|---|---|",
        f"| ocibuild | {oi['layers']} | {oi['compressed_bytes'] / mb:.1f} | {oi['added_layers']} | "
        f"{oi['added_compressed_bytes'] / mb:.1f} |",
        f"| buildah | {bi['layers']} | {bi['compressed_bytes'] / mb:.1f} | {bi['added_layers']} | "
        f"{bi['added_compressed_bytes'] / mb:.1f} |",
        f"| ratio | | {q['image_compressed_bytes']:.2f}x | | {q['added_compressed_bytes']:.2f}x |", "",
        "| peak memory (ru_maxrss) | cold | warm (max) | no-op |", "|---|---|---|---|",
        f"| ocibuild process | {o['cold']['peak_rss_mb']:.0f} MB | {o['warm_edit']['peak_rss_mb']:.0f} MB | "
        f"{o['noop']['peak_rss_mb']:.0f} MB |",
        f"| uv (its child) | {o['cold']['uv_peak_rss_mb']:.0f} MB | {o['warm_edit']['uv_peak_rss_mb']:.0f} MB | "
        f"{o['noop']['uv_peak_rss_mb']:.0f} MB |",
        f"| buildah build, whole process tree (pip included) | {b['cold']['peak_rss_tree_mb']:.0f} MB | "
        f"{b['warm_edit']['peak_rss_tree_mb']:.0f} MB | {b['noop']['peak_rss_tree_mb']:.0f} MB |", "",
        "| app start in the container (runc) | ocibuild s | buildah s |", "|---|---|---|",
        f"| first run | {o['run']['first_run_seconds']:.2f} | {b['run']['first_run_seconds']:.2f} |",
        f"| second run (same rootfs) | {o['run']['second_run_seconds']:.2f} | {b['run']['second_run_seconds']:.2f} |",
        "",
        f"Both images, run with umoci + runc (their own entrypoint), print `{o['run']['output']}`. "
        f"Layers reused from the store: warm {o['warm_edit']['layers_cached']}/{o['warm_edit']['layers_total']}, "
        f"no-op {o['noop']['layers_cached']}/{o['noop']['layers_total']}. No-op rebuild gives the same digest: "
        f"ocibuild {'yes' if o['noop_same_digest'] else 'no'}, buildah {'yes' if b['noop_same_digest'] else 'no'}.",
        "",
        "Notes: buildah's build ends in containers-storage (uncompressed layers); `buildah push` compresses every "
        "layer again, the base included, on each push, which is why its warm build+push is dominated by the push. "
        "ocibuild's build already ends with the OCI layout written. pip compiles .pyc files inside the image, "
        "ocibuild writes none (yet), so the first start of its image compiles them (first run above). "
        "buildah's venv also holds pip itself (python3 -m venv), ocibuild's venv has no pip.",
    ]
    (out / "python_deps.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
