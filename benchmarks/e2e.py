"""End-to-end ML deployment benchmark (issue "End to end for ML deployment", part 4): the iris prediction
server (examples/iris-server: scikit-learn + scipy + numpy + joblib, a trained model.joblib) built and pushed
to a loopback registry by ocibuild and by `buildah build` + `buildah push`, in the same run, on the same
base (the benchmark Debian bookworm python3 + venv + pip base of python_deps.py, made with mmdebstrap and
cached in $OCIBUILD_BENCH_CACHE), with an equivalent Dockerfile:

1. cold build + push, linux/amd64 (empty ocibuild store and uv cache; empty buildah layer cache, base
   pulled into buildah's temp storage beforehand, untimed);
2. no-op rebuild + push;
3. rebuild + push after a one-line edit of server.py;
4. rebuild + push after adding a 1 MiB weights file (random bytes) to the model folder, then after
   replacing it with a 1 GiB one; peak memory (ru_maxrss of each contender's whole process tree, as wait4
   reports it: the same number `/usr/bin/time -v` prints) of the 1 GiB case against the 1 MiB case;
5. cold build + push for linux/amd64 + linux/arm64 (one index): `ocibuild --platform linux/amd64,linux/arm64`
   against `buildah build --platform linux/amd64,linux/arm64 --manifest` + `buildah manifest push --all`
   (buildah runs `pip install` for arm64 under qemu-user via binfmt_misc; `--no-multiarch` skips it);
6. every final image is pulled back from the registry (skopeo, untimed) and run with umoci + runc
   (tests/harness/runtime.py run_image): `import sklearn`, load the model, predict, and check the edit and the weights
   file are there; the arm64 images run under qemu.

    python3 benchmarks/e2e.py [--out benchmarks/results] [--driver overlay|vfs] [--big-mb 1024] [--no-multiarch]

Writes results/e2e.json, results/e2e.md and (with matplotlib) results/e2e.png. Ratios are buildah /
ocibuild: above 1 means ocibuild is faster (or uses less memory). Nothing is asserted about timing; the run
fails only if a build or push fails or an image does not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import python_deps as pd  # noqa: E402  (base image, buildah config, run() with wait4 rusage)
from registry_push import start_registry  # noqa: E402

APP = REPO / "examples" / "iris-server"
BASE_TAG = pd.BASE_TAG
EDIT_FROM, EDIT_TO = 'VERSION = "1"', 'VERSION = "2"'
WEIGHTS = "model/weights.safetensors"  # a model-file suffix: ocibuild gives it its own layer from 1 MB
PLATFORMS2 = "linux/amd64,linux/arm64"

DOCKERFILE = f"""\
FROM {{base}}
ARG PIP_CERT
ARG PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
COPY requirements.txt /app/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir -r /app/requirements.txt
COPY model /app/model
COPY server.py /app/server.py
ENV VIRTUAL_ENV=/opt/venv {pd.DEBIAN_PATH.replace("PATH=", "PATH=/opt/venv/bin:")}
EXPOSE 8080
LABEL org.opencontainers.image.title=iris-server
ENTRYPOINT ["python", "/app/server.py"]
"""

# run inside each final image: the libraries import, the model loads and predicts, the edit and the weights are in
CHECK = ("import os, sklearn, scipy, numpy, joblib; m = joblib.load('/app/model/model.joblib'); "
         "p = m['classes'][int(m['model'].predict([[5.1, 3.5, 1.4, 0.2]])[0])]; "
         "v = [l for l in open('/app/server.py') if l.startswith('VERSION')][0].strip(); "
         "w = '/app/" + WEIGHTS + "'; "
         "print('ok', 'sklearn', sklearn.__version__, p, v, os.path.getsize(w) if os.path.exists(w) else 0)")


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with open("/etc/os-release") as f:
        osr = dict(line.rstrip().split("=", 1) for line in f if "=" in line)
    return {"cpus": os.cpu_count(), "cpu_model": model, "machine": platform.machine(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
            "kernel": platform.release(), "os": osr.get("PRETTY_NAME", "?").strip('"'),
            "python": platform.python_version()}


def tool_versions() -> dict[str, str]:
    v = pd.version_of
    return {"ocibuild": v(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
            "buildah": v(["buildah", "--version"]), "skopeo": v(["skopeo", "--version"]),
            "umoci": v(["umoci", "--version"]), "runc": v(["runc", "--version"]), "uv": v(["uv", "--version"]),
            "docker-registry": v(["docker-registry", "--version"]),
            "qemu-aarch64": v(["qemu-aarch64-static", "--version"]), "mmdebstrap": v(["mmdebstrap", "--version"])}


def du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=False).stdout
    return int(out.split()[0]) / 1e6 if out else 0.0


def make_random(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n


def place(src: Path, dest: Path) -> None:
    dest.unlink(missing_ok=True)
    os.link(src, dest)  # same bytes (and inode) for both contenders


def edit(project: Path) -> None:
    p = project / "server.py"
    text = p.read_text()
    if EDIT_FROM not in text:
        raise SystemExit(f"e2e: {APP / 'server.py'} no longer contains {EDIT_FROM!r}; update EDIT_FROM")
    p.write_text(text.replace(EDIT_FROM, EDIT_TO, 1))


# ---------------------------------------------------------------------------------------------------
# the contenders
# ---------------------------------------------------------------------------------------------------

class Ocibuild:
    def __init__(self, tmp: Path, name: str, base: str, host: str, repo: str, platforms: str, log: Path):
        self.project = Path(shutil.copytree(APP, tmp / f"{name}-app"))
        self.store = tmp / f"{name}-store"
        self.env = pd.ocibuild_env(tmp / name)
        self.base, self.ref, self.platforms, self.log = base, f"{host}/{repo}", platforms, log

    def step(self, tag: str) -> dict[str, Any]:
        argv = [sys.executable, "-m", "ocibuild", "build", str(self.project), "--base", self.base,
                "--platform", self.platforms, "--output", f"docker://{self.ref}:{tag}",
                "--cache-dir", str(self.store), "--json"]
        seconds, rss_kb, stdout = pd.run(argv, env={**self.env, "PYTHONPATH": str(REPO)}, log=self.log)
        try:
            res = json.loads(stdout)
        except ValueError:
            res = {}
        layers = res.get("layers") or []
        return {"seconds": seconds, "peak_rss_mb": rss_kb / 1024,
                "layers_cached": sum(1 for x in layers if x.get("cached")), "layers_total": len(layers),
                "digest": res.get("digest")}


class Buildah:
    def __init__(self, tmp: Path, name: str, base: str, host: str, repo: str, driver: str, log: Path,
                 platforms: str | None = None):
        self.ctx = tmp / f"{name}-ctx"
        shutil.copytree(APP, self.ctx, ignore=shutil.ignore_patterns("ocibuild.toml", ".gitignore"))
        (self.ctx / "Dockerfile").write_text(DOCKERFILE.format(base=base))
        self.env, self.policy = pd.buildah_env(tmp / name, driver)
        self.state = tmp / name
        self.ref, self.platforms, self.log, self.base = f"{host}/{repo}", platforms, log, base

    def buildah(self, *args: str | os.PathLike[str], stdout_to_log: bool = False) -> tuple[float, int, str]:
        return pd.run(["buildah", *args], env=self.env, log=self.log, stdout_to_log=stdout_to_log)

    def pull_base(self, platforms: list[str]) -> float:
        total = 0.0
        for p in platforms:
            os_, arch = p.split("/")
            s, _, _ = self.buildah("pull", "--signature-policy", self.policy, "--quiet", "--os", os_, "--arch", arch,
                                   self.base)
            total += s
        return total

    def step(self, tag: str) -> dict[str, Any]:
        common: list[str | os.PathLike[str]] = ["--signature-policy", self.policy, "--isolation", "chroot", "--layers",
                  "-v", f"{pd.HOST_CA}:/run/host-ca.crt:ro", "--build-arg", "PIP_CERT=/run/host-ca.crt",
                  "-f", self.ctx / "Dockerfile"]
        if self.platforms is None:
            image = f"localhost/iris:{tag}"
            build_s, build_kb, _ = self.buildah("build", *common, "-t", image, self.ctx, stdout_to_log=True)
            push_s, push_kb, _ = self.buildah("push", "--signature-policy", self.policy, "--tls-verify=false",
                                              "--quiet", image, f"docker://{self.ref}:{tag}")
        else:
            image = f"localhost/iris-list:{tag}"
            build_s, build_kb, _ = self.buildah("build", *common, "--platform", self.platforms, "--manifest", image,
                                                self.ctx, stdout_to_log=True)
            push_s, push_kb, _ = self.buildah("manifest", "push", "--all", "--signature-policy", self.policy,
                                              "--tls-verify=false", "--quiet", image, f"docker://{self.ref}:{tag}")
        return {"seconds": build_s + push_s, "build_seconds": build_s, "push_seconds": push_s,
                "peak_rss_mb": max(build_kb, push_kb) / 1024, "build_peak_rss_mb": build_kb / 1024,
                "push_peak_rss_mb": push_kb / 1024}

    def cleanup(self) -> None:
        env = pd.buildah_env_existing(self.state)
        for args in (["rm", "--all"], ["rmi", "--all", "--force"]):
            subprocess.run(["buildah", *args], env=env, capture_output=True, check=False)


def scenario(c: Ocibuild | Buildah, project: Path, big: Path, small: Path) -> dict[str, Any]:
    """cold, no-op, one-line edit, +1 MiB weights, 1 GiB weights (each build + push) for one contender."""
    out: dict[str, Any] = {}
    print(f"  {type(c).__name__}: cold", file=sys.stderr)
    out["cold"] = c.step("cold")
    print(f"  {type(c).__name__}: no-op", file=sys.stderr)
    out["noop"] = c.step("noop")
    print(f"  {type(c).__name__}: edit", file=sys.stderr)
    edit(project)
    out["edit"] = c.step("edit")
    print(f"  {type(c).__name__}: + small weights", file=sys.stderr)
    place(small, project / WEIGHTS)
    out["weights_small"] = c.step("small")
    print(f"  {type(c).__name__}: + big weights", file=sys.stderr)
    place(big, project / WEIGHTS)
    out["weights_big"] = c.step("big")
    return out


def verify(tools: Any, host: str, repo: str, tag: str, tmp: Path, arch: str, expect: str) -> dict[str, Any]:
    """Pull the pushed image back (skopeo, one platform) and run the CHECK in it with umoci + runc."""
    layout = tmp / f"pulled-{repo.replace('/', '-')}-{tag}-{arch}"
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", "--override-arch", arch, "--override-os", "linux",
                    f"docker://{host}/{repo}:{tag}", f"oci:{layout}:img"], check=True, capture_output=True)
    start = time.perf_counter()
    p = tools.run_image(layout, "img", ["python", "-c", CHECK], timeout=900)
    seconds = time.perf_counter() - start
    line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    shutil.rmtree(layout, ignore_errors=True)
    if p.returncode != 0 or not line.startswith("ok ") or not line.endswith(expect):
        raise SystemExit(f"e2e: {host}/{repo}:{tag} ({arch}) printed {p.stdout!r} (exit {p.returncode}), "
                         f"expected 'ok ... {expect}'\n{p.stderr[-3000:]}")
    return {"image": f"{repo}:{tag}", "arch": arch, "output": line, "unpack_and_run_seconds": seconds}


def ratio(b: float, o: float) -> float:
    return b / o if o else float("inf")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--driver", choices=("overlay", "vfs"), default="overlay", help="buildah storage driver")
    ap.add_argument("--big-mb", type=int, default=1024, help="size of the big weights file, MiB")
    ap.add_argument("--small-mb", type=int, default=1, help="size of the small weights file, MiB")
    ap.add_argument("--no-multiarch", action="store_true", help="skip the 2-platform cold builds")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    tools = pd.load_test_tools()
    if tools.host_arch() != "amd64":
        raise SystemExit("e2e: written for an amd64 host (arm64 under qemu)")
    if not (APP / "model" / "model.joblib").is_file():
        print("training the iris model (examples/iris-server/train.py) ...", file=sys.stderr)
        subprocess.run([sys.executable, str(APP / "train.py")], check=True)

    results: dict[str, Any] = {
        "command": " ".join(["python3 benchmarks/e2e.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(), "tools": tool_versions(),
        "app": "examples/iris-server (" + ", ".join((APP / "requirements.txt").read_text().split()) + ")",
        "buildah_storage_driver": args.driver, "big_weights_bytes": args.big_mb << 20,
        "small_weights_bytes": args.small_mb << 20,
    }
    base_amd, results["base"] = pd.amd64_base(tools)

    # lowercase hex only: buildah turns the layout path into an image name, and mkdtemp's "_" can make it invalid
    tmp = Path(os.environ.get("BENCH_TMP") or tempfile.gettempdir()) / f"ocibuild-bench-e2e-{uuid.uuid4().hex[:12]}"
    tmp.mkdir(parents=True)
    regs: list[subprocess.Popen[bytes]] = []
    contenders: list[Buildah] = []
    try:
        log = tmp / "log.txt"
        # one registry per contender: nothing one pushed can be found (or mounted) by the other
        for name in ("reg-o", "reg-b"):
            (tmp / name).mkdir()
        reg_o, host_o = start_registry(tmp / "reg-o")
        regs.append(reg_o)
        reg_b, host_b = start_registry(tmp / "reg-b")
        regs.append(reg_b)
        small, big = tmp / "weights-small.bin", tmp / "weights-big.bin"
        make_random(small, args.small_mb << 20)
        print(f"writing {args.big_mb} MiB of random weights ...", file=sys.stderr)
        make_random(big, args.big_mb << 20)

        # ---- 1 platform --------------------------------------------------------------------------------
        print("1 platform (linux/amd64): ocibuild ...", file=sys.stderr)
        o = Ocibuild(tmp, "o1", f"oci:{base_amd}:{BASE_TAG}", host_o, "iris", "linux/amd64", log)
        o1 = scenario(o, o.project, big, small)
        o1["store_mb"] = du_mb(o.store)
        print("1 platform (linux/amd64): buildah ...", file=sys.stderr)
        b = Buildah(tmp, "b1", f"oci:{base_amd}:{BASE_TAG}", host_b, "iris", args.driver, log)
        contenders.append(b)
        b_pull = b.pull_base(["linux/amd64"])
        b1 = scenario(b, b.ctx, big, small)
        b1["pull_base_seconds"] = b_pull
        b1["storage_mb"] = du_mb(b.state / "root")
        b.cleanup()
        shutil.rmtree(b.state, ignore_errors=True)
        expect = f"{EDIT_TO} {args.big_mb << 20}"
        print("verifying the final 1-platform images (pull back + umoci + runc) ...", file=sys.stderr)
        o1["verify"] = verify(tools, host_o, "iris", "big", tmp, "amd64", expect)
        b1["verify"] = verify(tools, host_b, "iris", "big", tmp, "amd64", expect)
        results["one_platform"] = {"ocibuild": o1, "buildah": b1}
        for d in (big, small):
            d.unlink()
        shutil.rmtree(o.project)
        shutil.rmtree(b.ctx)

        # ---- 2 platforms -------------------------------------------------------------------------------
        if not args.no_multiarch:
            print("2 platforms: arm64 base (cached; mmdebstrap under qemu on the first run) ...", file=sys.stderr)
            tools.ensure_binfmt("arm64")
            base_arm, made_arm = pd.base_layout(tools, "arm64")
            results["base"].update(arm64=str(base_arm), made_now_seconds_arm64=made_arm,
                                   digest_arm64=pd.manifest_of(base_arm, BASE_TAG)["_digest"])
            index = tools.layout_index_of(tmp / "base-index", "py", [(base_amd, BASE_TAG), (base_arm, BASE_TAG)])
            base2 = f"oci:{index}:py"
            print("2 platforms: ocibuild cold ...", file=sys.stderr)
            o2c = Ocibuild(tmp, "o2", base2, host_o, "iris2", PLATFORMS2, log)
            o2: dict[str, Any] = {"cold": o2c.step("cold")}
            edit(o2c.project)
            o2["edit"] = o2c.step("edit")
            print("2 platforms: buildah cold (arm64 RUN pip under qemu) ...", file=sys.stderr)
            b2c = Buildah(tmp, "b2", base2, host_b, "iris2", args.driver, log, platforms=PLATFORMS2)
            contenders.append(b2c)
            b2: dict[str, Any] = {"pull_base_seconds": b2c.pull_base(PLATFORMS2.split(","))}
            b2["cold"] = b2c.step("cold")
            edit(b2c.ctx)
            b2["edit"] = b2c.step("edit")
            b2c.cleanup()
            print("verifying the 2-platform images (amd64 native, arm64 under qemu) ...", file=sys.stderr)
            o2["verify"] = [verify(tools, host_o, "iris2", "edit", tmp, a, f"{EDIT_TO} 0") for a in ("amd64", "arm64")]
            b2["verify"] = [verify(tools, host_b, "iris2", "edit", tmp, a, f"{EDIT_TO} 0") for a in ("amd64", "arm64")]
            results["two_platforms"] = {"ocibuild": o2, "buildah": b2}
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
    finally:
        for r in regs:
            r.terminate()
            r.wait(timeout=30)
        for c in contenders:
            c.cleanup()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    one = results["one_platform"]
    q: dict[str, float] = {}
    for key in ("cold", "noop", "edit", "weights_small", "weights_big"):
        q[f"{key}_seconds"] = ratio(one["buildah"][key]["seconds"], one["ocibuild"][key]["seconds"])
    q["weights_big_peak_rss"] = ratio(one["buildah"]["weights_big"]["peak_rss_mb"],
                                      one["ocibuild"]["weights_big"]["peak_rss_mb"])
    if "two_platforms" in results:
        two = results["two_platforms"]
        q["two_platform_cold_seconds"] = ratio(two["buildah"]["cold"]["seconds"], two["ocibuild"]["cold"]["seconds"])
        q["two_platform_edit_seconds"] = ratio(two["buildah"]["edit"]["seconds"], two["ocibuild"]["edit"]["seconds"])
    results["ratios_buildah_over_ocibuild"] = q
    for who in ("ocibuild", "buildah"):
        one[who]["big_vs_small_peak_rss"] = ratio(one[who]["weights_big"]["peak_rss_mb"],
                                                  one[who]["weights_small"]["peak_rss_mb"])
    write_reports(results, args.out)
    return 0


# ---------------------------------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------------------------------

ROWS = (("cold", "cold build + push"), ("noop", "no-op rebuild + push"),
        ("edit", "one-line edit of server.py, rebuild + push"),
        ("weights_small", "add a {small} weights file, rebuild + push"),
        ("weights_big", "replace it with a {big} weights file, rebuild + push"))


def size_label(n: int) -> str:
    return f"{n >> 30} GiB" if n >= 1 << 30 and n % (1 << 30) == 0 else f"{n >> 20} MiB"


def headline_table(r: dict[str, Any]) -> list[str]:
    """The main table (also appended to benchmarks/README.md)."""
    one = r["one_platform"]
    o, b = one["ocibuild"], one["buildah"]
    small, big = size_label(r["small_weights_bytes"]), size_label(r["big_weights_bytes"])
    lines = ["| step (iris server, linux/amd64, to a loopback registry) | ocibuild s | buildah build + push s "
             "| ratio | ocibuild peak RSS MB | buildah peak RSS MB |", "|---|---|---|---|---|---|"]
    for key, label in ROWS:
        ox, bx = o[key], b[key]
        lines.append(f"| {label.format(small=small, big=big)} | {ox['seconds']:.2f} | {bx['seconds']:.2f} "
                     f"({bx['build_seconds']:.1f} + {bx['push_seconds']:.1f}) | "
                     f"**{ratio(bx['seconds'], ox['seconds']):.1f}x** "
                     f"| {ox['peak_rss_mb']:.0f} | {bx['peak_rss_mb']:.0f} |")
    if "two_platforms" in r:
        t = r["two_platforms"]
        for key, label in (("cold", "linux/amd64 + linux/arm64: cold build + push"),
                           ("edit", "linux/amd64 + linux/arm64: one-line edit, rebuild + push")):
            ox, bx = t["ocibuild"][key], t["buildah"][key]
            lines.append(f"| {label} | {ox['seconds']:.2f} | {bx['seconds']:.2f} ({bx['build_seconds']:.1f} + "
                         f"{bx['push_seconds']:.1f}) | **{ratio(bx['seconds'], ox['seconds']):.1f}x** | "
                         f"{ox['peak_rss_mb']:.0f} | {bx['peak_rss_mb']:.0f} |")
    return lines


def write_reports(r: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "e2e.json").write_text(json.dumps(r, indent=2) + "\n")
    m, one = r["machine"], r["one_platform"]
    o, b = one["ocibuild"], one["buildah"]
    small, big = size_label(r["small_weights_bytes"]), size_label(r["big_weights_bytes"])
    lines = [
        f"# End to end: iris server, ocibuild vs buildah, build + push to a loopback registry ({r['date']})", "",
        f"Command: `{r['command']}`  ",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB RAM, {m['os']}, kernel {m['kernel']}, "
        f"Python {m['python']}  ",
        "Tools: " + ", ".join(f"{k} `{v}`" for k, v in r["tools"].items()) + "  ",
        f"App: {r['app']}; base: Debian bookworm {r['base']['packages']} (mmdebstrap, the same OCI layout for both; "
        f"amd64 `{r['base']['digest_amd64'][:19]}...`)", "",
        "ocibuild: `ocibuild build APP --base oci:BASE:bookworm-py --platform linux/amd64 --output "
        "docker://127.0.0.1:PORT/iris:TAG --cache-dir STORE` (one process: resolve, install wheels with uv, build "
        "layers, push). buildah: `buildah build --layers --isolation chroot` "
        f"({r['buildah_storage_driver']} storage in a temp dir; the base pulled into it first, untimed: "
        f"{b['pull_base_seconds']:.1f} s) of the equivalent Dockerfile (`RUN python3 -m venv`, "
        "`COPY requirements.txt`, "
        "`RUN pip install --no-cache-dir`, `COPY model`, `COPY server.py`), then `buildah push` to the same kind of "
        "loopback `docker-registry` (one registry per contender). Each step runs after the previous one with the "
        "caches it left. Peak RSS: ru_maxrss of the whole process tree (wait4; the largest single process, as "
        "`/usr/bin/time -v` reports it), for buildah the larger of build and push.", "",
        *headline_table(r), "",
        "Ratios are buildah / ocibuild: above 1 means ocibuild is faster.", "",
        f"Peak memory with the {big} weights file vs the {small} one: ocibuild "
        f"{o['weights_big']['peak_rss_mb']:.0f} MB "
        f"vs {o['weights_small']['peak_rss_mb']:.0f} MB (**{o['big_vs_small_peak_rss']:.2f}x**); buildah "
        f"{b['weights_big']['peak_rss_mb']:.0f} MB vs {b['weights_small']['peak_rss_mb']:.0f} MB "
        f"(**{b['big_vs_small_peak_rss']:.2f}x**; build {b['weights_big']['build_peak_rss_mb']:.0f} MB, push "
        f"{b['weights_big']['push_peak_rss_mb']:.0f} MB).", "",
        f"Layers reused from ocibuild's store: no-op {o['noop']['layers_cached']}/{o['noop']['layers_total']}, edit "
        f"{o['edit']['layers_cached']}/{o['edit']['layers_total']}, {big} weights "
        f"{o['weights_big']['layers_cached']}/{o['weights_big']['layers_total']}. Disk after the run: ocibuild store "
        f"{o['store_mb']:.0f} MB, buildah storage {b['storage_mb']:.0f} MB.", "",
        "Verified (each final image pulled back from its registry with skopeo and run with umoci + runc, "
        "`python -c 'import sklearn, ...; load the model; predict'`):", "",
    ]
    verifs = [("ocibuild", o["verify"]), ("buildah", b["verify"])]
    if "two_platforms" in r:
        verifs += [(who, v) for who in ("ocibuild", "buildah") for v in r["two_platforms"][who]["verify"]]
    lines += [f"- {who} `{v['image']}` {v['arch']}: `{v['output']}`" for who, v in verifs]
    lines += ["", "Notes on fairness:", "",
              "- Both contenders download the wheels from PyPI on the cold build (ocibuild through uv, with an empty "
              "uv cache; buildah through pip, `--no-cache-dir`), so cold numbers include the network.",
              "- buildah's build ends in containers-storage with uncompressed layers: `buildah push` compresses each "
              "layer the registry does not have yet (gzip, random weights included). ocibuild compresses while it "
              "builds and stores incompressible files (the random weights) uncompressed. Big random files are the "
              "worst case for gzip; real weights compress a little (~5-10% for fp16/bf16).",
              "- pip compiles .pyc files into the buildah image; ocibuild writes none, so its image's first start "
              "compiles them (see results/python_deps.md).",
              "- buildah's `--layers` cache is keyed by the Dockerfile step: adding a weights file re-runs "
              "`COPY model` "
              "and `COPY server.py` only; ocibuild rebuilds only the changed files' layers."]
    if "two_platforms" in r:
        t = r["two_platforms"]
        lines += ["- 2 platforms: buildah runs the arm64 `RUN python3 -m venv` and `RUN pip install` under "
                  "qemu-user (binfmt_misc, F flag), which is what a Dockerfile build of a foreign platform costs "
                  "without a native builder; ocibuild installs the arm64 wheels without running arm64 code. Base "
                  f"pulls for buildah (untimed): {t['buildah']['pull_base_seconds']:.1f} s."]
    else:
        lines += ["- 2 platforms: not measured in this run (`--no-multiarch`)."]
    (out / "e2e.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import report  # the plot helper (benchmarks/report.py)

        report.plot_e2e(r, out / "e2e.png")
    except Exception as exc:  # the plot is optional
        print(f"e2e: no plot ({exc})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
