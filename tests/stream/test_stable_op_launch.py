"""The stable-ABI example (examples/stable_op) over the simulated runtime:
its ops' own Metal launch sequence (csrc/launch_metal.cpp, with the model's
calls in place of metal_calls.mm: consumers/stable_op_metal.cpp) on torch's coalesced encoder, on the stream's queue, the
GPU work run only when torch's stream commits. CPU tensors stand in for MPS
tensors, as everywhere in the simulation; the model checks Metal's and
torch's rules on every launch (conftest's clean_model)."""

from __future__ import annotations

import pytest
import torch

import harness
from conftest import BUILD

# The example's simulated twin is built with the simulation (issue: its
# launch through test_metal.h would let it run on a Mac too).
pytestmark = [pytest.mark.model, pytest.mark.skipif(
    tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 10),
    reason="the example's stable-ABI calls need torch 2.10 or later (its TORCH_TARGET_VERSION)")]


@pytest.fixture(scope="module")
def ops(rt: harness.Runtime) -> object:
    torch.ops.load_library(str(BUILD / "tests" / "sim" / "libkestrel_sim_stable_op.so"))
    return torch.ops.kestrel_example


def _operands(kind: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a = torch.arange(96, dtype=torch.float32).reshape(4, 4, 6)
    b = torch.linspace(-3, 5, 96).reshape(4, 4, 6)
    if kind == "contiguous":
        return a.clone(), b.clone(), torch.zeros(4, 4, 6)
    if kind == "offset views":
        return a[1:3], b[2:], torch.zeros(10, 4, 6)[3:5]
    if kind == "transposed":
        return a.transpose(0, 2), b.transpose(0, 2), torch.zeros(4, 4, 6).transpose(0, 2)
    if kind == "strided slices":
        return a[1:, ::2, 1::2], b[:3, 1:3, ::2], torch.zeros(3, 4, 6)[:, ::2, 1::2]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["contiguous", "offset views", "transposed", "strided slices"])
def test_out_op_runs_on_the_stream_when_torch_commits(rt: harness.Runtime, ops: object, kind: str) -> None:
    x, y, out = _operands(kind)
    ops.scale_add.out(x, y, 0.5, out=out)
    # Encoded on torch's coalesced encoder, not run: nothing is written
    # until the stream commits, as on a real GPU.
    assert bool((out == 0).all())
    rt.wait()
    torch.testing.assert_close(out, x + 0.5 * y, rtol=0, atol=0)


def test_out_of_place_op_and_torch_ops_between(rt: harness.Runtime, ops: object) -> None:
    x, y, _ = _operands("strided slices")
    first = ops.scale_add(x, y, 2.0)
    second = ops.scale_add(x, y, -1.0)
    rt.wait()
    torch.testing.assert_close(first, x + 2 * y, rtol=0, atol=0)
    torch.testing.assert_close(second, x - y, rtol=0, atol=0)


def test_float64_is_refused_on_the_metal_path(rt: harness.Runtime, ops: object) -> None:
    x = torch.ones(3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="kestrel_example::scale_add: Metal has no float64"):
        ops.scale_add(x, x, 1.0)
