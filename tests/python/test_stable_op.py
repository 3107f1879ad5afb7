"""examples/stable_op: a kernel library registered through torch's stable ABI
only, one binary for every torch from 2.10 on, whose ops reach tensors
through the bridge's handle entries. Its CPU kernel computes from the
resolved base + byte offset + strides, so each field the bridge returns is
checked by arithmetic against torch.

KESTREL_STABLE_OP_SITE names a directory where the example is already
installed (tools/test_minors.sh builds it once, against torch 2.13, and runs
the same binary under each minor); without it the example is built here,
against the running torch."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

import kestrel_mps_torch_ext as kmte

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stable_op"

pytestmark = pytest.mark.skipif(
    tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 10),
    reason="the example's stable-ABI calls need torch 2.10 or later (its TORCH_TARGET_VERSION)")


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("KESTREL_STABLE_OP_SITE")
    if given:
        return Path(given)
    build = tmp_path_factory.mktemp("stable_op")
    subprocess.run(["cmake", "-S", str(EXAMPLE), "-B", str(build / "build"), "-DCMAKE_BUILD_TYPE=Release",
                    f"-DPython_EXECUTABLE={sys.executable}",
                    f"-DKestrelMPSTorchExt_DIR={kmte.cmake_dir()}"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build / "build")], check=True, capture_output=True)
    subprocess.run(["cmake", "--install", str(build / "build"), "--prefix", str(build / "site")],
                   check=True, capture_output=True)
    return build / "site"


@pytest.fixture(scope="session")
def op(site: Path) -> ModuleType:
    sys.path.insert(0, str(site))
    try:
        return importlib.import_module("kestrel_stable_op")
    finally:
        sys.path.remove(str(site))


def _base(dtype: torch.dtype, *shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


def _cases(dtype: torch.dtype) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    a, b = _base(dtype, 6, 5, 8), _base(dtype, 6, 5, 8, seed=1)
    return {
        "contiguous": (a, b),
        "views with offsets": (a[2:4], b[1:3]),
        "transposes": (a.transpose(0, 2), b.permute(2, 1, 0)),
        "non-contiguous slices": (a[1:, ::2, 3:7], b[:5, 1:4, ::2]),
        "expanded (stride 0)": (a[0, 0].expand(4, 8), b[1, 1:5, :]),
        "mixed": (a[:, 1].t(), b[:, 3].t()),
        "0-dim": (a[1, 2, 3], b[0, 0, 0]),
        "empty": (a[:0], b[:0]),
    }


DTYPES = [torch.float32, torch.float64]
CASES = list(_cases(torch.float32))


def test_one_binary_on_the_stable_abi_only(site: Path) -> None:
    """The binary calls torch only through the stable ABI's C functions: no
    ATen or c10 C++ symbol, so no tie to the minor it was built with."""
    lib = site / "kestrel_stable_op" / "_C.so"
    darwin = sys.platform == "darwin"  # Mach-O names carry a leading underscore
    nm = ["nm", "-u"] if darwin else ["nm", "-D", "--undefined-only"]
    listed = subprocess.run([*nm, str(lib)], check=True, capture_output=True, text=True).stdout.split()
    undefined = [s[1:] if darwin else s for s in listed]
    torch_cxx = [s for s in undefined if s.startswith(("_ZN2at", "_ZN3c10", "_ZN5torch"))]
    assert torch_cxx == []
    assert any(s.startswith("aoti_torch_") for s in undefined)
    assert "kestrel_mps_ext_api" not in undefined  # found with dlsym, not linked


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_scale_add_matches_torch(op: ModuleType, dtype: torch.dtype, case: str) -> None:
    x, y = _cases(dtype)[case]
    result = op.scale_add(x, y, 0.75)
    assert result.is_contiguous() and result.dtype == dtype
    torch.testing.assert_close(result, x + 0.75 * y, rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_scale_add_out_writes_through_strided_out(op: ModuleType, dtype: torch.dtype, case: str) -> None:
    x, y = _cases(dtype)[case]
    if case == "expanded (stride 0)":
        x = x.clone()  # an expanded out would be refused by torch's own rules
    # out: a transposed view at an offset inside a bigger buffer, whose
    # guard bands must stay untouched.
    holder = torch.full((3, *reversed(x.shape)) if x.dim() else (3,), -7.0, dtype=dtype)
    out = holder[1].permute(*reversed(range(x.dim()))) if x.dim() else holder[1]
    assert op.scale_add_out(x, y, -2.0, out=out) is out
    torch.testing.assert_close(out, x - 2.0 * y, rtol=0, atol=0)
    assert bool((holder[0] == -7).all()) and bool((holder[2] == -7).all())


def test_out_may_be_an_input(op: ModuleType) -> None:
    x, y = _base(torch.float32, 4, 6), _base(torch.float32, 4, 6, seed=1)
    expected = x + 3 * y
    op.scale_add_out(x, y, 3.0, out=x)
    torch.testing.assert_close(x, expected, rtol=0, atol=0)


def test_meta_and_compile(op: ModuleType) -> None:
    meta = op.scale_add(torch.empty(3, 4, device="meta").t(), torch.empty(4, 3, device="meta"), 1.0)
    assert meta.shape == (4, 3) and meta.device.type == "meta"
    x, y = _base(torch.float32, 5, 7), _base(torch.float32, 7, 5, seed=1).t()
    out = torch.empty(5, 7)

    def f(a: torch.Tensor, b: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        r = op.scale_add(a, b, 0.5) * 2
        op.scale_add_out(r, b, 1.5, out=o)
        return r + 1

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="inductor")
    expected_out = torch.empty(5, 7)
    expected = f(x, y, expected_out)
    torch.testing.assert_close(compiled(x, y, out), expected)
    torch.testing.assert_close(out, expected_out)


def test_negative_view_into_the_out_of_place_op_is_resolved_by_torch(op: ModuleType) -> None:
    """torch's Negative (and Conjugate) fallback materializes such a view
    before the kernel of an op without mutable arguments runs: the bridge
    never sees the bit there, and the answer is right."""
    x, y = _base(torch.float32, 4, 6), _base(torch.float32, 4, 6, seed=1)
    torch.testing.assert_close(op.scale_add(torch._neg_view(x), y, 1.0), y - x, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: (torch.ones(3), torch.ones(3), torch._neg_view(torch.zeros(3))), "out: .*negative view"),
        (lambda: (torch._neg_view(torch.ones(3)), torch.ones(3), torch.zeros(3)), "x: .*negative view"),
        (lambda: (torch.ones(3, dtype=torch.complex64), torch.ones(3, dtype=torch.complex64),
                  torch.zeros(3, dtype=torch.complex64).conj()), "out: .*conjugate view.*resolve_conj"),
    ],
    ids=["negative out", "negative x", "conjugate out"],
)
def test_conjugate_and_negative_views_into_the_out_op_are_refused_by_the_bridge(
        op: ModuleType, make, reason: str) -> None:
    """The out= op's kernel is registered on the Conjugate and Negative keys
    too (torch's fallbacks fail on an out= op that returns nothing): the
    bridge sees the view and its refusal, naming the reason, reaches the
    caller."""
    x, y, out = make()
    with pytest.raises(RuntimeError, match=f"kestrel_example::scale_add.out: {reason}"):
        op.scale_add_out(x, y, 1.0, out=out)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: (torch.eye(3).to_sparse(), torch.eye(3)), "x: .*layout is not strided"),
        (lambda: (torch.ones(3), torch.ones(3).to_sparse()), "y: .*layout is not strided"),
        (lambda: (torch.ones(3, dtype=torch.int32), torch.ones(3, dtype=torch.int32)), "x must be float32 or float64"),
        (lambda: (torch.ones(3, dtype=torch.complex64).conj(), torch.ones(3, dtype=torch.complex64)),
         "x must be float32 or float64"),
        (lambda: (torch.ones(3), torch.ones(3, dtype=torch.float64)), "y must have x's dtype"),
        (lambda: (torch.ones(3), torch.ones(1).expand(4)), "y must have x's shape"),
    ],
    ids=["sparse x", "sparse y", "int32", "complex", "dtype mismatch", "shape mismatch"],
)
def test_refusals_name_the_reason(op: ModuleType, make, reason: str) -> None:
    x, y = make()
    with pytest.raises(RuntimeError, match=f"kestrel_example::scale_add: {reason}"):
        torch.ops.kestrel_example.scale_add(x, y, 1.0)  # past the fake's checks: the kernel's own


def test_partly_overlapping_out_is_refused(op: ModuleType) -> None:
    buffer = torch.arange(30, dtype=torch.float32)
    x, out = buffer[:24].view(4, 6), buffer[1:25].view(4, 6)
    before = buffer.clone()
    with pytest.raises(RuntimeError, match="out overlaps an input without being the same view"):
        op.scale_add_out(x, torch.ones(4, 6), 1.0, out=out)
    assert torch.equal(buffer, before)


def test_copy_on_write_out_is_materialized_first(op: ModuleType) -> None:
    """A lazily cloned out: torch materializes it for the kernel's mutable
    argument, so the source is never written."""
    source = torch.zeros(4, 6)
    out = torch._lazy_clone(source)
    op.scale_add_out(torch.ones(4, 6), torch.ones(4, 6), 1.0, out=out)
    assert torch.equal(out, torch.full((4, 6), 2.0)) and torch.equal(source, torch.zeros(4, 6))


def test_without_the_bridge_the_op_says_what_to_do(site: Path) -> None:
    """The binary loaded on its own (the package's __init__, which loads the
    bridge, skipped): the op refuses with the look-up's reason and the fix."""
    code = (f"import torch\ntorch.ops.load_library({str(site / 'kestrel_stable_op' / '_C.so')!r})\n"
            "torch.ops.kestrel_example.scale_add(torch.ones(2), torch.ones(2), 1.0)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode != 0
    assert "kestrel_example: " in run.stderr and "import kestrel_stable_op" in run.stderr, run.stderr
