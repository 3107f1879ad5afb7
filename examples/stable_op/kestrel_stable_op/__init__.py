"""An example kernel library: ops registered through torch's stable ABI
(one binary for torch 2.10 and later), reaching tensors' Metal buffers and
the MPS stream through kestrel-mps-torch-ext.

    import kestrel_stable_op
    out = kestrel_stable_op.scale_add(x, y, 0.5)         # x + 0.5 * y
    kestrel_stable_op.scale_add_out(x, y, 0.5, out=out)  # into out
"""

from __future__ import annotations

from pathlib import Path

import torch

import kestrel_mps_torch_ext

# The bridge first: the ops find its table with dlsym when they first run,
# and the bridge checks that its library matches the running torch.
kestrel_mps_torch_ext.load_torch_mps_bridge()
torch.ops.load_library(str(Path(__file__).with_name("_C.so")))

__all__ = ["scale_add", "scale_add_out"]


def _check_like(x: torch.Tensor, other: torch.Tensor, name: str) -> None:
    torch._check(other.shape == x.shape, lambda: f"{name} must have x's shape (no broadcasting)")
    torch._check(other.dtype == x.dtype, lambda: f"{name} must have x's dtype")


# Shapes and dtypes only, for torch.compile and meta tensors; the kernel
# repeats the checks against what the bridge resolved.
@torch.library.register_fake("kestrel_example::scale_add")
def _scale_add_fake(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    _check_like(x, y, "y")
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("kestrel_example::scale_add.out")
def _scale_add_out_fake(x: torch.Tensor, y: torch.Tensor, alpha: float, *, out: torch.Tensor) -> None:
    _check_like(x, y, "y")
    _check_like(x, out, "out")


def scale_add(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """x + alpha * y as a new contiguous tensor (float32 or float64, same shape)."""
    return torch.ops.kestrel_example.scale_add(x, y, alpha)


def scale_add_out(x: torch.Tensor, y: torch.Tensor, alpha: float, *, out: torch.Tensor) -> torch.Tensor:
    """x + alpha * y written into out (any strides; it may be x or y itself);
    returns out."""
    torch.ops.kestrel_example.scale_add.out(x, y, alpha, out=out)
    return out
