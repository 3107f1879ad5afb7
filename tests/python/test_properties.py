"""Property-based: random dtypes, shapes (0 to 8 dims, zero sizes) and chains
of views; every descriptor equals what torch reports, and buffer + byte
offset + strides address exactly the elements of torch's view (read back
from memory on CPU). KESTREL_HYPOTHESIS_EXAMPLES sets the count (default and
tools/test.sh: 10,000; the second minor and ASan passes use fewer; the
documented long run: 1,000,000)."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kestrel_mps_torch_ext import _paths
from support import DTYPES, addressed_view, element_bytes, expect_descriptor

EXAMPLES = int(os.environ.get("KESTREL_HYPOTHESIS_EXAMPLES", "10000"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                    suppress_health_check=list(HealthCheck))


@st.composite
def view_chains(draw):
    dtype = draw(st.sampled_from(list(DTYPES)))
    ndim = draw(st.integers(0, 8))
    shape = draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim))
    itemsize = torch.empty((), dtype=dtype).element_size()
    n = 1
    for s in shape:
        n *= s
    t = torch.randint(0, 256, (max(n, 1) * itemsize,), dtype=torch.uint8).view(dtype)[:n].reshape(shape)
    steps = []
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["slice", "transpose", "permute", "expand", "narrow", "unfold", "as_strided", "select"]))
        d = t.dim()
        if op == "transpose" and d >= 2:
            a, b = draw(st.integers(0, d - 1)), draw(st.integers(0, d - 1))
            t = t.transpose(a, b)
        elif op == "permute" and d >= 1:
            t = t.permute(draw(st.permutations(range(d))))
        elif op == "slice" and d >= 1:
            dim = draw(st.integers(0, d - 1))
            size = t.shape[dim]
            start = draw(st.integers(0, size))
            step = draw(st.integers(1, 3))
            t = t.narrow(dim, 0, size)[(slice(None),) * dim + (slice(start, None, step),)]
        elif op == "expand" and d >= 1:
            target = [draw(st.integers(1, 3)) if s == 1 else s for s in t.shape]
            t = t.expand(target)
        elif op == "narrow" and d >= 1:
            dim = draw(st.integers(0, d - 1))
            start = draw(st.integers(0, t.shape[dim]))
            t = t.narrow(dim, start, draw(st.integers(0, t.shape[dim] - start)))
        elif op == "unfold" and d >= 1:
            dim = draw(st.integers(0, d - 1))
            size = draw(st.integers(0, t.shape[dim]))
            t = t.unfold(dim, size, draw(st.integers(1, 3)))
        elif op == "select" and d >= 1:
            dim = draw(st.integers(0, d - 1))
            if t.shape[dim] > 0:
                t = t.select(dim, draw(st.integers(0, t.shape[dim] - 1)))
        elif op == "as_strided":
            # Any view that stays inside the storage.
            capacity = t.untyped_storage().nbytes() // itemsize
            k = draw(st.integers(0, 3))
            sizes = draw(st.lists(st.integers(0, 3), min_size=k, max_size=k))
            strides = draw(st.lists(st.integers(0, 4), min_size=k, max_size=k))
            span = sum((s - 1) * r for s, r in zip(sizes, strides) if s > 0) + 1
            if all(s > 0 for s in sizes) and span > capacity:
                continue
            offset = draw(st.integers(0, max(0, capacity - span)))
            t = t.as_strided(sizes, strides, offset)
        if t.dim() > 16:
            break
        steps.append(op)
    return t, steps


@SETTINGS
@given(view_chains())
def test_descriptor_matches_torch_and_addresses_the_same_elements(front_end, case):
    t, _steps = case
    d = front_end.resolve(t)
    expect_descriptor(d, t)
    assert d.dtype == DTYPES[t.dtype]
    if t.numel():
        assert element_bytes(addressed_view(d, t)) == element_bytes(t)
        assert d.byte_offset + d.nbytes <= t.untyped_storage().nbytes()


VERSION_PARTS = st.tuples(
    st.integers(0, 30), st.integers(0, 30), st.integers(0, 9),
    st.sampled_from(["", "a0", "b2", "rc3"]), st.sampled_from(["", ".post1"]), st.sampled_from(["", ".dev20261001"]),
    st.sampled_from(["", "+cpu", "+cu130", "+gitabc1234", "+rocm6.4"]),
)


@settings(max_examples=min(EXAMPLES, 2000), deadline=None)
@given(VERSION_PARTS)
def test_version_fast_path_agrees_with_packaging(parts):
    from packaging.version import Version

    major, minor, patch, pre, post, dev, local = parts
    v = f"{major}.{minor}.{patch}{pre}{post}{dev}{local}"
    assert _paths._CANONICAL.fullmatch(v), v
    assert _paths.torch_minor(v) == Version(v).release[:2]


@pytest.mark.parametrize("v", ["v2.13.0", "v2.13", "2.13.0-rc1", "2.13.0.RC1", " 2.13.0", "2.13.0_1"])
def test_noncanonical_versions_go_to_packaging(v):
    from packaging.version import InvalidVersion, Version

    assert not _paths._CANONICAL.fullmatch(v)
    try:
        expected = Version(v).release[:2]
    except InvalidVersion:
        with pytest.raises(Exception, match="torch version"):
            _paths.torch_minor(v)
    else:
        assert _paths.torch_minor(v) == expected
