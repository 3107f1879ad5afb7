"""A loaded bridge library and Python access to its C table (used by the
diagnostics and the tests; kernel libraries call the table from C)."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _abi
from ._errors import BridgeCallError
from ._types import TensorDescriptor, TorchVersion

if TYPE_CHECKING:
    import torch

__all__ = ["TorchMPSBridge"]


def _access(writable: bool) -> int:
    return _abi.ACCESS_WRITE if writable else _abi.ACCESS_READ


class TorchMPSBridge(ctypes.CDLL):
    """The loaded bridge library.

    A ctypes.CDLL, as the published load_torch_mps_bridge() returned: the
    exported functions are its attributes (``bridge.KestrelMPSTorchExtAPI_v1``).
    It also says which file, built for which torch, and calls the extension
    table from Python (diagnostics and tests; kernel libraries call from C)."""

    def __init__(self, path: Path, torch_version: str, handle: int) -> None:
        super().__init__(str(path), handle=handle)
        for name, prototype in _abi.PUBLISHED_SIGNATURES.items():
            # Attribute access stays as published; only the signatures are new.
            setattr(self, name, prototype((name, self)))
        table = ctypes.pointer(_abi.ExtensionTable.in_dll(self, _abi.API_SYMBOL))
        api = table.contents
        self.path = path
        self.torch_version = torch_version
        self.built_for = TorchVersion(api.torch_version_major, api.torch_version_minor, api.torch_version_patch)
        self.abi_version: int = api.abi_version
        self.capabilities: int = api.capabilities
        self.table_address = ctypes.addressof(api)
        self._table = table  # the library stays loaded: the address stays valid

    def __repr__(self) -> str:
        return (f"TorchMPSBridge(path={str(self.path)!r}, built_for={self.built_for}, "
                f"torch_version={self.torch_version!r}, table_address={self.table_address:#x})")

    @property
    def torch_tag(self) -> str:
        """KestrelMPSTorchExtTorchTag(): the library's tag, e.g. "torch213"."""
        tag: bytes = self.published_api.torch_tag()
        return tag.decode()

    @property
    def api_pointer(self) -> int:
        """The address KestrelMPSTorchExtAPI_v1() returns (the published table)."""
        address: int | None = getattr(self, _abi.GETTER_SYMBOL)()
        if not address:
            raise BridgeCallError(-1, "NULL", f"{_abi.GETTER_SYMBOL} returned NULL")
        return address

    @property
    def published_api(self) -> _abi.PublishedTable:
        """The published table, read through its getter."""
        return _abi.PublishedTable.from_address(self.api_pointer)

    @property
    def api(self) -> _abi.ExtensionTable:
        """The extension table (kestrel_mps_ext_api) as a ctypes structure:
        its fields are callable with the header's signatures."""
        api: _abi.ExtensionTable = self._table.contents
        return api

    @property
    def has_mps_stream(self) -> bool:
        """Whether the library carries the Metal stream backend (macOS)."""
        return bool(self.capabilities & _abi.CAP_MPS_STREAM)

    def last_error(self) -> str:
        """The calling thread's last failure message from either front end."""
        message: bytes = self.api.last_error()
        return message.decode("utf-8", "replace")

    def _check(self, status: int) -> None:
        if status != _abi.OK:
            name = _abi.STATUS_NAMES.get(status, f"status {status}")
            raise BridgeCallError(status, name, self.last_error())

    def resolve(self, tensor: torch.Tensor, *, writable: bool = False) -> TensorDescriptor:
        """The extension's descriptor of `tensor` (resolve_tensor). writable=True
        asks for write access: a CPU or CUDA copy-on-write storage gets its own
        memory first; on MPS it is refused (COPY_ON_WRITE). Raises
        BridgeCallError, naming the reason, for what it cannot describe."""
        out = _abi.Tensor()
        self._check(self.api.resolve_tensor(tensor, _access(writable), ctypes.byref(out)))
        return TensorDescriptor.from_c(out)

    def resolve_many(
        self, tensors: Sequence[torch.Tensor], writable: Sequence[bool] | None = None
    ) -> list[TensorDescriptor]:
        """resolve() of every tensor in one call (resolve_tensors); writable
        has one flag per tensor (default: all read). All or nothing: the
        first refusal raises BridgeCallError."""
        n = len(tensors)
        # typeshed cannot express an array of py_object built from objects.
        objects = (ctypes.py_object * n)(*tensors)  # type: ignore[misc]
        return self._resolve_batch(self.api.resolve_tensors, objects, n, writable)

    @property
    def has_aten_tensors(self) -> bool:
        """Whether the table has resolve_aten_tensor(s) (KESTREL_MPS_CAP_ATEN_TENSORS)."""
        return bool(self.capabilities & _abi.CAP_ATEN_TENSORS)

    def resolve_aten_handle(self, handle: int, *, writable: bool = False) -> TensorDescriptor:
        """resolve_aten_tensor on torch's AtenTensorHandle `handle` (an address,
        as torch._C._aoti.unsafe_alloc_void_ptr_from_tensor gives). The GIL is
        released across the call: the entry needs none."""
        out = _abi.Tensor()
        self._check(self.api.resolve_aten_tensor(handle, _access(writable), ctypes.byref(out)))
        return TensorDescriptor.from_c(out)

    def resolve_aten_handles(
        self, handles: Sequence[int], writable: Sequence[bool] | None = None
    ) -> list[TensorDescriptor]:
        """resolve_aten_tensors on AtenTensorHandle addresses, without the GIL."""
        n = len(handles)
        array = (ctypes.c_void_p * n)(*handles)
        return self._resolve_batch(self.api.resolve_aten_tensors, array, n, writable)

    def _resolve_batch(
        self, entry: Any, tensors: Any, n: int, writable: Sequence[bool] | None
    ) -> list[TensorDescriptor]:
        access = None
        if writable is not None:
            if len(writable) != n:
                raise ValueError("writable must have one entry per tensor")
            access = (ctypes.c_uint32 * n)(*map(_access, writable))
        out = (_abi.Tensor * n)()
        failed = ctypes.c_size_t()
        self._check(entry(tensors, n, access, out, ctypes.byref(failed)))
        return [TensorDescriptor.from_c(t) for t in out]

    def _stream_handle(self, entry: str) -> int:
        out = ctypes.c_void_p()
        self._check(getattr(self.api, entry)(ctypes.byref(out)))
        return out.value or 0

    def current_stream(self) -> int:
        """The calling thread's current MPSStream* (an address). Raises
        BridgeCallError (MPS_UNAVAILABLE off macOS or without a usable device)."""
        return self._stream_handle("current_stream")

    def command_buffer(self) -> int:
        """The stream's id<MTLCommandBuffer> after ending coalescing; only on
        the stream's queue, so from Python always WRONG_QUEUE (a check you
        can see, not a race)."""
        return self._stream_handle("command_buffer")

    def command_queue(self) -> int:
        """The stream's id<MTLCommandQueue> (an address)."""
        return self._stream_handle("command_queue")

    def device(self) -> int:
        """The stream's id<MTLDevice> (an address)."""
        return self._stream_handle("device")

    def dispatch_queue(self) -> int:
        """The stream's serial dispatch_queue_t (an address)."""
        return self._stream_handle("dispatch_queue")

    def command_encoder(self) -> int:
        """torch's coalesced id<MTLComputeCommandEncoder>; only on the
        stream's queue (from Python: WRONG_QUEUE)."""
        return self._stream_handle("command_encoder")

    def end_kernel_coalescing(self) -> None:
        """Ends torch's coalesced encoder; only on the stream's queue."""
        self._check(self.api.end_kernel_coalescing())

    def synchronize(self, wait: bool = True) -> None:
        """Commits the current stream (and with wait=True waits for the GPU),
        dispatched onto the stream's queue by the bridge itself. Raises
        BridgeCallError on failure, e.g. a GPU error (torch 2.10 and later)."""
        kind = _abi.SYNC_COMMIT_AND_WAIT if wait else _abi.SYNC_COMMIT
        self._check(self.api.synchronize(kind))
