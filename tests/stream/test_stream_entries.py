"""Every stream entry of both front ends on its success path, through the
real Metal backend: the right object (asked of Metal, or of the model), the
right effect (the model's counters, for the tests marked `model`)."""

from __future__ import annotations

import pytest

import harness
from kestrel_mps_torch_ext import _abi


def test_published_stream_view_and_extension_handles_agree(rt: harness.Runtime) -> None:
    view = rt.stream_view()
    assert rt.ext_handle("current_stream") == (_abi.OK, view.stream)
    assert rt.ext_handle("dispatch_queue") == (_abi.OK, view.queue)
    assert rt.ext_handle("device") == (_abi.OK, view.device)
    assert rt.kind(view.device) == "device"
    status, queue = rt.ext_handle("command_queue")
    assert status == _abi.OK and rt.kind(queue) == "command_queue"
    assert view.queue not in (queue, 0)  # the serial dispatch queue, not Metal's command queue


@pytest.mark.model
def test_stream_view_is_the_models_stream(rt: harness.Runtime) -> None:
    view = rt.stream_view()
    stream = rt.default_stream
    assert view.stream == stream
    assert view.queue == rt.model.kestrel_sim_mps_stream_queue(stream)
    assert rt.ext_handle("command_queue")[1] == rt.model.kestrel_sim_mps_stream_command_queue(stream)
    assert view.device == rt.model.kestrel_sim_mps_device()


@pytest.mark.model
def test_extension_encoder_is_torchs_coalesced_one_until_coalescing_ends(rt: harness.Runtime) -> None:
    seen: dict[str, object] = {}

    def on_queue() -> None:
        s1, first = rt.ext_handle("command_encoder")
        s2, again = rt.ext_handle("command_encoder")
        seen.update(first=first, again=again, status=(s1, s2))
        seen["open_before"] = rt.model.kestrel_sim_encoder_is_open(first)
        seen["end"] = int(rt.bridge.api.end_kernel_coalescing())
        seen["open_after"] = rt.model.kestrel_sim_encoder_is_open(first)
        seen["after_end"] = rt.ext_handle("command_encoder")[1]

    assert rt.on_stream_queue(on_queue) == _abi.OK
    assert seen["status"] == (_abi.OK, _abi.OK)
    assert rt.model.kestrel_sim_is_encoder(seen["first"])
    assert seen["first"] == seen["again"]
    assert seen["open_before"] == 1 and seen["end"] == _abi.OK and seen["open_after"] == 0
    assert seen["after_end"] not in (0, seen["first"])
    assert rt.stat(rt.default_stream, "coalesced_ended") == 1


@pytest.mark.model
def test_extension_command_buffer_ends_coalescing_first(rt: harness.Runtime) -> None:
    seen: dict[str, int] = {}

    def on_queue() -> None:
        _, encoder = rt.ext_handle("command_encoder")
        status, cb = rt.ext_handle("command_buffer")
        seen.update(status=status, cb=cb, encoder_open=rt.model.kestrel_sim_encoder_is_open(encoder))
        # An encoder of our own is now allowed: no "already encoding" breach.
        own = rt.model.kestrel_sim_command_buffer_new_encoder(cb)
        rt.model.kestrel_sim_encoder_end(own)

    assert rt.on_stream_queue(on_queue) == _abi.OK
    assert seen["status"] == _abi.OK and rt.model.kestrel_sim_is_command_buffer(seen["cb"])
    assert seen["encoder_open"] == 0
    assert rt.detections("already_encoding") == 0


@pytest.mark.model
def test_published_command_buffer_does_not_end_coalescing(rt: harness.Runtime) -> None:
    view = rt.stream_view()
    seen: dict[str, object] = {}

    def in_block() -> None:
        err_e, encoder = rt.v1("KestrelMPSCommandEncoder", view.stream)
        err_b, cb = rt.v1("KestrelMPSCommandBuffer", view.stream)
        seen.update(errors=(err_e, err_b), encoder=encoder, cb=cb,
                    open=rt.model.kestrel_sim_encoder_is_open(encoder))
        err_end, _ = rt.v1("KestrelMPSEndKernelCoalescing", view.stream)
        seen.update(end=err_end, open_after=rt.model.kestrel_sim_encoder_is_open(encoder))

    rt.in_block(view.queue, in_block)
    assert seen["errors"] == (None, None)
    assert rt.model.kestrel_sim_is_command_buffer(seen["cb"])
    assert seen["open"] == 1, "the published command_buffer ended torch's coalescing"
    assert seen["end"] is None and seen["open_after"] == 0


@pytest.mark.model
def test_published_commit_stream_commits_without_waiting(rt: harness.Runtime) -> None:
    import torch

    a, b = torch.arange(8.0), torch.ones(8)
    out = torch.zeros(8)
    rt.set_option(harness.GPU_LATENCY_US, 200_000)
    rt.v1_add(a, b, out, commit=True)  # commit_stream at the end of its block
    stream = rt.default_stream
    assert rt.stat(stream, "commits") == 1
    assert rt.stat(stream, "last_sync") == _abi.SYNC_COMMIT
    assert rt.stat(stream, "waits") == 0
    assert torch.equal(out, torch.zeros(8)), "commit_stream waited for the GPU"
    rt.wait()
    assert torch.equal(out, a + b)


@pytest.mark.model
def test_extension_synchronize_commits_and_waits(rt: harness.Runtime) -> None:
    import torch

    a, b, out = torch.arange(8.0), torch.ones(8), torch.zeros(8)
    rt.set_option(harness.GPU_LATENCY_US, 50_000)
    rt.ext_add(a, b, out, sync=_abi.SYNC_COMMIT_AND_WAIT)
    stream = rt.default_stream
    assert rt.stat(stream, "waits") == 1
    assert rt.stat(stream, "last_sync") == _abi.SYNC_COMMIT_AND_WAIT
    assert torch.equal(out, a + b)


@pytest.mark.parametrize("entry", ["KestrelMPSCommandBuffer", "KestrelMPSCommandEncoder"])
def test_published_null_stream_is_refused_before_null_out(rt: harness.Runtime, entry: str) -> None:
    err, _ = rt.v1(entry, None, want_out=False)
    assert err is not None and "stream is NULL" in err
    view = rt.stream_view()
    err, _ = rt.v1(entry, view.stream, want_out=False)
    assert err is not None and "out is NULL" in err


def test_published_current_stream_view_null_out(rt: harness.Runtime) -> None:
    err = harness.message(rt.bridge.KestrelMPSGetCurrentStreamView(None))
    assert err is not None and "out is NULL" in err


@pytest.mark.model
def test_every_stream_entry_runs_in_one_pool_of_its_own(rt: harness.Runtime) -> None:
    view = rt.stream_view()
    depth_seen: list[int] = []

    def published_entries() -> None:
        for entry in ("KestrelMPSCommandEncoder", "KestrelMPSCommandBuffer",
                      "KestrelMPSEndKernelCoalescing", "KestrelMPSCommitStream"):
            before = rt.objc_counts()
            err, _ = rt.v1(entry, view.stream)
            after = rt.objc_counts()
            assert err is None, err
            assert after["pushes"] - before["pushes"] == 1, entry
            assert after["pops"] - before["pops"] == 1, entry

    rt.in_block(view.queue, published_entries)

    def extension_entries() -> None:
        depth_seen.append(rt.objc.kestrel_sim_objc_depth())
        for entry in ("command_encoder", "command_buffer"):
            before = rt.objc_counts()
            assert rt.ext_handle(entry)[0] == _abi.OK
            after = rt.objc_counts()
            assert after["pushes"] - before["pushes"] == 1, entry

    for entry in ("current_stream", "dispatch_queue", "command_queue", "device"):
        before = rt.objc_counts()
        assert rt.ext_handle(entry)[0] == _abi.OK
        assert rt.objc_counts()["pushes"] - before["pushes"] == 1, entry
    assert rt.on_stream_queue(extension_entries) == _abi.OK
    assert depth_seen and depth_seen[0] >= 1, "the callback ran outside a pool"
    assert rt.objc.kestrel_sim_objc_depth() == 0
    # The command buffer torch autoreleases was created inside a pool.
    assert rt.objc_counts()["autoreleased"] >= 1
