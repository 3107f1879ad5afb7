"""Build one wheel bundling the bridge library of several torch minors.

    python tools/build_wheel.py 2.13.0 2.14.1 [--out dist]

Each torch version is built against its own headers and libraries: the
installed torch for its own minor, and for every other version the wheel pip
downloads for this Python (cached, unpacked in part). The per-minor libraries
are built with CMake first, then `pip wheel --no-build-isolation` builds the
installed torch's minor and installs the others beside it
(KESTREL_EXTRA_SHIMS). Torch's own libraries are never copied into the wheel;
--repair runs auditwheel (Linux) or delocate (macOS) with torch's libraries
excluded, for a wheel that can be published, and checks nothing was bundled.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_wheels  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))
from kestrel_build_backend import build_tag  # noqa: E402 - the package's own build backend names wheels

ROOT = Path(__file__).resolve().parents[1]


def installed_torch() -> str:
    return subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def build_shim(torch_root: Path, build_dir: Path) -> Path:
    """Configure and build the shim against torch_root; returns the library."""
    start = time.monotonic()
    # Linked with its install rpath: copied into the wheel, it must find
    # torch beside the package, not in this machine's build cache.
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=Release", f"-DKESTREL_TORCH_ROOT={torch_root}",
                    "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
                    f"-DPython_EXECUTABLE={sys.executable}"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build_dir), "--target", "kestrel_shim"], check=True,
                   stdout=subprocess.DEVNULL)
    suffix = ".dylib" if sys.platform == "darwin" else ".so"
    (lib,) = (build_dir / "shim").glob(torch_wheels.library_glob(suffix))
    subprocess.run(["strip", "-x" if sys.platform == "darwin" else "--strip-unneeded", str(lib)], check=True)
    print(f"built {lib.name} against {torch_root} in {time.monotonic() - start:.1f} s")
    return lib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("versions", nargs="*", help="torch versions to bundle (default: the installed one)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build" / "minors")
    parser.add_argument("--repair", action="store_true", help="auditwheel/delocate with torch excluded")
    parser.add_argument("--available-only", action="store_true",
                        help="leave out, saying so, the versions with no torch wheel for this Python")
    parser.add_argument("--all-minors", action="store_true",
                        help="bundle every supported minor (tools/torch_minors.txt)")
    args = parser.parse_args()
    if args.all_minors:
        args.versions = torch_wheels.supported_minors()

    if sys.platform == "darwin":
        os.environ.setdefault("MACOSX_DEPLOYMENT_TARGET", torch_wheels.macos_target())
    installed = torch_wheels.torch_minor(installed_torch())
    platforms = torch_wheels.MACOS_PLATFORMS if sys.platform == "darwin" else torch_wheels.LINUX_PLATFORMS
    extra = []
    bundled = [installed]
    for version in args.versions:
        if torch_wheels.torch_minor(version) == installed:
            continue  # the wheel build itself covers the installed torch
        try:
            root = torch_wheels.torch_root(version, platforms)
        except SystemExit as e:
            if not args.available_only:
                raise
            print(f"left out torch {version}: {e}")
            continue
        extra.append(build_shim(root, args.build_dir / f"torch{version}"))
        bundled.append(torch_wheels.torch_minor(version))

    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("**/kestrel_mps_torch_ext-*.whl"):
        old.unlink()
    # At a terminal, pip's and CMake's own progress (-v); in logs, quiet.
    # --config-settings, not -C: Debian 12's pip (23.0) lacks the short form.
    verbosity = "-v" if sys.stdout.isatty() else "-q"
    # A build directory of this interpreter's, kept: the next build of the
    # same interpreter (the demo's, then the tests') is incremental.
    build_dir = args.build_dir / "wheel" / hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    # The extra libraries always given (empty too): the kept build directory
    # would otherwise remember the last build's.
    cmd = [sys.executable, "-m", "pip", "wheel", verbosity, "--no-build-isolation", "--no-deps", "-w", str(args.out),
           f"--config-settings=build-dir={build_dir}",
           "--config-settings=cmake.define.KESTREL_EXTRA_SHIMS=" + ";".join(map(str, extra)), str(ROOT)]
    if extra:  # one minor: the build backend names it, as in any pip build
        cmd.append(f"--config-settings=wheel.build-tag={build_tag(sorted(set(bundled)))}")
    subprocess.run(cmd, check=True)
    (wheel,) = args.out.glob("kestrel_mps_torch_ext-*.whl")
    tag = build_tag(sorted(set(bundled)))
    if f"-{tag}-" not in wheel.name:
        raise SystemExit(f"{wheel.name} does not carry the build tag {tag}")
    if args.repair:
        wheel = repair(wheel, args.out)
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    grafted = [n for n in names if ".libs/" in n or ".dylibs/" in n]
    if grafted:
        raise SystemExit(f"{wheel} bundles foreign libraries: {grafted}")
    doubles = [n for n in names if "simulated" in n or "kestrel_sim" in n or n.startswith("tests/")]
    if doubles:
        raise SystemExit(f"{wheel} contains test doubles (tests/sim): {doubles}")
    libs = sorted(n for n in names if "/" + torch_wheels.library_glob("").rstrip("*") in n)
    check_no_build_paths(wheel, libs)
    print(f"{wheel}\n  bundles: {', '.join(n.rsplit('/', 1)[-1] for n in libs)}")
    return 0


def check_no_build_paths(wheel: Path, members: list[str]) -> None:
    """Every bundled library finds torch relative to itself: its run-time
    search path names no directory of the machine that built it."""
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as z:
        for member in members:
            lib = z.extract(member, tmp)
            if sys.platform == "darwin":
                text = subprocess.run(["otool", "-l", lib], capture_output=True, text=True, check=True).stdout
                paths = re.findall(r"cmd LC_RPATH\n\s+cmdsize \d+\n\s+path (\S+)", text)
            else:
                text = subprocess.run(["readelf", "-d", lib], capture_output=True, text=True, check=True).stdout
                paths = [p for m in re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library (?:runpath|rpath): \[(.*)\]", text)
                         for p in m.split(":")]
            absolute = [p for p in paths if p.startswith("/")]
            if absolute:
                raise SystemExit(f"{member} keeps the build machine's path(s) {absolute} in its rpath")


TORCH_LIBS = ("libtorch", "libc10", "libshm")


def delocate_command(wheel_dir: Path, ignore_missing: bool = True) -> list[str]:
    """delocate-wheel writing to wheel_dir, torch's libraries excluded
    (ignore_missing=False: the command as it was, which fails; see repair)."""
    cmd = ["delocate-wheel", *(["--ignore-missing-dependencies"] if ignore_missing else []), "-w", str(wheel_dir)]
    for lib in TORCH_LIBS:
        cmd += ["--exclude", lib]
    return cmd


def repair(wheel: Path, out: Path, macos: bool = sys.platform == "darwin") -> Path:
    """The wheel with its platform tag fixed and torch's libraries left out.

    On macOS delocate cannot find torch's dylibs (@rpath/libtorch_cpu.dylib,
    resolved at run time through @loader_path/../torch/lib) and --exclude only
    filters what it copies: without --ignore-missing-dependencies it stops at
    "Could not find all dependencies". Its output is shown on failure."""
    repaired = out / "repaired"
    repaired.mkdir(exist_ok=True)
    if macos:
        cmd = delocate_command(repaired)
    else:
        cmd = ["auditwheel", "repair", "-w", str(repaired)]
        for lib in TORCH_LIBS:
            cmd += ["--exclude", f"{lib}*.so"]
    proc = subprocess.run([*cmd, str(wheel)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed on {wheel.name} (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    wheel.unlink()
    (fixed,) = repaired.glob("kestrel_mps_torch_ext-*.whl")
    return fixed.rename(out / fixed.name)


if __name__ == "__main__":
    sys.exit(main())
