"""probe_mps(): "usable" is a real round trip, so a device that torch calls
available but that cannot allocate (GitHub's hosted macOS runners) is
reported as unusable with the reason, never as usable and never by raising."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

import kestrel_mps_torch_ext as kmte
from kestrel_mps_torch_ext import _probe


@pytest.fixture
def fresh_probe() -> Iterator[None]:
    kmte.probe_mps.cache_clear()
    yield
    kmte.probe_mps.cache_clear()


def test_this_machine_matches_torch():
    p = kmte.probe_mps()
    assert p.available == torch.backends.mps.is_available()
    if not p.available:
        assert not p.usable and p.detail.startswith("unavailable: torch.backends.mps.is_available() is False")


def test_a_working_device_is_usable():
    assert _probe._round_trip("cpu") == kmte.MPSProbe(True, True, "usable: a round trip on cpu gave the right values")


def test_a_device_that_cannot_copy_back_is_unusable():
    p = _probe._round_trip("meta")  # allocates, runs, cannot copy out
    assert p.available and not p.usable
    assert p.detail.startswith("available but unusable: a 4-element round trip on meta raised ")


def test_wrong_numbers_are_unusable(monkeypatch):
    monkeypatch.setattr(torch, "arange", lambda *a, **k: torch.ones(4))
    p = _probe._round_trip("cpu")
    assert not p.usable and "gave [2.0, 2.0, 2.0, 2.0], not [0.0, 2.0, 4.0, 6.0]" in p.detail


def test_available_but_failing_allocation_is_reported_not_raised(monkeypatch, fresh_probe):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    real = torch.arange

    def arange(*a, device=None, **k):
        if device == "mps":
            raise RuntimeError("MPS backend out of memory (simulated)\nsecond line")
        return real(*a, device=device, **k)

    monkeypatch.setattr(torch, "arange", arange)
    p = kmte.probe_mps()
    assert p == kmte.MPSProbe(True, False, "available but unusable: a 4-element round trip on mps raised "
                                           "RuntimeError: MPS backend out of memory (simulated)")
    assert kmte.probe_mps() is p  # decided once per process


@pytest.mark.parametrize("mac, torch_version, expected", [
    ("13.6.1", "2.14.1", "macOS 13.6.1 is below torch 2.14.1's MPS floor, macOS 14.0"),
    ("14.7", "2.14.1", None),
    ("14.7", "2.15.0", "macOS 14.7 is below torch 2.15.0's MPS floor, macOS 15.0"),
    ("15.0", "2.15.0+cpu", None),
    ("14.7", "2.15.0+cu132", "macOS 14.7 is below torch 2.15.0's MPS floor, macOS 15.0"),
    ("26.1", "2.16.0", None),
    ("", "2.15.0", None),  # not macOS, or unknown: no claim
])
def test_macos_below_torchs_mps_floor_is_named(mac, torch_version, expected):
    assert _probe.below_mps_floor(mac, torch_version) == expected


def test_the_probe_names_the_floor_on_an_old_mac(monkeypatch, fresh_probe):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)
    monkeypatch.setattr(_probe.sys, "platform", "darwin")
    monkeypatch.setattr(_probe.platform, "mac_ver", lambda: ("14.6", ("", "", ""), "arm64"))
    monkeypatch.setattr(torch, "__version__", "2.15.0")
    assert kmte.probe_mps().detail == ("unavailable: torch.backends.mps.is_available() is False: "
                                       "macOS 14.6 is below torch 2.15.0's MPS floor, macOS 15.0")


def test_an_exception_with_no_message_is_reported_not_an_index_error(monkeypatch, fresh_probe):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)

    def arange(*a, **k):
        raise RuntimeError("")

    monkeypatch.setattr(torch, "arange", arange)
    assert kmte.probe_mps() == kmte.MPSProbe(True, False, "available but unusable: a 4-element round trip on "
                                                          "mps raised RuntimeError: ")
