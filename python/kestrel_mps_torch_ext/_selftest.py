"""``python -m kestrel_mps_torch_ext selftest``: a real Metal kernel through
every way a consumer reaches torch's stream, on this machine, checked
element by element against torch, with the bridge's own cost per launch; a
report to paste into a bug report.

The launch sequence is native and written once against the public header
(the package's ``libkestrel_mps_selftest.dylib``, built from ``selftest/``:
Metal and Foundation are all it links). The same code runs in CI over the
simulated MPS runtime, where this module's :func:`run_checks` drives it with
CPU tensors standing in for MPS tensors.

Exit status: 0 every check passed, 1 a check failed (or the bridge or the
self-test library cannot load), 2 it cannot run here (not a Mac, no usable
Metal device, macOS below torch's MPS floor).
"""

from __future__ import annotations

import ctypes
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from . import _abi
from ._bridge import TorchMPSBridge

# selftest/kestrel_selftest.h
_PUBLISHED, _EXTENSION = 0, 1
OWN_ENCODER, WRONG_OFFSET_ZERO, WRONG_ENCODER_LEFT_OPEN = 1, 2, 16

CASES = ("contiguous", "offset view", "transposed")
DTYPES = ("float32", "float16")
# Each way a consumer reaches torch's stream, as that consumer does it.
PATHS = {
    "published": "the 0.1.x table: tensor_view_from_pyobject, current_stream_view, a block on sv.queue, "
                 "torch's coalesced encoder from KestrelMPSCommandEncoder, left open for torch to commit",
    "extension": "run_on_stream_queue, command_buffer (coalescing ended), an encoder of its own ended in the "
                 "block, then synchronize",
    "handle": "the stable-ABI example op (kestrel_stable_op): resolve_aten_tensors and its Metal launch",
}
TIMED_LAUNCHES = 200


def _native(path: Path) -> ctypes.PyDLL:
    """The launch sequence's library; its tensor entries need the GIL."""
    lib = ctypes.PyDLL(str(path))
    lib.kst_add.restype = ctypes.c_int
    lib.kst_add.argtypes = [ctypes.c_int] + [ctypes.py_object] * 3 + [
        ctypes.c_int, ctypes.c_int32, ctypes.c_char_p, ctypes.c_size_t]
    lib.kst_last_timing.argtypes = [ctypes.POINTER(ctypes.c_double)]
    lib.kst_set_timing.argtypes = [ctypes.c_int]
    lib.kst_device_name.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return lib


def operands(case: str, dtype: Any, device: str) -> tuple[Any, Any, Any, Any]:
    """(a, b, out, out's base) for a case: a is torch's fresh write (the
    kernel must see it), out a view of a base filled with NaN (what the
    kernel leaves unwritten stays NaN)."""
    import torch

    g = torch.Generator().manual_seed(CASES.index(case) * 7 + 1)
    src = torch.randn(8, 16, 24, generator=g).to(device=device, dtype=dtype)
    b_base = torch.randn(8, 16, 24, generator=g).to(device=device, dtype=dtype)
    a_base = src * 2  # torch's op just before the kernel, still in its encoder
    out_base = torch.full((8, 16, 24), float("nan"), device=device, dtype=dtype)
    if case == "contiguous":
        return a_base, b_base, out_base, out_base
    if case == "offset view":  # every operand starts past its buffer's byte 0
        return a_base[2:6, 3:], b_base[1:5, :13], out_base[3:7, 2:15], out_base
    return a_base.transpose(0, 2), b_base.permute(2, 1, 0), out_base.permute(2, 1, 0), out_base


def first_wrong(got: Any, expected: Any) -> dict[str, Any] | None:
    """The first element (row-major) where got differs from expected, NaN
    equal to NaN; None if none."""
    import torch

    same = (got == expected) | (torch.isnan(got) & torch.isnan(expected))
    if bool(same.all()):
        return None
    flat = int(torch.nonzero(~same.reshape(-1))[0])
    index = []
    for size in reversed(got.shape):
        index.append(flat % size)
        flat //= size
    at = tuple(reversed(index))
    return {"index": list(at), "expected": float(expected[at]), "got": float(got[at])}


def check_case(launch: Callable[[Any, Any, Any], None], case: str, dtype_name: str, device: str,
               settle: Callable[[], None], stream_ordered: bool) -> dict[str, Any]:
    """One launch of out = a + b between torch ops, every element against
    torch: the kernel's output, torch's next op on it, and the base outside
    the view (untouched)."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b, out, base = operands(case, dtype, device)
    expected = a + b
    in_view = torch.zeros(base.shape, dtype=torch.bool)  # base is contiguous: the view's elements
    in_view.as_strided(out.shape, out.stride(), out.storage_offset()).fill_(True)
    launch(a, b, out)
    if not stream_ordered:
        settle()  # torch's ops on stand-in CPU tensors run at once, not on the stream
    after = out * 3 - 1  # torch's op after the kernel must see its writes
    settle()
    result: dict[str, Any] = {"case": case, "dtype": dtype_name, "elements": out.numel()}
    wrong = first_wrong(out.cpu(), expected.cpu())
    if wrong is not None:
        wrong["in"] = "the kernel's output"
    elif (wrong := first_wrong(after.cpu(), (expected * 3 - 1).cpu())) is not None:
        wrong["in"] = "torch's op after the kernel"
    else:
        outside = base.cpu()[~in_view]
        if (wrong := first_wrong(outside, torch.full_like(outside, float("nan")))) is not None:
            wrong["in"] = "the base outside the output view (flat index among those elements)"
    result["status"] = "PASS" if wrong is None else "FAIL"
    if wrong is not None:
        result["first_wrong"] = wrong
    return result


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "p10": ordered[len(ordered) // 10],
            "p90": ordered[(len(ordered) * 9) // 10]}


def run_checks(bridge: TorchMPSBridge, native_path: Path, device: str, *, stream_ordered: bool = True,
               flags: dict[str, int] | None = None, stable_ops: Any = None,
               stable_why: str = "") -> dict[str, Any]:
    """Every path x case x dtype, and the timing. flags: extra launch flags
    per path (the deliberately broken variants the tests show caught).
    stable_ops: torch.ops.kestrel_example, or None with stable_why."""
    lib = _native(native_path)
    flags = flags or {}
    settle: Callable[[], None] = lambda: bridge.synchronize(wait=True)  # noqa: E731
    err = ctypes.create_string_buffer(512)

    def native(front: int, base_flags: int, sync: int, path: str) -> Callable[[Any, Any, Any], None]:
        def launch(a: Any, b: Any, out: Any) -> None:
            if lib.kst_add(front, a, b, out, base_flags | flags.get(path, 0), sync, err, len(err)) != 0:
                raise RuntimeError(err.value.decode())
        return launch

    launches = {
        "published": native(_PUBLISHED, 0, 0, "published"),  # torch commits
        "extension": native(_EXTENSION, OWN_ENCODER, _abi.SYNC_COMMIT, "extension"),
    }
    if stable_ops is not None:
        launches["handle"] = lambda a, b, out: stable_ops.scale_add.out(a, b, 1.0, out=out)
    checks = []
    for path in PATHS:
        for case in CASES:
            for dtype in DTYPES:
                row: dict[str, Any] = {"path": path}
                if path not in launches:
                    checks.append({**row, "case": case, "dtype": dtype, "status": "SKIP", "detail": stable_why})
                elif path == "handle" and dtype != "float32":
                    checks.append({**row, "case": case, "dtype": dtype, "status": "SKIP",
                                   "detail": "the example op's Metal kernel takes float32 only"})
                else:
                    try:
                        checks.append({**row, **check_case(launches[path], case, dtype, device, settle,
                                                           stream_ordered)})
                    except (RuntimeError, ValueError) as e:
                        checks.append({**row, "case": case, "dtype": dtype, "status": "FAIL",
                                       "detail": f"{type(e).__name__}: {e}"})
    report: dict[str, Any] = {"checks": checks, "timing": timing(lib, launches, device, settle)}
    name = ctypes.create_string_buffer(256)
    report["gpu"] = name.value.decode() if lib.kst_device_name(name, len(name)) == 0 else "unknown"
    report["result"] = "FAIL" if any(c["status"] == "FAIL" for c in checks) else "PASS"
    return report


def timing(lib: ctypes.PyDLL, launches: dict[str, Callable[[Any, Any, Any], None]],
           device: str, settle: Callable[[], None]) -> dict[str, Any]:
    """Per launch through each native path: ns in the bridge's entries
    against ns in Metal's calls of the same launch (median, p10, p90)."""
    import torch

    a = torch.ones(4096, device=device)
    b = torch.ones(4096, device=device)
    out = torch.empty(4096, device=device)
    result: dict[str, Any] = {}
    pair = (ctypes.c_double * 2)()
    lib.kst_set_timing(1)
    try:
        for path in ("published", "extension"):
            bridge_ns, metal_ns = [], []
            for _ in range(TIMED_LAUNCHES):
                launches[path](a, b, out)
                lib.kst_last_timing(pair)
                bridge_ns.append(pair[0])
                metal_ns.append(pair[1])
            result[path] = {"launches": TIMED_LAUNCHES, "bridge_ns": _spread(bridge_ns),
                            "metal_ns": _spread(metal_ns),
                            "bridge_per_metal": statistics.median(bridge_ns) / max(statistics.median(metal_ns), 1.0)}
    finally:
        lib.kst_set_timing(0)
        settle()  # the launches' tensors outlive their kernels
    return result


def _chip() -> str:
    try:
        return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                              timeout=5).stdout.strip() or platform.machine()
    except (OSError, subprocess.SubprocessError):
        return platform.machine()


def _stable_ops() -> tuple[Any, str]:
    """torch.ops.kestrel_example if the stable-ABI example is installed."""
    import importlib

    try:
        importlib.import_module("kestrel_stable_op")  # registers the ops
    except ImportError as e:
        return None, (f"the stable-ABI example is not installed ({e}); "
                      "pip install --no-build-isolation examples/stable_op to check the handle entry")
    import torch

    return torch.ops.kestrel_example, ""


def gate() -> str | None:
    """Why the self-test cannot run here, or None."""
    if sys.platform != "darwin":
        return f"it needs a Mac with a usable Metal device (this is {sys.platform})"
    from ._probe import probe_mps

    mps = probe_mps()
    return None if mps.usable else f"MPS is not usable here: {mps.detail}"


def main(as_json: bool) -> int:
    """The command: gate, load, check, report."""
    import json

    import torch

    from ._version import __version__
    from ._errors import KestrelMPSError
    from ._loader import load_torch_mps_bridge
    from ._paths import selftest_library

    head: dict[str, Any] = {
        "package": __version__,
        "torch": f"{torch.__version__} (git {str(torch.version.git_version)[:12]})",
        "os": f"macOS {platform.mac_ver()[0]}" if sys.platform == "darwin" else platform.platform(),
        "chip": _chip(),
    }
    why = gate()
    if why is not None:
        return _emit({**head, "result": "CANNOT RUN", "detail": f"the self-test cannot run here: {why}"}, as_json, 2)
    try:
        bridge = load_torch_mps_bridge()
    except KestrelMPSError as e:
        return _emit({**head, "result": "FAIL", "detail": f"{type(e).__name__}: {e}"}, as_json, 1)
    head["library"] = str(bridge.path)
    native = selftest_library()
    if not native.is_file():
        return _emit({**head, "result": "FAIL", "detail": f"the self-test library is missing: {native} "
                                                        "(a macOS wheel ships it; reinstall the package)"}, as_json, 1)
    ops, stable_why = _stable_ops()
    report = {**head, **run_checks(bridge, native, "mps", stable_ops=ops, stable_why=stable_why)}
    if as_json:
        print(json.dumps(report, indent=2))
        return 0 if report["result"] == "PASS" else 1
    return _emit(report, False, 0 if report["result"] == "PASS" else 1)


def format_report(report: dict[str, Any]) -> str:
    """The report as one screen of text."""
    lines = [f"{key:<8} {report[key]}" for key in ("package", "torch", "os", "chip", "gpu", "library")
             if key in report]
    for c in report.get("checks", []):
        where = f"{c['path']:<9} {c['case']:<11} {c['dtype']:<7}"
        if c["status"] == "PASS":
            lines.append(f"PASS  {where} {c['elements']} elements equal to torch's")
        elif c["status"] == "SKIP":
            lines.append(f"SKIP  {where} {c['detail']}")
        elif "first_wrong" in c:
            w = c["first_wrong"]
            lines.append(f"FAIL  {where} first wrong element in {w['in']}: index {w['index']}, "
                         f"expected {w['expected']!r}, got {w['got']!r}")
        else:
            lines.append(f"FAIL  {where} {c['detail']}")
    for path, t in report.get("timing", {}).items():
        b, m = t["bridge_ns"], t["metal_ns"]
        lines.append(f"time  {path:<9} bridge {b['median']:.0f} ns (p10 {b['p10']:.0f}, p90 {b['p90']:.0f}) "
                     f"vs Metal {m['median']:.0f} ns (p10 {m['p10']:.0f}, p90 {m['p90']:.0f}) per launch, "
                     f"{t['bridge_per_metal']:.2f}x, {t['launches']} launches")
    if "detail" in report:
        lines.append(report["detail"])
    lines.append(f"result   {report['result']}")
    return "\n".join(lines)


def _emit(report: dict[str, Any], as_json: bool, status: int) -> int:
    import json

    print(json.dumps(report, indent=2) if as_json else format_report(report))
    return status
