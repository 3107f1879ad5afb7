"""Copy-on-write storages (torch's lazy clones): READ shares, WRITE separates.
(Python's untyped_storage().data_ptr() would itself materialize the clone, so
the shared buffer is observed through READ resolutions only.)"""

from __future__ import annotations

import ctypes

import torch


def test_read_keeps_the_shared_buffer_and_write_gets_its_own(bridge):
    original = torch.arange(8.0)
    clone = torch._lazy_clone(original)
    shared = bridge.resolve(original).buffer

    read = bridge.resolve(clone)
    assert read.buffer == shared and not read.writable

    write = bridge.resolve(clone, writable=True)
    assert write.writable
    assert write.buffer != shared  # the clone got its own memory first
    assert bridge.resolve(clone).buffer == write.buffer

    # A kernel writing through the WRITE descriptor changes the clone only.
    ctypes.c_float.from_address(write.buffer + write.byte_offset).value = 100.0
    assert clone[0].item() == 100.0
    assert original[0].item() == 0.0
    assert bridge.resolve(original).buffer == shared


def test_write_on_a_plain_tensor_keeps_its_buffer(bridge):
    t = torch.zeros(4)
    assert bridge.resolve(t, writable=True).buffer == t.untyped_storage().data_ptr()
