"""What the tests in this folder share (conftest.py holds only fixtures):
the probe's marks, descriptor checks, tensors of every kind the bridge
describes or refuses, compilers, and the published 0.1.x header."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

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


# DLPack 1.1 (code, bits, lanes) per torch dtype, as the header documents.
DTYPES = {
    torch.bool: (6, 8, 1),
    torch.uint8: (1, 8, 1),
    torch.uint16: (1, 16, 1),
    torch.uint32: (1, 32, 1),
    torch.uint64: (1, 64, 1),
    torch.int8: (0, 8, 1),
    torch.int16: (0, 16, 1),
    torch.int32: (0, 32, 1),
    torch.int64: (0, 64, 1),
    torch.float16: (2, 16, 1),
    torch.float32: (2, 32, 1),
    torch.float64: (2, 64, 1),
    torch.bfloat16: (4, 16, 1),
    torch.complex32: (5, 32, 1),
    torch.complex64: (5, 64, 1),
    torch.complex128: (5, 128, 1),
    torch.float8_e5m2: (12, 8, 1),
    torch.float8_e4m3fn: (10, 8, 1),
    torch.float8_e5m2fnuz: (13, 8, 1),
    torch.float8_e4m3fnuz: (11, 8, 1),
    torch.float8_e8m0fnu: (14, 8, 1),
    torch.float4_e2m1fn_x2: (17, 4, 2),
}


def make(dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    n = 1
    for s in shape:
        n *= s
    raw = torch.randint(0, 256, (n * torch.empty((), dtype=dtype).element_size(),), dtype=torch.uint8)
    return raw.view(dtype).reshape(shape) if shape else raw.view(dtype).reshape(())


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", ctypes.c_uint8 * 4),  # code, bits, lanes (u16)
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


def torch_dlpack_dtype(t: torch.Tensor) -> tuple[int, int, int] | None:
    """(code, bits, lanes) from torch's own DLPack export, or None if torch
    does not export this dtype."""
    try:
        capsule = torch.utils.dlpack.to_dlpack(t)
    except (RuntimeError, TypeError, BufferError):
        return None
    code, bits, lo, hi = _DLTensor.from_address(_capsule_pointer(capsule, b"dltensor")).dtype
    return code, bits, lo | (hi << 8)


def on_second_device(src: torch.Tensor, index: int = 1) -> torch.Tensor:
    """src's memory, shape and strides as a tensor torch places on mps:<index>:
    torch's own DLPack export of src, relabelled kDLMetal device <index> and
    imported back, so that a device index other than 0 can be resolved on a
    machine with no GPU, or one. The memory is host memory: fine for
    resolution, which reads metadata only, never for a kernel. torch's
    deleter keeps src alive as long as the new tensor."""
    capsule = torch.utils.dlpack.to_dlpack(src)
    # A DLManagedTensor begins with its DLTensor.
    _DLTensor.from_address(_capsule_pointer(capsule, b"dltensor")).device = _DLDevice(8, index)
    t = torch._C._from_dlpack(capsule)
    assert t.device == torch.device("mps", index), t.device
    return t


def views() -> dict[str, torch.Tensor]:
    base = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    return {
        "contiguous": base,
        "transpose": base.transpose(1, 3),
        "permute": base.permute(3, 1, 0, 2),
        "slice_step": base[:, ::2, 1::3],
        "narrow": base.narrow(2, 1, 2),
        "select": base[1, 2],
        "expand_zero_strides": torch.arange(4.0).reshape(4, 1).expand(4, 7),
        "unsqueeze_expand": torch.arange(3.0)[None, :, None].expand(5, 3, 2),
        "unfold_overlapping": torch.arange(20.0).unfold(0, 5, 2),
        "as_strided": torch.arange(64.0).as_strided((3, 3), (5, 2), 7),
        "zero_dim": torch.tensor(3.5),
        "zero_dim_view": base[1, 2, 3, 4],
        "empty": torch.empty(0),
        "empty_2d_view": base[:, 3:3],
        "empty_offset": base.reshape(-1)[17:17],
        "one_element": base[1:2, 2:3, 3:4, 4:5],
        "sixteen_dims": torch.arange(2.0**16).reshape((2,) * 16),
        "channels_last": torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last),
        "diagonal": torch.arange(25.0).reshape(5, 5).diagonal(),
        "real_of_complex": torch.randn(4, 3, dtype=torch.complex64).real,
    }


def sparse_coo():
    return torch.eye(3).to_sparse()


def sparse_csr():
    return torch.eye(3).to_sparse_csr()


def mkldnn():
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no mkldnn")
    return torch.randn(2, 3).to_mkldnn()


def nested():
    return torch.nested.nested_tensor([torch.zeros(2), torch.zeros(3)])


def quantized():
    return torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.qint8)


def meta():
    return torch.empty(3, 4, device="meta")


def functional():
    return torch._to_functional_tensor(torch.zeros(3))


def fake():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        return torch.zeros(3)


def wrapper_subclass():
    class Wrapper(torch.Tensor):
        @staticmethod
        def __new__(cls, inner):
            return torch.Tensor._make_wrapper_subclass(cls, inner.shape, dtype=inner.dtype)

        @classmethod
        def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
            raise NotImplementedError

    return Wrapper(torch.zeros(2, 2))


def compiler(lang: str) -> str:
    name = {"c": "cc", "c++": "c++"}[lang]
    path = shutil.which(name)
    assert path, f"{name} is installed by the test setup"
    return path


STANDARDS = {"c": ["-std=c99", "-std=c11"], "c++": ["-std=c++11", "-std=c++17", "-std=c++20"]}


# The published kestrel-mps-torch-ext wheel (0.1.2, macOS arm64), fetched
# with pip and cached outside the repository, for the tests that compare our
# ABI with it. Only its header is read; nothing of it is run or copied.
PUBLISHED_VERSION = "0.1.2"
PUBLISHED_CACHE = Path(os.environ.get("KESTREL_CACHE", Path.home() / ".cache" / "kestrel")) / "published"
PUBLISHED_HEADER = "kestrel_mps_torch_ext/include/kestrel_mps_torch_ext.h"


def published_include_dir() -> Path:
    """Directory holding the published kestrel_mps_torch_ext.h. Raises
    RuntimeError with pip's reason when the wheel cannot be fetched."""
    out = PUBLISHED_CACHE / PUBLISHED_VERSION
    header = out / PUBLISHED_HEADER
    if header.is_file():
        return header.parent
    wheels = PUBLISHED_CACHE / "wheels"
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--platform", "macosx_13_0_arm64", "--python-version", "3.12", "-d", str(wheels),
           f"kestrel-mps-torch-ext=={PUBLISHED_VERSION}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(wheels.glob(f"kestrel_mps_torch_ext-{PUBLISHED_VERSION}-*.whl"))
    if done.returncode != 0 or not found:
        lines = [l for l in done.stderr.splitlines() if l.strip() and "WARNING" not in l]
        raise RuntimeError(f"pip could not fetch kestrel-mps-torch-ext=={PUBLISHED_VERSION}: "
                           f"{lines[-1] if lines else 'no wheel'}")
    with zipfile.ZipFile(found[-1]) as z:
        z.extract(PUBLISHED_HEADER, out)
    return header.parent
