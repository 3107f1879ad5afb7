"""ctypes access to the simulated MPS runtime (tests/sim/include/*.h) and the
bridge loaded over it, for the tests in this folder."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any, Callable

import torch

import kestrel_mps_torch_ext as kmte
from kestrel_mps_torch_ext import _abi

# kestrel_sim_mps.h
COMMIT_AND_CONTINUE, STREAM_POOL, ENCODER_NEEDS_QUEUE, ASSERT_QUEUE = 0, 1, 2, 3
GPU_LATENCY_US, CREATION_DELAY_US, AVAILABLE, MEMBER_DELAY_US = 4, 5, 6, 7
MEMBERS = {
    "constructor": 0, "command_buffer": 1, "command_encoder": 2, "end_kernel_coalescing": 3,
    "synchronize": 4, "device": 5, "current_stream": 6, "default_stream": 7, "is_available": 8,
}
FAULT_C10, FAULT_STD, FAULT_NULL = 1, 2, 3
STATS = {
    "commits": 0, "waits": 1, "last_sync": 2, "sync_on_queue": 3, "sync_off_queue": 4,
    "coalesced_opened": 5, "coalesced_ended": 6, "buffers_created": 7, "kernels_run": 8,
    "kernels_lost": 9,
}
DETECT = {
    "already_encoding": 0, "committed_buffer": 1, "off_queue": 2, "concurrent": 3,
    "commit_with_open_encoder": 4, "not_an_object": 5,
}
# The extension's statuses by short name: STATUS["WRONG_QUEUE"].
STATUS = {name.replace("KESTREL_MPS_ERROR_", "").replace("KESTREL_MPS_", ""): code
          for code, name in _abi.STATUS_NAMES.items()}
# launch.c's flags
OWN_ENCODER, WRONG_OFFSET_ZERO, WRONG_NO_END_COALESCING = 1, 2, 4
WRONG_STALE_BUFFER, WRONG_ENCODER_LEFT_OPEN, WRONG_NO_POOL = 8, 16, 32

CALLBACK = _abi.QueueCallback
# The table's run_on_stream_queue refuses Python callbacks (the deadlock of
# README's rule); this harness drives the model from Python on purpose, so
# it calls the same C entry through a prototype that lets them through.
_RUN_ON_QUEUE_RAW = ctypes.CFUNCTYPE(_abi.Status, CALLBACK, ctypes.c_void_p)
# A real libdispatch (tools/test_simulated.sh with KESTREL_SIM_LIBDISPATCH)
# instead of the stand-in.
REAL_LIBDISPATCH = "KESTREL_SIM_DISPATCH_LIBRARY" in os.environ


def crashed_saying(stderr: str, text: str) -> bool:
    """Whether a trap printed libdispatch's message. The real libdispatch
    writes it to the crash log Apple's crash reporter shows, and on Linux
    nowhere: only the stand-in, which prints it, is held to the text."""
    return REAL_LIBDISPATCH or text in stderr


class ObjcCounts(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "pushes", "pops", "out_of_order_pops", "unknown_pops", "autoreleased", "outside_pool",
        "left_open_at_exit")]


StreamView = _abi.StreamView


def message(result: int | None) -> str | None:
    """A published entry's result, declared by the package as c_void_p."""
    return ctypes.string_at(result).decode() if result else None


def _declare(lib: ctypes.CDLL, signatures: dict[str, tuple[Any, list[Any]]]) -> None:
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes


P, I, I64, U64, S = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_uint64, ctypes.c_size_t
CS = ctypes.c_char_p


class Runtime:
    """The bridge over the simulation, the model, the stand-ins, the test consumers."""

    def __init__(self, build: Path) -> None:
        sim_dir = build / "tests" / "sim"
        tag = f"torch{torch.__version__.split('.')[0]}{torch.__version__.split('.')[1]}"
        library = build / "shim" / f"libkestrel_mps_torch_ext_simulated_{tag}.so"
        os.environ["KESTREL_MPS_TORCH_EXT_LIBRARY"] = str(library)
        self.bridge = kmte.load_torch_mps_bridge()
        assert self.bridge.path == library, self.bridge.path
        self.model = ctypes.CDLL(str(sim_dir / "libkestrel_sim_mps.so"))
        self.objc = ctypes.CDLL(str(sim_dir / "libkestrel_sim_objc.so"))
        dispatch_lib = os.environ.get("KESTREL_SIM_DISPATCH_LIBRARY", str(sim_dir / "libkestrel_sim_dispatch.so"))
        self.dispatch = ctypes.CDLL(dispatch_lib)
        # PyDLL: the consumers' tensor entries need the GIL held.
        self.consumer = ctypes.PyDLL(str(sim_dir / "libkestrel_sim_consumer.so"))
        self.consumer_nogil = ctypes.CDLL(str(sim_dir / "libkestrel_sim_consumer.so"))
        self.example_v1 = ctypes.PyDLL(str(sim_dir / "libkestrel_sim_example_v1.so"))
        self.example_ext = ctypes.PyDLL(str(sim_dir / "libkestrel_sim_example_ext.so"))
        _declare(self.model, {
            "kestrel_sim_mps_set_option": (None, [I, I64]),
            "kestrel_sim_mps_get_option": (I64, [I]),
            "kestrel_sim_mps_inject": (None, [I, I, I]),
            "kestrel_sim_mps_inject_gpu_error": (None, []),
            "kestrel_sim_mps_default_stream": (P, []),
            "kestrel_sim_mps_new_stream": (P, []),
            "kestrel_sim_mps_set_current_stream": (I, [P]),
            "kestrel_sim_mps_default_streams_created": (I, []),
            "kestrel_sim_mps_stream_queue": (P, [P]),
            "kestrel_sim_mps_stream_command_queue": (P, [P]),
            "kestrel_sim_mps_device": (P, []),
            "kestrel_sim_mps_stream_of": (P, [P]),
            "kestrel_sim_mps_on_queue": (I, [P]),
            "kestrel_sim_mps_stat": (I64, [P, I]),
            "kestrel_sim_mps_gpu_wait_all": (None, []),
            "kestrel_sim_mps_torch_op": (None, [P, I]),
            "kestrel_sim_is_command_buffer": (I, [P]),
            "kestrel_sim_is_encoder": (I, [P]),
            "kestrel_sim_is_command_queue": (I, [P]),
            "kestrel_sim_is_device": (I, [P]),
            "kestrel_sim_encoder_is_open": (I, [P]),
            "kestrel_sim_command_buffer_is_committed": (I, [P]),
            "kestrel_sim_command_buffer_new_encoder": (P, [P]),
            "kestrel_sim_encoder_end": (None, [P]),
            "kestrel_sim_detections": (U64, [I]),
            "kestrel_sim_detection_report": (U64, [ctypes.c_char_p, S]),
            "kestrel_sim_mps_reset": (None, []),
        })
        _declare(self.objc, {
            "kestrel_sim_objc_get_counts": (ObjcCounts, []),
            "kestrel_sim_objc_reset": (None, []),
            "kestrel_sim_objc_depth": (I, []),
        })
        _declare(self.dispatch, {
            "dispatch_sync_f": (None, [P, P, CALLBACK]),
            "dispatch_queue_create": (P, [CS, P]),
        })
        for lib in (self.consumer, self.consumer_nogil):
            _declare(lib, {
                "sim_ext_add": (I, [ctypes.py_object] * 3 + [I, ctypes.c_int32, CS, S]),
                "sim_v1_add": (I, [ctypes.py_object] * 3 + [I, I, CS, S]),
                "sim_prepare": (I, [I] + [ctypes.py_object] * 3 + [CS, S]),
                "sim_run_threads": (I, [I, I, CS, S]),
            })

    @classmethod
    def load(cls, build: Path) -> Runtime:
        return cls(build)

    # ---- the model ----
    def reset(self) -> None:
        self.model.kestrel_sim_mps_reset()
        self.objc.kestrel_sim_objc_reset()

    def report(self) -> tuple[int, str]:
        text = ctypes.create_string_buffer(8192)
        total = self.model.kestrel_sim_detection_report(text, len(text))
        return total, text.value.decode()

    def detections(self, kind: str) -> int:
        return int(self.model.kestrel_sim_detections(DETECT[kind]))

    def stat(self, stream: int, name: str) -> int:
        return int(self.model.kestrel_sim_mps_stat(stream, STATS[name]))

    def objc_counts(self) -> dict[str, int]:
        c = self.objc.kestrel_sim_objc_get_counts()
        return {name: int(getattr(c, name)) for name, _ in ObjcCounts._fields_}

    def set_option(self, option: int, value: int) -> None:
        self.model.kestrel_sim_mps_set_option(option, value)

    @property
    def default_stream(self) -> int:
        return int(self.model.kestrel_sim_mps_default_stream())

    # ---- running code on a queue ----
    def on_stream_queue(self, fn: Callable[[], None]) -> int:
        """fn() inside the extension's run_on_stream_queue; returns its status."""
        raw = _RUN_ON_QUEUE_RAW(ctypes.cast(self.bridge.api.run_on_stream_queue, ctypes.c_void_p).value)
        return self._run(lambda cb: raw(cb, None), fn)

    def in_block(self, queue: int, fn: Callable[[], None]) -> None:
        """fn() in a plain dispatch_sync_f block on `queue` (as a consumer or
        torch dispatches), not through the bridge."""
        self._run(lambda cb: self.dispatch.dispatch_sync_f(queue, None, cb), fn)

    @staticmethod
    def _run(call: Callable[[Any], Any], fn: Callable[[], None]) -> int:
        """call(callback) where the callback runs fn(); fn's exception is
        raised here (ctypes would only print it)."""
        errors: list[BaseException] = []

        def body(_: int | None) -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - re-raised below
                errors.append(e)

        status = call(CALLBACK(body))
        if errors:
            raise errors[0]
        return int(status or 0)

    # ---- the extension table, by status ----
    def ext_handle(self, entry: str) -> tuple[int, int]:
        out = ctypes.c_void_p()
        status = getattr(self.bridge.api, entry)(ctypes.byref(out))
        return int(status), out.value or 0

    # ---- the published entries ----
    def v1(self, entry: str, stream: int | None, want_out: bool = True) -> tuple[str | None, int]:
        fn = getattr(self.bridge, entry)
        if entry in ("KestrelMPSEndKernelCoalescing", "KestrelMPSCommitStream"):
            return message(fn(stream)), 0
        out = ctypes.c_void_p()
        err = fn(stream, ctypes.byref(out) if want_out else None)
        return message(err), out.value or 0

    def stream_view(self) -> StreamView:
        view = StreamView()
        err = message(self.bridge.KestrelMPSGetCurrentStreamView(ctypes.byref(view)))
        assert err is None, err
        return view

    # ---- the test consumer ----
    def ext_add(self, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, flags: int = 0,
                sync: int = 0) -> None:
        err = ctypes.create_string_buffer(512)
        if self.consumer.sim_ext_add(a, b, out, flags, sync, err, len(err)) != 0:
            raise RuntimeError(err.value.decode())

    def v1_add(self, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, flags: int = 0,
               commit: bool = True) -> None:
        err = ctypes.create_string_buffer(512)
        if self.consumer.sim_v1_add(a, b, out, flags, int(commit), err, len(err)) != 0:
            raise RuntimeError(err.value.decode())

    def wait(self) -> None:
        """The extension's synchronize(COMMIT_AND_WAIT): the GPU ran everything."""
        self.bridge.synchronize(wait=True)
