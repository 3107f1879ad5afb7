"""Whether this process can really run work on MPS: torch's
``is_available()`` is True on GitHub's hosted macOS runners, whose device
fails its first allocation, so "usable" means a real allocation, a kernel
and a copy back that gives the right numbers."""

import functools
import platform
import sys
from typing import NamedTuple


class MPSProbe(NamedTuple):
    """What :func:`probe_mps` found."""

    available: bool
    """``torch.backends.mps.is_available()``."""
    usable: bool
    """An allocation, a kernel and a copy back on ``mps`` gave the right values."""
    detail: str
    """One line saying why, for logs and skip reasons."""


def mps_macos_floor(torch_version: str) -> tuple[int, int]:
    """The oldest macOS on which torch's MPS backend runs: 14.0 for torch 2.9
    to 2.14, 15.0 from 2.15 (each macOS wheel's libtorch_cpu says so). Below
    it ``is_available()`` is False whatever the hardware."""
    major, minor = (int(p) for p in torch_version.split("+")[0].split(".")[:2])
    return (15, 0) if (major, minor) >= (2, 15) else (14, 0)


def below_mps_floor(mac_version: str, torch_version: str) -> str | None:
    """Why MPS cannot run on macOS ``mac_version`` under ``torch_version``,
    or None when the OS is at or above torch's floor (or unknown)."""
    try:
        mac = tuple(int(p) for p in mac_version.split(".")[:2])
    except ValueError:
        return None
    floor = mps_macos_floor(torch_version)
    if not mac or mac >= floor:
        return None
    return (f"macOS {mac_version} is below torch {torch_version.split('+')[0]}'s MPS floor, "
            f"macOS {floor[0]}.{floor[1]}")


def _round_trip(device: str) -> MPSProbe:
    import torch

    try:
        got = (torch.arange(4, dtype=torch.float32, device=device) * 2).cpu().tolist()
    except Exception as e:  # noqa: BLE001 - any failure means unusable; it is reported
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return MPSProbe(True, False, f"available but unusable: a 4-element round trip on {device} "
                                     f"raised {type(e).__name__}: {first_line}")
    if got != [0.0, 2.0, 4.0, 6.0]:
        return MPSProbe(True, False, f"available but unusable: a round trip on {device} gave {got}, "
                                     "not [0.0, 2.0, 4.0, 6.0]")
    return MPSProbe(True, True, f"usable: a round trip on {device} gave the right values")


@functools.cache
def probe_mps() -> MPSProbe:
    """Whether MPS is usable here, decided once per process by a real round
    trip (imports torch). Never raises."""
    import torch

    if not torch.backends.mps.is_available():
        built = "" if torch.backends.mps.is_built() else " (this torch was built without MPS)"
        floor = below_mps_floor(platform.mac_ver()[0], torch.__version__) if sys.platform == "darwin" else None
        why = f": {floor}" if floor else ""
        return MPSProbe(False, False, f"unavailable: torch.backends.mps.is_available() is False{built}{why}")
    return _round_trip("mps")
