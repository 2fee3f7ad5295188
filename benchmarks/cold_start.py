"""Cold start with and without bytecode (issue 11, item 3): the same app (examples/iris-server with pandas added
to its requirements: numpy 2.2.6, scipy 1.15.3, scikit-learn 1.6.1, pandas 2.2.3) as three images, side by
side in one run:

- ``ocibuild``: `ocibuild build` with the defaults (`[python] bytecode = true`: `.pyc` for every installed
  distribution, and the default Debian trixie base with the standard library's `.pyc`);
- ``ocibuild-nopyc``: the same with `bytecode = false` in `[python]` (the default base follows: no `.pyc` at all);
- ``pip``: `buildah build` (chroot isolation) of a Dockerfile `RUN python3 -m venv /opt/venv`, `RUN pip install
  -r requirements.txt` (exec form: the base has no shell; pip compiles `.pyc` as it installs) FROM a Debian trixie
  base made by `ocibuild base debian --packages python3,python3-venv,python3-pip,...` (its standard library
  compiled too), `USER 65532:65532`.

All three install the same wheels (a wheelhouse made once by `ocibuild fetch`, untimed), all run as uid 65532 over
root-owned files (nothing can write a `.pyc` at start, as in a real deployment), each is unpacked once (umoci raw
unpack) and started --starts times with runc in the host's network namespace, round robin over the images:

1. container start -> first HTTP answer of the iris server (GET /healthz, polled every 5 ms on a free port);
2. `python -c "import pandas"`, `python -c "import sklearn"` and `python -c pass` (the interpreter alone), wall
   time of `runc run` (container start -> exit);
   first start and median of all, ratios against the ``ocibuild`` image;
3. cold build cost: `ocibuild build` with an empty store and uv cache (wheels from the local wheelhouse, so the
   network does not drown the difference; .debs from the Debian mirror), bytecode on vs off, --builds times
   alternating; and `ocibuild base debian --suite trixie` vs `--no-bytecode` (empty store each);
4. image size: the sum of the compressed layer sizes, on vs off, and the base's Python runtime layer on vs off.

    python3 benchmarks/cold_start.py [--out benchmarks/results] [--starts 7] [--builds 2] [--driver overlay|vfs]
                                     [--keep]

Writes results/cold_start.json and results/cold_start.md. Needs buildah, umoci, runc, uv, a Debian mirror and
PyPI (the wheelhouse). ~6-8 minutes on 2 cores. Nothing is asserted about timing; the run fails only if a build
fails or an image does not answer / import.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import python_deps as pd  # noqa: E402  (buildah config, run() with wait4 rusage, manifests)
from e2e import machine, tool_versions  # noqa: E402

APP = REPO / "examples" / "iris-server"
# pandas 2.2.3 and its dependencies, pinned, added to the iris server's requirements (cp313 wheels exist for all)
EXTRA_PINS = ("pandas==2.2.3", "python-dateutil==2.9.0.post0", "pytz==2025.2", "tzdata==2025.2", "six==1.17.0")
SUITE = "trixie"
PLATFORM = "linux/amd64"
PIP_BASE_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates,libstdc++6,libgomp1"
NONROOT = 65532
IMAGES = ("ocibuild", "ocibuild-nopyc", "pip")
COMMANDS = {"import_pandas": ["python", "-c", "import pandas"],
            "import_sklearn": ["python", "-c", "import sklearn"],
            "python_pass": ["python", "-c", "pass"]}
LAYER_LINE = re.compile(r"^layer\s+(\S+)\s+built\s.*\s(\d+(?:\.\d+)?)s$")

DOCKERFILE = f"""\
FROM {{base}}
USER root
ARG PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /app/requirements.txt
RUN ["/usr/bin/python3", "-m", "venv", "/opt/venv"]
RUN ["/opt/venv/bin/pip", "install", "--no-cache-dir", "--no-index", "--find-links", "/wheels", \\
     "-r", "/app/requirements.txt"]
COPY model /app/model
COPY server.py /app/server.py
ENV VIRTUAL_ENV=/opt/venv {pd.DEBIAN_PATH.replace("PATH=", "PATH=/opt/venv/bin:")}
USER {NONROOT}:{NONROOT}
EXPOSE 8080
ENTRYPOINT ["python", "/app/server.py"]
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


# ---------------------------------------------------------------------------------------------------
# the app and its builds
# ---------------------------------------------------------------------------------------------------

def make_app(dest: Path, *, bytecode: bool) -> Path:
    """A copy of the iris server with pandas in its requirements and, if not ``bytecode``, `bytecode = false`."""
    shutil.copytree(APP, dest, ignore=shutil.ignore_patterns("__pycache__", ".gitignore"))
    req = dest / "requirements.txt"
    req.write_text(req.read_text().rstrip("\n") + "\n" + "\n".join(EXTRA_PINS) + "\n")
    if not bytecode:
        toml = dest / "ocibuild.toml"
        text = toml.read_text()
        if "\n[python]\n" not in text:
            raise SystemExit(f"cold_start: {APP / 'ocibuild.toml'} has no [python] table; update make_app")
        toml.write_text(text.replace("\n[python]\n", "\n[python]\nbytecode = false\n", 1))
    return dest


def ocibuild(argv: list[str], env: dict[str, str], log_path: Path) -> tuple[float, dict[str, float]]:
    """Run `python -m ocibuild ARGV`; returns (wall seconds, {layer label: seconds} from its progress lines)."""
    log_path.unlink(missing_ok=True)
    seconds, _, _ = pd.run([sys.executable, "-m", "ocibuild", *argv], env={**env, "PYTHONPATH": str(REPO)},
                           log=log_path)
    layers = {}
    for line in log_path.read_text(errors="replace").splitlines():
        m = LAYER_LINE.match(line.strip())
        if m:
            layers[m.group(1)] = float(m.group(2))
    return seconds, layers


def cold_app_build(tmp: Path, project: Path, wheels: Path, out: Path, name: str) -> dict[str, Any]:
    """`ocibuild build` with an empty store and an empty uv cache; wheels from the local wheelhouse."""
    work = tmp / f"build-{name}"
    work.mkdir()
    seconds, layers = ocibuild(["build", str(project), "--platform", PLATFORM, "--find-links", str(wheels),
                                "--no-index", "--output", f"oci:{out}:app", "--cache-dir", str(work / "store")],
                               pd.ocibuild_env(work), work / "log.txt")
    shutil.rmtree(work, ignore_errors=True)
    return {"seconds": seconds, "dependency_layers_seconds": sum(s for k, s in layers.items() if k.startswith("py:")),
            "layer_seconds": layers}


def cold_base_build(tmp: Path, out: Path, name: str, *, bytecode: bool) -> dict[str, Any]:
    """`ocibuild base debian --suite trixie` (default packages) with an empty store, [--no-bytecode]."""
    work = tmp / f"base-{name}"
    work.mkdir()
    argv = ["base", "debian", "--suite", SUITE, "--platform", PLATFORM, "--output", f"oci:{out}:base",
            "--cache-dir", str(work / "store"), *([] if bytecode else ["--no-bytecode"])]
    seconds, _ = ocibuild(argv, pd.ocibuild_env(work), work / "log.txt")
    shutil.rmtree(work, ignore_errors=True)
    return {"seconds": seconds}


def buildah_image(tmp: Path, wheels: Path, out: Path, driver: str) -> dict[str, Any]:
    """The pip image: a trixie python3 + venv + pip base by `ocibuild base debian`, then `buildah build`."""
    base = tmp / "pip-base"
    base_s, _ = ocibuild(["base", "debian", "--suite", SUITE, "--platform", PLATFORM, "--packages", PIP_BASE_PACKAGES,
                          "--output", f"oci:{base}:py", "--cache-dir", str(tmp / "pip-base-store")],
                         pd.ocibuild_env(tmp / "pip-base-env"), tmp / "pip-base.log")
    ctx = make_app(tmp / "pip-ctx", bytecode=True)
    (ctx / "ocibuild.toml").unlink()
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=f"oci:{base}:py"))
    env, policy = pd.buildah_env(tmp / "buildah", driver)
    blog = tmp / "buildah.log"
    pull_s, _, _ = pd.run(["buildah", "pull", "--signature-policy", policy, "--quiet", f"oci:{base}:py"], env=env,
                          log=blog)
    build_s, _, _ = pd.run(["buildah", "build", "--signature-policy", policy, "--isolation", "chroot", "--layers",
                            "-v", f"{wheels}:/wheels:ro", "-t", "localhost/cold-start:pip", "-f", ctx / "Dockerfile",
                            ctx], env=env, log=blog, stdout_to_log=True)
    push_s, _, _ = pd.run(["buildah", "push", "--signature-policy", policy, "--quiet", "localhost/cold-start:pip",
                           f"oci:{out}:app"], env=env, log=blog)
    return {"base_seconds": base_s, "pull_seconds": pull_s, "build_seconds": build_s, "push_seconds": push_s,
            "base_packages": PIP_BASE_PACKAGES}


def buildah_cleanup(tmp: Path) -> None:
    if (tmp / "buildah" / "cfg").is_dir():
        env = pd.buildah_env_existing(tmp / "buildah")
        for args in (["rm", "--all"], ["rmi", "--all", "--force"]):
            subprocess.run(["buildah", *args], env=env, capture_output=True, check=False)


# ---------------------------------------------------------------------------------------------------
# image facts
# ---------------------------------------------------------------------------------------------------

def layers_with_history(layout: Path, tag: str) -> list[dict[str, Any]]:
    """[{size, created_by}] for each layer of LAYOUT:TAG (history entries that made a layer, in order)."""
    m = pd.manifest_of(layout, tag)
    alg, _, hexd = m["config"]["digest"].partition(":")
    cfg = json.loads((layout / "blobs" / alg / hexd).read_bytes())
    made = [h for h in cfg.get("history") or [] if not h.get("empty_layer")]
    return [{"size": int(layer["size"]), "created_by": made[i].get("created_by", "") if i < len(made) else ""}
            for i, layer in enumerate(m["layers"])]


def python_runtime_bytes(layout: Path, tag: str) -> int:
    found = [x["size"] for x in layers_with_history(layout, tag) if x["created_by"].endswith(": Python runtime")]
    if len(found) != 1:
        raise SystemExit(f"cold_start: {layout}:{tag} has {len(found)} 'Python runtime' layers, expected 1")
    return int(found[0])


def image_sizes(layout: Path, tag: str) -> dict[str, Any]:
    layers = layers_with_history(layout, tag)
    deps = [x["size"] for x in layers if x["created_by"].startswith("ocibuild: python ")]
    return {"compressed_bytes": sum(x["size"] for x in layers), "layers": len(layers),
            "digest": pd.manifest_of(layout, tag)["_digest"], "dependency_layers_bytes": sum(deps)}


def count_pyc(rootfs: Path) -> dict[str, int]:
    """How many .py and .pyc files the standard library and the venv hold."""
    out = {}
    for label, sub in (("stdlib", "usr/lib/python3.13"), ("venv", "opt/venv")):
        py = pyc = 0
        for _dir, _dirs, files in os.walk(rootfs / sub):
            py += sum(1 for f in files if f.endswith(".py"))
            pyc += sum(1 for f in files if f.endswith(".pyc"))
        out[f"{label}_py"], out[f"{label}_pyc"] = py, pyc
    return out


# ---------------------------------------------------------------------------------------------------
# running: each image unpacked once, started many times
# ---------------------------------------------------------------------------------------------------

class Bundle:
    """One image unpacked with umoci (raw, as root: root-owned files) and its runc config (the image's User)."""

    def __init__(self, layout: Path, tag: str, bundle: Path, log_path: Path) -> None:
        self.bundle, self.log_path = bundle, log_path
        bundle.mkdir()
        start = time.perf_counter()
        pd.run(["umoci", "raw", "unpack", "--image", f"{layout}:{tag}", bundle / "rootfs"], log=log_path)
        pd.run(["umoci", "raw", "runtime-config", "--image", f"{layout}:{tag}", "--rootfs", bundle / "rootfs",
                bundle / "config.json"], log=log_path)
        self.unpack_seconds = time.perf_counter() - start
        self.spec: dict[str, Any] = json.loads((bundle / "config.json").read_text())
        proc = self.spec["process"]
        proc["terminal"] = False
        linux = self.spec.setdefault("linux", {})  # the host's network namespace: the server is polled on 127.0.0.1
        linux["namespaces"] = [ns for ns in linux.get("namespaces", []) if ns.get("type") != "network"]
        self.uid = int(proc.get("user", {}).get("uid", 0))
        self.args: list[str] = list(proc["args"])
        if self.uid != NONROOT:
            raise SystemExit(f"cold_start: {layout}:{tag} runs as uid {self.uid}, expected {NONROOT}")

    def configure(self, args: list[str], env: dict[str, str] | None = None) -> str:
        """Write config.json for ``args`` (+ ``env``); returns a fresh container id."""
        proc = self.spec["process"]
        proc["args"] = args
        cur = [e for e in proc.get("env") or [] if e.split("=", 1)[0] not in (env or {})]
        proc["env"] = cur + [f"{k}={v}" for k, v in (env or {}).items()]
        (self.bundle / "config.json").write_text(json.dumps(self.spec))
        return f"ocibuild-bench-cs-{os.getpid()}-{uuid.uuid4().hex[:10]}"

    def run_command(self, args: list[str]) -> float:
        """Wall seconds of `runc run` for ``args`` (container start -> exit); a failure stops the benchmark."""
        cid = self.configure(args)
        try:
            start = time.perf_counter()
            p = subprocess.run(["runc", "run", "--bundle", str(self.bundle), cid], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=300, check=False)
            seconds = time.perf_counter() - start
        finally:
            subprocess.run(["runc", "delete", "-f", cid], capture_output=True, check=False)
        if p.returncode != 0:
            raise SystemExit(f"cold_start: {args} failed in {self.bundle} (exit {p.returncode}):\n"
                             f"{p.stderr.decode(errors='replace')[-3000:]}")
        return seconds

    def time_to_first_answer(self) -> float:
        """Seconds from `runc run` of the image's entrypoint to the first HTTP 200 of GET /healthz."""
        port = free_port()
        cid = self.configure(self.args, {"PORT": str(port)})
        url = f"http://127.0.0.1:{port}/healthz"
        with self.log_path.open("ab") as out:
            start = time.perf_counter()
            proc = subprocess.Popen(["runc", "run", "--bundle", str(self.bundle), cid], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=out)
            try:
                seconds = poll(url, proc, start)
            finally:
                subprocess.run(["runc", "kill", cid, "TERM"], capture_output=True, check=False)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    subprocess.run(["runc", "kill", cid, "KILL"], capture_output=True, check=False)
                    proc.wait(timeout=15)
                subprocess.run(["runc", "delete", "-f", cid], capture_output=True, check=False)
        return seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(url: str, proc: subprocess.Popen[bytes], start: float, deadline: float = 120.0) -> float:
    while time.perf_counter() - start < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200 and b'"ok"' in r.read():
                    return time.perf_counter() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if proc.poll() is not None:
            raise SystemExit(f"cold_start: the server exited (code {proc.returncode}) before answering on {url}")
        time.sleep(0.005)
    raise SystemExit(f"cold_start: no answer on {url} after {deadline:.0f} s")


def summary(runs: list[float]) -> dict[str, Any]:
    return {"first": runs[0], "median": statistics.median(runs), "min": min(runs), "runs": runs}


def measure_starts(bundles: dict[str, Bundle], starts: int) -> dict[str, dict[str, Any]]:
    """{measure: {image: summary}}; every round starts each image once, in a rotating order."""
    measures = ("server_first_answer", *COMMANDS)
    raw: dict[str, dict[str, list[float]]] = {m: {name: [] for name in bundles} for m in measures}
    names = list(bundles)
    for n in range(starts):
        order = names[n % len(names):] + names[:n % len(names)]
        log(f"  round {n + 1}/{starts} ({', '.join(order)})")
        for name in order:
            raw["server_first_answer"][name].append(bundles[name].time_to_first_answer())
            for m, args in COMMANDS.items():
                raw[m][name].append(bundles[name].run_command(args))
    return {m: {name: summary(v) for name, v in per.items()} for m, per in raw.items()}


# ---------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--starts", type=int, default=7, help="starts of each image per measure (first and median shown)")
    ap.add_argument("--builds", type=int, default=2, help="cold builds of each kind (on / off; median shown)")
    ap.add_argument("--driver", choices=("overlay", "vfs"), default="overlay", help="buildah storage driver")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    tools = pd.load_test_tools()
    if tools.host_arch() != "amd64":
        raise SystemExit("cold_start: written for an amd64 host")
    if not (APP / "model" / "model.joblib").is_file():
        log("training the iris model (examples/iris-server/train.py) ...")
        subprocess.run([sys.executable, str(APP / "train.py")], check=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": " ".join(["python3 benchmarks/cold_start.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "tools": tool_versions(),
        "app": "examples/iris-server + " + ", ".join(EXTRA_PINS) + " ("
               + ", ".join((APP / "requirements.txt").read_text().split()) + ")",
        "platform": PLATFORM, "starts": args.starts, "cold_builds": args.builds,
    }
    # lowercase hex only: buildah turns the layout path into an image name
    tmp = Path(os.environ.get("BENCH_TMP") or tempfile.gettempdir()) / f"ocibuild-bench-cs-{uuid.uuid4().hex[:12]}"
    tmp.mkdir(parents=True)
    try:
        on_app = make_app(tmp / "app-on", bytecode=True)
        off_app = make_app(tmp / "app-off", bytecode=False)
        wheels = tmp / "wheels"
        log("wheelhouse (ocibuild fetch, untimed) ...")
        fetch_env = pd.ocibuild_env(tmp / "fetch")
        ocibuild(["fetch", str(on_app), "--dest", str(wheels), "--platform", PLATFORM, "--cache-dir",
                  str(tmp / "fetch-store")], fetch_env, tmp / "fetch.log")

        layouts = {name: tmp / f"img-{name}" for name in IMAGES}
        builds: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
        bases: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
        for n in range(args.builds):
            for kind in (("off", "on") if n % 2 == 0 else ("on", "off")):
                log(f"cold ocibuild build {n + 1}/{args.builds}, bytecode {kind} ...")
                out = layouts["ocibuild" if kind == "on" else "ocibuild-nopyc"]
                builds[kind].append(cold_app_build(tmp, on_app if kind == "on" else off_app, wheels, out,
                                                   f"{kind}{n}"))
                log(f"cold ocibuild base debian {n + 1}/{args.builds}, bytecode {kind} ...")
                bases[kind].append(cold_base_build(tmp, tmp / f"base-{kind}", f"{kind}{n}", bytecode=kind == "on"))
        log("pip image: ocibuild base debian (python3-venv, python3-pip) + buildah build + push ...")
        pip_build = buildah_image(tmp, wheels, layouts["pip"], args.driver)

        log("unpacking the three images (umoci raw unpack) ...")
        bundles = {name: Bundle(layouts[name], "app", tmp / f"bundle-{name}", tmp / "run.log") for name in IMAGES}
        pyc = {name: count_pyc(b.bundle / "rootfs") for name, b in bundles.items()}
        log(f"starting each image {args.starts} times per measure ...")
        starts = measure_starts(bundles, args.starts)

        results["starts_seconds"] = starts
        results["ratios_over_ocibuild"] = {
            m: {name: {k: ratio(per[name][k], per["ocibuild"][k]) for k in ("first", "median")}
                for name in IMAGES if name != "ocibuild"} for m, per in starts.items()}
        results["images"] = {name: {**image_sizes(layouts[name], "app"), "uid": bundles[name].uid,
                                    "unpack_seconds": bundles[name].unpack_seconds, "files": pyc[name]}
                             for name in IMAGES}
        results["builds"] = {
            "app": {kind: {"median_seconds": statistics.median(r["seconds"] for r in runs),
                           "median_dependency_layers_seconds":
                               statistics.median(r["dependency_layers_seconds"] for r in runs), "runs": runs}
                    for kind, runs in builds.items()},
            "base": {kind: {"median_seconds": statistics.median(r["seconds"] for r in runs), "runs": runs,
                            "python_runtime_layer_bytes": python_runtime_bytes(tmp / f"base-{kind}", "base"),
                            "compressed_bytes": image_sizes(tmp / f"base-{kind}", "base")["compressed_bytes"]}
                     for kind, runs in bases.items()},
            "pip": pip_build,
        }
        results["total_seconds"] = time.perf_counter() - started
        if args.keep:
            log(f"kept {tmp}")
    finally:
        if not args.keep:
            buildah_cleanup(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
    write_reports(results, args.out)
    return 0


LABELS = {"server_first_answer": "iris server: start -> first HTTP answer",
          "import_pandas": '`python -c "import pandas"`', "import_sklearn": '`python -c "import sklearn"`',
          "python_pass": "`python -c pass` (interpreter alone)"}


def import_only(s: dict[str, Any]) -> str:
    """The import alone: each import's median minus that image's `python -c pass` median."""
    def net(key: str, image: str) -> float:
        return float(s[key][image]["median"] - s["python_pass"][image]["median"])

    parts = [f"{label} {net(k, 'ocibuild-nopyc'):.2f} s without `.pyc` vs {net(k, 'ocibuild'):.2f} s with "
             f"({ratio(net(k, 'ocibuild-nopyc'), net(k, 'ocibuild')):.1f}x; pip {net(k, 'pip'):.2f} s)"
             for k, label in (("import_pandas", "pandas"), ("import_sklearn", "sklearn"))]
    p = s["python_pass"]
    return (f"Minus the interpreter alone (`python -c pass`, runc's own start included: "
            f"{p['ocibuild']['median']:.2f} s with `.pyc`, {p['ocibuild-nopyc']['median']:.2f} s without), the "
            f"import itself takes: {'; '.join(parts)}.")


def write_reports(r: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "cold_start.json").write_text(json.dumps(r, indent=2) + "\n")
    s, q, img, b = r["starts_seconds"], r["ratios_over_ocibuild"], r["images"], r["builds"]
    mb = 1e6
    m = r["machine"]
    lines = [
        f"# Cold start with and without bytecode ({r['date']})", "",
        f"Command: `{r['command']}` (ocibuild {r['tools']['ocibuild']}, {r['total_seconds'] / 60:.1f} min)  ",
        f"Machine: {m['cpus']} x {m['cpu_model']}, {m['memory_gb']} GB, {m['os']}, kernel {m['kernel']}  ",
        f"App: {r['app']}, {r['platform']}", "",
        "Images: **ocibuild** = `ocibuild build` defaults (`.pyc` for the dependencies and, in the default Debian "
        "trixie base, for the standard library); **ocibuild-nopyc** = `[python] bytecode = false` (no `.pyc` at "
        "all); **pip** = `buildah build` of `RUN python3 -m venv /opt/venv`, "
        "`RUN /opt/venv/bin/pip install -r requirements.txt` (exec form) "
        f"FROM `ocibuild base debian --suite trixie --packages {b['pip']['base_packages']}` (stdlib `.pyc` on), "
        "`USER 65532:65532`. Same wheels in all three (a local wheelhouse). Each image is unpacked once (umoci raw, "
        f"root-owned files) and run with runc as its user (uid {img['ocibuild']['uid']}, so no `.pyc` can be "
        f"written at start), {r['starts']} starts per measure, round robin over the images; times are wall "
        "seconds from `runc run` to the first HTTP 200 (server) or to the container's exit (commands).", "",
        "| measure | ocibuild first / median s | ocibuild-nopyc first / median s | pip first / median s | "
        "nopyc / ocibuild (median) | pip / ocibuild (median) |", "|---|---|---|---|---|---|"]
    for key, label in LABELS.items():
        cells = [f"{s[key][n]['first']:.2f} / {s[key][n]['median']:.2f}" for n in IMAGES]
        lines.append(f"| {label} | {' | '.join(cells)} | **{q[key]['ocibuild-nopyc']['median']:.2f}x** | "
                     f"{q[key]['pip']['median']:.2f}x |")
    lines += ["", "Ratios above 1: slower than the ocibuild (bytecode) image. " + import_only(s), ""]
    lines += ["| image | layers | compressed MB | dependency layers MB | stdlib .py / .pyc | venv .py / .pyc |",
              "|---|---|---|---|---|---|"]
    for n in IMAGES:
        x, f = img[n], img[n]["files"]
        deps = f"{x['dependency_layers_bytes'] / mb:.1f}" if n != "pip" else "(one pip layer)"
        lines.append(f"| {n} | {x['layers']} | {x['compressed_bytes'] / mb:.1f} | {deps} | "
                     f"{f['stdlib_py']} / {f['stdlib_pyc']} | {f['venv_py']} / {f['venv_pyc']} |")
    on, off = img["ocibuild"], img["ocibuild-nopyc"]
    bon, boff = b["base"]["on"], b["base"]["off"]
    added = on["compressed_bytes"] - off["compressed_bytes"]
    lines += [
        "", f"Size added by bytecode: **{added / mb:.1f} MB** compressed "
        f"({100 * added / off['compressed_bytes']:.0f}% of {off['compressed_bytes'] / mb:.1f} MB): dependency layers "
        f"+{(on['dependency_layers_bytes'] - off['dependency_layers_bytes']) / mb:.1f} MB, the base's Python runtime "
        f"layer {boff['python_runtime_layer_bytes'] / mb:.1f} -> {bon['python_runtime_layer_bytes'] / mb:.1f} MB "
        f"(+{(bon['python_runtime_layer_bytes'] - boff['python_runtime_layer_bytes']) / mb:.1f} MB; whole default "
        f"base {boff['compressed_bytes'] / mb:.1f} -> {bon['compressed_bytes'] / mb:.1f} MB).", "",
        f"| cold build (median of {r['cold_builds']}) | bytecode on s | off s | added s | added % |",
        "|---|---|---|---|---|"]
    for label, x, key in (
            ("`ocibuild build` (empty store and uv cache, wheels from a local wheelhouse, default base included)",
             b["app"], "median_seconds"),
            ("... of which the dependency layers (install + compile; ocibuild's per-layer times, summed)",
             b["app"], "median_dependency_layers_seconds"),
            (f"`ocibuild base debian --suite {SUITE}` vs `--no-bytecode` (empty store)", b["base"], "median_seconds")):
        a, c = x["on"][key], x["off"][key]
        lines.append(f"| {label} | {a:.1f} | {c:.1f} | +{a - c:.1f} | {100 * (a - c) / c:.0f}% |")
    app_on, app_off = b["app"]["on"], b["app"]["off"]
    dep_added = app_on["median_dependency_layers_seconds"] - app_off["median_dependency_layers_seconds"]
    n_deps, n_std = on["files"]["venv_py"], on["files"]["stdlib_py"]
    base_added = bon["median_seconds"] - boff["median_seconds"]
    lines += ["", f"Where the build time goes: the dependency layers compile {n_deps} `.py` files in "
              f"+{dep_added:.1f} s "
              f"({1000 * dep_added / n_deps:.1f} ms a file, one process per layer; per-layer times summed, "
              "the layers are built side by side); the "
              f"base compiles {n_std} standard-library files in +{base_added:.1f} s, which includes unpacking the "
              "base's own interpreter (core + Python packages) into a folder to run it from. `python -c pass` barely "
              "changes without `.pyc`: the modules the interpreter needs to start (site, os, encodings, ...) are "
              "frozen into the binary since 3.11, so the stdlib `.pyc` matter for what the app imports (json, "
              "http.server, pickle, inspect, ... and everything numpy / pandas / scipy pull in)."]
    p = b["pip"]
    lines += ["", f"The pip image (for reference, not compared): base {p['base_seconds']:.1f} s, buildah build "
              f"{p['build_seconds']:.1f} s (pip from the local wheelhouse, compiling as it installs), push to an OCI "
              f"layout {p['push_seconds']:.1f} s. Unpack (umoci raw) of each image: "
              + ", ".join(f"{n} {img[n]['unpack_seconds']:.1f} s" for n in IMAGES) + "."]
    (out / "cold_start.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
