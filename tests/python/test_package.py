"""What the installed package promises: one exported symbol, the header and
CMake package, diagnostics, typing, and a Python mirror true to the header."""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kestrel_mps_torch_ext as kmte
import kestrel_mps_torch_ext._abi as abi

HEADER = Path(kmte.get_include()) / "kestrel_mps_api.h"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(sys.platform == "darwin", reason="nm -D is the ELF form; macOS uses the exports list")
def test_the_library_exports_the_published_eight_and_our_extension(bridge):
    out = subprocess.run(["nm", "-D", "--defined-only", str(bridge.path)], capture_output=True, text=True, check=True)
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
    names = {row[-1]: row[-2] for row in rows}
    published = set(abi.PUBLISHED_FUNCTIONS)
    assert published <= set(names)
    assert all(names[n] == "T" for n in published)  # functions, the getter included
    ours = set(names) - published
    assert ours == {abi.API_SYMBOL}
    assert all(n.startswith("KestrelMPS") for n in ours)
    assert names[abi.API_SYMBOL] in ("R", "D")  # the extension table is data


def test_table_sizes_match_the_python_mirror(bridge):
    api = bridge.api
    assert api.struct_size == ctypes.sizeof(abi.ExtensionTable)
    assert api.tensor_struct_size == ctypes.sizeof(abi.Tensor) == 312
    assert api.max_ndim == abi.MAX_NDIM
    assert api.abi_version == abi.ABI_VERSION


def header_defines() -> dict[str, int]:
    text = HEADER.read_text()
    found = {m[1]: int(m[2]) for m in re.finditer(r"#define (KESTREL_MPS_\w+) (-?\d+)u?\b", text)}
    found.update({m[1]: int(m[2]) for m in re.finditer(r"\b(KESTREL_MPS_(?:OK|ERROR_\w+)) = (\d+)", text)})
    # A macro defined as another (one limit, two spellings) has its value.
    found.update({m[1]: found[m[2]] for m in re.finditer(r"#define (KESTREL_MPS_\w+) (KESTREL_MPS_\w+)\n", text)})
    return found


def test_python_constants_equal_the_headers():
    h = header_defines()
    assert h["KESTREL_MPS_ABI_VERSION"] == abi.ABI_VERSION
    assert h["KESTREL_MPS_MAX_NDIM"] == abi.MAX_NDIM
    assert {v: k for k, v in abi.STATUS_NAMES.items()} == {
        k: v for k, v in h.items() if k == "KESTREL_MPS_OK" or k.startswith("KESTREL_MPS_ERROR_")
    }
    for name in ("ACCESS_READ", "ACCESS_WRITE", "TENSOR_CONTIGUOUS", "TENSOR_WRITABLE", "CAP_MPS_STREAM",
                 "SYNC_COMMIT", "SYNC_COMMIT_AND_WAIT", "SYNC_COMMIT_AND_CONTINUE"):
        assert h["KESTREL_MPS_" + name] == getattr(abi, name), name
    assert f'"{abi.API_SYMBOL}"' in HEADER.read_text()


def test_header_and_cmake_package_are_installed():
    assert HEADER.is_file()
    cmake = Path(kmte.cmake_dir())
    assert (cmake / "KestrelMPSTorchExtConfig.cmake").is_file()
    assert (cmake / "KestrelMPSTorchExtConfigVersion.cmake").is_file()
    assert (Path(kmte.__file__).parent / "py.typed").is_file()


def test_cmake_consumer_finds_the_package_and_gets_the_include_dir(tmp_path):
    if shutil.which("cmake") is None:
        pytest.fail("cmake is installed by the test setup")
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.21)\nproject(probe LANGUAGES NONE)\n"
        "find_package(KestrelMPSTorchExt 0.1 REQUIRED CONFIG)\n"
        "get_target_property(inc KestrelMPSTorchExt::headers INTERFACE_INCLUDE_DIRECTORIES)\n"
        'message(STATUS "INC=${inc} ABI=${KestrelMPSTorchExt_ABI_VERSION}")\n'
    )
    out = subprocess.run(
        ["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "b"), f"-DKestrelMPSTorchExt_DIR={kmte.cmake_dir()}"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    inc = re.search(r"INC=(\S+) ABI=(\d+)", out.stdout)
    assert inc and Path(inc[1]).resolve() == Path(kmte.get_include()).resolve()
    assert int(inc[2]) == abi.ABI_VERSION


def test_packaging_is_a_declared_dependency():
    reqs = importlib.metadata.requires("kestrel-mps-torch-ext") or []
    assert any(r.startswith("packaging") for r in reqs)
    assert importlib.metadata.metadata("kestrel-mps-torch-ext")["Requires-Python"] == "<3.16,>=3.10"


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kestrel_mps_torch_ext", *args], capture_output=True, text=True)


def test_cli_paths():
    assert run_module("--include").stdout.strip() == kmte.get_include()
    assert run_module("--includes").stdout.strip() == f"-I{kmte.get_include()}"
    assert run_module("--cmake-dir").stdout.strip() == kmte.cmake_dir()
    assert run_module("--version").stdout.strip() == f"kestrel-mps-torch-ext {kmte.__version__}"


def test_cli_diagnostic_report_resolves_a_sample(bridge):
    out = run_module("--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["library"] == str(bridge.path)
    assert info["abi_version"] == 1
    assert info["bundled_torch_minors"] == kmte.supported_torch_minors()
    sample = info["sample_tensor"]
    assert sample["shape"] == [2, 2, 2] and sample["strides"] == [12, 4, 2]
    assert sample["byte_offset"] == 16  # [:, 1:] skips one row of 4 floats
    # The label is the tensor resolved: evaluated, it gives the same view.
    import torch

    t = eval(sample["expr"], {"torch": torch})
    assert t.dtype == torch.float32 and list(t.stride()) == sample["strides"]
    assert sample["dtype"] == "float32 (DLPack code, bits, lanes: [2, 32, 1])"
    assert sample["device"].startswith(t.device.type + " (")
    assert info["mps"] == kmte.probe_mps().detail
    text = run_module()
    assert text.returncode == 0 and "built_for_torch" in text.stdout


def test_cli_reports_a_device_that_cannot_allocate_instead_of_raising(bridge):
    # As on a hosted macOS runner: MPS "available", its first allocation fails.
    code = (
        "import sys, torch\n"
        "torch.backends.mps.is_available = lambda: True\n"
        "real = torch.arange\n"
        "def arange(*a, device=None, **k):\n"
        "    if device == 'mps': raise RuntimeError('MPS backend out of memory (simulated)')\n"
        "    return real(*a, device=device, **k)\n"
        "torch.arange = arange\n"
        "from kestrel_mps_torch_ext.__main__ import main\n"
        "sys.exit(main(['--json']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["mps_available"] is True and info["mps_usable"] is False
    assert info["mps"].startswith("available but unusable: ")
    assert "RuntimeError: MPS backend out of memory (simulated)" in info["mps"]
    assert info["sample_tensor"]["expr"].startswith("torch.arange(24, dtype=torch.float32, device='cpu')")
    assert info["sample_tensor"]["shape"] == [2, 2, 2]  # resolved on the CPU instead
    assert "current_stream" in info


def test_cli_reports_an_unsupported_torch_and_exits_nonzero(tmp_path):
    code = (
        "import sys, pathlib, kestrel_mps_torch_ext._paths as p\n"
        f"p.library_dir = lambda: pathlib.Path({str(tmp_path)!r})\n"
        "from kestrel_mps_torch_ext.__main__ import main\n"
        "sys.exit(main([]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1
    assert "UnsupportedTorchVersionError" in out.stdout


def test_macos_deployment_target_defaults_to_13_and_honours_overrides(tmp_path):
    module = ROOT / "cmake" / "KestrelDeploymentTarget.cmake"
    (tmp_path / "CMakeLists.txt").write_text(
        f"cmake_minimum_required(VERSION 3.21)\ninclude({module.as_posix()})\nproject(p LANGUAGES NONE)\n"
        'message(STATUS "TARGET=${CMAKE_OSX_DEPLOYMENT_TARGET}")\n'
    )

    def target(env_value: str | None, *extra: str) -> str:
        env = {k: v for k, v in os.environ.items() if k != "MACOSX_DEPLOYMENT_TARGET"}
        if env_value is not None:
            env["MACOSX_DEPLOYMENT_TARGET"] = env_value
        build = tmp_path / f"b{len(list(tmp_path.iterdir()))}"
        out = subprocess.run(["cmake", "-S", str(tmp_path), "-B", str(build), *extra], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        return re.search(r"TARGET=(\S*)", out.stdout)[1]

    assert target(None) == "13.0"
    assert target("14.2") == "14.2"
    assert target("14.2", "-DCMAKE_OSX_DEPLOYMENT_TARGET=15.0") == "15.0"


IMPORT_THE_LIBRARY = r"""
import importlib, sys
sys.path.insert(0, sys.argv[2])
from loaded_images import loaded_images
try:
    importlib.import_module("kestrel_mps_torch_ext." + sys.argv[1])
except ImportError as e:
    print("ImportError:", e)
print("loaded:", any(sys.argv[1] in image for image in loaded_images()))
"""


def test_importing_a_bundled_library_as_a_module_is_refused_before_it_loads(bridge):
    name = bridge.path.name.split(".")[0]
    out = subprocess.run([sys.executable, "-c", IMPORT_THE_LIBRARY, name, str(Path(__file__).parent)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"ImportError: kestrel_mps_torch_ext.{name} is the bridge library for one torch minor" in out.stdout
    assert "load_torch_mps_bridge()" in out.stdout
    assert out.stdout.strip().endswith("loaded: False")


def test_the_import_guard_goes_first_once_and_refuses_only_bridge_libraries(bridge, monkeypatch):
    from kestrel_mps_torch_ext import _loader

    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, _loader._BundledLibraryGuard)])
    _loader.install_import_guard()
    _loader.install_import_guard()
    assert [isinstance(f, _loader._BundledLibraryGuard) for f in sys.meta_path].count(True) == 1
    guard = sys.meta_path[0]
    assert isinstance(guard, _loader._BundledLibraryGuard)
    name = f"kestrel_mps_torch_ext.{bridge.path.name.split('.')[0]}"
    with pytest.raises(ImportError, match="is the bridge library for one torch minor, not a Python module") as e:
        importlib.util.find_spec(name)
    assert e.value.name == name and "load_torch_mps_bridge()" in str(e.value)
    assert guard.find_spec("kestrel_mps_torch_ext._paths", None) is None
    assert guard.find_spec(f"another_package.{name.rpartition('.')[2]}", None) is None


def test_a_user_script_type_checks_strictly_with_no_any():
    pytest.importorskip("mypy", reason="needs mypy (tools/setup_env.sh installs it with the tests)")
    script = ROOT / "tests" / "typing" / "user_script.py"
    # mypy's own incremental cache (it rechecks whatever changed), one per
    # interpreter: a cold run spends about 25 s on torch's stubs, and the
    # suite runs several times per environment (plain, sanitized).
    key = hashlib.sha256(sys.executable.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("KESTREL_BUILD_DIR", ROOT / "build")) / "mypy-cache" / key
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--disallow-any-expr",
                          "--cache-dir", str(cache), str(script)],
                         capture_output=True, text=True, cwd=ROOT / "tests")
    assert out.returncode == 0, out.stdout + out.stderr
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "shape [2, 2] strides [4, 2]" in run.stdout


def test_the_wheel_is_named_for_the_minors_it_bundles():
    # tools/build_wheel.py's build tag: wheels of different minors differ in
    # file name (a wheelhouse or pip's cache cannot mix them).
    wheel = importlib.metadata.distribution("kestrel-mps-torch-ext").read_text("WHEEL") or ""
    tags = dict(line.split(": ", 1) for line in wheel.splitlines() if ": " in line)
    from kestrel_mps_torch_ext import _paths

    # The package's own files: KESTREL_MPS_TORCH_EXT_LIBRARY_DIR may point elsewhere.
    package = Path(kmte.__file__).parent
    want = "1_" + "_".join(f"torch{major}{minor}" for major, minor in _paths.bundled_minors(package))
    if "Build" not in tags:
        pytest.skip("installed from a wheel built without tools/build_wheel.py (plain `pip install .`), "
                    "which carries no build tag; the tools' wheels always do")
    assert tags["Build"] == want, wheel


def build_backend():
    """The package's build backend (backend/kestrel_build_backend.py), by
    its path, as pip loads it from backend-path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kestrel_build_backend",
                                                  ROOT / "backend" / "kestrel_build_backend.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_tags_name_the_minors_and_sort_as_pip_sorts_them():
    from packaging.utils import parse_wheel_filename

    backend = build_backend()
    assert backend.build_tag([(2, 13)]) == "1_torch213"
    assert backend.build_tag([(2, 9), (2, 10), (2, 15)]) == "1_torch29_torch210_torch215"
    name = f"kestrel_mps_torch_ext-0.4.0-{backend.build_tag([(2, 13), (2, 14)])}-cp311-cp311-linux_x86_64.whl"
    assert parse_wheel_filename(name)[2] == (1, "_torch213_torch214")


def test_every_pip_build_is_tagged_with_the_installed_minor(monkeypatch):
    import torch

    backend = build_backend()
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    assert backend.installed_tag() == f"1_torch{major}{minor}"
    seen = {}
    monkeypatch.setattr(backend._scikit, "build_wheel", lambda d, settings, m: seen.update(settings) or "x.whl")
    backend.build_wheel("dist")
    assert seen["wheel.build-tag"] == f"1_torch{major}{minor}"
    backend.build_wheel("dist", {"wheel.build-tag": "1_torch29_torch213"})  # a multi-minor wheel's, passed in
    assert seen["wheel.build-tag"] == "1_torch29_torch213"
    monkeypatch.setitem(sys.modules, "torch", None)  # pip's isolated build: no torch, no tag
    seen.clear()
    backend.build_wheel("dist")
    assert "wheel.build-tag" not in seen


FIND_PACKAGE = """cmake_minimum_required(VERSION 3.21)
project(p LANGUAGES NONE)
find_package(KestrelMPSTorchExt 0.3 REQUIRED)
message(STATUS "found=${KestrelMPSTorchExt_DIR} version=${KestrelMPSTorchExt_VERSION}")
if(TARGET KestrelMPSTorchExt::headers)
  message(STATUS "KestrelMPSTorchExt::headers")
endif()
"""


def entry_point_prefix() -> Path:
    # What scikit-build-core does with a cmake.prefix entry point: the
    # module's directory goes on CMAKE_PREFIX_PATH.
    (ep,) = [e for e in importlib.metadata.entry_points(group="cmake.prefix") if e.name == "KestrelMPSTorchExt"]
    return Path(importlib.import_module(ep.value).__file__).parent


@pytest.mark.parametrize("where", ["entry point", "site-packages"])
def test_find_package_works_from_the_entry_point_and_from_site_packages(tmp_path, where):
    prefix = entry_point_prefix() if where == "entry point" else Path(kmte.__file__).parent.parent
    (tmp_path / "CMakeLists.txt").write_text(FIND_PACKAGE)
    out = subprocess.run(["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "b"), f"-DCMAKE_PREFIX_PATH={prefix}"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"version={kmte.__version__}" in out.stdout
    found = out.stdout.split("found=")[1].split()[0]
    # From site-packages CMake stops at the redirect directory, which must
    # hand over to the package's own config and targets.
    expected = prefix / "KestrelMPSTorchExt.cmake" if where == "site-packages" else Path(kmte.cmake_dir())
    assert Path(found) == expected
    assert "KestrelMPSTorchExt::headers" in out.stdout


def test_site_packages_redirect_is_not_importable():
    redirect = Path(kmte.__file__).parent.parent / "KestrelMPSTorchExt.cmake"
    assert sorted(p.name for p in redirect.iterdir()) == ["KestrelMPSTorchExtConfig.cmake",
                                                         "KestrelMPSTorchExtConfigVersion.cmake"]
    assert not any(m.name.startswith("KestrelMPSTorchExt") for m in pkgutil.iter_modules([str(redirect.parent)]))


def test_pkg_config_gives_a_plain_c_build_its_flags(tmp_path):
    assert run_module("--pkgconfig-dir").stdout.strip() == kmte.pkgconfig_dir()
    env = {**os.environ, "PKG_CONFIG_PATH": kmte.pkgconfig_dir()}
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "kestrel-mps-torch-ext"], capture_output=True,
                           text=True, env=env)
    assert flags.returncode == 0, flags.stderr
    version = subprocess.run(["pkg-config", "--modversion", "kestrel-mps-torch-ext"], capture_output=True,
                             text=True, env=env).stdout.strip()
    assert version == kmte.__version__
    source = tmp_path / "find.c"
    source.write_text("#include <kestrel_mps_api.h>\n#include <stdio.h>\n"
                      "int main(void) { const char* why; kestrel_mps_find_api(&why); puts(why); return 0; }\n")
    exe = tmp_path / "find"
    cc = subprocess.run(["cc", "-std=c99", "-pedantic", "-Werror", str(source), "-o", str(exe), *flags.stdout.split()],
                        capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    assert "load_torch_mps_bridge" in subprocess.run([str(exe)], capture_output=True, text=True).stdout


def test_help_shows_real_types_and_no_importable_library():
    import pydoc

    text = pydoc.render_doc(kmte, renderer=pydoc.plaintext)
    assert "ForwardRef" not in text
    assert "MPSProbe(available: bool, usable: bool, detail: str)" in text
    for name in kmte.__all__:  # every public name documents itself
        obj = getattr(kmte, name)
        assert (obj.__doc__ or "").strip(), name


def test_one_naming_scheme_for_paths_and_the_pybind11_name_kept():
    assert kmte.get_include is kmte.include_dir
    for path in (kmte.include_dir(), kmte.cmake_dir(), kmte.pkgconfig_dir()):
        assert Path(path).is_dir(), path
    assert (Path(kmte.include_dir()) / "kestrel_mps_api.h").is_file()
