"""Every descriptor field equals what torch reports, across dtypes, shapes and
views; buffer + byte_offset + strides address exactly the view's elements."""

from __future__ import annotations

import ctypes

import pytest
import torch

from conftest import addressed_view, element_bytes, expect_descriptor

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


def torch_dlpack_dtype(t: torch.Tensor) -> tuple[int, int, int] | None:
    """(code, bits, lanes) from torch's own DLPack export, or None if torch
    does not export this dtype."""
    try:
        capsule = torch.utils.dlpack.to_dlpack(t)
    except (RuntimeError, TypeError, BufferError):
        return None
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    p = get(capsule, b"dltensor")
    # DLTensor: data (8), device (8), ndim (4), then dtype {u8 code, u8 bits, u16 lanes}
    raw = (ctypes.c_uint8 * 4).from_address(p + 20)
    return raw[0], raw[1], raw[2] | (raw[3] << 8)


@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
def test_every_dense_dtype_maps_to_dlpack(front_end, dtype):
    t = make(dtype, (3, 4))
    d = front_end.resolve(t)
    assert d.dtype == DTYPES[dtype]
    expect_descriptor(d, t)
    assert element_bytes(addressed_view(d, t)) == element_bytes(t)


@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
def test_dtype_agrees_with_torchs_own_dlpack_export(front_end, dtype):
    t = make(dtype, (2,))
    theirs = torch_dlpack_dtype(t)
    if theirs is None:
        pytest.skip(f"torch {torch.__version__} does not export {dtype} through DLPack")
    assert front_end.resolve(t).dtype == theirs


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


@pytest.mark.parametrize("name", list(views()))
def test_views_report_offset_strides_and_address_the_same_elements(front_end, name):
    t = views()[name]
    d = front_end.resolve(t)
    expect_descriptor(d, t)
    if t.numel():
        assert element_bytes(addressed_view(d, t)) == element_bytes(t)


@pytest.mark.parametrize("ndim", range(0, 9))
def test_shapes_of_every_rank_including_zero_sizes(front_end, ndim):
    g = torch.Generator().manual_seed(ndim)
    for trial in range(20):
        shape = tuple(int(x) for x in torch.randint(0, 4, (ndim,), generator=g))
        t = torch.randn(shape, generator=g)
        expect_descriptor(front_end.resolve(t), t)


def test_shape_and_stride_entries_past_ndim_are_zero(bridge):
    import kestrel_mps_torch_ext._abi as abi

    out = abi.Tensor()
    for i in range(abi.MAX_NDIM):
        out.shape[i] = out.strides[i] = -1
    t = torch.zeros(2, 3)
    assert bridge.api.resolve_tensor(t, abi.ACCESS_READ, ctypes.byref(out)) == 0
    assert list(out.shape[2:]) == [0] * (abi.MAX_NDIM - 2)
    assert list(out.strides[2:]) == [0] * (abi.MAX_NDIM - 2)
    assert out.byte_offset_align == 256  # offset 0


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float16, torch.float32, torch.complex128])
def test_byte_offset_align_over_views_at_every_offset(front_end, dtype):
    base = torch.zeros(700, dtype=dtype)
    itemsize = base.element_size()
    for start in [0, 1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 255, 256, 384, 512, 640]:
        d = front_end.resolve(base[start:start + 7])
        offset = start * itemsize
        lowest = offset & -offset
        assert d.byte_offset == offset
        assert d.byte_offset_align == (256 if offset == 0 or lowest > 256 else lowest), (start, d)
        assert d.byte_offset % d.byte_offset_align == 0
    # A view whose float4 path is safe and one whose is not, as a kernel asks.
    f = torch.zeros(64)
    assert front_end.resolve(f[4:]).byte_offset_align >= 16
    assert front_end.resolve(f[5:]).byte_offset_align == 4


def test_the_table_says_it_fills_byte_offset_align(bridge):
    import kestrel_mps_torch_ext._abi as abi

    assert bridge.capabilities & abi.CAP_OFFSET_ALIGN


def test_descriptor_is_a_copy_not_a_reference_to_torch_metadata(front_end):
    t = torch.zeros(4, 6)
    d = front_end.resolve(t)
    t.resize_(2, 3)  # in-place metadata change after resolution
    assert d.shape == (4, 6) and d.strides == (6, 1)


def test_parameter_and_plain_subclass_resolve(front_end):
    class Plain(torch.Tensor):
        pass

    p = torch.nn.Parameter(torch.randn(3, 2))
    s = torch.randn(5).as_subclass(Plain)
    expect_descriptor(front_end.resolve(p), p)
    expect_descriptor(front_end.resolve(s), s)


def test_batch_equals_single_calls(front_end):
    ts = [views()[k] for k in ("contiguous", "transpose", "zero_dim", "empty", "expand_zero_strides")]
    batch = front_end.resolve_many(ts)
    assert batch == [front_end.resolve(t) for t in ts]
    assert front_end.resolve_many([]) == []


def test_batch_access_flags_apply_per_tensor(front_end):
    a, b = torch.zeros(3), torch.ones(3)
    da, db = front_end.resolve_many([a, b], writable=[False, True])
    assert not da.writable and db.writable
