"""The stream suite: every test of the bridge's stream behaviour, written
once, run over one of two backends (harness.py):

- `sim` (the default on Linux): the simulated build of the bridge over the
  model of torch's MPS runtime and Metal; CPU tensors stand in for MPS
  tensors. tools/test_simulated.sh builds it and sets KESTREL_SIM_BUILD.
- `mps` (the default on macOS): the installed bridge over real torch and
  Metal, MPS tensors; tools/test.sh runs it on a Mac.

KESTREL_STREAM_BACKEND picks one. Marks:
- `model`: needs the simulated runtime's instruments (counters, detectors,
  options, injected faults); runs over `sim` only.
- `metal`: needs real Metal (a real kernel's numbers, the process's
  physical footprint); runs over `mps` only, and is listed in
  docs/testing.md.
- `breaches`: a deliberately wrong consumer; the test asserts the breach
  itself, so the model's end-of-test check is skipped.

Every test starts from a reset model (sim) and ends waiting for the GPU;
over `sim` it then fails on any breach of Metal's or torch's rules the
model recorded, unless marked `breaches`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

import harness

BACKEND = os.environ.get("KESTREL_STREAM_BACKEND", "mps" if sys.platform == "darwin" else "sim")
if BACKEND not in ("sim", "mps"):
    raise pytest.UsageError(f"KESTREL_STREAM_BACKEND={BACKEND!r}: expected sim or mps")
BUILD = Path(os.environ.get("KESTREL_SIM_BUILD", ""))
if BACKEND == "sim" and not (BUILD / "tests" / "sim").is_dir():
    raise pytest.UsageError("set KESTREL_SIM_BUILD to the simulated build (bash tools/test_simulated.sh does)")
SKIP = {
    "model": ("sim", "needs the simulated runtime's instruments (counters, detectors, options, faults): "
                     "runs over the simulation, in CI on Linux"),
    "metal": ("mps", "needs real Metal (a Mac with a usable Metal device): runs in the self-hosted MPS job"),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "breaches: a deliberately wrong consumer; the test checks the breach")
    config.addinivalue_line("markers", "model: needs the simulated runtime's instruments (sim backend only)")
    config.addinivalue_line("markers", "metal: needs real Metal (mps backend only)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for mark, (backend, reason) in SKIP.items():
            if item.get_closest_marker(mark) is not None and BACKEND != backend:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The three counts CI prints: stream tests that ran and passed over this
    backend, those that need the other backend, and those skipped for
    another reason."""
    stats = terminalreporter.stats
    passed_reports = [r for r in stats.get("passed", []) if r.when == "call"]
    passed = len(passed_reports)
    both = len([r for r in passed_reports if "model" not in r.keywords and "metal" not in r.keywords])
    skipped = stats.get("skipped", [])
    other_backend = {"sim": "metal", "mps": "model"}[BACKEND]
    elsewhere = [r for r in skipped if other_backend in r.keywords]
    name = {"sim": "over the simulated runtime", "mps": "over real MPS"}[BACKEND]
    where = {"sim": "Mac-only (need real Metal)", "mps": "simulation-only (need the model)"}[BACKEND]
    terminalreporter.write_line(
        f"stream suite: {passed} passed {name} ({both} of them run over both backends); "
        f"{len(elsewhere)} {where}; {len(skipped) - len(elsewhere)} skipped for another reason")


@pytest.fixture(scope="session")
def rt() -> harness.Runtime:
    if BACKEND == "sim":
        return harness.SimRuntime(BUILD)
    return harness.MPSRuntime(Path(os.environ.get("KESTREL_BUILD_DIR", harness.ROOT / "build")) / "stream-mps")


@pytest.fixture(autouse=True)
def backend_checks(request: pytest.FixtureRequest, rt: harness.Runtime):
    rt.before_test()
    yield
    rt.after_test(check=request.node.get_closest_marker("breaches") is None)


def run_child(body: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """body in a fresh Python over the same backend (rt, harness and torch
    are there); what it printed and how it ended. The timeout is the
    watchdog of tests that could deadlock."""
    here = str(Path(__file__).parent)
    make = ("harness.SimRuntime(Path({build!r}))" if BACKEND == "sim"
            else "harness.MPSRuntime(Path({build!r}) / 'stream-mps')").format(
        build=str(BUILD) if BACKEND == "sim" else os.environ.get("KESTREL_BUILD_DIR", str(harness.ROOT / "build")))
    code = (f"import sys\nsys.path.insert(0, {here!r})\nimport harness, torch\nfrom pathlib import Path\n"
            f"rt = {make}\n{textwrap.dedent(body)}\nprint('survived')\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def child() -> Callable[..., subprocess.CompletedProcess[str]]:
    """run_child: a test body in a process of its own (traps, first use, deadlocks)."""
    return run_child


@pytest.fixture
def device(rt: harness.Runtime) -> str:
    """Where the stream tests' tensors live: cpu over the simulation, mps on a Mac."""
    return rt.device
