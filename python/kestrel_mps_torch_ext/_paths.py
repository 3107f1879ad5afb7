"""Where the package's files lie, and the naming of the per-minor libraries."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

__all__ = ["get_include", "cmake_dir", "library_dir", "library_name", "bundled_minors"]

_PACKAGE_DIR = Path(__file__).resolve().parent
LIBRARY_SUFFIX = ".dylib" if sys.platform == "darwin" else ".so"
_LIBRARY_RE = re.compile(
    r"^libkestrel_mps_torch_ext_torch(\d)(\d+)" + re.escape(LIBRARY_SUFFIX) + r"$"
)


def get_include() -> str:
    """Directory holding kestrel_mps_api.h, for a consumer's compiler flags."""
    return str(_PACKAGE_DIR / "include")


def cmake_dir() -> str:
    """Directory of the KestrelMPSTorchExt CMake package (pass it as
    KestrelMPSTorchExt_DIR, or append it to CMAKE_PREFIX_PATH)."""
    return str(_PACKAGE_DIR / "cmake")


LIBRARY_DIR_ENV = "KESTREL_MPS_TORCH_EXT_LIBRARY_DIR"


def library_dir() -> Path:
    """Directory holding the per-torch-minor bridge libraries: the package's
    own lib/, or $KESTREL_MPS_TORCH_EXT_LIBRARY_DIR when set (a locally built
    or sanitizer-instrumented library; every check still applies)."""
    override = os.environ.get(LIBRARY_DIR_ENV)
    return Path(override) if override else _PACKAGE_DIR / "lib"


def library_name(major: int, minor: int) -> str:
    """File name of the bridge library for torch major.minor on this OS."""
    return f"libkestrel_mps_torch_ext_torch{major}{minor}{LIBRARY_SUFFIX}"


def bundled_minors(directory: Path | None = None) -> list[tuple[int, int]]:
    """(major, minor) of every bridge library present, sorted. Derived from
    the files themselves: there is no second list to keep in step."""
    directory = library_dir() if directory is None else directory
    try:
        names = [p.name for p in directory.iterdir()]
    except OSError:
        return []
    found = {(int(m[1]), int(m[2])) for m in map(_LIBRARY_RE.match, names) if m}
    return sorted(found)
