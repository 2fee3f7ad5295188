"""Multi-platform benchmark (issue 5): one 2-platform build (linux/amd64 + linux/arm64, one index) of the
numpy + scikit-learn test app against two separate 1-platform builds of the same app, each from an empty
cache, in the same run; reported as a ratio (> 1: the 2-platform build is cheaper than two builds).

    python3 benchmarks/multiarch.py [--out benchmarks/results]

Bases: the Debian bookworm python3 images the test suite makes (mmdebstrap; cached in
$OCIBUILD_TEST_CACHE), joined into an index. Writes results/multiarch.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "tests" / "data" / "sklearn-app"


def build(cache: Path, base: str, platforms: str, out: Path, app: Path = APP) -> float:
    env = {**os.environ, "OCIBUILD_CACHE": str(cache), "SOURCE_DATE_EPOCH": "0"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ocibuild", "build", str(app), "--base", base, "--platform", platforms,
                    "--output", f"oci:{out}:t", "-q"], check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from harness.bases import make_debian_python_layout
    from harness.layout import layout_index_of

    with tempfile.TemporaryDirectory(prefix="ocibuild-multiarch-") as td:
        tmp = Path(td)
        amd = make_debian_python_layout(tmp / "amd", "bookworm-py", "amd64")
        arm = make_debian_python_layout(tmp / "arm", "bookworm-py", "arm64")
        index = layout_index_of(tmp / "index", "py", [(amd, "bookworm-py"), (arm, "bookworm-py")])
        base = f"oci:{index}:py"
        import shutil

        app = Path(shutil.copytree(APP, tmp / "app"))
        both = build(tmp / "c-both", base, "linux/amd64,linux/arm64", tmp / "o-both", app)
        one_amd = build(tmp / "c-amd", base, "linux/amd64", tmp / "o-amd", app)
        one_arm = build(tmp / "c-arm", base, "linux/arm64", tmp / "o-arm", app)
        (app / "app.py").write_text((app / "app.py").read_text() + "# one-line edit\n")
        warm_both = build(tmp / "c-both", base, "linux/amd64,linux/arm64", tmp / "o-both", app)
        warm_sep = build(tmp / "c-amd", base, "linux/amd64", tmp / "o-amd", app) + \
            build(tmp / "c-arm", base, "linux/arm64", tmp / "o-arm", app)
    result = {
        "command": "python3 benchmarks/multiarch.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        "two_platform_build_s": both, "amd64_build_s": one_amd, "arm64_build_s": one_arm,
        "separate_total_s": one_amd + one_arm, "ratio_separate_vs_one_build": (one_amd + one_arm) / both,
        "edit_two_platform_s": warm_both, "edit_separate_total_s": warm_sep, "edit_ratio": warm_sep / warm_both,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "multiarch.json").write_text(json.dumps(result, indent=2) + "\n")
    md = "\n".join([
        f"# Multi-platform benchmark ({result['date']})", "", f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}", "", "Cold builds (empty cache each) of tests/data/sklearn-app:", "",
        "| build | seconds |", "|---|---|",
        f"| one build, linux/amd64 + linux/arm64 (index) | {both:.1f} |",
        f"| linux/amd64 alone | {one_amd:.1f} |", f"| linux/arm64 alone | {one_arm:.1f} |",
        f"| two separate builds, total | {one_amd + one_arm:.1f} |",
        f"| after a one-line edit: one 2-platform build | {warm_both:.2f} |",
        f"| after a one-line edit: two separate builds | {warm_sep:.2f} |", "",
        f"Cold: two separate builds take {result['ratio_separate_vs_one_build']:.2f}x the time of one 2-platform build "
        "(downloads and compression of platform wheels are per platform by nature; pure wheels, the app layer, "
        "process start and the base index are shared).  ",
        f"After a one-line edit: {result['edit_ratio']:.2f}x.",
    ])
    (args.out / "multiarch.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
