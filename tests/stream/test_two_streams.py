"""Two streams (torch 2.14's pool: a current stream per thread, switchable;
the model's STREAM_POOL option turns it on under any minor's headers). The
bridge works on the stream a block was dispatched for, never on whatever the
thread's current stream is by the time the block runs."""

from __future__ import annotations

import threading

import pytest

import torch

import harness
from kestrel_mps_torch_ext import _abi

# Every test here drives the model (the model's stream pool).
pytestmark = pytest.mark.model


def second_stream(rt: harness.Runtime) -> int:
    rt.set_option(harness.STREAM_POOL, 1)
    rt.default_stream  # created first, as torch does
    return int(rt.model.kestrel_sim_mps_new_stream())


def test_a_callback_works_on_the_stream_it_was_dispatched_for(rt: harness.Runtime) -> None:
    s2 = second_stream(rt)
    assert rt.model.kestrel_sim_mps_set_current_stream(s2) == 0
    seen: dict[str, object] = {}

    def callback() -> None:
        # torch code in the block switches the thread's current stream back
        rt.model.kestrel_sim_mps_set_current_stream(rt.default_stream)
        seen["stream"] = rt.ext_handle("current_stream")
        seen["command_buffer"] = rt.ext_handle("command_buffer")
        seen["encoder"] = rt.ext_handle("command_encoder")
        seen["on_s2_queue"] = rt.model.kestrel_sim_mps_on_queue(s2)

    try:
        assert rt.on_stream_queue(callback) == _abi.OK
    finally:
        rt.model.kestrel_sim_mps_set_current_stream(None)
    assert seen["stream"] == (_abi.OK, s2)
    assert seen["on_s2_queue"] == 1
    for name in ("command_buffer", "encoder"):
        status, handle = seen[name]
        assert status == _abi.OK and rt.model.kestrel_sim_mps_stream_of(handle) == s2, name


def test_published_stream_view_in_a_block_on_another_streams_queue_is_that_stream(rt: harness.Runtime) -> None:
    # Decided and documented (docs/simulated_mps.md, the header): inside a
    # block on a stream's queue the published current_stream_view returns
    # that queue's stream, the only one the block may touch; 0.1.x returned
    # the thread's current stream, whose queue the block does not hold.
    s2 = second_stream(rt)
    rt.model.kestrel_sim_mps_set_current_stream(s2)
    assert rt.ext_handle("current_stream") == (_abi.OK, s2)  # the bridge has seen s2's queue
    rt.model.kestrel_sim_mps_set_current_stream(rt.default_stream)
    views: list[harness.StreamView] = []
    rt.in_block(rt.model.kestrel_sim_mps_stream_queue(s2), lambda: views.append(rt.stream_view()))
    rt.model.kestrel_sim_mps_set_current_stream(None)
    assert views[0].stream == s2
    assert views[0].queue == rt.model.kestrel_sim_mps_stream_queue(s2)
    # Off any queue it is the thread's current stream, as in 0.1.x.
    assert rt.stream_view().stream == rt.default_stream


def test_threads_with_different_current_streams_launch_onto_their_own(rt: harness.Runtime) -> None:
    s2 = second_stream(rt)
    streams, launches, errors = [rt.default_stream, s2], 500, []

    def launcher(stream: int) -> None:
        rt.model.kestrel_sim_mps_set_current_stream(stream)
        a, b, out = torch.arange(12.0)[2:], torch.ones(10), torch.zeros(10)
        try:
            for i in range(launches):
                if i % 2:
                    rt.v1_add(a, b, out, flags=harness.OWN_ENCODER if i % 4 == 1 else 0)
                else:
                    rt.ext_add(a, b, out, flags=harness.OWN_ENCODER if i % 4 == 2 else 0)
            rt.wait()
            assert torch.equal(out, a + b)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    workers = [threading.Thread(target=launcher, args=(s,)) for s in streams]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert [rt.stat(s, "kernels_run") for s in streams] == [launches, launches]
