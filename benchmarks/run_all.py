"""Run every benchmark, one after the other, each as its own process, then write the combined report
(results/summary.md, results/summary.json, results/summary.png via report.py).

    python3 benchmarks/run_all.py [--out benchmarks/results] [--only e2e,layers] [--skip debian_base] [--quick]

Benchmarks (each writes results/NAME.md and results/NAME.json; see benchmarks/README.md): layers,
registry_push, python_deps, multiarch, debian_base, e2e, cold_start, model_pull, inner_loop (one-line edit ->
registry: buildah vs `ocibuild build` vs `ocibuild dev`), batch (N projects in one `ocibuild build` vs a loop
of buildah builds), rebase (N images onto a patched base: `ocibuild rebase` vs rebuilding them). A benchmark
that fails is recorded (exit code, the tail of its output in summary.json) and the others still run; the exit
code is then 1. --quick uses smaller inputs (for trying the harness, not for publishing). Nothing is asserted
about timing.

Takes ~50 minutes on 2 cores (e2e alone ~10, inner_loop ~10, batch ~4, rebase ~4, cold_start ~6; the first
run also makes the cached Debian bases with mmdebstrap, a few more minutes for arm64 under qemu).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402

# name -> (arguments, --quick arguments); every script also gets --out
ARGS: dict[str, tuple[list[str], list[str]]] = {
    "layers": ([], ["--size-mb", "100", "--big-gb", "0.5"]),
    "registry_push": ([], ["--size-mb", "256"]),
    "python_deps": ([], ["--repeat", "1"]),
    "multiarch": ([], []),
    "debian_base": ([], ["--variants", "minbase"]),
    "e2e": ([], ["--big-mb", "256"]),
    "cold_start": ([], ["--starts", "2", "--builds", "1"]),
    "model_pull": ([], ["--shard-mb", "256", "--reps", "1", "--big-mb", "1024"]),
    "inner_loop": ([], ["--edits", "5"]),
    "batch": ([], ["--counts", "1,2"]),
    "rebase": ([], ["--images", "3", "--repeat", "1"]),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--only", default="", help="comma-separated benchmark names to run (default: all)")
    ap.add_argument("--skip", default="", help="comma-separated benchmark names not to run")
    ap.add_argument("--quick", action="store_true", help="smaller inputs (to try the harness)")
    args = ap.parse_args()
    only = [x for x in args.only.split(",") if x]
    skip = {x for x in args.skip.split(",") if x}
    unknown = (set(only) | skip) - set(ARGS)
    if unknown:
        raise SystemExit(f"run_all: unknown benchmark(s) {sorted(unknown)}; known: {', '.join(ARGS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, object]] = {}
    failed = False
    for name, (normal, quick) in ARGS.items():
        argv = [sys.executable, str(HERE / f"{name}.py"), *(quick if args.quick else normal), "--out", str(args.out)]
        shown = " ".join(["python3", f"benchmarks/{name}.py", *(quick if args.quick else normal)])
        if (only and name not in only) or name in skip:
            runs[name] = {"command": shown, "exit_code": None, "seconds": 0.0}
            continue
        print(f"== {shown}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        with tempfile.TemporaryFile() as out:
            # the benchmark's stderr (progress) goes to ours; its stdout (the report) is kept for summary.json
            code = subprocess.run(argv, stdout=out, stdin=subprocess.DEVNULL, check=False).returncode
            out.seek(0)
            text = out.read().decode(errors="replace")
        seconds = time.perf_counter() - start
        runs[name] = {"command": shown, "exit_code": code, "seconds": seconds}
        if code != 0:
            failed = True
            runs[name]["output_tail"] = text[-3000:]
            print(f"== {name} FAILED (exit {code}) after {seconds:.0f} s", file=sys.stderr, flush=True)
        else:
            print(f"== {name} done in {seconds:.0f} s", file=sys.stderr, flush=True)
    command = " ".join(["python3 benchmarks/run_all.py", *sys.argv[1:]])
    report.combine(args.out, runs=runs, command=command)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
