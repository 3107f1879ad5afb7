"""The package's build backend: scikit-build-core's, with a wheel build tag
naming the torch minor the wheel is built for (``1_torch213``), so that
``pip wheel --no-build-isolation .`` under two torches gives two wheel
names, not one name for two different wheels. A tag passed in
(``--config-settings=wheel.build-tag=...``, as tools/build_wheel.py does for
a wheel bundling several minors) wins. Without torch (pip's isolated build)
no tag is set and CMake says what to do instead."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from scikit_build_core import build as _scikit
from scikit_build_core.build import *  # noqa: F403 - every other hook is scikit-build-core's

_PYTHON = Path(__file__).resolve().parents[1] / "python"


def build_tag(minors: list[tuple[int, int]]) -> str:
    """The build tag of a wheel bundling these (major, minor)s, in order:
    ``1_torch29_torch210``. It starts with a digit, as PEP 427 asks, and
    sorts as pip sorts build tags (by the number, then the string)."""
    return "1_" + "_".join(f"torch{major}{minor}" for major, minor in minors)


def installed_tag() -> str | None:
    """build_tag of the importable torch's minor; None without torch."""
    try:
        import torch
    except ImportError:
        return None
    sys.path.insert(0, str(_PYTHON))
    try:
        from kestrel_mps_torch_ext._paths import torch_minor  # the loader's own reading of a version
    finally:
        sys.path.remove(str(_PYTHON))
    return build_tag([torch_minor(str(torch.__version__))])


def _tagged(config_settings: dict[str, Any] | None) -> dict[str, Any]:
    settings = dict(config_settings or {})
    if "wheel.build-tag" not in settings and (tag := installed_tag()) is not None:
        settings["wheel.build-tag"] = tag
    return settings


def build_wheel(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                metadata_directory: str | None = None) -> str:
    return _scikit.build_wheel(wheel_directory, _tagged(config_settings), metadata_directory)


# pip reads the wheel's metadata first and holds the wheel to it: the same tag.
def prepare_metadata_for_build_wheel(metadata_directory: str,
                                     config_settings: dict[str, Any] | None = None) -> str:
    return _scikit.prepare_metadata_for_build_wheel(metadata_directory, _tagged(config_settings))
