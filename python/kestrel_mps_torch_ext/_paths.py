"""Where the package's files lie, the naming of the per-minor libraries, and
which minor a torch version is."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from ._errors import UnsupportedTorchVersionError

__all__ = [
    "get_include",
    "include_dir",
    "cmake_dir",
    "pkgconfig_dir",
    "library_dir",
    "library_name",
    "library_path",
    "bundled_minors",
    "parse_tag",
    "selftest_library",
    "torch_minor",
]

_PACKAGE_DIR = Path(__file__).resolve().parent
LIBRARY_SUFFIX = ".dylib" if sys.platform == "darwin" else ".so"
# A torch tag is "torch" + major + minor ("torch29", "torch213"), as in the
# published package's file names; the major is one digit.
_TAG = r"torch(\d)(\d+)"
_TAG_RE = re.compile(_TAG)
LIBRARY_PREFIX = "libkestrel_mps_torch_ext_"
_LIBRARY_RE = re.compile(r"^" + LIBRARY_PREFIX + _TAG + re.escape(LIBRARY_SUFFIX) + r"$")


def include_dir() -> str:
    """Directory holding kestrel_mps_api.h, for a consumer's compiler flags.
    The paths are all named *_dir(); get_include() is the same function under
    the name pybind11 and numpy users expect."""
    return str(_PACKAGE_DIR / "include")


get_include = include_dir


def cmake_dir() -> str:
    """Directory of the KestrelMPSTorchExt CMake package (pass it as
    KestrelMPSTorchExt_DIR, or append it to CMAKE_PREFIX_PATH)."""
    return str(_PACKAGE_DIR / "cmake")


def pkgconfig_dir() -> str:
    """Directory of kestrel-mps-torch-ext.pc, for PKG_CONFIG_PATH (builds
    without CMake)."""
    return str(_PACKAGE_DIR / "pkgconfig")


LIBRARY_DIR_ENV = "KESTREL_MPS_TORCH_EXT_LIBRARY_DIR"
# One file to load instead of choosing by name (the simulated MPS runtime's
# library, whose name the loader never picks by itself); every check of the
# library's tables still applies.
LIBRARY_FILE_ENV = "KESTREL_MPS_TORCH_EXT_LIBRARY"


def library_dir() -> Path:
    """Directory holding the per-torch-minor bridge libraries: the package
    directory itself (the published layout), or
    $KESTREL_MPS_TORCH_EXT_LIBRARY_DIR when set (a locally built or
    sanitizer-instrumented library; every check still applies)."""
    override = os.environ.get(LIBRARY_DIR_ENV)
    return Path(override) if override else _PACKAGE_DIR


SELFTEST_LIBRARY = "libkestrel_mps_selftest.dylib"


def selftest_library() -> Path:
    """The self-test's native launch sequence (selftest/; it links Metal and
    Foundation only). macOS wheels ship it; elsewhere the path names where
    it would be, and `python -m kestrel_mps_torch_ext selftest` says it
    cannot run there."""
    return _PACKAGE_DIR / SELFTEST_LIBRARY


def library_name(major: int, minor: int) -> str:
    """File name of the bridge library for torch major.minor on this OS."""
    return f"{LIBRARY_PREFIX}torch{major}{minor}{LIBRARY_SUFFIX}"


def parse_tag(torch_tag: str) -> tuple[int, int]:
    """(major, minor) of a torch tag such as "torch213"; ValueError otherwise."""
    m = _TAG_RE.fullmatch(torch_tag) if isinstance(torch_tag, str) else None
    if m is None:
        raise ValueError(f"not a torch tag: {torch_tag!r} (expected 'torch' + major + minor, e.g. 'torch213')")
    return int(m[1]), int(m[2])


# The canonical PEP 440 forms torch releases and nightlies use. A string that
# matches has the release packaging would parse; any other goes to packaging,
# whose import (2 ms) is spared on the common path.
_CANONICAL = re.compile(
    r"(\d+)\.(\d+)(?:\.\d+)*"  # release
    r"(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?"  # pre, post, dev
    r"(?:\+[a-z0-9]+(?:\.[a-z0-9]+)*)?"  # local label
)


def torch_minor(torch_version: str) -> tuple[int, int]:
    """(major, minor) of a torch version string; local labels (+cpu, +cu130,
    +gitabc), pre-releases and dev builds share their release's library."""
    fast = _CANONICAL.fullmatch(torch_version)
    if fast:
        return int(fast[1]), int(fast[2])
    from packaging.version import InvalidVersion, Version

    try:
        release = Version(torch_version).release
    except InvalidVersion:
        raise UnsupportedTorchVersionError(
            f"kestrel-mps-torch-ext cannot parse the torch version {torch_version!r}"
        ) from None
    if len(release) < 2:
        raise UnsupportedTorchVersionError(
            f"kestrel-mps-torch-ext needs a major.minor torch version, got {torch_version!r}"
        )
    return release[0], release[1]


def library_path(torch_tag: str | None = None) -> Path:
    """Path of the bridge library for torch_tag (e.g. "torch213"; default the
    running torch's, which imports torch), whether or not that file exists:
    for a minor this installation does not bundle ("torch299", say) it is
    the path the library would have. bundled_minors() lists the minors
    present; load_torch_mps_bridge() explains what is missing. A tag that
    is not torch + major + minor raises ValueError."""
    if torch_tag is None:
        import torch

        major, minor = torch_minor(str(torch.__version__))
    else:
        major, minor = parse_tag(torch_tag)
    return library_dir() / library_name(major, minor)


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
