"""Copy-on-write storages (torch's lazy clones): READ shares, WRITE separates.
(Python's untyped_storage().data_ptr() would itself materialize the clone, so
the shared buffer is observed through READ resolutions only.)"""

from __future__ import annotations

import ctypes

import pytest
import torch

import kestrel_mps_torch_ext as kmte
from support import published_device, requires_mps


def test_read_keeps_the_shared_buffer_and_write_gets_its_own(front_end):
    original = torch.arange(8.0)
    clone = torch._lazy_clone(original)
    shared = front_end.resolve(original).buffer

    read = front_end.resolve(clone)
    assert read.buffer == shared and not read.writable

    write = front_end.resolve(clone, writable=True)
    assert write.writable
    assert write.buffer != shared  # the clone got its own memory first
    assert front_end.resolve(clone).buffer == write.buffer

    # A kernel writing through the WRITE descriptor changes the clone only.
    ctypes.c_float.from_address(write.buffer + write.byte_offset).value = 100.0
    assert clone[0].item() == 100.0
    assert original[0].item() == 0.0
    assert front_end.resolve(original).buffer == shared


def test_write_on_a_plain_tensor_keeps_its_buffer(front_end):
    t = torch.zeros(4)
    assert front_end.resolve(t, writable=True).buffer == t.untyped_storage().data_ptr()


def test_published_view_reads_a_lazy_clone_without_separating_it(bridge):
    import kestrel_mps_torch_ext._abi as abi

    device = published_device()
    view = abi.TensorView()
    if device is None:  # a macOS-rule build without a usable device: refused by device, untouched
        original = torch.arange(8.0)
        clone = torch._lazy_clone(original)
        message = bridge.published_api.tensor_view_from_pyobject(clone, ctypes.byref(view))
        assert message is not None and b"expected an MPS tensor" in ctypes.string_at(message)
    else:
        original = torch.arange(8.0, device=device)
        clone = torch._lazy_clone(original)
        assert bridge.published_api.tensor_view_from_pyobject(clone, ctypes.byref(view)) is None
        assert view.mtl_buffer == bridge.resolve(original).buffer  # it reads: nothing materialized
    # Still shared (read access resolves without materializing; data_ptr() would).
    assert bridge.resolve(clone).buffer == bridge.resolve(original).buffer


@requires_mps
@pytest.mark.mps
def test_mps_write_to_a_lazy_clone_is_refused_not_memcpyd(front_end):
    original = torch.arange(8.0, device="mps")
    clone = torch._lazy_clone(original)
    with pytest.raises(kmte.BridgeCallError) as info:
        front_end.resolve(clone, writable=True)
    assert info.value.status_name == "KESTREL_MPS_ERROR_COPY_ON_WRITE"
    assert "clone()" in info.value.message
    assert front_end.resolve(clone).buffer == front_end.resolve(original).buffer  # still shared, still readable
    assert front_end.resolve(clone.clone(), writable=True).writable
