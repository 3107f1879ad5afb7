"""A Metal kernel of the test's own (tests/mps/kernel_helper.mm, MSL compiled
at run time) launched through both front ends, on PyTorch's coalesced
encoder and on an encoder of its own, on views with a byte offset; commits
from a second thread; re-entry and off-queue calls refused; 100,000
command-buffer cycles without memory growth (and a deliberate leak caught). macOS arm64 with a Metal device
only: written on Linux, where neither the helper nor these tests can run."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import kestrel_mps_torch_ext as kmte
import kestrel_mps_torch_ext._abi as abi
from conftest import requires_mps

pytestmark = [requires_mps, pytest.mark.mps]
ROOT = Path(__file__).resolve().parents[2]
FRONT_ENDS = {"published": 0, "extension": 1}


@pytest.fixture(scope="module")
def helper(bridge, tmp_path_factory) -> ctypes.CDLL:
    assert sys.platform == "darwin"
    out = tmp_path_factory.mktemp("mps") / "libkernel_helper.dylib"
    subprocess.run([shutil.which("clang++") or "clang++", "-std=c++17", "-fobjc-arc", "-x", "objective-c++",
                    "-shared", "-fPIC", f"-I{kmte.get_include()}", str(ROOT / "tests" / "mps" / "kernel_helper.mm"),
                    "-framework", "Metal", "-framework", "Foundation", "-o", str(out)], check=True)
    lib = ctypes.PyDLL(str(out))  # the GIL stays held: kh_add reads a PyObject
    lib.kh_add.argtypes = [ctypes.py_object, ctypes.c_float, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    lib.kh_cycle_command_buffers.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    return lib


def add(helper, t: torch.Tensor, s: float, front_end: str, own_encoder: bool) -> None:
    err = ctypes.create_string_buffer(512)
    rc = helper.kh_add(t, s, FRONT_ENDS[front_end], int(own_encoder), err, len(err))
    assert rc == 0, err.value.decode()


@pytest.mark.parametrize("own_encoder", [False, True], ids=["coalesced_encoder", "own_encoder"])
@pytest.mark.parametrize("front_end", list(FRONT_ENDS))
def test_own_kernel_on_a_view_with_a_byte_offset(helper, front_end, own_encoder):
    base = torch.arange(64, dtype=torch.float32, device="mps")
    pending = base * 3  # a torch kernel left open in the coalesced encoder
    view = base[5:37]
    assert view.storage_offset() == 5
    add(helper, view, 2.5, front_end, own_encoder)
    after = base * 1  # a torch op after ours, on the same stream
    expected = torch.arange(64, dtype=torch.float32)
    expected[5:37] += 2.5
    torch.testing.assert_close(after.cpu(), expected)
    torch.testing.assert_close(base.cpu(), expected)
    torch.testing.assert_close(pending.cpu(), torch.arange(64, dtype=torch.float32) * 3)


@pytest.mark.parametrize("wait", [False, True], ids=["commit", "commit_and_wait"])
def test_commits_from_a_second_thread_while_the_first_runs_torch_ops(bridge, wait):
    x = torch.zeros(4096, device="mps")
    errors: list[BaseException] = []
    stop = threading.Event()

    def committer() -> None:
        try:
            while not stop.is_set():
                bridge.synchronize(wait=wait)  # dispatched onto the stream's queue
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    th = threading.Thread(target=committer)
    th.start()
    for _ in range(2000):
        x = x + 1
    stop.set()
    th.join()
    assert not errors
    torch.testing.assert_close(x.cpu(), torch.full((4096,), 2000.0))


def test_reentry_is_refused_with_its_status(helper):
    assert abi.STATUS_NAMES[helper.kh_reentry()] == "KESTREL_MPS_ERROR_REENTRANT"


@pytest.mark.parametrize("entry", ["command_buffer", "command_encoder"])
def test_off_queue_access_is_refused(bridge, entry):
    out = ctypes.c_void_p()
    assert abi.STATUS_NAMES[getattr(bridge.api, entry)(ctypes.byref(out))] == "KESTREL_MPS_ERROR_WRONG_QUEUE"
    assert abi.STATUS_NAMES[bridge.api.end_kernel_coalescing()] == "KESTREL_MPS_ERROR_WRONG_QUEUE"


def footprint_mib() -> float:
    """The process's physical footprint now (what Activity Monitor shows),
    from proc_pid_rusage: a current value, unlike ru_maxrss, a peak that
    earlier tests may already have raised past anything this test adds."""
    info = (ctypes.c_uint8 * 512)()
    libc = ctypes.CDLL(None)
    libc.proc_pid_rusage.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    assert libc.proc_pid_rusage(os.getpid(), 0, info) == 0  # RUSAGE_INFO_V0
    return ctypes.c_uint64.from_buffer(info, 72).value / 2**20  # ri_phys_footprint, after uuid + 7 counters


SYNC = {"commit": 1, "commit_and_wait": 2}  # KESTREL_MPS_SYNC_*


def cycle_growth_mib(helper, front_end: str, sync: str, leak: bool, n: int) -> float:
    args = (FRONT_ENDS[front_end], SYNC[sync], int(leak))
    assert helper.kh_cycle_command_buffers(n // 10, *args) == 0  # warm up
    before = footprint_mib()
    assert helper.kh_cycle_command_buffers(n, *args) == 0
    return footprint_mib() - before


# The published front end commits with commit_stream (torch's COMMIT), which
# keeps the buffer while commit-and-continue is on; the extension also runs
# COMMIT_AND_WAIT, which makes every fetch create a new, autoreleased buffer.
CYCLES = [("published", "commit"), ("extension", "commit"), ("extension", "commit_and_wait")]


@pytest.mark.parametrize("front_end, sync", CYCLES, ids=["-".join(c) for c in CYCLES])
def test_100k_command_buffer_cycles_do_not_grow_memory(helper, front_end, sync):
    grown = cycle_growth_mib(helper, front_end, sync, leak=False, n=100_000)
    assert grown < 16, f"{grown:.1f} MiB more after 100,000 fetch+commit cycles: buffers pile up"
    x = torch.ones(8, device="mps") * 2
    torch.testing.assert_close(x.cpu(), torch.full((8,), 2.0))


def test_the_memory_measure_catches_a_deliberate_leak(helper):
    # The same cycles keeping every new buffer alive: what a missing pool
    # would do. If this stays under the bound, the test above proves nothing.
    grown = cycle_growth_mib(helper, "extension", "commit_and_wait", leak=True, n=100_000)
    assert grown >= 16, f"only {grown:.1f} MiB for 100,000 leaked command buffers: the measure is blind"


def test_run_on_stream_queue_runs_a_c_callback_once(bridge, helper):
    calls = ctypes.c_int(0)
    assert bridge.api.run_on_stream_queue(helper.kh_count_call, ctypes.byref(calls)) == 0
    assert calls.value == 1
