"""The published Python API: load_torch_mps_bridge() returns a ctypes.CDLL
whose attributes are the exported functions, get_api_pointer(),
library_path(torch_tag=None), and the unsupported-minor ImportError."""

from __future__ import annotations

import ctypes

import pytest
import torch

import kestrel_mps_torch_ext as kmte
import kestrel_mps_torch_ext._abi as abi
from kestrel_mps_torch_ext import _paths
from support import published_device

RUNNING = _paths.torch_minor(torch.__version__)
TAG = f"torch{RUNNING[0]}{RUNNING[1]}"


def test_bridge_is_a_ctypes_cdll_with_the_published_functions(bridge):
    assert isinstance(bridge, ctypes.CDLL)
    assert bridge is kmte.load_torch_mps_bridge()
    for name in abi.PUBLISHED_FUNCTIONS:
        assert callable(getattr(bridge, name)), name


def test_getter_by_attribute_as_the_published_loader_used_it(bridge):
    getter = bridge.KestrelMPSTorchExtAPI_v1
    getter.argtypes = []
    getter.restype = ctypes.c_void_p
    address = getter()
    assert address == kmte.get_api_pointer() == bridge.api_pointer
    assert getter() == address  # one static table
    table = abi.PublishedTable.from_address(address)
    assert table.api_version == abi.PUBLISHED_API_VERSION == 1
    # Each entry is the exported function of the same name.
    for field, name in [("torch_tag", "KestrelMPSTorchExtTorchTag"),
                        ("tensor_view_from_pyobject", "KestrelMPSTensorViewFromPyObject"),
                        ("current_stream_view", "KestrelMPSGetCurrentStreamView"),
                        ("end_kernel_coalescing", "KestrelMPSEndKernelCoalescing"),
                        ("command_buffer", "KestrelMPSCommandBuffer"),
                        ("commit_stream", "KestrelMPSCommitStream")]:
        entry = ctypes.cast(getattr(table, field), ctypes.c_void_p).value
        assert entry == ctypes.cast(getattr(bridge, name), ctypes.c_void_p).value, field


def test_torch_tag(bridge):
    assert ctypes.string_at(bridge.KestrelMPSTorchExtTorchTag()).decode() == TAG == bridge.torch_tag


def test_exports_come_declared_as_the_header_says(bridge):
    """With no restype or argtypes set by the caller: the getter's full
    address, the tensor entry holding the GIL (a CDLL default would release
    it and be refused), messages as addresses, NULL as None."""
    fresh = ctypes.CDLL(str(bridge.path))  # what 0.1.x users got: int results
    for name, prototype in abi.PUBLISHED_SIGNATURES.items():
        fn = getattr(bridge, name)
        assert isinstance(fn, prototype), name
        assert ctypes.cast(fn, ctypes.c_void_p).value == ctypes.cast(getattr(fresh, name), ctypes.c_void_p).value
    assert bridge.KestrelMPSTorchExtAPI_v1() == kmte.get_api_pointer()
    view = abi.TensorView()
    device = published_device() or "cpu"
    t = torch.arange(6.0, device=device).reshape(2, 3)[:, 1:]
    message = bridge.KestrelMPSTensorViewFromPyObject(t, ctypes.byref(view))
    if published_device() is None:  # a macOS-rule build without a usable device
        assert b"expected an MPS tensor" in ctypes.string_at(message)
    else:
        assert message is None, ctypes.string_at(message)
        assert view.mtl_buffer == t.untyped_storage().data_ptr() and view.storage_offset_bytes == 4
    message = bridge.KestrelMPSTensorViewFromPyObject("not a tensor", ctypes.byref(view))
    assert "str" in ctypes.string_at(message).decode() and "GIL" not in ctypes.string_at(message).decode()
    with pytest.raises(ctypes.ArgumentError):
        bridge.KestrelMPSCommandBuffer(None, 3)  # argtypes: an int is not a void**


def test_tensor_view_through_the_python_table(bridge):
    view = abi.TensorView()
    device = published_device()
    if device is None:  # a macOS-rule build without a usable device refuses CPU tensors by device
        message = bridge.published_api.tensor_view_from_pyobject(torch.zeros(3), ctypes.byref(view))
        assert message is not None and b"expected an MPS tensor, got a cpu tensor" in ctypes.string_at(message)
        assert view.mtl_buffer is None and view.dim == 0  # zeroed
        return
    t = torch.arange(12.0, device=device).reshape(3, 4)[1:, 1:]
    assert bridge.published_api.tensor_view_from_pyobject(t, ctypes.byref(view)) is None
    assert view.mtl_buffer == t.untyped_storage().data_ptr()
    assert view.storage_offset_bytes == 5 * 4 and view.dim == 2 and view.numel == 6
    assert list(view.sizes[:3]) == [2, 3, 0] and list(view.strides[:3]) == [4, 1, 0]


def test_library_path_default_and_tags(bridge):
    assert kmte.library_path() == bridge.path
    assert kmte.library_path(TAG) == bridge.path
    assert kmte.library_path("torch29").name == _paths.library_name(2, 9)
    assert kmte.library_path("torch215").parent == bridge.path.parent
    assert not kmte.library_path("torch28").exists()  # a minor not bundled: where it would be
    assert "whether or not that file exists" in kmte.library_path.__doc__


@pytest.mark.parametrize("bad", ["2.13", "torch", "torchx13", "torch2", "Torch213", "torch2.13", ""])
def test_library_path_refuses_what_is_not_a_tag(bad):
    with pytest.raises(ValueError, match="torch tag"):
        kmte.library_path(bad)


def test_version_is_written_once_and_follows_the_published_line():
    import importlib.metadata

    from packaging.version import Version

    assert importlib.metadata.version("kestrel-mps-torch-ext") == kmte.__version__
    assert Version(kmte.__version__) >= Version("0.2.0")


def test_tensor_view_with_a_null_out_is_refused_with_a_message(bridge):
    message = bridge.published_api.tensor_view_from_pyobject(torch.zeros(2), None)
    assert message is not None
    assert ctypes.string_at(message).decode() == "tensor_view_from_pyobject: out is NULL"
