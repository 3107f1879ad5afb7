"""The same resolution on CUDA tensors: device pointer, device index, views.
Run on the device machine (H100); CI has no GPU, so these skip there."""

from __future__ import annotations

import pytest
import torch
from support import DTYPES, expect_descriptor, views


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the device machine)")
pytestmark = [requires_cuda, pytest.mark.cuda]


@pytest.mark.parametrize("name", list(views()))
def test_cuda_views(front_end, name):
    # .cuda() would copy a view into a contiguous tensor: rebuild the same view
    # (shape, strides, offset) over a GPU storage of the same size instead.
    src = views()[name]
    elements = max(1, src.untyped_storage().nbytes() // src.element_size())
    base = torch.zeros(elements, dtype=src.dtype, device="cuda")
    t = base.as_strided(src.shape, src.stride(), src.storage_offset())
    d = front_end.resolve(t)
    expect_descriptor(d, t)
    assert d.device_type == 2
    assert d.buffer == t.untyped_storage().data_ptr()  # a device pointer


def test_cuda_device_pointer_addresses_the_view(front_end):
    base = torch.arange(1000, dtype=torch.float32, device="cuda")
    v = base.as_strided((7, 9), (100, 3), 11)
    d = front_end.resolve(v)
    assert d.byte_offset == 11 * 4
    # Element (i, j) lies at buffer + byte_offset + 4 * (i * 100 + j * 3).
    addr = d.buffer + d.byte_offset + 4 * (5 * d.strides[0] + 2 * d.strides[1])
    assert addr == v[5, 2].data_ptr()
    assert v[5, 2].item() == 11 + 5 * 100 + 2 * 3


@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
def test_cuda_dtypes(front_end, dtype):
    itemsize = torch.empty((), dtype=dtype).element_size()
    t = torch.zeros(4, 3 * itemsize, dtype=torch.uint8, device="cuda").view(dtype)
    d = front_end.resolve(t)
    assert d.dtype == DTYPES[dtype]
    expect_descriptor(d, t)


def test_cuda_device_index_of_every_gpu(front_end):
    for i in range(torch.cuda.device_count()):
        t = torch.ones(3, device=f"cuda:{i}")
        assert front_end.resolve(t).device_index == i


def test_cuda_and_cpu_in_one_batch(front_end):
    a, b = torch.ones(2, 2), torch.ones(5, device="cuda")[1::2]
    da, db = front_end.resolve_many([a, b])
    assert (da.device_type, db.device_type) == (1, 2)
    expect_descriptor(db, b)
