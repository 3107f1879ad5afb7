"""Bad input gets a status and a message, never a crash."""

from __future__ import annotations

import ctypes

import pytest
import torch

import kestrel_mps_torch_ext as kmte
import kestrel_mps_torch_ext._abi as abi
from support import fake, functional, meta, mkldnn, nested, quantized, sparse_coo, sparse_csr, wrapper_subclass

NOT_A_TENSOR = "KESTREL_MPS_ERROR_NOT_A_TENSOR"
UNSUPPORTED = "KESTREL_MPS_ERROR_UNSUPPORTED_TENSOR"


def failure(resolver, obj, **kw) -> kmte.BridgeCallError:
    """The refusal of resolver.resolve(obj): a bridge, or a front_end."""
    with pytest.raises(kmte.BridgeCallError) as info:
        resolver.resolve(obj, **kw)
    return info.value


@pytest.mark.parametrize(
    "obj, type_name",
    [(None, "NoneType"), (3, "int"), ([1.0, 2.0], "list"), ("tensor", "str"), (torch.float32, "torch.dtype")],
)
def test_non_tensors(bridge, obj, type_name):
    e = failure(bridge, obj)
    assert e.status_name == NOT_A_TENSOR
    assert type_name in e.message


def test_numpy_array_is_not_a_tensor(bridge):
    np = pytest.importorskip("numpy", reason="numpy is installed by the test setup")
    e = failure(bridge, np.zeros(3))
    assert e.status_name == NOT_A_TENSOR and "numpy.ndarray" in e.message


def raw_resolve(bridge):
    """resolve_tensor with the object passed as a plain pointer, as C does."""
    fn = ctypes.PYFUNCTYPE(abi.Status, ctypes.c_void_p, ctypes.c_uint32, ctypes.POINTER(abi.Tensor))
    return fn(ctypes.cast(bridge.api.resolve_tensor, ctypes.c_void_p).value)


def test_object_whose_isinstance_check_raises(bridge):
    class Weird:
        @property
        def __class__(self):
            raise RuntimeError("no class for you")

    weird = Weird()
    out = abi.Tensor()
    assert raw_resolve(bridge)(id(weird), 0, ctypes.byref(out)) == 2
    assert "isinstance" in bridge.last_error() and "Weird" in bridge.last_error()
    # The Python error raised inside isinstance() was cleared, not leaked.
    assert bridge.resolve(torch.zeros(1)).numel == 1


@pytest.mark.parametrize(
    "factory, status, words",
    [
        (sparse_coo, UNSUPPORTED, "layout"),
        (sparse_csr, UNSUPPORTED, "layout"),
        (mkldnn, UNSUPPORTED, "layout"),
        (nested, UNSUPPORTED, "nested"),
        (quantized, UNSUPPORTED, "quantized"),
        (meta, UNSUPPORTED, "meta"),
        (functional, UNSUPPORTED, "functional"),
        (fake, UNSUPPORTED, "__torch_dispatch__"),
        (wrapper_subclass, UNSUPPORTED, "__torch_dispatch__"),
    ],
    ids=lambda x: getattr(x, "__name__", None),
)
def test_tensors_without_bindable_storage(front_end, factory, status, words):
    e = failure(front_end, factory())
    assert e.status_name == status
    assert words in e.message


@pytest.mark.parametrize(
    "make_view, words",
    [(lambda: torch.randn(3, dtype=torch.complex64).conj(), "conjugate view"),
     (lambda: torch._neg_view(torch.randn(2, 2)), "negative view"),
     (lambda: torch.randn(4, 2, dtype=torch.complex128).conj()[1:], "resolve_conj")],
    ids=["conj", "neg", "conj_slice"],
)
def test_conjugate_and_negative_views_are_refused_not_silently_wrong(front_end, make_view, words):
    e = failure(front_end, make_view())
    assert e.status_name == UNSUPPORTED and words in e.message
    e = failure(front_end, make_view(), writable=True)
    assert e.status_name == UNSUPPORTED


def test_too_many_dims(front_end):
    t = torch.zeros((1,) * 17)
    e = failure(front_end, t)
    assert e.status_name == "KESTREL_MPS_ERROR_TOO_MANY_DIMS"
    assert "17" in e.message and "16" in e.message


def test_sub_byte_dtype_is_refused_with_its_name(front_end):
    t = torch.zeros(4, dtype=torch.uint8).view(torch.bits8)
    e = failure(front_end, t)
    assert e.status_name == "KESTREL_MPS_ERROR_UNSUPPORTED_DTYPE"
    assert "Bits8" in e.message


def test_unknown_access_value(bridge):
    out = abi.Tensor()
    assert bridge.api.resolve_tensor(torch.zeros(1), 7, ctypes.byref(out)) == 1
    assert "access" in bridge.last_error()


def test_null_out_pointers(bridge):
    assert bridge.api.resolve_tensor(torch.zeros(1), 0, None) == 1
    assert "out is NULL" in bridge.last_error()
    objs = (ctypes.py_object * 1)(torch.zeros(1))
    assert bridge.api.resolve_tensors(objs, 1, None, None, None) == 1
    assert bridge.api.resolve_tensors(None, 1, None, (abi.Tensor * 1)(), None) == 1
    for entry in ("current_stream", "command_buffer", "command_queue", "device", "dispatch_queue"):
        assert getattr(bridge.api, entry)(None) == 1, entry
        assert "out is NULL" in bridge.last_error()
    assert bridge.api.run_on_stream_queue(abi.QueueCallback(), None) == 1
    assert "fn is NULL" in bridge.last_error()


def test_python_callbacks_never_reach_the_stream_queue(bridge):
    """Only C functions go onto the queue from Python (the lock-order rule of
    the header's run_on_stream_queue): a Python callable, wrapped or cast, is
    refused before the call; a C function and a C address reach the table."""
    ran: list[object] = []
    wrapped = abi.QueueCallback(lambda ctx: ran.append(ctx))
    for callback in (wrapped, lambda ctx: ran.append(ctx), ctypes.cast(wrapped, abi.QueueCallback)):
        with pytest.raises(ctypes.ArgumentError, match="takes a C function, not a Python callable"):
            bridge.api.run_on_stream_queue(callback, None)
    with pytest.raises(ctypes.ArgumentError, match="not str"):
        bridge.api.run_on_stream_queue("free", None)
    assert ran == []
    free = ctypes.CDLL(None).free  # free(NULL) does nothing, wherever it runs
    want = 0 if bridge.has_mps_stream and torch.backends.mps.is_available() else 6
    for callback in (free, ctypes.cast(free, ctypes.c_void_p).value):
        assert bridge.api.run_on_stream_queue(callback, None) == want, bridge.last_error()


def test_null_object_pointer(bridge):
    resolve = raw_resolve(bridge)
    out = abi.Tensor()
    out.ndim = 5
    assert resolve(None, 0, ctypes.byref(out)) == 1
    assert "object is NULL" in bridge.last_error()
    assert out.ndim == 0  # zero-filled on failure


def test_count_zero_batch_is_ok_even_with_null_arrays(bridge):
    failed = ctypes.c_size_t(5)
    assert bridge.api.resolve_tensors(None, 0, None, None, ctypes.byref(failed)) == 0
    assert failed.value == 0


def test_batch_with_one_bad_element(bridge):
    good = torch.arange(6.0).reshape(2, 3)
    objs = (ctypes.py_object * 3)(good, "bad", good)
    out = (abi.Tensor * 3)()
    out[2].ndim = 9
    failed = ctypes.c_size_t(99)
    status = bridge.api.resolve_tensors(objs, 3, None, out, ctypes.byref(failed))
    assert status == 2 and failed.value == 1
    assert out[0].numel == 6
    assert out[1].ndim == 0 and out[2].ndim == 0  # the rest is zero-filled
    assert "tensor 1 of 3" in bridge.last_error() and "str" in bridge.last_error()


def test_resolve_without_the_gil_is_refused(bridge):
    # CFUNCTYPE releases the GIL around the call, as a careless C caller would.
    fn = ctypes.CFUNCTYPE(abi.Status, ctypes.py_object, ctypes.c_uint32, ctypes.POINTER(abi.Tensor))
    resolve = fn(ctypes.cast(bridge.api.resolve_tensor, ctypes.c_void_p).value)
    out = abi.Tensor()
    out.ndim = 3
    status = resolve(torch.zeros(2), 0, ctypes.byref(out))
    assert abi.STATUS_NAMES[status] == "KESTREL_MPS_ERROR_GIL_NOT_HELD"
    assert out.ndim == 0  # zero-filled, as for every failed resolve_tensor
    assert "GIL" in bridge.last_error()


def test_resolve_while_another_thread_holds_the_gil_is_refused(bridge):
    """The GIL held by someone else is not ours: a C caller that released it
    is refused even while another Python thread runs (and holds it)."""
    import threading

    fn = ctypes.CFUNCTYPE(abi.Status, ctypes.py_object, ctypes.c_uint32, ctypes.POINTER(abi.Tensor))
    resolve = fn(ctypes.cast(bridge.api.resolve_tensor, ctypes.c_void_p).value)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(100))

    th = threading.Thread(target=spin)
    th.start()
    try:
        out = abi.Tensor()
        statuses = {resolve(torch.zeros(2), 0, ctypes.byref(out)) for _ in range(2000)}
    finally:
        stop.set()
        th.join()
    assert statuses == {8}  # KESTREL_MPS_ERROR_GIL_NOT_HELD every time, never a resolve


def test_batch_without_the_gil_leaves_out_untouched(bridge):
    fn = ctypes.CFUNCTYPE(abi.Status, ctypes.POINTER(ctypes.py_object), ctypes.c_size_t,
                          ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(abi.Tensor),
                          ctypes.POINTER(ctypes.c_size_t))
    resolve_many = fn(ctypes.cast(bridge.api.resolve_tensors, ctypes.c_void_p).value)
    objs = (ctypes.py_object * 2)(torch.zeros(1), torch.zeros(2))
    out = (abi.Tensor * 2)()
    out[0].ndim = out[1].ndim = 7
    failed = ctypes.c_size_t(9)
    assert resolve_many(objs, 2, None, out, ctypes.byref(failed)) == 8
    assert failed.value == 0 and out[0].ndim == 7 and out[1].ndim == 7
    assert "GIL" in bridge.last_error()


def test_last_error_is_thread_local(bridge):
    import threading

    failure(bridge, None)  # sets this thread's message
    mine = bridge.last_error()
    seen = []

    def other():
        seen.append(bridge.last_error())
        try:
            bridge.resolve(1.5)
        except kmte.BridgeCallError:
            seen.append(bridge.last_error())

    th = threading.Thread(target=other)
    th.start()
    th.join()
    assert seen[0] == ""  # a fresh thread has no message yet
    assert "float" in seen[1]
    assert bridge.last_error() == mine  # untouched by the other thread
