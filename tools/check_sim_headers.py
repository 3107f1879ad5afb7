"""The simulated MPS runtime (tests/sim) and the real Metal backend over it
compile against the MPS headers of every supported torch minor: the
ordinary -DKESTREL_SIMULATED_MPS=ON build, configured against each minor's
macOS wheel (whose ATen/mps headers are the files every wheel of that
release ships), with every object that includes them (the model's and the
shim's) built and nothing linked (the wheel's libraries are Mach-O). Only compiled: the suite runs the simulation over
the installed torch (tools/test_simulated.sh).

    python tools/check_sim_headers.py [2.9.1 2.10.0 ...]
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import torch_wheels  # noqa: E402


def compile_all(version: str) -> list[str]:
    """The compiler's errors (empty: every object of the simulation built)."""
    root = torch_wheels.torch_root(version, torch_wheels.MACOS_PLATFORMS)
    build = ROOT / "build" / "sim-headers" / f"torch{version}"
    proc = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja",
                           "-DKESTREL_SIMULATED_MPS=ON", f"-DKESTREL_TORCH_ROOT={root}",
                           f"-DPython_EXECUTABLE={sys.executable}"], capture_output=True, text=True)
    if proc.returncode != 0:
        return (proc.stdout + proc.stderr).splitlines()[-10:]
    targets = subprocess.run(["ninja", "-C", str(build), "-t", "targets", "all"], capture_output=True,
                             text=True, check=True).stdout
    # The objects that include torch's MPS headers: the model and the shim
    # (its Metal backend among them). The consumers and stand-ins include
    # none, and the stream suite compiles them under the installed torch.
    objects = [line.split(":")[0] for line in targets.splitlines()
               if line.split(":")[0].endswith(".o") and ("kestrel_sim_mps.dir" in line or "kestrel_shim.dir" in line)]
    if not any(o.endswith("stream_mps.cpp.o") for o in objects) or not any(
            o.endswith("mps_model.cpp.o") for o in objects):
        return [f"the build has no stream_mps.cpp or mps_model.cpp object: {objects}"]
    proc = subprocess.run(["ninja", "-C", str(build), *objects], capture_output=True, text=True)
    if proc.returncode != 0:
        return [l for l in proc.stdout.splitlines() if "error" in l][:5] or proc.stdout.splitlines()[-5:]
    return []


def main() -> int:
    versions = sys.argv[1:] or torch_wheels.supported_minors()
    failed = 0

    def timed(version: str) -> tuple[list[str], float]:
        start = time.monotonic()
        return compile_all(version), time.monotonic() - start

    with ThreadPoolExecutor(max_workers=2) as pool:  # each configure is serial: two at a time
        results = list(pool.map(timed, versions))
    for version, (errors, seconds) in zip(versions, results):
        failed += bool(errors)
        print(f"torch {version}: the simulation and stream_mps.cpp "
              f"{'compile' if not errors else 'FAIL'} against its MPS headers ({seconds:.0f} s)", flush=True)
        for e in errors:
            print(f"  {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
