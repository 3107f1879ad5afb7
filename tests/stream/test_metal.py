"""What only real Metal can show (marked `metal`: the self-hosted MPS job;
docs/testing.md lists them): 100,000 command-buffer cycles without memory
growth, that the measure catches a deliberate leak, and that torch's next
op sees a kernel's writes in stream order, with no wait between."""

from __future__ import annotations

import ctypes
import os

import pytest
import torch

import harness
from kestrel_mps_torch_ext import _abi

pytestmark = pytest.mark.metal


def footprint_mib() -> float:
    """The process's physical footprint now (what Activity Monitor shows),
    from proc_pid_rusage: a current value, unlike ru_maxrss, a peak that
    earlier tests may already have raised past anything this test adds."""
    info = (ctypes.c_uint8 * 512)()
    libc = ctypes.CDLL(None)
    libc.proc_pid_rusage.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    assert libc.proc_pid_rusage(os.getpid(), 0, info) == 0  # RUSAGE_INFO_V0
    return ctypes.c_uint64.from_buffer(info, 72).value / 2**20  # ri_phys_footprint, after uuid + 7 counters


def cycle_growth_mib(rt: harness.Runtime, front_end: str, sync: int, leak: bool, n: int) -> float:
    rt.cycle_command_buffers(n // 10, front_end, sync, leak)  # warm up
    before = footprint_mib()
    rt.cycle_command_buffers(n, front_end, sync, leak)
    return footprint_mib() - before


# The published front end commits with commit_stream (torch's COMMIT), which
# keeps the buffer while commit-and-continue is on; the extension also runs
# COMMIT_AND_WAIT, which makes every fetch create a new, autoreleased buffer.
CYCLES = [("published", _abi.SYNC_COMMIT), ("extension", _abi.SYNC_COMMIT), ("extension", _abi.SYNC_COMMIT_AND_WAIT)]


@pytest.mark.parametrize("front_end, sync", CYCLES, ids=["published-commit", "extension-commit", "extension-wait"])
def test_100k_command_buffer_cycles_do_not_grow_memory(rt: harness.Runtime, front_end: str, sync: int) -> None:
    grown = cycle_growth_mib(rt, front_end, sync, leak=False, n=100_000)
    assert grown < 16, f"{grown:.1f} MiB more after 100,000 fetch+commit cycles: buffers pile up"
    x = torch.ones(8, device=rt.device) * 2
    torch.testing.assert_close(x.cpu(), torch.full((8,), 2.0))


def test_the_memory_measure_catches_a_deliberate_leak(rt: harness.Runtime) -> None:
    # The same cycles keeping every new buffer alive: what a missing pool
    # would do. If this stays under the bound, the test above proves nothing.
    grown = cycle_growth_mib(rt, "extension", _abi.SYNC_COMMIT_AND_WAIT, leak=True, n=100_000)
    assert grown >= 16, f"only {grown:.1f} MiB for 100,000 leaked command buffers: the measure is blind"


def test_torch_ops_see_the_kernel_in_stream_order(rt: harness.Runtime) -> None:
    a = torch.arange(4096, dtype=torch.float32, device=rt.device)
    b = a * 2  # torch's write, still in its coalesced encoder
    out = torch.empty(4096, device=rt.device)
    rt.ext_add(a, b, out)  # reads torch's b; nothing waited for
    after = out + 1  # torch's read of our write, on the same stream
    torch.testing.assert_close(after.cpu(), torch.arange(4096, dtype=torch.float32) * 3 + 1, rtol=0, atol=0)
