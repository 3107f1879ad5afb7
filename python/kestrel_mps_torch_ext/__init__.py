"""kestrel-mps-torch-ext: lets kernel libraries dispatch their own Metal kernels
on PyTorch's MPS stream through a stable C table, across torch minors.

Python side: ``load_torch_mps_bridge()`` loads the library built for the
running torch and makes its symbols visible to ``dlsym``: the published
getter ``KestrelMPSTorchExtAPI_v1()`` and the extension table
``KestrelMPS_kmte_ext_v1``. C side: ``#include <kestrel_mps_api.h>`` (or the
published name ``kestrel_mps_torch_ext.h``; see ``get_include()``).
Importing this package loads nothing and does not import torch.
"""

from __future__ import annotations

from ._abi import ExtensionTable, PublishedTable
from ._bridge import TorchMPSBridge
from ._types import TensorDescriptor, TorchVersion
from ._errors import (
    BridgeCallError,
    BridgeLoadError,
    BridgeMismatchError,
    BridgeUnavailableError,
    KestrelMPSError,
    UnsupportedTorchVersionError,
)
from ._loader import get_api_pointer, install_import_guard, load_torch_mps_bridge
from ._paths import cmake_dir, get_include, include_dir, library_dir, library_path, pkgconfig_dir, selftest_library
from ._probe import MPSProbe, probe_mps
from ._version import __version__ as __version__

install_import_guard()


__all__ = [
    "BridgeCallError",
    "BridgeLoadError",
    "BridgeMismatchError",
    "BridgeUnavailableError",
    "ExtensionTable",
    "KestrelMPSError",
    "MPSProbe",
    "PublishedTable",
    "TensorDescriptor",
    "TorchMPSBridge",
    "TorchVersion",
    "UnsupportedTorchVersionError",
    "cmake_dir",
    "get_api_pointer",
    "get_include",
    "include_dir",
    "library_dir",
    "library_path",
    "load_torch_mps_bridge",
    "pkgconfig_dir",
    "probe_mps",
    "selftest_library",
    "supported_torch_minors",
]


def supported_torch_minors() -> list[str]:
    """The torch minors this installation bundles a library for, e.g.
    ["2.13", "2.14"], read from the files present."""
    from ._paths import bundled_minors

    return [f"{major}.{minor}" for major, minor in bundled_minors()]
