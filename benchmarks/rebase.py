"""Rebase benchmark (issue 16, part 3): moving N images onto a patched base with `ocibuild rebase` vs building
them again on it.

The fleet: N copies of the iris server (examples/iris-server: scikit-learn + scipy + numpy + joblib, a trained
model.joblib), each with its own `VERSION = "..."` in server.py, built on a Debian bookworm base made with
`ocibuild base debian` (python3, ca-certificates, libstdc++6, libgomp1) into OCI layouts. The patched base is the
same package set plus tzdata (one base layer changes). Timed, each on a warm content store (the wheels, the
dependency layers and both bases already in it: the most favourable case for rebuilding):

(a) rebuild: one `ocibuild build --sbom none` process per image, on the new base (what a CI loop does);
(b) rebase, one call: `ocibuild rebase IMG1 ... IMGN --base NEW --output OUT1 ... --output OUTN --sbom none`;
(c) rebase, one process per image (`--sbom none` too: both sides write no evidence).

Every rebased image must have the digest of the rebuilt one (checked). Outputs are OCI layouts (no registry).

    python3 benchmarks/rebase.py [--out benchmarks/results] [--images 20] [--repeat 3] [--keep]

Writes results/rebase.md and results/rebase.json (every raw sample). Nothing is asserted about timing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
IRIS = REPO / "examples" / "iris-server"
PACKAGES = "python3,ca-certificates,libstdc++6,libgomp1"
EPOCH = "1700000000"


def ocibuild(*args: str | Path, cache: Path) -> tuple[float, str]:
    """Run ``python -m ocibuild ARGS``; (seconds, stdout). Raises with its stderr on failure."""
    env = {**os.environ, "OCIBUILD_CACHE": str(cache), "SOURCE_DATE_EPOCH": EPOCH, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=3600, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"ocibuild {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def make_fleet(tmp: Path, n: int) -> list[Path]:
    first = Path(shutil.copytree(IRIS, tmp / "projects" / "iris-00"))
    subprocess.run([sys.executable, str(first / "train.py")], check=True, capture_output=True, timeout=600)
    projects = [first]
    for i in range(1, n):
        p = Path(shutil.copytree(first, tmp / "projects" / f"iris-{i:02d}"))
        projects.append(p)
    for i, p in enumerate(projects):
        server = p / "server.py"
        server.write_text(server.read_text().replace('VERSION = "1"', f'VERSION = "fleet-{i}"'))
    return projects


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ocibuild-bench-rebase-"))
    cache, bases = tmp / "cache", tmp / "bases"
    started = time.perf_counter()
    try:
        made = {}
        for tag, packages in (("v1", PACKAGES), ("v2", PACKAGES + ",tzdata")):
            made[tag], _ = ocibuild("base", "debian", "--suite", "bookworm", "--packages", packages, "--platform",
                                    "linux/amd64", "--output", f"oci:{bases}:{tag}", "-q", cache=cache)
        projects = make_fleet(tmp, args.images)
        images = []
        for p in projects:  # untimed: the fleet as built before the patch (and every wheel in the store)
            out = tmp / "v1" / p.name
            ocibuild("build", p, "--base", f"oci:{bases}:v1", "--platform", "linux/amd64", "--sbom", "none",
                     "--output", f"oci:{out}:v1", "-q", cache=cache)
            images.append(out)
        samples: dict[str, list[float]] = {"rebuild": [], "rebase_one_call": [], "rebase_per_image": []}
        rebuilt: list[str] = []
        rebased: list[str] = []
        for r in range(args.repeat):
            total, rebuilt = 0.0, []
            for p in projects:
                seconds, stdout = ocibuild("build", p, "--base", f"oci:{bases}:v2", "--platform", "linux/amd64",
                                           "--sbom", "none", "--output", f"oci:{tmp / f'rebuilt-{r}' / p.name}:v2",
                                           "-q", cache=cache)
                total += seconds
                rebuilt.append(stdout.strip())
            samples["rebuild"].append(total)
            outputs = [a for img in images for a in ("--output", f"oci:{tmp / f'rebased-{r}' / img.name}:v2")]
            seconds, stdout = ocibuild("rebase", *(f"oci:{img}:v1" for img in images), "--base", f"oci:{bases}:v2",
                                       *outputs, "--sbom", "none", "-q", cache=cache)
            samples["rebase_one_call"].append(seconds)
            rebased = stdout.split()
            total = 0.0
            for img in images:
                seconds, _ = ocibuild("rebase", f"oci:{img}:v1", "--base", f"oci:{bases}:v2", "--output",
                                      f"oci:{tmp / f'rebased-each-{r}' / img.name}:v2", "--sbom", "none", "-q",
                                      cache=cache)
                total += seconds
            samples["rebase_per_image"].append(total)
        if rebased != rebuilt:
            raise SystemExit(f"rebased digests differ from the rebuilt ones:\n{rebased}\n{rebuilt}")
        med = {k: statistics.median(v) for k, v in samples.items()}
        results: dict[str, Any] = {
            "images": args.images, "repeat": args.repeat, "samples_seconds": samples, "median_seconds": med,
            "speedup_one_call": med["rebuild"] / med["rebase_one_call"],
            "speedup_per_image": med["rebuild"] / med["rebase_per_image"],
            "digests_equal": True, "bases_made_seconds": made, "cpus": os.cpu_count(),
            "wall_seconds": time.perf_counter() - started,
        }
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rebase.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# rebase: {args.images} iris images onto a patched base (median of {args.repeat})", "",
        "| what | seconds | per image | vs rebuild |", "|---|---:|---:|---:|",
        *(f"| {label} | {med[key]:.2f} | {med[key] / args.images:.2f} | {med['rebuild'] / med[key]:.1f}x |"
          for key, label in (("rebuild", "rebuild: `ocibuild build` per image (warm store)"),
                             ("rebase_one_call", "`ocibuild rebase` of all images in one call"),
                             ("rebase_per_image", "`ocibuild rebase` per image"))),
        "", "Every rebased image has the digest of the image rebuilt on the new base.", "",
    ]
    (args.out / "rebase.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
