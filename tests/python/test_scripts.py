"""The scripts that decide what runs where: tools/test.sh's steps per
platform (the simulation on Linux only, real MPS on a Mac), CMake refusing
the simulation for a macOS target, and the workflow check refusing retired
runner images. Each is run as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def dry_run(platform: str) -> list[str]:
    out = subprocess.run(["bash", str(ROOT / "tools" / "test.sh"), "--dry-run", platform],
                         capture_output=True, text=True, check=True).stdout
    return [line.split(":", 1)[0] for line in out.splitlines()]


def test_linux_runs_the_stream_suite_over_the_simulation():
    assert dry_run("linux") == ["wheel", "ctest", "mypy", "stream_sim", "pytest"]


def test_a_mac_runs_the_same_stream_suite_over_real_mps_and_never_the_simulation():
    assert dry_run("darwin") == ["wheel", "ctest", "mypy", "stream_mps", "pytest"]


def test_an_unknown_platform_is_refused():
    proc = subprocess.run(["bash", str(ROOT / "tools" / "test.sh"), "--dry-run", "windows"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown platform 'windows'" in proc.stderr


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_cmake_refuses_the_simulation_for_a_macos_target(tmp_path):
    proc = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(tmp_path), "-DCMAKE_SYSTEM_NAME=Darwin",
                           "-DKESTREL_SIMULATED_MPS=ON"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "KESTREL_SIMULATED_MPS runs on Linux only" in proc.stderr


def check_workflows(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "check_workflows.py"), *map(str, paths)],
                          capture_output=True, text=True)


def test_the_workflows_use_no_retired_runner():
    proc = check_workflows()
    assert proc.returncode == 0, proc.stderr


def test_a_retired_runner_is_caught(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("jobs:\n  a:\n    runs-on: macos-14  # retired\n  b:\n    runs-on: [macos-14-xlarge]\n"
                   "  c:\n    runs-on: macos-15\n  # runs-on: macos-13 in a comment is history, not a job\n")
    proc = check_workflows(bad)
    assert proc.returncode == 1
    assert "bad.yml:3: runner 'macos-14' was retired (2026-11-02" in proc.stderr
    assert "bad.yml:5: runner 'macos-14-xlarge'" in proc.stderr
    assert "macos-15" not in proc.stderr.split("use ")[0] and "macos-13'" not in proc.stderr


def check_objc(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "check_objc.py"), *map(str, paths)],
                          capture_output=True, text=True)


needs_clang = pytest.mark.skipif(shutil.which("clang++") is None, reason="needs clang (tools/test.sh installs it)")


@needs_clang
def test_every_objective_c_file_compiles_against_the_stand_ins():
    proc = check_objc()
    assert proc.returncode == 0, proc.stderr
    assert "selftest/metal_apple.mm: ok" in proc.stdout
    assert "examples/stable_op/csrc/metal_calls.mm: ok" in proc.stdout


@needs_clang
@pytest.mark.parametrize("body, error", [
    # A selector Metal does not have: setBuffer needs its index.
    ("void f(id<MTLComputeCommandEncoder> e, id<MTLBuffer> b) { [e setBuffer:b offset:0]; }",
     "setBuffer:offset:"),
    # ARC: a C pointer becomes an Objective-C object only through a bridge cast.
    ("id<MTLBuffer> f(void* p) { return (id<MTLBuffer>)p; }", "__bridge"),
])
def test_a_wrong_objective_c_file_is_caught(tmp_path, body, error):
    bad = tmp_path / "bad.mm"
    bad.write_text(f"#import <Metal/Metal.h>\n{body}\n")
    proc = check_objc(bad)
    assert proc.returncode == 1 and error in proc.stderr, proc.stderr


def add_release(minors: Path, version: str) -> str:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "torch_wheels.py"), "--add-release", version,
                           "--minors-file", str(minors)], capture_output=True, text=True, check=True).stdout.strip()


def test_a_new_minor_joins_the_list_in_order_and_names_the_one_before(tmp_path):
    minors = tmp_path / "torch_minors.txt"
    minors.write_text("# one release per minor\n2.9.1\n2.10.0\n2.14.1\n")
    assert add_release(minors, "2.15.0") == "2.14.1"
    assert minors.read_text() == "# one release per minor\n2.9.1\n2.10.0\n2.14.1\n2.15.0\n"
    # A later release of a listed minor takes its place; 2.10 < 2.9 is not string order.
    assert add_release(minors, "2.10.1") == "2.9.1"
    assert minors.read_text().splitlines()[1:] == ["2.9.1", "2.10.1", "2.14.1", "2.15.0"]
    assert add_release(minors, "2.15.0") == "2.14.1"  # again: nothing changes
    assert minors.read_text().splitlines()[1:] == ["2.9.1", "2.10.1", "2.14.1", "2.15.0"]


def test_new_minor_refuses_a_version_that_is_not_a_release():
    proc = subprocess.run(["bash", str(ROOT / "tools" / "new_minor.sh"), "2.16"], capture_output=True, text=True)
    assert proc.returncode == 2 and "'2.16' is not X.Y.Z" in proc.stderr
