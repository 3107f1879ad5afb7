"""Selection, refusal and loading of the per-minor library. Selection is
driven through its seam (the torch version string), against the real files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import kestrel_mps_torch_ext as kmte
from kestrel_mps_torch_ext import _loader, _paths
from loaded_images import loaded_images

RUNNING = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
LIB = _paths.library_dir() / _paths.library_name(*RUNNING)


@pytest.mark.parametrize(
    "version, minor",
    [
        ("2.13.0+cpu", (2, 13)),
        ("2.14.0a0+gitabc1234", (2, 14)),
        ("2.15.0.dev20261001", (2, 15)),
        ("2.12.0rc3", (2, 12)),
        ("2.12.1", (2, 12)),
        ("2.11.0+cu130", (2, 11)),
        ("2.9.1", (2, 9)),
    ],
)
def test_version_parsing(version, minor):
    assert _paths.torch_minor(version) == minor


@pytest.mark.parametrize("version", ["not-a-version", "", "2"])
def test_unparseable_versions_are_refused(version):
    with pytest.raises(kmte.UnsupportedTorchVersionError, match="torch version"):
        _paths.torch_minor(version)


def test_patch_releases_and_local_labels_share_one_library():
    v = f"{RUNNING[0]}.{RUNNING[1]}"
    paths = {_loader.select_library(s) for s in (f"{v}.0", f"{v}.1+cpu", f"{v}.0rc2", f"{v}.0a0+git1")}
    assert paths == {LIB}


def test_unbundled_minor_names_version_bundled_minors_file_and_remedy():
    with pytest.raises(kmte.UnsupportedTorchVersionError) as info:
        _loader.select_library("2.8.1+cu126")
    msg = str(info.value)
    assert isinstance(info.value, ImportError)
    assert "2.8.1+cu126" in msg and "torch28" in msg  # the version and its tag
    assert _paths.library_name(2, 8) in msg
    assert f"{RUNNING[0]}.{RUNNING[1]}" in msg  # a bundled minor
    assert "build it from source" in msg and "Install a torch of a bundled minor" in msg
    # The commands (run as printed by tools/test_minors.sh) are in the message,
    # for this interpreter, naming the newest bundled minor and this version.
    remedies = info.value.remedies
    assert len(remedies) == 2 and all(f"  {r}" in msg for r in remedies)
    newest = kmte.supported_torch_minors()[-1]
    assert remedies[0].endswith(f'-m pip install "torch=={newest}.*"')
    assert remedies[1].endswith(f"--no-binary kestrel-mps-torch-ext kestrel-mps-torch-ext=={kmte.__version__}")
    assert all(r.startswith(sys.executable) for r in remedies)


def test_no_bundled_minor_leaves_only_the_source_remedy(tmp_path):
    with pytest.raises(kmte.UnsupportedTorchVersionError) as info:
        _loader.select_library(torch.__version__, tmp_path)
    assert len(info.value.remedies) == 1 and "--no-build-isolation" in info.value.remedies[0]


def test_supported_minors_are_the_files_present(tmp_path):
    assert kmte.supported_torch_minors() == [f"{a}.{b}" for a, b in _paths.bundled_minors()]
    assert f"{RUNNING[0]}.{RUNNING[1]}" in kmte.supported_torch_minors()
    for name in (_paths.library_name(2, 9), _paths.library_name(2, 15), "libother.so", "README"):
        (tmp_path / name).write_bytes(b"")
    assert _paths.bundled_minors(tmp_path) == [(2, 9), (2, 15)]
    assert _paths.bundled_minors(tmp_path / "missing") == []


def test_library_dir_override_is_honoured_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv(_paths.LIBRARY_DIR_ENV, str(tmp_path))
    assert _paths.library_dir() == tmp_path
    (tmp_path / _paths.library_name(2, 9)).write_bytes(b"")  # another minor only
    with pytest.raises(kmte.UnsupportedTorchVersionError, match=str(tmp_path)):
        _loader.select_library(torch.__version__)
    shutil.copyfile(LIB, tmp_path / LIB.name)
    assert _loader.select_library(torch.__version__) == tmp_path / LIB.name


@pytest.mark.parametrize("what, why", [("missing", "is not a directory"), ("empty", "holds no bridge library")])
def test_a_bad_library_dir_override_names_the_variable_and_the_directory(tmp_path, monkeypatch, what, why):
    directory = tmp_path / what
    if what == "empty":
        directory.mkdir()
    monkeypatch.setenv(_paths.LIBRARY_DIR_ENV, str(directory))
    with pytest.raises(kmte.BridgeLoadError) as info:
        _loader.select_library(torch.__version__)
    assert f"{_paths.LIBRARY_DIR_ENV}={directory} {why}" in str(info.value)
    assert "unset it" in str(info.value)


class _Distribution:
    def __init__(self, direct_url: str | None) -> None:
        self.direct_url = direct_url

    def read_text(self, name: str) -> str | None:
        return self.direct_url if name == "direct_url.json" else None


@pytest.mark.parametrize("direct_url, checkout", [
    ('{"url": "file:///src/kestrel%20mps", "dir_info": {"editable": true}}', "/src/kestrel mps"),
    ('{"url": "file:///tmp/dist/kestrel_mps_torch_ext-0.4.0-cp311.whl", "archive_info": {}}', None),
    (None, None),  # installed from an index: no direct_url.json
])
def test_the_source_remedy_fits_how_the_package_was_installed(monkeypatch, tmp_path, direct_url, checkout):
    from importlib import metadata

    monkeypatch.setattr(metadata, "distribution", lambda name: _Distribution(direct_url))
    assert _loader._source_checkout() == checkout
    with pytest.raises(kmte.UnsupportedTorchVersionError) as info:
        _loader.select_library(torch.__version__, tmp_path)
    (source,) = info.value.remedies
    if checkout:
        assert source.endswith("--no-build-isolation --no-deps --force-reinstall '/src/kestrel mps'")
    else:
        assert source.endswith(f"--no-binary kestrel-mps-torch-ext kestrel-mps-torch-ext=={kmte.__version__}")


def test_missing_package_directory_is_an_unsupported_version_error(tmp_path):
    with pytest.raises(kmte.UnsupportedTorchVersionError, match="bundled torch minors: none"):
        _loader.select_library(torch.__version__, tmp_path / "gone")


def test_library_of_another_minor_is_refused_by_its_table(bridge):
    other = f"{RUNNING[0]}.{RUNNING[1] - 1}.0"
    with pytest.raises(kmte.BridgeMismatchError) as info:
        _loader.open_library(LIB, other)
    msg = str(info.value)
    assert f"built for torch {RUNNING[0]}.{RUNNING[1]}" in msg and other in msg
    assert isinstance(info.value, ImportError)


OTHER_MINORS = [m for m in _paths.bundled_minors() if m != RUNNING]


@pytest.mark.skipif(not OTHER_MINORS, reason="needs a wheel bundling a second minor (tools/test_minors.sh builds one)")
def test_another_minors_library_renamed_to_ours_is_refused(tmp_path):
    other = _paths.library_dir() / _paths.library_name(*OTHER_MINORS[0])
    shutil.copyfile(other, tmp_path / LIB.name)
    code = (
        "import torch, pathlib, kestrel_mps_torch_ext as k\n"
        "from kestrel_mps_torch_ext import _loader\n"
        f"path = _loader.select_library(torch.__version__, pathlib.Path({str(tmp_path)!r}))\n"
        "try:\n    _loader.open_library(path, torch.__version__)\n"
        "except k.BridgeLoadError as e:\n    print(type(e).__name__); print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    kind, message = out.stdout.split("\n", 1)
    # Either the dynamic loader rejects it (torch symbols it needs are absent)
    # or it loads and its table gives it away: both are clear errors.
    assert kind in ("BridgeMismatchError", "BridgeLoadError"), out.stdout
    assert str(tmp_path) in message


def test_the_running_minor_is_bundled():
    assert RUNNING in _paths.bundled_minors()


REFUSED_STAYS_INVISIBLE = r"""
import ctypes, sys, torch
from kestrel_mps_torch_ext import _loader, BridgeMismatchError
try:
    _loader.open_library(_loader.select_library(torch.__version__), "2.1.0")
except BridgeMismatchError:
    pass
else:
    sys.exit("not refused")
try:
    ctypes.CDLL(None).KestrelMPSTorchExtAPI_v1
except AttributeError:
    print("invisible")
"""


def test_a_refused_library_never_becomes_globally_visible():
    out = subprocess.run([sys.executable, "-c", REFUSED_STAYS_INVISIBLE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "invisible"


def planted(tmp_path: Path, content: bytes | None = None, source: Path | None = None) -> Path:
    target = tmp_path / LIB.name
    if source is not None:
        shutil.copyfile(source, target)
    else:
        target.write_bytes(content or b"")
    return _loader.select_library(torch.__version__, tmp_path)


@pytest.mark.parametrize(
    "kind", ["garbage", "empty", "truncated", "not_a_bridge"]
)
def test_corrupt_libraries_raise_bridge_load_error_not_oserror(tmp_path, kind):
    if kind == "garbage":
        path = planted(tmp_path, b"\x7fELF this is not a library" * 100)
    elif kind == "empty":
        path = planted(tmp_path, b"")
    elif kind == "truncated":
        path = planted(tmp_path, LIB.read_bytes()[:4096])
    else:  # a real, self-contained shared library without our symbol
        # One of Python's own extension modules: a real shared library (ELF or
        # Mach-O) on every platform, harmless to map twice, unlike torch's
        # libraries, whose static initialisers abort when run a second time.
        import importlib

        files = [getattr(importlib.import_module(m), "__file__", None) for m in ("_ctypes", "_struct", "select")]
        library = next(Path(f) for f in files if f and f.endswith(".so"))
        path = planted(tmp_path, source=library)
    with pytest.raises(kmte.BridgeLoadError) as info:
        _loader.open_library(path, torch.__version__)
    assert str(path) in str(info.value)
    assert "reinstall" in str(info.value).lower()


UNREADABLE = r"""
import sys, pathlib, kestrel_mps_torch_ext as k
from kestrel_mps_torch_ext import _loader
try:
    _loader.open_library(pathlib.Path(sys.argv[1]), sys.argv[2])
except k.BridgeLoadError as e:
    print("BridgeLoadError", "unreadable" in str(e))
"""


def test_an_unreadable_library_file(tmp_path):
    # open_library needs no torch: the check happens before anything loads.
    package = tmp_path / "site"
    shutil.copytree(Path(kmte.__file__).parent, package / "kestrel_mps_torch_ext")
    lib = tmp_path / LIB.name
    shutil.copyfile(LIB, lib)
    lib.chmod(0)
    python = sys.executable
    prefix: list[str] = []
    if os.geteuid() == 0:  # root reads anything: drop to an unprivileged uid
        python = shutil.which("python3", path="/usr/bin:/usr/local/bin") or ""
        if not python or shutil.which("setpriv") is None:
            pytest.fail("needs /usr/bin/python3 and setpriv to test as an unprivileged user")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        for p in [tmp_path, *tmp_path.parents]:
            p.chmod(p.stat().st_mode | 0o005)
    env = {"PYTHONPATH": str(package), "PATH": os.environ.get("PATH", "")}
    out = subprocess.run([*prefix, python, "-c", UNREADABLE, str(lib), torch.__version__],
                         capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["BridgeLoadError", "True"], out.stderr[-2000:]


def test_a_directory_in_the_librarys_place(tmp_path):
    (tmp_path / LIB.name).mkdir()
    with pytest.raises(kmte.UnsupportedTorchVersionError):
        _loader.select_library(torch.__version__, tmp_path)
    with pytest.raises(kmte.BridgeLoadError):
        _loader.open_library(tmp_path / LIB.name, torch.__version__)


def test_load_is_idempotent_and_thread_safe(bridge):
    results = []
    threads = [threading.Thread(target=lambda: results.append(kmte.load_torch_mps_bridge())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(r is bridge for r in results)
    assert bridge.path == LIB
    assert bridge.built_for[:2] == RUNNING
    assert isinstance(bridge.built_for, kmte.TorchVersion)
    assert (bridge.built_for.major, bridge.built_for.minor) == RUNNING
    # The helper the no-load test relies on sees a loaded bridge.
    assert any(Path(image).name == LIB.name for image in loaded_images())


CONCURRENT_FIRST_LOAD = r"""
import threading, torch, kestrel_mps_torch_ext as k
from kestrel_mps_torch_ext import _loader
opened = []
real = _loader.open_library
def counting(*a):
    opened.append(1)
    return real(*a)
_loader.open_library = counting
barrier = threading.Barrier(8)
out = []
def go():
    barrier.wait()
    out.append(k.load_torch_mps_bridge())
ts = [threading.Thread(target=go) for _ in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
print(len(opened), len({id(b) for b in out}), len(out))
"""


def test_eight_threads_racing_the_first_load_load_once():
    out = subprocess.run([sys.executable, "-c", CONCURRENT_FIRST_LOAD], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1", "8"]


def test_import_loads_nothing_and_does_not_import_torch():
    code = "import sys, kestrel_mps_torch_ext; print('torch' in sys.modules, kestrel_mps_torch_ext._loader._bridge)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "None"], out.stderr


def test_unsupported_torch_fails_before_any_native_code_is_loaded(tmp_path):
    # Point the package at an empty library directory: load must fail in
    # select_library, before dlopen, and say so as an ImportError.
    code = (
        "import kestrel_mps_torch_ext as k, kestrel_mps_torch_ext._paths as p, pathlib, os\n"
        f"p.library_dir = lambda: pathlib.Path({str(tmp_path)!r})\n"
        "try:\n    k.load_torch_mps_bridge()\n"
        "except ImportError as e:\n    print(type(e).__name__)\n"
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from loaded_images import loaded_images\n"
        "print(any('kestrel_mps_torch_ext_torch' in image for image in loaded_images()))\n"
    )
    # The package directory itself, not an override (the sanitizer run sets one).
    env = {k: v for k, v in os.environ.items() if k != _paths.LIBRARY_DIR_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["UnsupportedTorchVersionError", "False"], out.stderr


def sstripped_and_cut(data: bytes) -> bytes:
    """The ELF library as sstrip leaves it (no section headers), cut in the
    middle of its last loadable segment: every header still lies inside the
    file, only a segment does not."""
    import struct

    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    loads = [struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize) for i in range(phnum)]
    last = max((p for p in loads if p[0] == 1 and p[5] > 0), key=lambda p: p[2])
    cut = bytearray(data[: last[2] + last[5] // 2])
    struct.pack_into("<Q", cut, 40, 0)  # e_shoff
    struct.pack_into("<HH", cut, 60, 0, 0)  # e_shnum, e_shstrndx
    return bytes(cut)


def test_a_library_cut_mid_segment_without_section_headers_is_refused(tmp_path):
    # Only the loader's segment check sees this file is incomplete; without
    # it dlopen() maps the segment past the file's end and the process dies.
    if LIB.read_bytes()[:4] != b"\x7fELF":
        pytest.skip("an ELF case: this build's library is Mach-O (the Mach-O case is below)")
    path = planted(tmp_path, sstripped_and_cut(LIB.read_bytes()))
    with pytest.raises(kmte.BridgeLoadError) as info:
        _loader.open_library(path, torch.__version__)
    assert "segment lies past the end of the file" in str(info.value)
    # Plain Python: a sanitizer runtime preloaded by tools/test_sanitizers.sh
    # would turn the signal into its own abort.
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    crash = subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(path)!r}); print('loaded')"],
                           capture_output=True, text=True, timeout=60, env=env)
    import signal

    assert crash.returncode == -signal.SIGBUS, (crash.returncode, crash.stderr[-500:])


def test_a_mach_o_segment_past_the_end_is_refused():
    import struct

    from kestrel_mps_torch_ext._loader import BinaryCheckError, _check_macho

    segment = struct.pack("<II16sQQQQiiII", 0x19, 72, b"__TEXT", 0, 0x4000, 0, 0x4000, 5, 5, 0, 0)
    header = struct.pack("<IiiIIIII", 0xFEEDFACF, 0x0100000C, 0, 6, 1, len(segment), 0, 0)
    data = header + segment + b"\0" * 256  # the segment says 16 KiB, the file has 360 bytes
    with pytest.raises(BinaryCheckError, match="Mach-O segment lies past the end"):
        _check_macho(data, 0, len(data))
    whole = header + segment + b"\0" * (0x4000 - len(header) - len(segment))
    _check_macho(whole, 0, len(whole))  # the same library, complete, passes
