"""The bridge's own cost per launch, over the simulated MPS runtime
(tests/sim, docs/simulated_mps.md): out = a + b through each front end
against the same sequence calling the model directly, in one process.

    bash tools/test_simulated.sh            # builds build/sim-torch<version>
    python bench/sim_launch.py [--label linux-x86-2core]

The sequences are tests/stream/consumer/threads.c's launch_bench modes. Prints a
markdown table of median ns per launch (min..max of the repetitions) and the
ratio of each to the direct model calls; docs/benchmarks.md keeps the last
one. What it says: what the bridge adds around a launch on the CPU (tensor
resolution, stream entries, queue checks, pools). What it cannot say: the
cost on a Mac, where libdispatch, libobjc and Metal's encoder calls are
Apple's and the queue's other user is torch itself.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "stream"))
sys.path.insert(0, str(ROOT / "python"))
import torch  # noqa: E402

from run import machine  # noqa: E402

MODES = {
    0: "extension: resolve_tensors (3) + run_on_stream_queue + command_encoder",
    1: "published: tensor_view_from_pyobject (3) + current_stream_view + own dispatch_sync_f and pool + KestrelMPSCommandEncoder",
    2: "extension, operands resolved once: run_on_stream_queue + command_encoder",
    3: "the model directly, operands resolved once: dispatch_sync_f + pool + stream->commandEncoder()",
}
BASELINE = 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="this machine")
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--repetitions", type=int, default=7)
    args = parser.parse_args()
    version = torch.__version__.split("+")[0]
    build = Path(os.environ.get("KESTREL_SIM_BUILD", ROOT / "build" / f"sim-torch{version}"))
    import harness

    rt = harness.SimRuntime(build)
    rt.set_option(harness.GPU_LATENCY_US, 0)
    bench = rt.consumer.launch_bench
    bench.restype = ctypes.c_double
    bench.argtypes = [ctypes.c_int] + [ctypes.py_object] * 3 + [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    err = ctypes.create_string_buffer(512)
    base = torch.arange(4 * 66 * 3, dtype=torch.float32).reshape(4, 66, 3)
    a, b, out = base[1:, 2:, 1], torch.ones(3, 64), torch.zeros(3, 64)  # a view at a byte offset
    results: dict[int, list[float]] = {m: [] for m in MODES}
    for _ in range(args.repetitions):
        for mode in MODES:  # interleaved, so that drift hits every mode alike
            ns = bench(mode, a, b, out, args.iterations, err, len(err))
            if ns < 0:
                raise SystemExit(f"mode {mode} failed: {err.value.decode()}")
            results[mode].append(ns)
    rt.wait()
    assert torch.equal(out, a + b), "the benchmarked launches computed a wrong result"
    total, report = rt.report()
    assert total == 0, report
    m = machine()
    base_ns = statistics.median(results[BASELINE])
    print(f"**{args.label}** (simulated MPS runtime): {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
          f"torch {m['torch']}; {args.repetitions} repetitions of {args.iterations} launches, median (min..max)\n")
    print("| sequence per launch | ns per launch | x direct model calls |")
    print("| --- | --- | --- |")
    for mode, what in MODES.items():
        r = results[mode]
        print(f"| {what} | {statistics.median(r):.0f} ({min(r):.0f}..{max(r):.0f}) | "
              f"{statistics.median(r) / base_ns:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
