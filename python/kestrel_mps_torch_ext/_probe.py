"""Whether this process can really run work on MPS: torch's
``is_available()`` is True on GitHub's hosted macOS runners, whose device
fails its first allocation, so "usable" means a real allocation, a kernel
and a copy back that gives the right numbers."""

import functools
from typing import NamedTuple


class MPSProbe(NamedTuple):
    """What :func:`probe_mps` found."""

    available: bool
    """``torch.backends.mps.is_available()``."""
    usable: bool
    """An allocation, a kernel and a copy back on ``mps`` gave the right values."""
    detail: str
    """One line saying why, for logs and skip reasons."""


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
        return MPSProbe(False, False, f"unavailable: torch.backends.mps.is_available() is False{built}")
    return _round_trip("mps")
