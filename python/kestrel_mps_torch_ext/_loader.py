"""Choosing, checking and loading the bridge library for the running torch:
the structural check of a library file before dlopen(), the loader, and the
import guard that keeps Python's import system from loading a bundled
library past both."""

from __future__ import annotations

import ctypes
import importlib.abc
import importlib.machinery
import os
import struct
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from . import _abi, _paths
from ._bridge import TorchMPSBridge
from ._errors import (
    BridgeLoadError,
    BridgeMismatchError,
    UnsupportedTorchVersionError,
)

__all__ = ["BinaryCheckError", "check_library_bytes", "check_shared_library", "get_api_pointer", "install_import_guard",
           "load_torch_mps_bridge", "open_library", "select_library"]

_lock = threading.Lock()
_bridge: TorchMPSBridge | None = None


def _format_minors(minors: list[tuple[int, int]]) -> str:
    return ", ".join(f"{a}.{b}" for a, b in minors) if minors else "none"


def _source_checkout() -> str | None:
    """The directory this package was pip-installed from, when it was a local
    checkout (PEP 610's direct_url.json with dir_info); None otherwise."""
    import json
    from importlib import metadata
    from urllib.parse import unquote, urlparse

    try:
        text = metadata.distribution("kestrel-mps-torch-ext").read_text("direct_url.json")
        origin = json.loads(text) if text else {}
    except (metadata.PackageNotFoundError, ValueError):
        return None
    url = urlparse(str(origin.get("url", "")))
    return unquote(url.path) if "dir_info" in origin and url.scheme == "file" else None


def _remedies(bundled: list[tuple[int, int]]) -> tuple[str, ...]:
    """Commands that get a working bridge, each tested by tools/test_minors.sh
    or tests/python/test_loader.py: a torch of the newest bundled minor, or
    this package built from source against the installed torch, from the
    checkout it was installed from if it was, else from the index's sdist."""
    import shlex
    import sys

    from ._version import __version__

    # This interpreter by its path: the commands install where torch runs.
    python = f"{shlex.quote(sys.executable)} -m pip install"
    checkout = _source_checkout()
    what = shlex.quote(checkout) if checkout else f"--no-binary kestrel-mps-torch-ext kestrel-mps-torch-ext=={__version__}"
    source = (f"{python} scikit-build-core cmake ninja && {python} --no-build-isolation --no-deps "
              f"--force-reinstall {what}")
    if not bundled:
        return (source,)
    major, minor = bundled[-1]
    return (f'{python} "torch=={major}.{minor}.*"', source)


def select_library(torch_version: str, directory: Path | None = None) -> Path:
    """The bundled library for torch_version, or UnsupportedTorchVersionError
    naming the version, the bundled minors, the missing file and the ways out.
    Touches no native code: a pure function of the version and the files."""
    major, minor = _paths.torch_minor(torch_version)
    override = os.environ.get(_paths.LIBRARY_FILE_ENV)
    if override and directory is None:
        chosen = Path(override)
        if not chosen.is_file():
            raise BridgeLoadError(
                f"kestrel-mps-torch-ext: {_paths.LIBRARY_FILE_ENV}={override} is not a file; "
                f"unset it to load the bundled library"
            )
        return chosen
    if directory is None and os.environ.get(_paths.LIBRARY_DIR_ENV):
        directory = _paths.library_dir()
        where = f"{_paths.LIBRARY_DIR_ENV}={directory}"
        if not directory.is_dir():
            raise BridgeLoadError(f"kestrel-mps-torch-ext: {where} is not a directory; "
                                  "unset it to load the bundled libraries")
        if not _paths.bundled_minors(directory):
            raise BridgeLoadError(f"kestrel-mps-torch-ext: {where} holds no bridge library "
                                  f"({_paths.LIBRARY_PREFIX}torch<major><minor>{_paths.LIBRARY_SUFFIX}); "
                                  "unset it to load the bundled libraries")
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
    expected = _paths.torch_minor(torch_version)
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


# ---- the structural check of a library file, before dlopen() ----
# The dynamic loader maps a library's segments straight from the file: a
# truncated file whose headers point past its end makes glibc's loader fault
# with SIGBUS instead of failing. Checking that every header and segment lies
# inside the file turns that crash into an exception.

_ELF_MAGIC = b"\x7fELF"
_MACHO_64 = 0xFEEDFACF
_FAT_MAGIC = 0xCAFEBABE
_PT_LOAD = 1
_LC_SEGMENT_64 = 0x19


class BinaryCheckError(ValueError):
    """The file is not a complete shared library for a 64-bit platform."""


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise BinaryCheckError(what)


def _check_elf(data: bytes) -> None:
    _need(len(data) >= 64, "ELF header truncated")
    _need(data[4] == 2, "not a 64-bit ELF file")
    order = "<" if data[5] == 1 else ">"
    e_type, = struct.unpack_from(order + "H", data, 16)
    _need(e_type == 3, "ELF file is not a shared object")
    phoff, shoff = struct.unpack_from(order + "QQ", data, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHH", data, 54)
    _need(phnum > 0 and phentsize >= 56, "ELF file has no program headers")
    _need(phoff + phnum * phentsize <= len(data), "ELF program headers lie past the end of the file")
    _need(shoff + shnum * shentsize <= len(data), "ELF section headers lie past the end of the file")
    for i in range(phnum):
        p_type, _flags, p_offset, _v, _p, p_filesz = struct.unpack_from(order + "IIQQQQ", data, phoff + i * phentsize)
        if p_type == _PT_LOAD:
            _need(p_offset + p_filesz <= len(data), "an ELF segment lies past the end of the file")


def _check_macho(data: bytes, start: int, end: int) -> None:
    _need(end - start >= 32, "Mach-O header truncated")
    magic, _cpu, _sub, _ftype, ncmds, sizeofcmds = struct.unpack_from("<IiiIII", data, start)
    _need(magic == _MACHO_64, "not a 64-bit little-endian Mach-O file")
    _need(start + 32 + sizeofcmds <= end, "Mach-O load commands lie past the end of the file")
    at = start + 32
    for _ in range(ncmds):
        _need(at + 8 <= end, "Mach-O load command truncated")
        cmd, cmdsize = struct.unpack_from("<II", data, at)
        _need(cmdsize >= 8 and at + cmdsize <= end, "Mach-O load command truncated")
        if cmd == _LC_SEGMENT_64:
            _need(cmdsize >= 72, "Mach-O segment command truncated")
            fileoff, filesize = struct.unpack_from("<QQ", data, at + 40)
            _need(start + fileoff + filesize <= end, "a Mach-O segment lies past the end of the file")
        at += cmdsize


def check_shared_library(path: Path) -> None:
    """Raise BinaryCheckError unless path holds a structurally complete ELF or
    Mach-O (thin or universal) shared library. Reads the file once."""
    check_library_bytes(path.read_bytes())


def check_library_bytes(data: bytes) -> None:
    """check_shared_library over a file's bytes (what tests/fuzz feeds it)."""
    if data[:4] == _ELF_MAGIC:
        _check_elf(data)
    elif len(data) >= 8 and struct.unpack_from(">I", data)[0] == _FAT_MAGIC:
        nfat, = struct.unpack_from(">I", data, 4)
        _need(0 < nfat < 16 and 8 + 20 * nfat <= len(data), "universal binary header truncated")
        for i in range(nfat):
            _cpu, _sub, offset, size, _align = struct.unpack_from(">iiIII", data, 8 + 20 * i)
            _need(offset + size <= len(data), "a universal binary slice lies past the end of the file")
            _check_macho(data, offset, offset + size)
    elif len(data) >= 4 and struct.unpack_from("<I", data)[0] == _MACHO_64:
        _check_macho(data, 0, len(data))
    else:
        raise BinaryCheckError("not an ELF or Mach-O file")


# ---- the import guard ----
# The bundled libraries lie in the package directory (the published layout),
# where Python's import system takes a .so for an extension module:
# `import kestrel_mps_torch_ext.libkestrel_mps_torch_ext_torch213` (or pydoc,
# which lists it as a submodule) would dlopen it past every check of the
# loader and then fail on a missing PyInit. This finder refuses such an
# import first, saying what to call instead.

_PACKAGE = __name__.rpartition(".")[0]


class _BundledLibraryGuard(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package == _PACKAGE and name.startswith(_paths.LIBRARY_PREFIX):
            raise ImportError(
                f"{fullname} is the bridge library for one torch minor, not a Python module: "
                f"call {_PACKAGE}.load_torch_mps_bridge(), which picks the library for the running "
                "torch and checks it before loading it", name=fullname)
        return None


def install_import_guard() -> None:
    if not any(isinstance(f, _BundledLibraryGuard) for f in sys.meta_path):
        sys.meta_path.insert(0, _BundledLibraryGuard())
