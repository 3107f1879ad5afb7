"""`python -m kestrel_mps_torch_ext selftest`'s gate, exit codes and report
where it cannot run: here (Linux) for real, a Mac's answers by stubbing what
the gate reads. Its checks themselves run in the stream suite
(tests/stream/test_selftest.py), over the simulated runtime here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import kestrel_mps_torch_ext as kmte
from kestrel_mps_torch_ext import _selftest


def selftest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kestrel_mps_torch_ext", "selftest", *args],
                          capture_output=True, text=True)


@pytest.mark.skipif(sys.platform == "darwin", reason="what it says off macOS")
def test_off_macos_it_exits_2_saying_it_needs_a_mac():
    proc = selftest()
    assert proc.returncode == 2, proc.stderr
    assert f"the self-test cannot run here: it needs a Mac with a usable Metal device (this is {sys.platform})" \
        in proc.stdout
    assert proc.stdout.rstrip().endswith("result   CANNOT RUN")
    for key in ("package", "torch", "os", "chip"):
        assert any(line.startswith(key) for line in proc.stdout.splitlines()), key


@pytest.mark.skipif(sys.platform == "darwin", reason="what it says off macOS")
def test_the_json_report_says_the_same():
    proc = selftest("--json")
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["result"] == "CANNOT RUN" and report["package"] == kmte.__version__
    assert "needs a Mac" in report["detail"]


def test_an_unknown_option_is_refused():
    proc = selftest("--frobnicate")
    assert proc.returncode == 2 and "unrecognized arguments: --frobnicate" in proc.stderr


@pytest.fixture
def on_a_mac(monkeypatch):
    """sys.platform says darwin for the test; the probe's cached answer is
    dropped before and after."""
    probe = kmte.probe_mps
    monkeypatch.setattr(_selftest.sys, "platform", "darwin")
    probe.cache_clear()
    yield monkeypatch
    probe.cache_clear()


def test_a_hosted_runner_is_told_why_with_the_probes_detail(on_a_mac, capsys):
    on_a_mac.setattr("kestrel_mps_torch_ext._probe.probe_mps",
                     lambda: kmte.MPSProbe(True, False, "available but unusable: x"))
    assert _selftest.main(as_json=False) == 2
    out = capsys.readouterr().out
    assert "cannot run here: MPS is not usable here: available but unusable: x" in out


def test_a_mac_below_torchs_floor_names_both_versions(on_a_mac, capsys):
    import torch

    on_a_mac.setattr(torch.backends.mps, "is_available", lambda: False)
    on_a_mac.setattr(torch.backends.mps, "is_built", lambda: True)
    on_a_mac.setattr("kestrel_mps_torch_ext._probe.sys.platform", "darwin")
    on_a_mac.setattr("kestrel_mps_torch_ext._probe.platform.mac_ver", lambda: ("14.6", ("", "", ""), "arm64"))
    on_a_mac.setattr(torch, "__version__", "2.15.0")
    assert _selftest.main(as_json=True) == 2
    report = json.loads(capsys.readouterr().out)
    assert "macOS 14.6 is below torch 2.15.0's MPS floor, macOS 15.0" in report["detail"]


def test_a_bridge_that_cannot_load_gives_the_loaders_error(on_a_mac, capsys):
    on_a_mac.setattr(_selftest, "gate", lambda: None)

    def refuse() -> None:
        raise kmte.UnsupportedTorchVersionError("torch 9.9 has no bridge library here (stubbed)")

    on_a_mac.setattr("kestrel_mps_torch_ext._loader.load_torch_mps_bridge", refuse)
    assert _selftest.main(as_json=False) == 1
    out = capsys.readouterr().out
    assert "UnsupportedTorchVersionError: torch 9.9 has no bridge library here (stubbed)" in out
    assert out.rstrip().endswith("result   FAIL")


def test_a_missing_selftest_library_is_a_failure_that_says_so(on_a_mac, capsys, tmp_path):
    on_a_mac.setattr(_selftest, "gate", lambda: None)
    on_a_mac.setattr("kestrel_mps_torch_ext._paths.selftest_library", lambda: tmp_path / "libnone.dylib")
    assert _selftest.main(as_json=False) == 1
    assert "the self-test library is missing" in capsys.readouterr().out


def test_first_wrong_finds_the_first_in_row_major_order_and_treats_nan_as_equal():
    import torch

    expected = torch.tensor([[1.0, float("nan")], [3.0, 4.0]])
    assert _selftest.first_wrong(expected.clone(), expected) is None
    got = expected.clone()
    got[1, 0], got[1, 1] = 7.0, 8.0
    assert _selftest.first_wrong(got, expected) == {"index": [1, 0], "expected": 3.0, "got": 7.0}
    got = expected.clone()
    got[0, 1] = 2.0  # a number where NaN was expected
    assert _selftest.first_wrong(got, expected)["index"] == [0, 1]
