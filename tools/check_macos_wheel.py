"""The macOS wheel repair, run on Linux: assemble a macOS arm64 wheel from
the zig-built dylibs of tools/build_macos.py (the package, the libraries,
the headers, tag macosx_13_0_arm64), repair it with the command the workflow
runs (tools/build_wheel.py's repair(), delocate-wheel), and check the
result: every bundled library byte for byte intact and still passing
build_macos.py's checks, nothing of torch grafted in, the wheel's name, tag
and RECORD right. The self-test's library (selftest/, Objective-C++ against
Metal) cannot be linked here: only where it goes is checked, beside the
bridge libraries where the package looks for it, under the name CMake
gives it.

delocate is pure Python; it needs `otool` and `install_name_tool`, which
llvm's llvm-otool and llvm-install-name-tool stand in for (small wrappers on
PATH: llvm-otool has no -m, which delocate passes and which only matters for
archive members).

    python tools/check_macos_wheel.py LINUX_WHEEL DYLIB_DIR [--out DIR]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_macos  # noqa: E402
import build_wheel  # noqa: E402

TAG = "macosx_{}_arm64".format(build_macos.torch_wheels.macos_target().replace(".", "_"))


def selftest_place(names: list[str], dylibs: list[Path]) -> tuple[str, list[str]]:
    """Where the self-test library goes in the wheel, and what is wrong:
    _paths.SELFTEST_LIBRARY (what the package loads) must be the name of
    selftest/CMakeLists.txt's target, installed beside the bridge libraries."""
    paths = (ROOT / "python" / "kestrel_mps_torch_ext" / "_paths.py").read_text()
    name = re.search(r'^SELFTEST_LIBRARY = "([^"]+)"$', paths, re.M)
    target = re.search(r"^add_library\((\w+) SHARED", (ROOT / "selftest" / "CMakeLists.txt").read_text(), re.M)
    problems = []
    if name is None or target is None or name[1] != f"lib{target[1]}.dylib":
        problems.append(f"the package loads {name and name[1]}, CMake builds lib{target and target[1]}.dylib")
    homes = {n.rsplit("/", 1)[0] for n in names for lib in dylibs if n.endswith("/" + lib.name)}
    if len(homes) != 1:
        problems.append(f"the bridge libraries lie in {sorted(homes)}, not in one package directory")
    return f"{min(homes, default='?')}/{name[1] if name else '?'}", problems


def llvm_tool(name: str) -> str:
    for candidate in [name, *(f"{name}-{v}" for v in range(30, 10, -1))]:
        if found := shutil.which(candidate):
            return found
    raise SystemExit(f"no {name} on PATH (apt-get install llvm)")


def shims(directory: Path) -> None:
    """otool and install_name_tool on PATH, as delocate calls them."""
    directory.mkdir(parents=True, exist_ok=True)
    scripts = {
        "otool": f'#!/bin/sh\nfor a; do shift; [ "$a" = -m ] || set -- "$@" "$a"; done\n'
                 f'exec {llvm_tool("llvm-otool")} "$@"\n',
        "install_name_tool": f'#!/bin/sh\nexec {llvm_tool("llvm-install-name-tool")} "$@"\n',
    }
    for name, text in scripts.items():
        (directory / name).write_text(text)
        (directory / name).chmod(0o755)
    os.environ["PATH"] = f"{directory}{os.pathsep}{os.environ['PATH']}"


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def assemble(linux_wheel: Path, dylibs: list[Path], out: Path) -> Path:
    """The Linux wheel's package with its .so libraries swapped for the
    dylibs, retagged for macOS arm64, RECORD rewritten."""
    name = re.sub(r"linux_x86_64|manylinux\w+", TAG, linux_wheel.name)
    wheel = out / name
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(linux_wheel) as z:
        for member in z.namelist():
            if member.endswith(".so") or member.endswith("/RECORD"):
                continue
            data = z.read(member)
            if member.endswith(".dist-info/WHEEL"):
                data = re.sub(rb"^Tag: (\S+)-(\S+)-\S+$", b"Tag: \\1-\\2-" + TAG.encode(), data, flags=re.M)
            files[member] = data
    package = next(m.split("/")[0] for m in files if m.endswith("/__init__.py"))
    for lib in dylibs:
        files[f"{package}/{lib.name}"] = lib.read_bytes()
    dist_info = next(m.split("/")[0] for m in files if m.endswith(".dist-info/WHEEL"))
    record = [record_line(n, d) for n, d in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for member, data in files.items():
            z.writestr(member, data)
    return wheel


def check(repaired: Path, dylibs: list[Path], scratch: Path) -> list[str]:
    problems = []
    if not repaired.name.endswith(f"-{TAG}.whl"):
        problems.append(f"the repaired wheel is named {repaired.name}, not ...-{TAG}.whl")
    with zipfile.ZipFile(repaired) as z:
        names = z.namelist()
        wheel_meta = z.read(next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode()
        record = z.read(next(n for n in names if n.endswith(".dist-info/RECORD"))).decode()
        contents = {n: z.read(n) for n in names}
    tags = re.findall(r"^Tag: (\S+)$", wheel_meta, re.M)
    if not tags or any(not t.endswith(f"-{TAG}") for t in tags):
        problems.append(f"WHEEL tags {tags}")
    grafted = [n for n in names if ".dylibs/" in n or re.search(r"lib(torch|c10|shm)", n)]
    if grafted:
        problems.append(f"torch grafted in: {grafted}")
    listed = {}
    for line in record.splitlines():
        path, digest, size = line.rsplit(",", 2)
        listed[path] = (digest, size)
    for n, data in contents.items():
        if n.endswith("/RECORD") or n.endswith("/"):  # RECORD itself; directory entries
            continue
        if n not in listed:
            problems.append(f"{n} is not in RECORD")
        elif record_line(n, data) != f"{n},{listed[n][0]},{listed[n][1]}":
            problems.append(f"RECORD's hash or size of {n} is wrong")
    for lib in dylibs:
        inside = [n for n in names if n.endswith("/" + lib.name)]
        if len(inside) != 1:
            problems.append(f"{lib.name}: {len(inside)} copies in the wheel")
            continue
        data = contents[inside[0]]
        if data != lib.read_bytes():
            problems.append(f"{lib.name} was changed by the repair")
        copy = scratch / lib.name
        copy.write_bytes(data)
        problems += [f"{lib.name}: {p}" for p in build_macos.check(copy)]
    place, wrong = selftest_place(names, dylibs)
    problems += wrong
    print(f"the self-test library goes to {place} "
          f"({'present' if place in names else 'absent here: only a Mac links it'})")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("linux_wheel", type=Path)
    parser.add_argument("dylib_dir", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "macos" / "wheel")
    args = parser.parse_args()
    dylibs = sorted(args.dylib_dir.glob(build_macos.torch_wheels.library_glob(".dylib")))
    if not dylibs:
        raise SystemExit(f"no dylibs in {args.dylib_dir}: run tools/build_macos.py first")
    shutil.rmtree(args.out, ignore_errors=True)
    shims(args.out / "bin")
    wheel = assemble(args.linux_wheel, dylibs, args.out)
    # Not vacuous: the command the workflow ran before (without
    # --ignore-missing-dependencies) fails on this wheel.
    old = subprocess.run([*build_wheel.delocate_command(args.out / "old", ignore_missing=False), str(wheel)],
                         capture_output=True, text=True)
    old_fails = old.returncode != 0 and "Could not find all dependencies" in old.stdout + old.stderr
    print(f"the earlier command (no --ignore-missing-dependencies): "
          f"{'fails with Could not find all dependencies, as predicted' if old_fails else 'did NOT fail'}")
    repaired = build_wheel.repair(wheel, args.out, macos=True)
    scratch = args.out / "check"
    scratch.mkdir()
    problems = check(repaired, dylibs, scratch)
    print(f"{repaired.name}: {len(dylibs)} dylibs, repaired with delocate-wheel --ignore-missing-dependencies: "
          f"{'all checks pass' if not problems else 'FAIL'}")
    for p in problems:
        print(f"  {p}")
    return 1 if problems or not old_fails else 0


if __name__ == "__main__":
    sys.exit(main())
