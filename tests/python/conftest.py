"""The fixtures of tests/python; what the tests share otherwise is in
support.py."""

from __future__ import annotations

import pytest

import kestrel_mps_torch_ext as kmte
from support import FrontEnd


@pytest.fixture(scope="session")
def bridge() -> kmte.TorchMPSBridge:
    return kmte.load_torch_mps_bridge()


@pytest.fixture(scope="session", params=["object", "aten_handle"])
def front_end(request: pytest.FixtureRequest, bridge: kmte.TorchMPSBridge) -> FrontEnd:
    """Each resolve front end in turn: the field matrix and the refusals hold
    for both."""
    return FrontEnd(bridge, request.param)
