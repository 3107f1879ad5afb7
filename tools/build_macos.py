"""The real macOS arm64 build, on Linux: for each torch minor, build the
bridge as a Mach-O arm64 dylib with the ordinary CMake build and zig
(cmake/toolchains/zig-macos-arm64.cmake), linked against that minor's macOS
wheel's own dylibs, then check the result with llvm-objdump --macho:

  - every torch import binds two-level to one of torch's dylibs; only the
    Python C API and the C++ runtime are left to load-time (flat) lookup;
  - MPSStream::commandEncoder() and MPSStream::device() (the published
    entries' needs), dispatch_sync_f, dispatch_get_specific and
    objc_autoreleasePoolPush/Pop are imported;
  - the exports are exactly shim/exports.map's names (the published eight
    plus ours), beside the linker's own image-header symbols;
  - LC_ID_DYLIB is @rpath/<name>, LC_RPATH is @loader_path/../torch/lib and
    nothing else, LC_BUILD_VERSION says the deployment target (macOS 13.0);
  - the loader's structural check (kestrel_mps_torch_ext._loader) accepts it.

    python tools/build_macos.py [2.9.1 2.10.0 ...] [--out DIR]

This proves compiling and linking for macOS arm64. It runs nothing: no Mac,
no Metal device. macOS wheels are cached in ~/.cache/kestrel.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "python"))
import torch_wheels  # noqa: E402
from kestrel_mps_torch_ext._loader import BinaryCheckError, check_shared_library  # noqa: E402

MINORS = torch_wheels.supported_minors()
TORCH_DYLIBS = {"libtorch_cpu", "libc10", "libtorch_python"}
# Mach-O image symbols the linker defines itself.
LINKER_SYMBOLS = {"__mh_dylib_header", "___dso_handle"}
REQUIRED_IMPORTS = {
    "at::mps::MPSStream::commandEncoder()": TORCH_DYLIBS,
    "at::mps::MPSStream::device() const": TORCH_DYLIBS,
    "at::mps::MPSStream::commandBuffer()": TORCH_DYLIBS,
    "at::mps::MPSStream::endKernelCoalescing()": TORCH_DYLIBS,
    "at::mps::getCurrentMPSStream()": TORCH_DYLIBS,
    "dispatch_sync_f": {"libSystem"},
    "dispatch_get_specific": {"libSystem"},
    "dispatch_queue_set_specific": {"libSystem"},
    "objc_autoreleasePoolPush": {"libobjc"},
    "objc_autoreleasePoolPop": {"libobjc"},
}
# What may stay to load-time lookup: Python's C API and the C++ runtime
# (torch's libc++ is loaded by then).
_FLAT_OK = re.compile(
    r"^(_?Py|std::|operator (new|delete)|__cxa_|__gxx_personality|typeinfo for std::|"
    r"(construction )?vtable for (std::|__cxxabiv1::)|VTT for std::)"
)


def run(cmd: list[str], **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def demangle(names: list[str]) -> list[str]:
    # Mach-O names carry one extra leading underscore.
    plain = [n[1:] if n.startswith("_") else n for n in names]
    return run(["llvm-cxxfilt"], input="\n".join(plain) + "\n").splitlines()


def build(version: str, out: Path, variant: str = "", options: tuple[str, ...] = ("-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",)) -> Path:
    torch_root = torch_wheels.torch_root(version, torch_wheels.MACOS_PLATFORMS)
    build_dir = ROOT / "build" / "macos" / f"torch{version}{variant}"
    run(["cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
         f"-DCMAKE_TOOLCHAIN_FILE={ROOT / 'cmake' / 'toolchains' / 'zig-macos-arm64.cmake'}",
         f"-DKESTREL_TORCH_ROOT={torch_root}", *options, f"-DPython_EXECUTABLE={sys.executable}"])
    run(["cmake", "--build", str(build_dir), "--target", "kestrel_shim"])
    (lib,) = (build_dir / "shim").glob(torch_wheels.library_glob(".dylib"))
    out.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(lib, out / lib.name))


def load_commands(lib: Path) -> dict[str, list[str]]:
    """cmd -> the values we check (name, path or minos) of each such command."""
    found: dict[str, list[str]] = {}
    cmd = None
    for line in run(["llvm-objdump", "--macho", "--private-headers", str(lib)]).splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "cmd":
            cmd = words[1]
        elif cmd and len(words) >= 2 and words[0] in ("name", "path", "minos"):
            found.setdefault(cmd, []).append(words[1])
    return found


def imports(lib: Path) -> list[tuple[str, str]]:
    """(dylib, symbol) of every bind: "flat-namespace" for load-time lookup,
    "weak" for weak binds (coalesced definitions)."""
    rows = []
    for flag, has_dylib in (("--bind", True), ("--lazy-bind", True), ("--weak-bind", False)):
        for line in run(["llvm-objdump", "--macho", flag, str(lib)]).splitlines():
            words = line.split()
            if len(words) < 4 or not words[0].startswith("__"):
                continue
            rows.append((words[-2], words[-1]) if has_dylib else ("weak", words[-1]))
    return rows


def exported(lib: Path) -> set[str]:
    lines = run(["llvm-objdump", "--macho", "--exports-trie", str(lib)]).splitlines()
    return {l.split()[-1] for l in lines if l.strip().startswith("0x")}


def expected_exports() -> set[str]:
    text = (ROOT / "shim" / "exports.map").read_text()
    return {"_" + n for n in re.findall(r"^\s+(\w+);$", text, re.M)}


def check(lib: Path) -> list[str]:
    """Every problem found (empty: the library passes)."""
    problems = []
    lc = load_commands(lib)
    if lc.get("LC_ID_DYLIB") != [f"@rpath/{lib.name}"]:
        problems.append(f"install name {lc.get('LC_ID_DYLIB')}")
    if lc.get("LC_RPATH") != ["@loader_path/../torch/lib"]:
        problems.append(f"LC_RPATH {lc.get('LC_RPATH')}")
    if lc.get("LC_BUILD_VERSION") != [torch_wheels.macos_target()]:
        problems.append(f"minimum macOS {lc.get('LC_BUILD_VERSION')}")
    rows = imports(lib)
    names = demangle([s for _, s in rows])
    bound = {}
    for (dylib, _), name in zip(rows, names):
        bound.setdefault(name, set()).add(dylib)
        is_torch = re.match(r"^(typeinfo for |vtable for )?(c10|at|torch|caffe2)::|^_?THP|^_?ParameterClass", name)
        if is_torch and not ({dylib} <= TORCH_DYLIBS):
            problems.append(f"torch symbol {name} binds to {dylib}, not to a torch dylib")
        if dylib == "flat-namespace" and not is_torch and not _FLAT_OK.match(name):
            problems.append(f"{name} is left to flat lookup")
        if dylib == "weak" and not name.startswith(("typeinfo for kestrel_shim", "typeinfo name for kestrel_shim", "vtable for kestrel_shim")):
            problems.append(f"unexpected weak bind {name}")
    for name, dylibs in REQUIRED_IMPORTS.items():
        if not bound.get(name) or not bound[name] <= dylibs:
            problems.append(f"{name} not imported from {sorted(dylibs)} (found {sorted(bound.get(name, []))})")
    exports = exported(lib) - LINKER_SYMBOLS
    if exports != expected_exports():
        problems.append(f"exports differ: extra {sorted(exports - expected_exports())}, "
                        f"missing {sorted(expected_exports() - exports)}")
    try:
        check_shared_library(lib)
    except BinaryCheckError as e:
        problems.append(f"the loader's structural check refuses it: {e}")
    return problems


def selftest(version: str, out: Path) -> bool:
    """The checks are not vacuous: a build of the wrong kind (no Metal
    backend, the build tree's rpath kept) must fail them, for those reasons."""
    try:
        wrong = build(version, out / "selftest", "-selftest", ("-DKESTREL_STREAM_BACKEND=unavailable",))
    except subprocess.CalledProcessError:
        print("self-test: the deliberately wrong build did not even build")
        return False
    problems = " | ".join(check(wrong))
    caught = all(w in problems for w in ("LC_RPATH", "dispatch_sync_f not imported",
                                          "objc_autoreleasePoolPush not imported",
                                          "MPSStream::commandEncoder() not imported"))
    print(f"self-test: a library without the Metal backend and with the build rpath is "
          f"{'refused, for each of those reasons' if caught else 'NOT refused as it should be: ' + problems}")
    return caught


def torch_imports(lib: Path) -> int:
    rows = imports(lib)
    return sum(1 for dylib, _ in rows if dylib in TORCH_DYLIBS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("versions", nargs="*", default=MINORS)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "macos" / "dylibs")
    parser.add_argument("--selftest", action="store_true", help="also check that a wrong build is refused")
    args = parser.parse_args()
    lines = ["| torch | Mach-O arm64 dylib | bytes | torch imports, all two-level | checks |",
             "| --- | --- | --- | --- | --- |"]
    failed = 0

    def one(version: str) -> tuple[Path | None, list[str], float]:
        start = time.monotonic()
        try:
            lib = build(version, args.out)
        except subprocess.CalledProcessError as e:
            return None, [l for l in (e.stdout + e.stderr).splitlines() if "error" in l][:5], 0.0
        return lib, check(lib), time.monotonic() - start

    # Two at a time: each build is mostly serial (configure, one link).
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, args.versions))
    for version, (lib, problems, seconds) in zip(args.versions, results):
        if lib is None:
            print(f"torch {version}: BUILD FAILED\n  " + "\n  ".join(problems), flush=True)
            lines.append(f"| {version} | - | - | - | build failed |")
            failed += 1
            continue
        failed += bool(problems)
        status = "all pass" if not problems else "; ".join(problems)
        print(f"torch {version}: {lib.name}: {'OK' if not problems else 'FAIL'} ({seconds:.0f} s)", flush=True)
        for p in problems:
            print(f"  {p}")
        lines.append(f"| {version} | `{lib.name}` | {lib.stat().st_size} | {torch_imports(lib)} | {status} |")
    print("\n" + "\n".join(lines))
    if args.selftest and not selftest(args.versions[0], args.out):
        failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
