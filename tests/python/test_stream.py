"""Stream calls: "MPS unavailable" with its reason on builds without Metal;
the MPS-positive cases run only where a Metal device exists."""

from __future__ import annotations

import ctypes

import pytest
import torch

import kestrel_mps_torch_ext as kmte
import kestrel_mps_torch_ext._abi as abi
from conftest import MPS, expect_descriptor, requires_mps

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


# --- MPS-positive cases: compiled everywhere, run on macOS arm64 only -------


ANY_THREAD = ("current_stream", "command_queue", "device", "dispatch_queue")


@requires_mps
@pytest.mark.mps
@pytest.mark.parametrize("entry", ANY_THREAD)
def test_mps_handles_are_non_null(bridge, entry):
    assert bridge.has_mps_stream
    assert getattr(bridge, entry)() != 0


@requires_mps
@pytest.mark.mps
@pytest.mark.parametrize("entry", ["command_buffer", "command_encoder"])
def test_mps_queue_only_handles_refuse_an_off_queue_caller(bridge, entry):
    out = ctypes.c_void_p(77)
    assert abi.STATUS_NAMES[getattr(bridge.api, entry)(ctypes.byref(out))] == "KESTREL_MPS_ERROR_WRONG_QUEUE"
    assert out.value == 77 and "off the stream's serial queue" in bridge.last_error()


@requires_mps
@pytest.mark.mps
def test_mps_tensor_buffer_is_its_storages_mtlbuffer(bridge):
    base = torch.arange(64, dtype=torch.float16, device="mps").reshape(8, 8)
    view = base[2:, 1::3]
    d = bridge.resolve(view)
    assert d.device_type == 8
    assert d.buffer == base.untyped_storage().data_ptr()  # the id<MTLBuffer>
    assert d.byte_offset == view.storage_offset() * 2 == (2 * 8 + 1) * 2
    expect_descriptor(d, view)


@requires_mps
@pytest.mark.mps
def test_mps_end_coalescing_then_commit_keeps_torch_results(bridge):
    a = torch.randn(256, device="mps")
    b = a * 2 + 1  # left in PyTorch's coalesced encoder
    with pytest.raises(kmte.BridgeCallError, match="WRONG_QUEUE"):
        bridge.end_kernel_coalescing()  # off the queue: refused, not raced
    bridge.synchronize(wait=False)  # moves onto the queue itself
    c = b - 1
    bridge.synchronize(wait=True)
    torch.testing.assert_close(c.cpu(), (a.cpu() * 2 + 1) - 1)
