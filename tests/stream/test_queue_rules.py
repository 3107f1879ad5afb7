"""The queue rules through the real backend (over the libdispatch stand-in,
or libdispatch itself): REENTRANT where a dispatch_sync would trap,
WRONG_QUEUE off the queue (the out handle cleared), synchronize moved onto
the queue, and what the bridge cannot detect trapping exactly as libdispatch
does."""

from __future__ import annotations

import pytest

import harness
from kestrel_mps_torch_ext import _abi


def test_run_on_stream_queue_from_its_callback_is_reentrant(rt: harness.Runtime) -> None:
    inner: list[tuple[int, str]] = []

    def callback() -> None:
        inner.append((rt.on_stream_queue(lambda: None), rt.bridge.last_error()))

    assert rt.on_stream_queue(callback) == _abi.OK
    status, message = inner[0]
    assert status == harness.STATUS["REENTRANT"]
    assert "already runs on the stream's serial queue" in message


def test_run_on_stream_queue_from_a_plain_block_on_the_queue_is_reentrant(rt: harness.Runtime) -> None:
    rt.ext_handle("current_stream")  # any entry tags the queue
    view = rt.stream_view()
    inner: list[int] = []
    rt.in_block(view.queue, lambda: inner.append(rt.on_stream_queue(lambda: None)))
    assert inner == [harness.STATUS["REENTRANT"]]  # not a trap


@pytest.mark.parametrize("entry", ["command_buffer", "command_encoder"])
def test_queue_only_entries_refuse_off_the_queue(rt: harness.Runtime, entry: str) -> None:
    status, handle = rt.ext_handle(entry)
    assert status == harness.STATUS["WRONG_QUEUE"] and handle == 0
    assert f"{entry}: called off the stream's serial queue" in rt.bridge.last_error()
    assert int(rt.bridge.api.end_kernel_coalescing()) == harness.STATUS["WRONG_QUEUE"]


def test_queue_only_entries_work_from_a_plain_block(rt: harness.Runtime) -> None:
    rt.ext_handle("current_stream")
    view = rt.stream_view()
    seen: list[tuple[int, int]] = []
    rt.in_block(view.queue, lambda: seen.append(rt.ext_handle("command_buffer")))
    assert seen[0][0] == _abi.OK and rt.kind(seen[0][1]) == "command_buffer"


@pytest.mark.model
def test_synchronize_runs_on_the_queue_from_off_it_and_from_on_it(rt: harness.Runtime) -> None:
    stream = rt.default_stream
    assert int(rt.bridge.api.synchronize(_abi.SYNC_COMMIT_AND_WAIT)) == _abi.OK
    assert rt.stat(stream, "sync_on_queue") == 1
    assert rt.on_stream_queue(lambda: rt.bridge.api.synchronize(_abi.SYNC_COMMIT)) == _abi.OK
    assert rt.stat(stream, "sync_on_queue") == 2
    assert rt.stat(stream, "sync_off_queue") == 0


def test_synchronize_on_the_queue_runs_in_place(rt: harness.Runtime) -> None:
    statuses: list[int] = []
    assert rt.on_stream_queue(lambda: statuses.append(int(rt.bridge.api.synchronize(_abi.SYNC_COMMIT)))) == _abi.OK
    assert statuses == [_abi.OK]  # a second dispatch_sync would have trapped


@pytest.mark.model
@pytest.mark.breaches
def test_published_entries_off_the_queue_are_trusted_and_the_model_sees_it(rt: harness.Runtime) -> None:
    # The published ABI does not check the queue (0.1.x did not): the model's
    # detector is what shows such a caller races torch.
    view = rt.stream_view()
    err, cb = rt.v1("KestrelMPSCommandBuffer", view.stream)
    assert err is None and cb
    assert rt.detections("off_queue") >= 1


@pytest.mark.model
@pytest.mark.breaches
def test_two_threads_in_one_stream_are_caught(rt: harness.Runtime) -> None:
    import threading

    view = rt.stream_view()
    stop = threading.Event()
    rt.set_option(harness.MEMBER_DELAY_US, 200)  # a window two threads cannot miss, even on a loaded machine

    def hammer() -> None:
        while not stop.is_set():
            rt.v1("KestrelMPSCommandEncoder", view.stream)

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(2000):
        if rt.detections("concurrent"):
            break
        rt.v1("KestrelMPSEndKernelCoalescing", view.stream)
    stop.set()
    for t in threads:
        t.join()
    assert rt.detections("concurrent") >= 1


@pytest.mark.model
def test_the_extension_never_touches_the_stream_off_its_queue(rt: harness.Runtime) -> None:
    # With every command-buffer and encoder member asserting its queue (the
    # 2.15 hooks' rule applied to all of them), a whole extension launch,
    # synchronize from off the queue included, must not trap.
    import torch

    rt.set_option(harness.ASSERT_QUEUE, 1)
    a, b, out = torch.arange(6.0), torch.ones(6), torch.zeros(6)
    rt.ext_add(a, b, out, flags=0, sync=_abi.SYNC_COMMIT)
    rt.ext_add(a, b, out, flags=harness.OWN_ENCODER, sync=_abi.SYNC_COMMIT_AND_WAIT)
    assert torch.equal(out, a + b)


def test_bridge_call_from_a_sync_onto_another_queue_traps_as_libdispatch_does(child) -> None:
    # Rows 3 and 4 of the facts' table: from a block on the stream's queue, a
    # dispatch_sync onto another queue Q hides the stream's tag; a bridge call
    # that dispatches onto the stream's queue then traps, with a real
    # libdispatch as with the stand-in. The rule for consumers: once on the
    # stream's queue, call the bridge directly.
    proc = child("""
        view = rt.stream_view()
        other = rt.dispatch.dispatch_queue_create(b"Q", None)
        rt.in_block(view.queue, lambda: rt.in_block(other, lambda: rt.bridge.api.synchronize(1)))
    """)
    assert proc.returncode < 0 and -proc.returncode in (4, 5), (proc.returncode, proc.stderr)  # SIGILL/SIGTRAP
    assert harness.crashed_saying(proc.stderr, "dispatch_sync called on queue already owned by current thread")
    assert "survived" not in proc.stdout


def test_a_torch_op_in_a_callback_on_the_queue_traps(child) -> None:
    # The header's rule: torch's ops dispatch_sync onto the stream's queue
    # themselves, so from a run_on_stream_queue callback (already on that
    # queue) one traps in libdispatch. The bridge cannot see it coming: the
    # call is torch's.
    proc = child("""
        rt.on_stream_queue(rt.torch_op)
    """)
    assert proc.returncode < 0 and -proc.returncode in (4, 5), (proc.returncode, proc.stderr)
    assert harness.crashed_saying(proc.stderr, "dispatch_sync called on queue already owned by current thread")
    assert "survived" not in proc.stdout


def test_the_same_call_directly_on_the_queue_does_not_trap(child) -> None:
    proc = child("""
        view = rt.stream_view()
        status = []
        rt.in_block(view.queue, lambda: status.append(int(rt.bridge.api.synchronize(1))))
        assert status == [0], status
    """)
    assert proc.returncode == 0, proc.stderr
    assert "survived" in proc.stdout


@pytest.mark.model
def test_published_entry_off_the_queue_traps_under_the_2_15_rule(child) -> None:
    proc = child("""
        rt.set_option(harness.ASSERT_QUEUE, 1)
        view = rt.stream_view()
        rt.v1("KestrelMPSCommandBuffer", view.stream)
    """)
    assert proc.returncode < 0, proc.stderr
    assert harness.crashed_saying(proc.stderr, "Block was expected to execute on queue")
