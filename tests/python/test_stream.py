"""Stream calls: "MPS unavailable" with its reason on builds without Metal.
What they do where they work is the stream suite's (tests/stream)."""

from __future__ import annotations

import ctypes

import pytest

import kestrel_mps_torch_ext as kmte
import kestrel_mps_torch_ext._abi as abi
from support import MPS

HANDLES = ("current_stream", "command_buffer", "command_queue", "device", "dispatch_queue", "command_encoder")

@pytest.fixture
def unavailable_reason(bridge) -> str:
    """What this build's stream calls say when they cannot work here: no
    Metal backend (Linux builds), or no Metal device (macOS builds); skipped
    where they can work, or on a device that is available but unusable (a
    hosted macOS runner), where what they do is torch's business."""
    if not bridge.has_mps_stream:
        major, minor = bridge.built_for[:2]
        return f"built for torch {major}.{minor} without the Metal stream backend"
    if not MPS.available:
        return "torch reports no usable Metal device"
    pytest.skip(f"MPS is available here ({MPS.detail}): the stream calls do not fail as unavailable")


@pytest.mark.parametrize("entry", HANDLES)
def test_handles_say_mps_unavailable_and_why(bridge, entry, unavailable_reason):
    out = ctypes.c_void_p(1234)
    status = getattr(bridge.api, entry)(ctypes.byref(out))
    assert abi.STATUS_NAMES[status] == "KESTREL_MPS_ERROR_MPS_UNAVAILABLE"
    assert out.value is None  # cleared on failure: no stale handle survives
    msg = bridge.last_error()
    assert entry in msg and "MPS unavailable" in msg and unavailable_reason in msg, msg


def test_other_stream_calls_say_mps_unavailable(bridge, unavailable_reason):
    with pytest.raises(kmte.BridgeCallError, match="MPS_UNAVAILABLE.*end_kernel_coalescing") as info:
        bridge.end_kernel_coalescing()
    assert unavailable_reason in info.value.message
    with pytest.raises(kmte.BridgeCallError, match="MPS_UNAVAILABLE.*synchronize"):
        bridge.synchronize()
    assert bridge.api.run_on_stream_queue(ctypes.CDLL(None).free, None) == 6


def test_unknown_sync_kind_is_an_argument_error_everywhere(bridge):
    for kind in (0, 4, -1):
        assert bridge.api.synchronize(kind) == 1
        assert "sync_kind" in bridge.last_error()


@pytest.mark.parametrize("entry", ["KestrelMPSCommandBuffer", "KestrelMPSCommandEncoder"])
def test_published_handle_entries_clear_out_when_they_fail(bridge, entry, unavailable_reason):
    out = ctypes.c_void_p(0x5EED)  # a sentinel: a failure must not leave it
    message = getattr(bridge, entry)(ctypes.c_void_p(0x1000), ctypes.byref(out))
    assert message and "MPS unavailable" in ctypes.string_at(message).decode()
    assert out.value is None
