"""Resident memory stays flat over 1,000,000 resolves (and 100,000 failures):
the resolve path allocates nothing and leaks nothing."""

from __future__ import annotations

import ctypes
import gc
import os

import pytest
import torch

import kestrel_mps_torch_ext._abi as abi

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_rss_flat_over_a_million_resolves(bridge):
    tensors = [torch.randn(4, 5)[:, ::2], torch.zeros(3, 3), torch.tensor(2.0)] * 334
    n = len(tensors)  # 1002 per batch call
    objs = (ctypes.py_object * n)(*tensors)
    out = (abi.Tensor * n)()
    resolve = bridge.api.resolve_tensors
    for _ in range(50):  # warm up
        assert resolve(objs, n, None, out, None) == 0
    gc.collect()
    before = rss_bytes()
    for _ in range(1000):  # 1,002,000 resolves
        resolve(objs, n, None, out, None)
    bad = (ctypes.py_object * n)(*(["x"] * n))
    for _ in range(100):  # 100,000 failing resolves (message formatting path)
        assert resolve(bad, n, None, out, None) == 2
    gc.collect()
    growth = rss_bytes() - before
    assert growth < 1 << 20, f"RSS grew by {growth} bytes"
