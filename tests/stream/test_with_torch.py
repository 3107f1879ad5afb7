"""A consumer's kernels among torch's own ops on one stream; commits from a
second thread; a C callback on the queue; command-buffer cycles. Torch's
ops on the stream are rt.torch_op: the model's "torch" over the simulation,
real MPS kernels on a Mac. Over the simulation CPU tensors are not
stream-ordered, so results are read after a wait; that torch's later ops
see a kernel's writes without one is test_metal.py's."""

from __future__ import annotations

import ctypes
import threading

import pytest
import torch

import harness
import kestrel_mps_torch_ext as kmte
from kestrel_mps_torch_ext import _abi
from conftest import BACKEND


def test_buffer_is_the_storages_handle_and_offset_in_bytes(rt: harness.Runtime) -> None:
    base = torch.arange(64, dtype=torch.float16, device=rt.device).reshape(8, 8)
    view = base[2:, 1::3]
    d = rt.bridge.resolve(view)
    assert d.device_type == {"cpu": 1, "mps": 8}[rt.device]
    assert d.buffer == base.untyped_storage().data_ptr()  # on MPS: the id<MTLBuffer>
    assert d.byte_offset == view.storage_offset() * 2 == (2 * 8 + 1) * 2


@pytest.mark.parametrize("encoder", [0, harness.OWN_ENCODER], ids=["coalesced", "own_encoder"])
@pytest.mark.parametrize("front", ["extension", "published"])
def test_kernel_between_torch_ops_on_a_view_with_an_offset(rt: harness.Runtime, front: str, encoder: int) -> None:
    base = torch.arange(64, dtype=torch.float32, device=rt.device)
    pending = base * 3  # torch's kernel, left open in its coalesced encoder
    rt.torch_op()
    # a: a copy, alive until the wait (over the simulation the kernel runs
    # at commit, reading CPU memory that a freed tensor no longer owns).
    a, b = base[5:37].clone(), torch.full((32,), 2.5, device=rt.device)
    out = base[7:39]
    expected_out = base[5:37].cpu() + 2.5
    if front == "extension":
        rt.ext_add(a, b, out, flags=encoder)
    else:
        rt.v1_add(a, b, out, flags=encoder, commit=False)
    rt.torch_op()
    rt.wait()
    after = base * 1
    expected = torch.arange(64, dtype=torch.float32)
    expected[7:39] = expected_out
    torch.testing.assert_close(after.cpu(), expected, rtol=0, atol=0)
    torch.testing.assert_close(pending.cpu(), torch.arange(64, dtype=torch.float32) * 3, rtol=0, atol=0)


def test_end_coalescing_off_the_queue_is_refused_and_synchronize_moves_onto_it(rt: harness.Runtime) -> None:
    a = torch.arange(256, dtype=torch.float32, device=rt.device)
    b = a * 2 + 1
    rt.torch_op()
    with pytest.raises(kmte.BridgeCallError, match="WRONG_QUEUE"):
        rt.bridge.end_kernel_coalescing()  # off the queue: refused, not raced
    rt.bridge.synchronize(wait=False)  # dispatched onto the stream's queue
    c = b - 1
    rt.bridge.synchronize(wait=True)
    torch.testing.assert_close(c.cpu(), torch.arange(256, dtype=torch.float32) * 2, rtol=0, atol=0)


@pytest.mark.parametrize("wait", [False, True], ids=["commit", "commit_and_wait"])
def test_commits_from_a_second_thread_while_the_first_runs_torch_ops(rt: harness.Runtime, wait: bool) -> None:
    x = torch.zeros(4096, device=rt.device)
    errors: list[BaseException] = []
    stop = threading.Event()

    def committer() -> None:
        try:
            while not stop.is_set():
                rt.bridge.synchronize(wait=wait)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    th = threading.Thread(target=committer)
    th.start()
    try:
        for _ in range(500):
            rt.torch_op()
            x = x + 1
    finally:
        stop.set()
        th.join()
    assert not errors, errors[:3]
    torch.testing.assert_close(x.cpu(), torch.full((4096,), 500.0), rtol=0, atol=0)


def test_run_on_stream_queue_runs_a_c_callback_once(rt: harness.Runtime) -> None:
    calls = ctypes.c_int(0)
    assert rt.bridge.api.run_on_stream_queue(rt.consumer.kst_count_call, ctypes.byref(calls)) == _abi.OK
    assert calls.value == 1


@pytest.mark.parametrize("front_end, sync", [("published", _abi.SYNC_COMMIT), ("extension", _abi.SYNC_COMMIT),
                                             ("extension", _abi.SYNC_COMMIT_AND_WAIT)])
def test_command_buffer_cycles_in_one_block(rt: harness.Runtime, front_end: str, sync: int) -> None:
    rt.cycle_command_buffers(1000 if BACKEND == "sim" else 10_000, front_end, sync)
    x = torch.ones(8, device=rt.device) * 2  # torch still works on the stream
    torch.testing.assert_close(x.cpu(), torch.full((8,), 2.0))
