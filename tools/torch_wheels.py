"""Fetch one torch release's wheel with pip and unpack the parts a build or
an audit needs (headers, the three libraries the shim links, the CMake
config). Downloads are cached outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

CACHE = Path(os.environ.get("KESTREL_CACHE", Path.home() / ".cache" / "kestrel"))

# macOS arm64 wheels moved from the macosx_11_0 tag to macosx_14_0 with 2.12.
MACOS_PLATFORMS = ("macosx_11_0_arm64", "macosx_14_0_arm64", "macosx_13_0_arm64", "macosx_15_0_arm64")
LINUX_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")

MINORS_FILE = Path(__file__).with_name("torch_minors.txt")


def supported_minors() -> list[str]:
    """The release of each supported torch minor (tools/torch_minors.txt)."""
    lines = (l.strip() for l in MINORS_FILE.read_text().splitlines())
    return [l for l in lines if l and not l.startswith("#")]


_WANTED_LIBS = ("libtorch_cpu", "libc10", "libtorch_python", "libtorch.", "libshm", "libtorch_global_deps")


def _wanted(name: str) -> bool:
    if name.startswith("torch/include/") or name.startswith("torch/share/cmake/"):
        return True
    if name.startswith("torch/lib/"):
        base = name[len("torch/lib/"):]
        return base.startswith(_WANTED_LIBS)
    return name in ("torch/version.py",)


def download(version: str, platforms: tuple[str, ...], python: str | None = None) -> Path:
    """The wheel file of torch==version for one of platforms (cached)."""
    python = python or f"{sys.version_info[0]}{sys.version_info[1]}"
    dest = CACHE / "wheels"
    dest.mkdir(parents=True, exist_ok=True)
    def cached(platform: str) -> Path | None:
        found = sorted(dest.glob(f"torch-{version}-*cp{python}-*{platform.split('_')[0]}*.whl"))
        return found[-1] if found else None

    for platform in platforms:
        if (wheel := cached(platform)) is not None:
            return wheel
    errors = []
    for platform in platforms:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--platform", platform, "--python-version", python, "-d", str(dest), f"torch=={version}"]
        # This machine's pip.conf may cap torch (a constraint meant for
        # installs); a download for another platform needs no cap.
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_CONSTRAINT": os.devnull})
        if out.returncode == 0 and (wheel := cached(platform)) is not None:
            return wheel
        errors.append(f"{platform}: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'no file'}")
    raise SystemExit(f"no torch {version} wheel for cp{python} on {platforms}: " + "; ".join(errors))


def unpack(wheel: Path) -> Path:
    """Unpack the needed members of wheel once; returns its torch/ directory."""
    root = CACHE / "unpacked" / wheel.stem
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
    plat = MACOS_PLATFORMS if "--macos" in sys.argv else LINUX_PLATFORMS
    for v in (a for a in sys.argv[1:] if not a.startswith("--")):
        print(torch_root(v, plat))
