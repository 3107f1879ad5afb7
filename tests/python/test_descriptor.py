"""Every descriptor field equals what torch reports, across dtypes, shapes and
views; buffer + byte_offset + strides address exactly the view's elements."""

from __future__ import annotations

import ctypes

import pytest
import torch
from support import (
    DTYPES,
    addressed_view,
    element_bytes,
    expect_descriptor,
    make,
    on_second_device,
    torch_dlpack_dtype,
    views,
)


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


@pytest.mark.parametrize("index", [1, 5])
def test_device_index_of_a_device_other_than_the_first(front_end, index):
    # Without two GPUs: a tensor torch places on mps:<index>, made through
    # DLPack over host memory (resolution reads metadata only).
    # test_cuda.py checks the same on every GPU of a multi-GPU machine.
    t = on_second_device(torch.arange(12.0).reshape(3, 4)[:, 1:], index)
    d = front_end.resolve(t)
    assert (d.device_type, d.device_index) == (8, index)
    expect_descriptor(d, t)
    cpu, other = front_end.resolve_many([torch.ones(2), t])
    assert (cpu.device_index, other.device_index) == (0, index)


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
