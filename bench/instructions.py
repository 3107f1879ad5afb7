"""Instructions per call of every row of the resolve benchmark, counted by
callgrind: exact, and the same for the same binary whatever the machine's
load, so ratio goals can be settled where nanoseconds move by 40% between
runs of one binary on a shared 2-core machine.

    python bench/instructions.py [--label NAME]   # -> bench/results/<label>-instructions.json

Each row's one call is a function of its own in bench_resolve.cpp
(`step_floor`, `step_kestrel`, ...; never inlined, the same call overhead in
every row). Under callgrind the benchmark runs briefly; from callgrind's
call graph each step's calls and inclusive instructions give instructions
per call. Needs valgrind (Debian's), and what bench/run.py needs.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402 - bench/run.py: the same build of the same benchmark

STEPS = ("step_floor", "step_kestrel", "step_kestrel_aten", "step_kestrel_v1", "step_kestrel_batch8",
         "step_dlpack_c", "step_python")


def per_call(callgrind_out: Path) -> dict[str, tuple[int, int]]:
    """{step: (calls, inclusive instructions)} summed over every call site,
    read from callgrind's output (name compression: "(id) name" once, then
    "(id)"; a call is "cfn=", then "calls=COUNT ...", then "POS INCLUSIVE")."""
    names: dict[str, str] = {}
    found: dict[str, list[int]] = {}
    callee = None
    lines = callgrind_out.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"c?fn=\((\d+)\)(?: (.*))?$", line)
        if m:
            if m[2]:
                names[m[1]] = m[2]
            if line.startswith("cfn="):
                callee = names.get(m[1])
            continue
        if line.startswith("calls=") and callee:
            base = callee.split("(")[0].split("::")[-1]
            if base in STEPS:
                calls = int(line.split("=")[1].split()[0])
                inclusive = int(lines[i + 1].split()[-1])
                entry = found.setdefault(base, [0, 0])
                entry[0] += calls
                entry[1] += inclusive
            callee = None
    return {k: (v[0], v[1]) for k, v in found.items()}


def measure(binary: Path, tensor: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(binary),
                        f"--benchmark_filter=/{tensor}$|batch8", "--benchmark_min_time=0.002s"],
                       check=True, capture_output=True)
        counts = per_call(out)
    return {step: inclusive / calls for step, (calls, inclusive) in sorted(counts.items()) if calls}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="linux-x86-2core")
    args = parser.parse_args()
    binary = run.build_bench(run.ROOT / "build" / "bench")
    result = {"machine": run.machine(), "instructions_per_call": {t: measure(binary, t)
                                                                  for t in ("contiguous", "strided")}}
    for tensor, rows in result["instructions_per_call"].items():
        floor, one = rows["step_floor"], rows["step_kestrel"]
        print(f"{tensor}: " + ", ".join(f"{k.removeprefix('step_')} {v:.0f}" for k, v in rows.items()))
        print(f"  handle entry / floor {rows['step_kestrel_aten'] / floor:.2f}x, "
              f"published / floor {rows['step_kestrel_v1'] / floor:.2f}x, "
              f"batch of 8 / one tensor {rows['step_kestrel_batch8'] / one:.2f}x")
    out = run.RESULTS / f"{args.label}-instructions.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
