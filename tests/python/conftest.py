from __future__ import annotations

import ctypes
import os

import pytest
import torch

import kestrel_mps_torch_ext as kmte

# KESTREL_REQUIRE_MPS=1 (the macOS workflow): the MPS tests run, and fail
# without a Metal device, instead of skipping.
requires_mps = pytest.mark.skipif(
    os.environ.get("KESTREL_REQUIRE_MPS") != "1" and not torch.backends.mps.is_available(),
    reason="needs a Metal device (macOS on Apple silicon); written here, run only there",
)


@pytest.fixture(scope="session")
def bridge() -> kmte.TorchMPSBridge:
    return kmte.load_torch_mps_bridge()


_SAME_SIZE_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def element_bytes(t: torch.Tensor) -> bytes:
    """The view's elements in row-major order as raw bytes: NaN-safe, any
    dtype, any strides (zero strides included), no copy kernel needed."""
    if t.element_size() == 16:  # complex128: pairs of float64
        t = torch.view_as_real(t)
    return t.view(_SAME_SIZE_INT[t.element_size()]).numpy().tobytes()


def addressed_view(d: kmte.TensorDescriptor, t: torch.Tensor) -> torch.Tensor:
    """The view that d's buffer + byte_offset + shape + strides address, read
    straight from memory (CPU only). Equal to t iff the descriptor is right."""
    storage_bytes = t.untyped_storage().nbytes()
    raw = (ctypes.c_uint8 * storage_bytes).from_address(d.buffer)
    flat = torch.frombuffer(raw, dtype=torch.uint8).view(t.dtype)
    itemsize = t.element_size()
    assert d.byte_offset % itemsize == 0
    return flat.as_strided(d.shape, d.strides, d.byte_offset // itemsize)


def expect_descriptor(d: kmte.TensorDescriptor, t: torch.Tensor) -> None:
    """Every field of d equals what torch reports for t."""
    assert d.buffer == t.untyped_storage().data_ptr()
    assert d.byte_offset == t.storage_offset() * t.element_size()
    assert d.shape == tuple(t.shape)
    assert d.strides == tuple(t.stride())
    assert d.numel == t.numel()
    assert d.ndim == t.dim()
    assert d.contiguous == t.is_contiguous()
    device_codes = {"cpu": 1, "cuda": 2, "mps": 8}
    assert d.device_type == device_codes[t.device.type]
    assert d.device_index == (t.device.index or 0)
    if t.numel() == 0:
        assert d.nbytes == 0
    else:
        last = sum((s - 1) * st for s, st in zip(t.shape, t.stride()))
        assert d.nbytes == (last + 1) * t.element_size()
