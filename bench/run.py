"""Measure the bridge against the alternatives and write the report.

    python bench/run.py measure --label linux-x86-2core   # -> bench/results/<label>.json
    python bench/run.py report                            # -> docs/benchmarks.md tables + docs/benchmarks.png

`measure` builds bench_resolve against the installed torch and the installed
kestrel-mps-torch-ext, runs it with 10 repetitions (median and min..max of
the repetitions), and also measures the cold load_torch_mps_bridge() time in
fresh processes, the stripped library size, and the build time of one minor.
Environment: KESTREL_BENCH_DEVICE=cuda puts the tensors on the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LOAD_SNIPPET = (
    "import time, torch\n"
    "t = time.perf_counter()\n"
    "import kestrel_mps_torch_ext as k\n"
    "k.load_torch_mps_bridge()\n"
    "print((time.perf_counter() - t) * 1e3)\n"
)


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "device": os.environ.get("KESTREL_BENCH_DEVICE", "cpu"),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def build_bench(build: Path) -> Path:
    subprocess.run(["cmake", "-S", str(ROOT / "bench"), "-B", str(build), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                    f"-DPython_EXECUTABLE={sys.executable}"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build)], check=True, stdout=subprocess.DEVNULL)
    return build / "bench_resolve"


def run_bench(binary: Path, repetitions: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([str(binary), f"--benchmark_repetitions={repetitions}", "--benchmark_min_time=0.2s",
                        f"--benchmark_out={out.name}", "--benchmark_out_format=json"],
                       check=True, stdout=subprocess.DEVNULL)
        data = json.loads(Path(out.name).read_text())
    runs: dict[str, list[float]] = {}
    allocs: dict[str, float] = {}
    for b in data["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        runs.setdefault(b["run_name"], []).append(b["real_time"])
        allocs[b["run_name"]] = max(allocs.get(b["run_name"], 0.0), b.get("allocs_per_call", 0.0))
    return {name: {"median_ns": statistics.median(t), "min_ns": min(t), "max_ns": max(t), "runs": len(t),
                   "allocs_per_call": allocs[name]} for name, t in runs.items()}


def load_times(n: int) -> list[float]:
    return [float(subprocess.run([sys.executable, "-c", LOAD_SNIPPET], check=True, capture_output=True,
                                 text=True).stdout) for _ in range(n)]


def library_size() -> dict:
    import kestrel_mps_torch_ext as k

    lib = k.load_torch_mps_bridge().path
    with tempfile.TemporaryDirectory() as d:
        copy = Path(d) / lib.name
        shutil.copyfile(lib, copy)
        subprocess.run(["strip", "--strip-unneeded" if sys.platform != "darwin" else "-x", str(copy)], check=True)
        return {"file": lib.name, "installed_bytes": lib.stat().st_size, "stripped_bytes": copy.stat().st_size}


def build_time() -> float:
    with tempfile.TemporaryDirectory() as d:
        start = time.monotonic()
        subprocess.run(["cmake", "-S", str(ROOT), "-B", d, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                        f"-DPython_EXECUTABLE={sys.executable}"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", d, "--target", "kestrel_shim"], check=True, stdout=subprocess.DEVNULL)
        return time.monotonic() - start


def measure(args: argparse.Namespace) -> int:
    binary = build_bench(ROOT / "build" / "bench")
    result = {"label": args.label, "machine": machine(), "date": time.strftime("%Y-%m-%d"),
              "command": f"python bench/run.py measure --label {args.label}",
              "resolve": run_bench(binary, args.repetitions)}
    if not args.resolve_only:
        loads = load_times(args.load_runs)
        result["load_ms"] = {"median": statistics.median(loads), "min": min(loads), "max": max(loads), "runs": len(loads)}
        result["library"] = library_size()
        result["build_seconds"] = build_time()
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.label}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"wrote {path}")
    return 0


ORDER = ["floor", "kestrel_v1", "kestrel", "kestrel_aten", "dlpack_c", "to_dlpack", "python"]


def table(r: dict) -> str:
    res = r["resolve"]
    m = r["machine"]
    lines = [f"**{r['label']}**: {m['cpu']}, {m['cores']} cores, Python {m['python']}, torch {m['torch']}, "
             f"tensors on {m['device']}{' (' + m['gpu'] + ')' if m.get('gpu') and m['device'] == 'cuda' else ''}; "
             f"{r['date']}; median of {next(iter(res.values()))['runs']} repetitions (min..max).", "",
             "| per tensor | contiguous 4-D float | ratio to floor | strided view | ratio to floor | heap allocs per call |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name in ORDER:
        if f"{name}/contiguous" not in res:
            continue
        c, s = res[f"{name}/contiguous"], res[f"{name}/strided"]
        fc, fs = res["floor/contiguous"]["median_ns"], res["floor/strided"]["median_ns"]
        lines.append(f"| {name} | {c['median_ns']:.1f} ns ({c['min_ns']:.1f}..{c['max_ns']:.1f}) | "
                     f"{c['median_ns'] / fc:.2f}x | {s['median_ns']:.1f} ns ({s['min_ns']:.1f}..{s['max_ns']:.1f}) | "
                     f"{s['median_ns'] / fs:.2f}x | {max(c['allocs_per_call'], s['allocs_per_call']):.3g} |")
    b = res["kestrel_batch8/mixed"]
    one = res["kestrel/contiguous"]["median_ns"]
    lines.append(f"| kestrel batch of 8 (per call) | {b['median_ns']:.1f} ns ({b['min_ns']:.1f}..{b['max_ns']:.1f}) | "
                 f"{b['median_ns'] / one:.2f}x one tensor | | | {b['allocs_per_call']:.3g} |")
    if "kestrel_v1/contiguous" in res:
        ratios = [res[f"kestrel_v1/{k}"]["median_ns"] / res[f"dlpack_c/{k}"]["median_ns"] for k in ("contiguous", "strided")]
        verdict = "met" if max(ratios) <= 1 else "missed"
        lines += ["", f"- published entry (kestrel_v1) / torch's DLPack C exchange: {ratios[0]:.2f}x contiguous, "
                      f"{ratios[1]:.2f}x strided (goal: at or below 1x on both: {verdict})"]
    if "kestrel_aten/contiguous" in res:
        kinds = ("contiguous", "strided")
        to_v1 = [res[f"kestrel_aten/{k}"]["median_ns"] / res[f"kestrel_v1/{k}"]["median_ns"] for k in kinds]
        to_floor = [res[f"kestrel_aten/{k}"]["median_ns"] / res[f"floor/{k}"]["median_ns"] for k in kinds]
        verdict = "met" if max(to_v1) <= 1 and max(to_floor) <= 2 else "missed"
        lines.append(f"- handle entry (kestrel_aten) / published entry: {to_v1[0]:.2f}x contiguous, {to_v1[1]:.2f}x "
                     f"strided; / floor: {to_floor[0]:.2f}x, {to_floor[1]:.2f}x (goal: at or below 1x the "
                     f"published entry and 2x the floor: {verdict})")
    if "load_ms" in r:
        lo, lib = r["load_ms"], r["library"]
        lines += ["", f"- `load_torch_mps_bridge()` after `import torch`, cold, fresh process: median "
                      f"{lo['median']:.2f} ms ({lo['min']:.2f}..{lo['max']:.2f}, {lo['runs']} runs)",
                  f"- `{lib['file']}` stripped: {lib['stripped_bytes'] / 1024:.1f} KiB "
                  f"({lib['stripped_bytes']} bytes)",
                  f"- one minor built from scratch (configure + build of the shim): {r['build_seconds']:.1f} s"]
    return "\n".join(lines)


def report(args: argparse.Namespace) -> int:
    """Rewrites the part of docs/benchmarks.md between the results markers
    from bench/results/*.json, and redraws docs/benchmarks.png."""
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text()
    start, end = "<!-- results -->", "<!-- /results -->"
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    doc.write_text(head + start + "\n" + "\n\n".join(table(r) for r in results) + "\n" + end + tail)
    print(f"wrote {doc}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, r in zip(axes[0], results):
        names = [n for n in ORDER if f"{n}/contiguous" in r["resolve"]]
        vals = [r["resolve"][f"{n}/contiguous"]["median_ns"] for n in names]
        ax.barh(names[::-1], vals[::-1], color=["#d62" if n.startswith("kestrel") else "#888" for n in names[::-1]])
        ax.set_xscale("log")
        ax.set_xlabel("ns per tensor (log scale), contiguous 4-D float")
        ax.set_title(f"{r['label']} (torch {r['machine']['torch']}, {r['machine']['device']})", fontsize=9)
        for y, v in enumerate(vals[::-1]):
            ax.text(v, y, f" {v:.1f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "benchmarks.png", dpi=110)
    print("wrote docs/benchmarks.png")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--label", required=True)
    m.add_argument("--repetitions", type=int, default=10)
    m.add_argument("--load-runs", type=int, default=10)
    m.add_argument("--resolve-only", action="store_true")
    m.add_argument("--out")
    sub.add_parser("report")
    args = parser.parse_args()
    return measure(args) if args.cmd == "measure" else report(args)


if __name__ == "__main__":
    sys.exit(main())
