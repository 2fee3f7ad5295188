"""Combined benchmark report: reads the results/*.json the benchmarks wrote (whichever exist) and writes
results/summary.md, results/summary.json and results/summary.png (headline ratios, one bar each); also the
plot of e2e.py (results/e2e.png), and the table on the docs' Benchmarks page (docs/benchmarks/index.md).

    python3 benchmarks/report.py [--results benchmarks/results]

matplotlib is not a project dependency: it is imported if present, else installed with pip (quietly, into the
running interpreter); without it the .png files are skipped and the rest is still written.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# (result file stem, command that makes it)
BENCHMARKS = {
    "layers": "python3 benchmarks/layers.py",
    "registry_push": "python3 benchmarks/registry_push.py",
    "python_deps": "python3 benchmarks/python_deps.py",
    "multiarch": "python3 benchmarks/multiarch.py",
    "debian_base": "python3 benchmarks/debian_base.py",
    "e2e": "python3 benchmarks/e2e.py",
    "cold_start": "python3 benchmarks/cold_start.py",
    "inner_loop": "python3 benchmarks/inner_loop.py",
    "batch": "python3 benchmarks/batch.py",
    "rebase": "python3 benchmarks/rebase.py",
}


def pyplot() -> Any:
    """matplotlib.pyplot with the Agg backend, installing matplotlib with pip if it is missing; None if that fails."""
    try:
        import matplotlib
    except ImportError:
        print("report: installing matplotlib with pip (for the plots only) ...", file=sys.stderr)
        p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            "matplotlib"], capture_output=True, text=True, check=False)
        if p.returncode != 0:
            print(f"report: pip install matplotlib failed; no plots\n{p.stderr[-1000:]}", file=sys.stderr)
            return None
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------------------------------------------
# headlines: one row per comparison, ratio > 1 = ocibuild better
# ---------------------------------------------------------------------------------------------------

def _row(bench: str, what: str, ours: str, baseline_name: str, baseline: str, ratio: float | None,
         unit: str = "x") -> dict[str, Any]:
    return {"benchmark": bench, "what": what, "ocibuild": ours, "baseline_tool": baseline_name,
            "baseline": baseline, "ratio": ratio, "ratio_unit": unit}


def headlines(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    get = _Getter(rows)
    if "layers" in results:
        r = results["layers"]
        with get("layers"):
            by = {x["tool"]: x for x in r["throughput"]["rows"]}
            o, g6, g1 = by["ocibuild gzip:1"], by["tar | gzip -6 (GNU)"], by["tar | gzip -1 (GNU)"]
            mb = r["throughput"]["tree_bytes"] / 1e6
            rows.append(_row("layers", f"one layer from a {mb:.0f} MB tree (MB/s)", f"{o['mb_per_s']:.0f}",
                             "tar | gzip -6", f"{g6['mb_per_s']:.0f}", o["mb_per_s"] / g6["mb_per_s"]))
            rows.append(_row("layers", f"one layer from a {mb:.0f} MB tree (MB/s)", f"{o['mb_per_s']:.0f}",
                             "tar | gzip -1", f"{g1['mb_per_s']:.0f}", o["mb_per_s"] / g1["mb_per_s"]))
            small, big = r["memory"][0], r["memory"][-1]
            rows.append(_row("layers", f"peak RSS, {big['input']} vs {small['input']} (MB; growth, 1 = flat)",
                             f"{big['peak_rss_mb']:.0f} vs {small['peak_rss_mb']:.0f}", "", "",
                             big["peak_rss_mb"] / small["peak_rss_mb"], "x growth"))
    if "registry_push" in results:
        r = results["registry_push"]
        with get("registry_push"):
            big, small = r["rows"][-1], r["rows"][0]
            rows.append(_row("registry_push", f"push a {big['blob']} blob to a loopback registry (MB/s)",
                             f"{big['ocibuild_mb_per_s']:.0f}", "raw curl -T PUT", f"{big['raw_mb_per_s']:.0f}",
                             big["ocibuild_vs_raw_speed"]))
            rows.append(_row("registry_push", f"peak RSS, {big['blob']} vs {small['blob']} blob (MB; growth)",
                             f"{big['ocibuild_peak_rss_mb']:.0f} vs {small['ocibuild_peak_rss_mb']:.0f}", "", "",
                             r["rss_ratio_big_vs_small"], "x growth"))
    if "python_deps" in results:
        r = results["python_deps"]
        with get("python_deps"):
            o, b, q = r["ocibuild"], r["buildah"], r["ratios_buildah_over_ocibuild"]
            rows.append(_row("python_deps", "numpy + scikit-learn app: cold build (+ buildah push to a layout), s",
                             f"{o['cold']['seconds']:.1f}", "buildah build + push",
                             f"{b['cold']['build_and_push_seconds']:.1f}", q["cold_build_and_push"]))
            rows.append(_row("python_deps", "same, after a one-line edit, s", f"{o['warm_edit']['seconds']:.2f}",
                             "buildah build + push", f"{b['warm_edit']['build_and_push_seconds']:.2f}",
                             q["warm_build_and_push"]))
    if "multiarch" in results:
        r = results["multiarch"]
        with get("multiarch"):
            rows.append(_row("multiarch", "amd64 + arm64: one 2-platform build vs two builds, cold, s",
                             f"{r['two_platform_build_s']:.1f}", "two ocibuild builds", f"{r['separate_total_s']:.1f}",
                             r["ratio_separate_vs_one_build"]))
            rows.append(_row("multiarch", "same, after a one-line edit, s", f"{r['edit_two_platform_s']:.2f}",
                             "two ocibuild builds", f"{r['edit_separate_total_s']:.2f}", r["edit_ratio"]))
    if "debian_base" in results:
        r = results["debian_base"]
        with get("debian_base"):
            o = r["ocibuild"]
            for v, x in r["mmdebstrap"].items():
                if v == "minbase":
                    rows.append(_row("debian_base", "Debian python3 base, cold, s", f"{o['cold']['seconds']:.1f}",
                                     f"mmdebstrap {v} + gzip -1", f"{x['with_gzip1_seconds']:.1f}",
                                     x["ratios_mmdebstrap_over_ocibuild"]["time_with_gzip1_vs_cold"]))
    if "e2e" in results:
        r = results["e2e"]
        with get("e2e"):
            one = r["one_platform"]
            o, b = one["ocibuild"], one["buildah"]
            labels = {"cold": "cold", "noop": "no-op", "edit": "one-line edit",
                      "weights_small": f"+ {r['small_weights_bytes'] >> 20} MiB weights",
                      "weights_big": f"+ {r['big_weights_bytes'] >> 20} MiB weights"}
            for key, label in labels.items():
                rows.append(_row("e2e", f"iris server, amd64, build + push to a registry: {label}, s",
                                 f"{o[key]['seconds']:.2f}", "buildah build + push", f"{b[key]['seconds']:.2f}",
                                 b[key]["seconds"] / o[key]["seconds"]))
            rows.append(_row("e2e", f"iris server: peak RSS with {r['big_weights_bytes'] >> 20} MiB weights, MB",
                             f"{o['weights_big']['peak_rss_mb']:.0f}", "buildah build / push",
                             f"{b['weights_big']['peak_rss_mb']:.0f}",
                             b["weights_big"]["peak_rss_mb"] / o["weights_big"]["peak_rss_mb"]))
            if "two_platforms" in r:
                t = r["two_platforms"]
                for key, label in (("cold", "cold"), ("edit", "one-line edit")):
                    rows.append(_row("e2e", f"iris server, amd64 + arm64, build + push: {label}, s",
                                     f"{t['ocibuild'][key]['seconds']:.2f}", "buildah --platform --manifest + push",
                                     f"{t['buildah'][key]['seconds']:.2f}",
                                     t["buildah"][key]["seconds"] / t["ocibuild"][key]["seconds"]))
    if "cold_start" in results:
        r = results["cold_start"]
        with get("cold_start"):
            s = r["starts_seconds"]
            for key, label in (("server_first_answer", "iris server: container start -> first HTTP answer"),
                               ("import_pandas", "cold `python -c \"import pandas\"` in the container")):
                on = s[key]["ocibuild"]["median"]
                for other, tool in (("ocibuild-nopyc", "ocibuild, bytecode = false"), ("pip", "buildah + pip")):
                    rows.append(_row("cold_start", f"{label}, s (median)", f"{on:.2f}", tool,
                                     f"{s[key][other]['median']:.2f}", s[key][other]["median"] / on))
    if "inner_loop" in results:
        r = results["inner_loop"]
        with get("inner_loop"):
            for sc in r["scenarios"]:
                st, q = sc["stats"], sc["ratios_buildah_over"]
                where, b = f"{sc['project_label']}, {sc['platforms_label']}", st["buildah"]
                rows.append(_row("inner_loop", f"{where}: one-line edit -> pushed manifest, ocibuild dev, p50 s",
                                 f"{st['ocibuild_dev']['edit']['p50']:.3f}", "buildah build + push",
                                 f"{b['edit']['p50']:.2f}", q["ocibuild_dev"]["edit_p50"]))
                rows.append(_row("inner_loop", f"{where}: same, `ocibuild build` fresh process, p50 s",
                                 f"{st['ocibuild_build']['edit']['p50']:.2f}", "buildah build + push",
                                 f"{b['edit']['p50']:.2f}", q["ocibuild_build"]["edit_p50"]))
                if "noop_p50" in q["ocibuild_build"]:
                    rows.append(_row("inner_loop", f"{where}: no-op rebuild + push, fresh process, p50 s",
                                     f"{st['ocibuild_build']['noop']['p50']:.2f}", "buildah build + push",
                                     f"{b['noop']['p50']:.2f}", q["ocibuild_build"]["noop_p50"]))
    if "batch" in results:
        r = results["batch"]
        with get("batch"):
            fleets = r["fleets"]
            for f in sorted({fleets[0]["projects"]: fleets[0], fleets[-1]["projects"]: fleets[-1]}.values(),
                            key=lambda f: f["projects"]):
                n, o, b = f["projects"], f["ocibuild"], f["buildah"]
                for step, label in (("cold", "cold"), ("edit", "after a one-file edit in one project")):
                    rows.append(_row("batch", f"{n} model-server project(s), build + push: {label}, s",
                                     f"{o[step]['seconds']:.2f}", "loop of buildah build + push",
                                     f"{b[step]['seconds']:.2f}", f["ratios_buildah_over_ocibuild"][step]))
    if "rebase" in results:
        r = results["rebase"]
        with get("rebase"):
            med = r["median_seconds"]
            rows.append(_row("rebase", f"{r['images']} iris images onto a patched base: `ocibuild rebase`, one call, s",
                             f"{med['rebase_one_call']:.1f}", "rebuild (`ocibuild build` per image)",
                             f"{med['rebuild']:.1f}", r["speedup_one_call"]))
    return rows


class _Getter:
    """Context manager per benchmark: a result file of an older shape is reported, not fatal."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows, self.name = rows, ""

    def __call__(self, name: str) -> _Getter:
        self.name = name
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        if et is not None and issubclass(et, (KeyError, IndexError, TypeError, ZeroDivisionError)):
            self.rows.append(_row(self.name, f"(could not read the result file: {et.__name__} {ev})", "", "", "",
                                  None))
            return True
        return False


# ---------------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------------

def plot_e2e(r: dict[str, Any], path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    one = r["one_platform"]
    keys = ["cold", "noop", "edit", "weights_small", "weights_big"]
    labels = ["cold", "no-op", "edit", f"+{r['small_weights_bytes'] >> 20} MiB\nweights",
              f"+{r['big_weights_bytes'] >> 20} MiB\nweights"]
    o = [one["ocibuild"][k]["seconds"] for k in keys]
    b = [one["buildah"][k]["seconds"] for k in keys]
    om = [one["ocibuild"][k]["peak_rss_mb"] for k in keys]
    bm = [one["buildah"][k]["peak_rss_mb"] for k in keys]
    if "two_platforms" in r:
        t = r["two_platforms"]
        labels += ["2-platform\ncold", "2-platform\nedit"]
        o += [t["ocibuild"]["cold"]["seconds"], t["ocibuild"]["edit"]["seconds"]]
        b += [t["buildah"]["cold"]["seconds"], t["buildah"]["edit"]["seconds"]]
        om += [t["ocibuild"]["cold"]["peak_rss_mb"], t["ocibuild"]["edit"]["peak_rss_mb"]]
        bm += [t["buildah"]["cold"]["peak_rss_mb"], t["buildah"]["edit"]["peak_rss_mb"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    x = range(len(labels))
    w = 0.4
    ax1.bar([i - w / 2 for i in x], o, w, label="ocibuild", color="#2a7ab9")
    ax1.bar([i + w / 2 for i in x], b, w, label="buildah build + push", color="#c0504d")
    for i, (ov, bv) in enumerate(zip(o, b, strict=True)):
        ax1.text(i, max(ov, bv) * 1.15, f"{bv / ov:.1f}x", ha="center", fontsize=8)
    ax1.set_yscale("log")
    ax1.set_ylabel("seconds (log), build + push to a loopback registry")
    ax1.set_xticks(list(x), labels, fontsize=8)
    ax1.set_title("iris server: time (label: buildah / ocibuild)", fontsize=10)
    ax1.legend(fontsize=8)
    n = len(keys)
    ax2.bar([i - w / 2 for i in range(n)], om[:n], w, label="ocibuild (process tree)", color="#2a7ab9")
    ax2.bar([i + w / 2 for i in range(n)], bm[:n], w, label="buildah (build or push tree)", color="#c0504d")
    ax2.set_xticks(list(range(n)), labels[:n], fontsize=8)
    ax2.set_ylabel("peak RSS, MB (ru_maxrss)")
    ax2.set_title("peak memory, linux/amd64", fontsize=10)
    ax2.legend(fontsize=8)
    m = r["machine"]
    fig.suptitle(f"ocibuild vs buildah, {r['date']}, {m['cpus']} CPUs {m['cpu_model']}, {m['memory_gb']} GB",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_summary(rows: list[dict[str, Any]], path: Path) -> bool:
    rows = [x for x in rows if x["ratio"] is not None and x["ratio_unit"] == "x"]
    if not rows:
        return False
    plt = pyplot()
    if plt is None:
        return False
    labels = [f"{x['benchmark']}: {x['what']} vs {x['baseline_tool']}" for x in rows]
    vals = [x["ratio"] for x in rows]
    fig, ax = plt.subplots(figsize=(15, 0.38 * len(rows) + 1.4))
    colors = ["#2a7ab9" if v >= 1 else "#c0504d" for v in vals]
    ax.barh(range(len(rows)), vals, color=colors)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.2f}x", va="center", fontsize=7)
    ax.set_xlabel("baseline / ocibuild (time) or ocibuild / baseline (speed): > 1 = ocibuild better (log)")
    ax.set_title("ocibuild benchmarks: headline ratios", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------------
# combined report
# ---------------------------------------------------------------------------------------------------

def combine(results_dir: Path, runs: dict[str, Any] | None = None, command: str | None = None) -> dict[str, Any]:
    """Read every known result JSON in ``results_dir``; write summary.json / .md / .png there. ``runs``:
    what run_all.py did (per benchmark: command, exit code, seconds)."""
    results: dict[str, dict[str, Any]] = {}
    for name in BENCHMARKS:
        p = results_dir / f"{name}.json"
        if p.is_file():
            results[name] = json.loads(p.read_text())
    rows = headlines(results)
    machine = None
    if "e2e" in results:
        machine = results["e2e"].get("machine")
    if machine is None:
        sys.path.insert(0, str(HERE))
        from e2e import machine as machine_of

        machine = machine_of()
    summary: dict[str, Any] = {
               "date": time.strftime("%Y-%m-%d %H:%M"), "command": command or "python3 benchmarks/report.py",
               "machine": machine, "runs": runs or {}, "headlines": rows,
               "result_files": {n: {"date": r.get("date"), "command": r.get("command")} for n, r in results.items()},
               "results": results}
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    m = machine
    lines = [f"# ocibuild benchmarks: summary ({summary['date']})", "", f"Command: `{summary['command']}`  ",
             f"Machine: {m.get('cpus')} CPUs ({m.get('cpu_model', '?')}), {m.get('memory_gb')} GB RAM, "
             f"{m.get('os', '?')}, kernel {m.get('kernel', '?')}, Python {m.get('python')}", ""]
    if runs:
        lines += ["| benchmark | command | exit | wall s |", "|---|---|---|---|"]
        for name, x in runs.items():
            lines.append(f"| {name} | `{x['command']}` | {x['exit_code'] if x['exit_code'] is not None else 'skipped'} "
                         f"| {x['seconds']:.0f} |")
        lines.append("")
    lines += ["Ratios: baseline / ocibuild for times and memory, ocibuild / baseline for speeds (MB/s): above 1 "
              "means ocibuild is better; \"x growth\" rows compare ocibuild with itself (big input vs small). "
              "Details and fairness notes: each benchmark's own results/NAME.md.", "",
              "| benchmark | measure | ocibuild | baseline | baseline value | ratio |", "|---|---|---|---|---|---|"]
    for x in rows:
        ratio = "" if x["ratio"] is None else f"**{x['ratio']:.2f}{x['ratio_unit']}**"
        cells = [x["benchmark"], x["what"], x["ocibuild"], x["baseline_tool"], x["baseline"], ratio]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    lines += ["", "Result files (date, command):", ""]
    lines += [f"- `results/{n}.md` / `.json`: {v['date']}, `{v['command']}`" for n, v in
              summary["result_files"].items()]
    missing = [n for n in BENCHMARKS if n not in results]
    if missing:
        lines += ["", "No result file (not run yet, or it failed): " + ", ".join(missing) + "."]
    if plot_summary(rows, results_dir / "summary.png"):
        lines += ["", "![headline ratios](summary.png)"]
    if "e2e" in results:
        try:
            if plot_e2e(results["e2e"], results_dir / "e2e.png"):
                lines += ["", "![e2e](e2e.png)"]
        except (KeyError, TypeError) as exc:
            print(f"report: no e2e plot ({exc})", file=sys.stderr)
    (results_dir / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    update_docs_table(rows, summary, results_dir)
    return summary


TABLE_START, TABLE_END = "<!-- benchmark-table:start -->", "<!-- benchmark-table:end -->"
TABLE_PAGE = HERE.parent / "docs" / "benchmarks" / "index.md"


def update_docs_table(rows: list[dict[str, Any]], summary: dict[str, Any], results_dir: Path) -> None:
    """Regenerate the table between the markers in the docs' Benchmarks page from these results."""
    page = TABLE_PAGE
    text = page.read_text() if page.is_file() else ""
    if TABLE_START not in text or TABLE_END not in text:
        return
    m = summary["machine"]
    table = [TABLE_START,
             f"Generated by `python3 benchmarks/report.py` from `{results_dir.relative_to(HERE.parent)}` "
             f"({summary['date']}; {m.get('cpus')} CPUs {m.get('cpu_model', '')}, {m.get('memory_gb')} GB RAM). "
             "Ratio = baseline / ocibuild (above 1: ocibuild better).", "",
             "| benchmark | measure | ocibuild | baseline | baseline value | ratio |", "|---|---|---|---|---|---|"]
    for x in rows:
        ratio = "" if x["ratio"] is None else f"**{x['ratio']:.2f}{x['ratio_unit']}**"
        cells = [x["benchmark"], x["what"], x["ocibuild"], x["baseline_tool"], x["baseline"], ratio]
        table.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    table.append(TABLE_END)
    head, _, rest = text.partition(TABLE_START)
    _, _, tail = rest.partition(TABLE_END)
    page.write_text(head + "\n".join(table) + tail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=HERE / "results")
    args = ap.parse_args()
    combine(args.results, command="python3 benchmarks/report.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
