from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Sequence

import pytest
import torch

import kestrel_mps_torch_ext as kmte

# "Usable" is a real round trip, not is_available(): a hosted macOS runner's
# device is available and fails its first allocation.
MPS = kmte.probe_mps()
# KESTREL_REQUIRE_MPS=1 (the self-hosted Apple-silicon job): the MPS tests
# run, and fail without a usable Metal device, instead of skipping.
requires_mps = pytest.mark.skipif(
    os.environ.get("KESTREL_REQUIRE_MPS") != "1" and not MPS.usable,
    reason=f"needs a usable Metal device (macOS on Apple silicon); MPS here: {MPS.detail}",
)

# The published entry's tensor rule. macOS builds take MPS tensors only;
# KESTREL_TEST_MPS_ONLY_BUILD=1 says the library under test is a Linux build
# with that rule (tools/test_mps_only.sh), so that the suite's macOS
# expectations run here too.
PUBLISHED_MPS_ONLY = sys.platform == "darwin" or os.environ.get("KESTREL_TEST_MPS_ONLY_BUILD") == "1"


def published_device() -> str | None:
    """Where this build's published entry takes tensors: "cpu" (Linux
    builds), "mps" (a macOS-rule build with a usable device), or None (a
    macOS-rule build without one: it refuses every tensor this process can
    make, by device, before any other check)."""
    if not PUBLISHED_MPS_ONLY:
        return "cpu"
    return "mps" if MPS.usable else None


def stream_usable(bridge: kmte.TorchMPSBridge) -> bool:
    """Whether stream calls can succeed here: a Metal backend and a usable device."""
    return bridge.has_mps_stream and MPS.usable


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
    lowest = d.byte_offset & -d.byte_offset
    assert d.byte_offset_align == (256 if d.byte_offset == 0 or lowest > 256 else lowest)
    if t.numel() == 0:
        assert d.nbytes == 0
    else:
        last = sum((s - 1) * st for s, st in zip(t.shape, t.stride()))
        assert d.nbytes == (last + 1) * t.element_size()


_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


class AtenHandles:
    """torch's own AtenTensorHandles (new at::Tensor objects, as AOTInductor
    and the stable ABI hold them) for tensors, freed on exit."""

    def __init__(self, tensors: Sequence[torch.Tensor]) -> None:
        self._capsules = [torch._C._aoti.unsafe_alloc_void_ptr_from_tensor(t) for t in tensors]
        self.addresses: list[int] = [_capsule_pointer(c, None) for c in self._capsules]

    def __enter__(self) -> list[int]:
        return self.addresses

    def __exit__(self, *exc: object) -> None:
        for capsule in self._capsules:
            torch._C._aoti.alloc_tensor_by_stealing_from_void_ptr(capsule)  # takes it back and frees it
        self._capsules = []


class FrontEnd:
    """One way a consumer reaches the resolve core: `object` passes the
    torch.Tensor (resolve_tensor(s), under the GIL), `aten_handle` torch's
    AtenTensorHandle (resolve_aten_tensor(s), without it)."""

    def __init__(self, bridge: kmte.TorchMPSBridge, kind: str) -> None:
        self.bridge = bridge
        self.kind = kind

    def __repr__(self) -> str:
        return self.kind

    def resolve(self, t: torch.Tensor, *, writable: bool = False) -> kmte.TensorDescriptor:
        if self.kind == "object":
            return self.bridge.resolve(t, writable=writable)
        with AtenHandles([t]) as (handle,):
            return self.bridge.resolve_aten_handle(handle, writable=writable)

    def resolve_many(self, ts: Sequence[torch.Tensor],
                     writable: Sequence[bool] | None = None) -> list[kmte.TensorDescriptor]:
        if self.kind == "object":
            return self.bridge.resolve_many(ts, writable)
        with AtenHandles(ts) as handles:
            return self.bridge.resolve_aten_handles(handles, writable)


@pytest.fixture(scope="session", params=["object", "aten_handle"])
def front_end(request: pytest.FixtureRequest, bridge: kmte.TorchMPSBridge) -> FrontEnd:
    """Each resolve front end in turn: the field matrix and the refusals hold
    for both."""
    return FrontEnd(bridge, request.param)
