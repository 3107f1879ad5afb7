"""python -m kestrel_mps_torch_ext: a diagnostic report, or a path or flag for
build systems (--include, --includes, --cmake-dir, --pkgconfig-dir); --version.
`python -m kestrel_mps_torch_ext selftest [--json]`: a real Metal kernel
through every front end on this Mac, checked against torch (_selftest.py)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._version import __version__
from . import cmake_dir, get_include, library_dir, pkgconfig_dir, supported_torch_minors
from ._bridge import TorchMPSBridge
from ._errors import KestrelMPSError


def _report() -> tuple[dict[str, Any], bool]:
    info: dict[str, Any] = {
        "kestrel_mps_torch_ext": __version__,
        "python": sys.version.split()[0],
        "library_dir": str(library_dir()),
        "bundled_torch_minors": supported_torch_minors(),
        "include_dir": get_include(),
        "cmake_dir": cmake_dir(),
    }
    try:
        import torch
    except ImportError as e:
        info["torch"] = f"not importable: {e}"
        return info, False
    info["torch"] = str(torch.__version__)
    from ._probe import probe_mps

    mps = probe_mps()
    info["mps_available"] = mps.available
    info["mps_usable"] = mps.usable
    info["mps"] = mps.detail
    from ._loader import load_torch_mps_bridge

    try:
        bridge = load_torch_mps_bridge()
    except KestrelMPSError as e:
        info["bridge_error"] = f"{type(e).__name__}: {e}"
        return info, False
    info["library"] = str(bridge.path)
    info["built_for_torch"] = ".".join(map(str, bridge.built_for))
    info["torch_tag"] = bridge.torch_tag
    info["published_api"] = hex(bridge.api_pointer)
    info["abi_version"] = bridge.abi_version
    info["table_address"] = hex(bridge.table_address)
    info["mps_stream_backend"] = bridge.has_mps_stream
    # A hosted macOS runner's device is available and unusable: the probe
    # says so above, and the sample stays on the CPU.
    device = "mps" if mps.usable else "cpu"
    expr = f"torch.arange(24, dtype=torch.float32, device={device!r}).reshape(2, 3, 4)[:, 1:, ::2]"
    try:
        sample = torch.arange(24, dtype=torch.float32, device=device).reshape(2, 3, 4)[:, 1:, ::2]
        d = bridge.resolve(sample)
    except (RuntimeError, KestrelMPSError) as e:
        info["sample_tensor"] = f"{expr} failed: {type(e).__name__}: {e}"
        return _stream(bridge, info), True
    info["sample_tensor"] = {
        "expr": expr,
        "buffer": hex(d.buffer),
        "byte_offset": d.byte_offset,
        "nbytes": d.nbytes,
        "shape": list(d.shape),
        "strides": list(d.strides),
        "dtype": f"{str(sample.dtype).removeprefix('torch.')} (DLPack code, bits, lanes: {list(d.dtype)})",
        "device": f"{sample.device.type} (DLPack device type, index: {[d.device_type, d.device_index]})",
    }
    return _stream(bridge, info), True


def _stream(bridge: TorchMPSBridge, info: dict[str, Any]) -> dict[str, Any]:
    try:
        info["current_stream"] = hex(bridge.current_stream())
    except KestrelMPSError as e:
        info["current_stream"] = str(e)
    return info


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["selftest"]:
        selftest = argparse.ArgumentParser(prog="python -m kestrel_mps_torch_ext selftest",
                                           description=_selftest_doc())
        selftest.add_argument("--json", action="store_true", help="print the report as JSON")
        from ._selftest import main as run_selftest

        return run_selftest(selftest.parse_args(argv[1:]).json)
    parser = argparse.ArgumentParser(prog="python -m kestrel_mps_torch_ext", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--version", action="version", version=f"kestrel-mps-torch-ext {__version__}")
    group.add_argument("--include", action="store_true", help="print the header directory")
    group.add_argument("--includes", action="store_true",
                       help="print the compiler flag for the header directory (-I...), as pybind11 does")
    group.add_argument("--cmake-dir", action="store_true", help="print the CMake package directory")
    group.add_argument("--pkgconfig-dir", action="store_true", help="print the pkg-config directory")
    group.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.include:
        print(get_include())
        return 0
    if args.includes:
        print(f"-I{get_include()}")
        return 0
    if args.cmake_dir:
        print(cmake_dir())
        return 0
    if args.pkgconfig_dir:
        print(pkgconfig_dir())
        return 0
    info, ok = _report()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0 if ok else 1


def _selftest_doc() -> str:
    from . import _selftest

    return str(_selftest.__doc__)


if __name__ == "__main__":
    sys.exit(main())
