"""The bundled libraries lie in the package directory (the published
layout), where Python's import system takes a ``.so`` for an extension
module: ``import kestrel_mps_torch_ext.libkestrel_mps_torch_ext_torch213``
(or pydoc, which lists it as a submodule) would dlopen it past every check of
the loader and then fail on a missing PyInit. This finder refuses such an
import first, saying what to call instead."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

_PACKAGE = __name__.rpartition(".")[0]
_PREFIX = "libkestrel_mps_torch_ext_"


class _BundledLibraryGuard(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package == _PACKAGE and name.startswith(_PREFIX):
            raise ImportError(
                f"{fullname} is the bridge library for one torch minor, not a Python module: "
                f"call {_PACKAGE}.load_torch_mps_bridge(), which picks the library for the running "
                "torch and checks it before loading it", name=fullname)
        return None


def install() -> None:
    if not any(isinstance(f, _BundledLibraryGuard) for f in sys.meta_path):
        sys.meta_path.insert(0, _BundledLibraryGuard())
