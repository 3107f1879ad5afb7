"""Choosing and loading the bridge library for the running torch."""

from __future__ import annotations

import ctypes
import os
import re
import threading
from pathlib import Path
from typing import Any

from . import _abi, _paths
from ._binary import BinaryCheckError, check_shared_library
from ._bridge import TorchMPSBridge
from ._errors import (
    BridgeLoadError,
    BridgeMismatchError,
    UnsupportedTorchVersionError,
)

__all__ = ["get_api_pointer", "load_torch_mps_bridge", "select_library", "open_library", "torch_minor"]

_lock = threading.Lock()
_bridge: TorchMPSBridge | None = None


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


def _format_minors(minors: list[tuple[int, int]]) -> str:
    return ", ".join(f"{a}.{b}" for a, b in minors) if minors else "none"


def _remedies(bundled: list[tuple[int, int]]) -> tuple[str, ...]:
    """Commands that get a working bridge, each tested by tools/test_minors.sh:
    a torch of the newest bundled minor, or this package built from source
    against the installed torch (from an index that has the sdist; from a
    checkout, the checkout's path in place of the requirement)."""
    import shlex
    import sys

    from . import __version__

    # This interpreter by its path: the commands install where torch runs.
    python = f"{shlex.quote(sys.executable)} -m pip install"
    source = (f"{python} scikit-build-core cmake ninja && {python} --no-build-isolation --no-deps "
              f"--force-reinstall --no-binary kestrel-mps-torch-ext kestrel-mps-torch-ext=={__version__}")
    if not bundled:
        return (source,)
    major, minor = bundled[-1]
    return (f'{python} "torch=={major}.{minor}.*"', source)


def select_library(torch_version: str, directory: Path | None = None) -> Path:
    """The bundled library for torch_version, or UnsupportedTorchVersionError
    naming the version, the bundled minors, the missing file and the ways out.
    Touches no native code: a pure function of the version and the files."""
    major, minor = torch_minor(torch_version)
    override = os.environ.get(_paths.LIBRARY_FILE_ENV)
    if override and directory is None:
        chosen = Path(override)
        if not chosen.is_file():
            raise BridgeLoadError(
                f"kestrel-mps-torch-ext: {_paths.LIBRARY_FILE_ENV}={override} is not a file; "
                f"unset it to load the bundled library"
            )
        return chosen
    directory = _paths.library_dir() if directory is None else directory
    name = _paths.library_name(major, minor)
    path = directory / name
    if path.is_file():
        return path
    bundled = _paths.bundled_minors(directory)
    remedies = _remedies(bundled)
    raise UnsupportedTorchVersionError(
        f"kestrel-mps-torch-ext has no bridge library for the installed torch {torch_version} "
        f"(torch{major}{minor}; patch releases share their minor's library): "
        f"{name} is not in {directory} (bundled torch minors: {_format_minors(bundled)}). "
        "Install a torch of a bundled minor, or build it from source against the installed torch:\n"
        + "\n".join(f"  {r}" for r in remedies),
        remedies=remedies,
    )


def _dlclose(handle: int) -> None:
    import _ctypes

    _ctypes.dlclose(handle)


def open_library(path: Path, torch_version: str) -> TorchMPSBridge:
    """Load path and check that its table fits torch_version and this package.

    The library is first opened privately (RTLD_LOCAL); only once its table
    says the right torch minor and ABI is it promoted to RTLD_GLOBAL, where a
    consumer's dlsym() can see it. A refused library never becomes visible."""
    expected = torch_minor(torch_version)
    if not os.access(path, os.R_OK):
        raise BridgeLoadError(
            f"kestrel-mps-torch-ext cannot read its bridge library {path} "
            f"(missing or unreadable); reinstall the package"
        )
    try:
        check_shared_library(path)
        private = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL)
    except (OSError, BinaryCheckError) as e:
        raise BridgeLoadError(
            f"kestrel-mps-torch-ext could not load {path} for torch {torch_version}: {e}. "
            f"The file is corrupt, truncated or built for another platform; reinstall the "
            f"package or build it from source against the installed torch."
        ) from e
    try:
        api = _abi.ExtensionTable.in_dll(private, _abi.API_SYMBOL)
        getter = private[_abi.GETTER_SYMBOL]
    except (ValueError, AttributeError) as e:
        _dlclose(private._handle)
        raise BridgeLoadError(
            f"kestrel-mps-torch-ext: {path} exports no {_abi.API_SYMBOL} or no "
            f"{_abi.GETTER_SYMBOL}; it is not a bridge library. Reinstall the package."
        ) from e
    problem = _table_problem(api, getter, expected, torch_version)
    del api, getter
    if problem is not None:
        _dlclose(private._handle)
        raise BridgeMismatchError(
            f"kestrel-mps-torch-ext refuses {path}: {problem}. The file was renamed, misplaced "
            f"or built from other sources; reinstall the package."
        )
    promoted = ctypes.CDLL(str(path), mode=os.RTLD_GLOBAL | getattr(os, "RTLD_NOLOAD", 0))
    return TorchMPSBridge(path, torch_version, promoted._handle)


def _table_problem(api: _abi.ExtensionTable, getter: Any, expected: tuple[int, int], torch_version: str) -> str | None:
    """Why the library's two tables do not fit this package and the running
    torch_version (of minor `expected`), or None."""
    if api.abi_version != _abi.ABI_VERSION or api.struct_size < ctypes.sizeof(_abi.ExtensionTable):
        return (
            f"it has extension ABI version {api.abi_version} and a {api.struct_size}-byte table, "
            f"this package needs ABI {_abi.ABI_VERSION} and at least {ctypes.sizeof(_abi.ExtensionTable)} bytes"
        )
    built = (api.torch_version_major, api.torch_version_minor)
    if built != expected:
        return (
            f"it was built for torch {built[0]}.{built[1]}.{api.torch_version_patch}, but torch "
            f"{torch_version} is running"
        )
    getter.argtypes = []
    getter.restype = ctypes.POINTER(_abi.PublishedTable)
    published = getter().contents
    tag = published.torch_tag().decode()
    if published.api_version != _abi.PUBLISHED_API_VERSION or tag != f"torch{built[0]}{built[1]}":
        return (
            f"its published table says api_version {published.api_version} and tag {tag!r}, "
            f"expected {_abi.PUBLISHED_API_VERSION} and 'torch{built[0]}{built[1]}'"
        )
    return None


def load_torch_mps_bridge() -> TorchMPSBridge:
    """Load the bridge library for the running torch with RTLD_GLOBAL, so that
    kernel libraries find KestrelMPSTorchExtAPI_v1 with dlsym(). Imports torch.
    Idempotent and thread-safe: later calls return the same bridge.

    Raises UnsupportedTorchVersionError (no library for this torch minor,
    before any native code of this package is loaded), BridgeLoadError or
    BridgeMismatchError; all are ImportError subclasses."""
    global _bridge
    if _bridge is not None:
        return _bridge
    with _lock:
        if _bridge is None:
            import torch

            version = str(torch.__version__)
            _bridge = open_library(select_library(version), version)
        return _bridge


def get_api_pointer() -> int:
    """The address KestrelMPSTorchExtAPI_v1() returns: the published table of
    the bridge for the running torch (loaded first if need be)."""
    return load_torch_mps_bridge().api_pointer
