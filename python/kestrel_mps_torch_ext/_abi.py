"""ctypes mirror of include/kestrel_mps_api.h (tests check every constant and
size against the header and the loaded table)."""

from __future__ import annotations

import ctypes
from _ctypes import CFuncPtr

ABI_VERSION = 1
API_SYMBOL = "KestrelMPS_kmte_ext_v1"
MAX_NDIM = 16

# The published ABI (kestrel-mps-torch-ext 0.1.x).
GETTER_SYMBOL = "KestrelMPSTorchExtAPI_v1"
PUBLISHED_API_VERSION = 1
PUBLISHED_MAX_DIMS = 16

STATUS_NAMES = {
    0: "KESTREL_MPS_OK",
    1: "KESTREL_MPS_ERROR_INVALID_ARGUMENT",
    2: "KESTREL_MPS_ERROR_NOT_A_TENSOR",
    3: "KESTREL_MPS_ERROR_UNSUPPORTED_TENSOR",
    4: "KESTREL_MPS_ERROR_UNSUPPORTED_DTYPE",
    5: "KESTREL_MPS_ERROR_TOO_MANY_DIMS",
    6: "KESTREL_MPS_ERROR_MPS_UNAVAILABLE",
    7: "KESTREL_MPS_ERROR_TORCH",
    8: "KESTREL_MPS_ERROR_GIL_NOT_HELD",
    9: "KESTREL_MPS_ERROR_CALLBACK_FAILED",
    10: "KESTREL_MPS_ERROR_INTERNAL",
    11: "KESTREL_MPS_ERROR_WRONG_QUEUE",
    12: "KESTREL_MPS_ERROR_REENTRANT",
    13: "KESTREL_MPS_ERROR_COPY_ON_WRITE",
}
OK = 0

ACCESS_READ = 0
ACCESS_WRITE = 1
TENSOR_CONTIGUOUS = 1
TENSOR_WRITABLE = 2
CAP_MPS_STREAM = 1
CAP_ATEN_TENSORS = 2
CAP_OFFSET_ALIGN = 4

SYNC_COMMIT = 1
SYNC_COMMIT_AND_WAIT = 2
SYNC_COMMIT_AND_CONTINUE = 3


class Dtype(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class Tensor(ctypes.Structure):
    _fields_ = [
        ("buffer", ctypes.c_void_p),
        ("byte_offset", ctypes.c_uint64),
        ("nbytes", ctypes.c_uint64),
        ("numel", ctypes.c_int64),
        ("device_type", ctypes.c_int32),
        ("device_index", ctypes.c_int32),
        ("dtype", Dtype),
        ("ndim", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
        ("byte_offset_align", ctypes.c_uint32),
        ("shape", ctypes.c_int64 * MAX_NDIM),
        ("strides", ctypes.c_int64 * MAX_NDIM),
    ]


Status = ctypes.c_int32
# The resolve entries read Python objects: PYFUNCTYPE keeps the GIL held
# across the call. The stream entries release it (CFUNCTYPE), so a
# COMMIT_AND_WAIT does not block other Python threads.
ResolveTensorFn = ctypes.PYFUNCTYPE(Status, ctypes.py_object, ctypes.c_uint32, ctypes.POINTER(Tensor))
ResolveTensorsFn = ctypes.PYFUNCTYPE(
    Status,
    ctypes.POINTER(ctypes.py_object),
    ctypes.c_size_t,
    ctypes.POINTER(ctypes.c_uint32),
    ctypes.POINTER(Tensor),
    ctypes.POINTER(ctypes.c_size_t),
)
# The handle entries touch no Python: CFUNCTYPE releases the GIL.
ResolveAtenTensorFn = ctypes.CFUNCTYPE(Status, ctypes.c_void_p, ctypes.c_uint32, ctypes.POINTER(Tensor))
ResolveAtenTensorsFn = ctypes.CFUNCTYPE(
    Status,
    ctypes.POINTER(ctypes.c_void_p),
    ctypes.c_size_t,
    ctypes.POINTER(ctypes.c_uint32),
    ctypes.POINTER(Tensor),
    ctypes.POINTER(ctypes.c_size_t),
)
HandleFn = ctypes.CFUNCTYPE(Status, ctypes.POINTER(ctypes.c_void_p))
VoidFn = ctypes.CFUNCTYPE(Status)
SynchronizeFn = ctypes.CFUNCTYPE(Status, ctypes.c_int32)
QueueCallback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _wraps_python(obj: object) -> bool:
    """Whether a ctypes object is (or casts, or keeps alive) a C thunk that
    runs a Python callable: its `_objects` holds the CThunkObject."""
    seen: set[int] = set()
    todo = [getattr(obj, "_objects", None)]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if type(item).__name__ == "CThunkObject":
            return True
        if isinstance(item, dict):
            todo.extend(item.values())
        else:
            todo.append(getattr(item, "_objects", None))
    return False


class CQueueCallback:
    """run_on_stream_queue's callback as ctypes passes it from Python: a C
    function (a library's export, or its address as an int) and never a
    Python callable. Python on the stream's queue takes the GIL while the
    queue is held, and torch holds the GIL while it waits for the queue in
    some entry points: a lock-order deadlock no GIL handling can rule out
    (Python drops and retakes the GIL between bytecodes)."""

    @classmethod
    def from_param(cls, obj: object) -> object:
        if _wraps_python(obj) or (callable(obj) and not isinstance(obj, CFuncPtr)):
            raise TypeError(
                "run_on_stream_queue takes a C function, not a Python callable: Python run "
                "on the stream's queue can deadlock against torch, which holds the GIL while "
                "it waits for that queue; export the callback from a C library and pass "
                "lib.your_callback (or its address)")
        if obj is None:
            return ctypes.c_void_p()  # NULL: the table refuses it by name
        if isinstance(obj, int) and not isinstance(obj, bool):
            return ctypes.c_void_p(obj)
        if isinstance(obj, CFuncPtr):
            return obj
        raise TypeError(f"run_on_stream_queue takes a C function or its address, not {type(obj).__name__}")


# ctypes takes any class with from_param as an argtype; typeshed lists only its own.
RunOnQueueFn = ctypes.CFUNCTYPE(Status, CQueueCallback, ctypes.c_void_p)  # type: ignore[arg-type]
LastErrorFn = ctypes.CFUNCTYPE(ctypes.c_char_p)


class ExtensionTable(ctypes.Structure):
    """kestrel_mps_ext_api (the extension table, KestrelMPS_kmte_ext_v1) as
    ctypes reads it: each entry is callable with the header's signature."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("abi_version", ctypes.c_uint32),
        ("tensor_struct_size", ctypes.c_uint32),
        ("max_ndim", ctypes.c_uint32),
        ("torch_version_major", ctypes.c_uint32),
        ("torch_version_minor", ctypes.c_uint32),
        ("torch_version_patch", ctypes.c_uint32),
        ("capabilities", ctypes.c_uint32),
        ("resolve_tensor", ResolveTensorFn),
        ("resolve_tensors", ResolveTensorsFn),
        ("current_stream", HandleFn),
        ("command_buffer", HandleFn),
        ("command_queue", HandleFn),
        ("device", HandleFn),
        ("dispatch_queue", HandleFn),
        ("end_kernel_coalescing", VoidFn),
        ("synchronize", SynchronizeFn),
        ("run_on_stream_queue", RunOnQueueFn),
        ("last_error", LastErrorFn),
        ("command_encoder", HandleFn),
        ("resolve_aten_tensor", ResolveAtenTensorFn),
        ("resolve_aten_tensors", ResolveAtenTensorsFn),
    ]


class TensorView(ctypes.Structure):
    """KestrelMPSTensorView (published)."""

    _fields_ = [
        ("mtl_buffer", ctypes.c_void_p),
        ("storage_offset_bytes", ctypes.c_int64),
        ("element_size_bytes", ctypes.c_int64),
        ("scalar_type", ctypes.c_int64),
        ("dim", ctypes.c_int64),
        ("sizes", ctypes.c_int64 * PUBLISHED_MAX_DIMS),
        ("strides", ctypes.c_int64 * PUBLISHED_MAX_DIMS),
        ("numel", ctypes.c_int64),
    ]


class StreamView(ctypes.Structure):
    """KestrelMPSStreamView (published)."""

    _fields_ = [("stream", ctypes.c_void_p), ("device", ctypes.c_void_p), ("queue", ctypes.c_void_p)]


# Published entries return NULL or a message (char*, read as c_void_p so
# that NULL stays distinguishable from "").
PublishedResult = ctypes.c_void_p


class PublishedTable(ctypes.Structure):
    """KestrelMPSTorchExtAPI (published), returned by KestrelMPSTorchExtAPI_v1()."""

    _fields_ = [
        ("api_version", ctypes.c_uint64),
        ("torch_tag", ctypes.CFUNCTYPE(ctypes.c_char_p)),
        ("tensor_view_from_pyobject",
         ctypes.PYFUNCTYPE(PublishedResult, ctypes.py_object, ctypes.POINTER(TensorView))),
        ("current_stream_view", ctypes.CFUNCTYPE(PublishedResult, ctypes.POINTER(StreamView))),
        ("end_kernel_coalescing", ctypes.CFUNCTYPE(PublishedResult, ctypes.c_void_p)),
        ("command_buffer",
         ctypes.CFUNCTYPE(PublishedResult, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p))),
        ("commit_stream", ctypes.CFUNCTYPE(PublishedResult, ctypes.c_void_p)),
    ]

# The published exports (kestrel_mps_api.h) with their signatures, declared
# on the CDLL that load_torch_mps_bridge() returns: pointer results as
# c_void_p (NULL reads None, a message's address an int: ctypes.string_at),
# the tensor entry through PYFUNCTYPE, which keeps the GIL held as PyDLL
# does (it reads a PyObject and refuses a caller without the GIL).
PUBLISHED_SIGNATURES = {
    "KestrelMPSTorchExtAPI_v1": ctypes.CFUNCTYPE(ctypes.c_void_p),
    "KestrelMPSTorchExtTorchTag": ctypes.CFUNCTYPE(PublishedResult),
    "KestrelMPSTensorViewFromPyObject":
        ctypes.PYFUNCTYPE(PublishedResult, ctypes.py_object, ctypes.POINTER(TensorView)),
    "KestrelMPSGetCurrentStreamView": ctypes.CFUNCTYPE(PublishedResult, ctypes.POINTER(StreamView)),
    "KestrelMPSEndKernelCoalescing": ctypes.CFUNCTYPE(PublishedResult, ctypes.c_void_p),
    "KestrelMPSCommandBuffer":
        ctypes.CFUNCTYPE(PublishedResult, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)),
    "KestrelMPSCommitStream": ctypes.CFUNCTYPE(PublishedResult, ctypes.c_void_p),
    "KestrelMPSCommandEncoder":
        ctypes.CFUNCTYPE(PublishedResult, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)),
}
PUBLISHED_FUNCTIONS = tuple(PUBLISHED_SIGNATURES)
