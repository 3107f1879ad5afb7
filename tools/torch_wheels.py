"""Fetch one torch release's wheel with pip and unpack the parts a build or
an audit needs (headers, the three libraries the shim links, the CMake
config). Downloads are cached outside the repository.

PyPI has final releases only. A release candidate comes from PyTorch's own
test index: KESTREL_TORCH_INDEX=<its URL> (docs/releasing.md gives it), or
--index URL on the command line; candidates are cached apart from finals,
which carry the same version number.

    python tools/torch_wheels.py [--macos] [--index URL] 2.16.0 ...
    python tools/torch_wheels.py --add-release 2.16.0 [--minors-file F]
        (tools/torch_minors.txt, or F, gets the release; prints the release
        it follows)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
from kestrel_mps_torch_ext import _paths  # noqa: E402 - the library names, from their one place

CACHE = Path(os.environ.get("KESTREL_CACHE", Path.home() / ".cache" / "kestrel"))


def macos_target() -> str:
    """The oldest macOS the libraries run on, from its one place
    (cmake/KestrelDeploymentTarget.cmake)."""
    text = (ROOT / "cmake" / "KestrelDeploymentTarget.cmake").read_text()
    return re.search(r'set\(KESTREL_MACOS_TARGET "([0-9.]+)"\)', text)[1]


torch_minor = _paths.torch_minor  # (major, minor) of a torch version, as the loader decides it


def library_glob(suffix: str) -> str:
    """A glob for the bridge libraries of every minor, e.g. suffix ".dylib"."""
    return f"{_paths.LIBRARY_PREFIX}torch*{suffix}"

# torch's macOS arm64 wheels moved from the macosx_11_0 tag to macosx_14_0
# with 2.12 (these are torch's tags, not ours).
MACOS_PLATFORMS = ("macosx_11_0_arm64", "macosx_14_0_arm64", "macosx_13_0_arm64", "macosx_15_0_arm64")
LINUX_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")

MINORS_FILE = Path(__file__).with_name("torch_minors.txt")


def supported_minors() -> list[str]:
    """The release of each supported torch minor (tools/torch_minors.txt)."""
    lines = (l.strip() for l in MINORS_FILE.read_text().splitlines())
    return [l for l in lines if l and not l.startswith("#")]


def add_release(version: str, path: Path = MINORS_FILE) -> str:
    """Puts torch `version` in the list at `path`, in place of an older
    release of its minor, in version order; returns the newest release of an
    older minor ("" if none), the one a new minor is compared with."""
    from packaging.version import Version

    new = Version(version)
    lines = path.read_text().splitlines()
    header = [l for l in lines if l.startswith("#") or not l.strip()]
    releases = [Version(l) for l in lines if l.strip() and not l.startswith("#")]
    kept = [v for v in releases if v.release[:2] != new.release[:2]] + [new]
    path.write_text("\n".join(header + [str(v) for v in sorted(kept)]) + "\n")
    older = [v for v in releases if v.release[:2] < new.release[:2]]
    return str(max(older)) if older else ""


_WANTED_LIBS = ("libtorch_cpu", "libc10", "libtorch_python", "libtorch.", "libshm", "libtorch_global_deps")


def _wanted(name: str) -> bool:
    if name.startswith("torch/include/") or name.startswith("torch/share/cmake/"):
        return True
    if name.startswith("torch/lib/"):
        base = name[len("torch/lib/"):]
        return base.startswith(_WANTED_LIBS)
    return name in ("torch/version.py",)


def index() -> str | None:
    """The index torch comes from: KESTREL_TORCH_INDEX, or PyPI (None)."""
    return os.environ.get("KESTREL_TORCH_INDEX") or None


def download(version: str, platforms: tuple[str, ...], python: str | None = None) -> Path:
    """The wheel file of torch==version for one of platforms (cached), from
    index() (a release candidate on PyTorch's test index) or PyPI."""
    python = python or f"{sys.version_info[0]}{sys.version_info[1]}"
    url = index()
    # A candidate has its final's version number: never mix the two caches.
    dest = CACHE / "wheels" / ("index-" + re.sub(r"\W+", "_", url) if url else "")
    dest.mkdir(parents=True, exist_ok=True)
    def cached(platform: str) -> Path | None:
        # torch-2.13.0-..., and a local version's torch-2.13.0+cpu-... too
        found = sorted(dest.glob(f"torch-{version}[-+]*cp{python}-*{platform.split('_')[0]}*.whl"))
        return found[-1] if found else None

    for platform in platforms:
        if (wheel := cached(platform)) is not None:
            return wheel
    errors = []
    for platform in platforms:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--platform", platform, "--python-version", python, "-d", str(dest), f"torch=={version}"]
        if url:
            cmd += ["--index-url", url, "--pre"]
        # This machine's pip.conf may cap torch (a constraint meant for
        # installs); a download for another platform needs no cap.
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_CONSTRAINT": os.devnull})
        if out.returncode == 0 and (wheel := cached(platform)) is not None:
            return wheel
        errors.append(f"{platform}: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'no file'}")
    raise SystemExit(f"no torch {version} wheel for cp{python} on {platforms}: " + "; ".join(errors))


def unpack(wheel: Path) -> Path:
    """Unpack the needed members of wheel once; returns its torch/ directory."""
    root = CACHE / "unpacked" / wheel.parent.relative_to(CACHE / "wheels") / wheel.stem
    done = root / ".complete"
    if not done.exists():
        with zipfile.ZipFile(wheel) as z:
            for member in z.namelist():
                if _wanted(member):
                    z.extract(member, root)
        done.touch()
    return root / "torch"


def torch_root(version: str, platforms: tuple[str, ...]) -> Path:
    return unpack(download(version, platforms))


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--add-release"]:
        path = Path(args[3]) if args[2:3] == ["--minors-file"] else MINORS_FILE
        print(add_release(args[1], path))
        sys.exit(0)
    if "--index" in args:
        at = args.index("--index")
        os.environ["KESTREL_TORCH_INDEX"] = args[at + 1]
        del args[at:at + 2]
    plat = MACOS_PLATFORMS if "--macos" in args else LINUX_PLATFORMS
    for v in (a for a in args if not a.startswith("--")):
        print(torch_root(v, plat))
