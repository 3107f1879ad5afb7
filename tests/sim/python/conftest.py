"""pytest over the simulated MPS runtime: the real bridge (its Metal backend,
shim/stream_mps.cpp) loaded by the real loader, over the model of torch's
MPSStream, the libdispatch and libobjc stand-ins (tests/sim).

Run by tools/test_simulated.sh, which builds the simulation and sets
KESTREL_SIM_BUILD to its build directory. Every test starts from a reset
model and ends checking that the model recorded no breach of Metal's or
torch's rules, unless it is marked `breaches` (a deliberately wrong consumer,
whose breach the test asserts itself)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

import sim

BUILD = Path(os.environ.get("KESTREL_SIM_BUILD", ""))
if not (BUILD / "tests" / "sim").is_dir():
    raise pytest.UsageError("set KESTREL_SIM_BUILD to the simulated build (bash tools/test_simulated.sh does)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "breaches: a deliberately wrong consumer; the test checks the breach")


@pytest.fixture(scope="session")
def rt() -> sim.Runtime:
    return sim.Runtime.load(BUILD)


@pytest.fixture(autouse=True)
def clean_model(request: pytest.FixtureRequest, rt: sim.Runtime):
    rt.reset()
    yield
    rt.model.kestrel_sim_mps_gpu_wait_all()
    if request.node.get_closest_marker("breaches") is None:
        total, report = rt.report()
        assert total == 0, f"the model recorded {total} breach(es):\n{report}"
        counts = rt.objc_counts()
        assert counts["outside_pool"] == 0, counts
        assert counts["pushes"] == counts["pops"], counts
        assert counts["out_of_order_pops"] == 0 and counts["unknown_pops"] == 0, counts


def run_child(body: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """body in a fresh Python over the simulation (rt, sim and torch are
    there); what it printed and how it ended. The timeout is the watchdog of
    tests that could deadlock."""
    here = str(Path(__file__).parent)
    code = (f"import sys\nsys.path.insert(0, {here!r})\nimport sim, torch\nfrom pathlib import Path\n"
            f"rt = sim.Runtime.load(Path({str(BUILD)!r}))\n{textwrap.dedent(body)}\nprint('survived')\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def child() -> Callable[..., subprocess.CompletedProcess[str]]:
    """run_child: a test body in a process of its own (traps, first use, deadlocks)."""
    return run_child
