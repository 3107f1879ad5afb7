"""The stream suite's two backends behind one Runtime: the bridge, the test
consumer (consumer/launch.c) and a way onto the stream's queue.

- SimRuntime (Linux): the simulated build of the bridge over the model of
  torch's MPSStream and Metal and the libdispatch and libobjc stand-ins
  (tests/sim/include/*.h); CPU tensors stand in for MPS tensors. It also
  gives the model's instruments (counters, detectors, options, faults) to
  the tests marked `model`.
- MPSRuntime (macOS with a usable Metal device): the installed bridge over
  real torch and Metal, MPS tensors, the consumer built with clang from the
  same launch.c and metal_apple.mm.

A test body takes `rt` and `rt.device`, never the platform."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
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
ROOT = Path(__file__).resolve().parents[2]
# selftest/kestrel_selftest.h's front ends and flags
PUBLISHED, EXTENSION = 0, 1
OWN_ENCODER, WRONG_OFFSET_ZERO, WRONG_NO_END_COALESCING = 1, 2, 4
WRONG_STALE_BUFFER, WRONG_ENCODER_LEFT_OPEN, WRONG_NO_POOL = 8, 16, 32

CALLBACK = _abi.QueueCallback
# The table's run_on_stream_queue refuses Python callbacks (the deadlock of
# README's rule); this harness drives the model from Python on purpose, so
# it calls the same C entry through a prototype that lets them through.
_RUN_ON_QUEUE_RAW = ctypes.CFUNCTYPE(_abi.Status, CALLBACK, ctypes.c_void_p)
# A real libdispatch (tools/test_simulated.sh with KESTREL_SIM_LIBDISPATCH,
# or macOS) instead of the stand-in.
REAL_LIBDISPATCH = "KESTREL_SIM_DISPATCH_LIBRARY" in os.environ or sys.platform == "darwin"


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
    """What both backends give a stream test: the bridge as loaded by the
    real loader, the consumer (the self-test's launch sequence,
    selftest/launch.c; GIL held: PyDLL, and without it: CDLL), the dispatch
    library, and the tensors' device."""

    device = "cpu"

    def __init__(self, consumer: Path, dispatch: str | None) -> None:
        self.bridge = kmte.load_torch_mps_bridge()
        self.dispatch = ctypes.CDLL(dispatch)
        self.consumer = ctypes.PyDLL(str(consumer))
        self.consumer_nogil = ctypes.CDLL(str(consumer))
        _declare(self.dispatch, {
            "dispatch_sync_f": (None, [P, P, CALLBACK]),
            "dispatch_queue_create": (P, [CS, P]),
        })
        for lib in (self.consumer, self.consumer_nogil):
            _declare(lib, {
                "kst_add": (I, [I] + [ctypes.py_object] * 3 + [I, ctypes.c_int32, CS, S]),
                "kst_cycle_command_buffers": (I, [ctypes.c_long, I, ctypes.c_int32, I, CS, S]),
                "kst_kind": (I, [P]),
            })

    # ---- per test ----
    def before_test(self) -> None:
        """Called before each test."""

    def after_test(self, check: bool) -> None:
        """Called after each test: waits for the GPU; with check, fails on
        what the backend saw go wrong."""

    @property
    def default_stream(self) -> int:
        """The stream the bridge works on from this thread."""
        return self.bridge.current_stream()

    def stream_queue(self, stream: int) -> int:
        """The serial queue of `stream` (the bridge's view of it)."""
        view = self.stream_view()
        assert view.stream == stream, "only the current stream's queue is known to the bridge"
        return int(view.queue)

    def torch_op(self, commit: bool = False) -> None:
        """One op of torch's own on the stream (its coalesced encoder);
        commit: torch commits afterwards."""
        raise NotImplementedError

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

    def kind(self, handle: int) -> str:
        """What a handle is, asked of the model or of Metal: command_buffer,
        encoder, command_queue, device or other."""
        return ("other", "command_buffer", "encoder", "command_queue", "device")[self.consumer_nogil.kst_kind(handle)]

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
        if self.consumer.kst_add(EXTENSION, a, b, out, flags, sync, err, len(err)) != 0:
            raise RuntimeError(err.value.decode())

    def v1_add(self, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, flags: int = 0,
               commit: bool = True) -> None:
        err = ctypes.create_string_buffer(512)
        if self.consumer.kst_add(PUBLISHED, a, b, out, flags, int(commit), err, len(err)) != 0:
            raise RuntimeError(err.value.decode())

    def cycle_command_buffers(self, n: int, front_end: str, sync: int, leak: bool = False) -> None:
        """n fetch + commit cycles in one block on the queue (selftest/launch.c)."""
        err = ctypes.create_string_buffer(512)
        fn = self.consumer_nogil.kst_cycle_command_buffers
        if fn(n, {"published": PUBLISHED, "extension": EXTENSION}[front_end], sync, int(leak), err, len(err)) != 0:
            raise RuntimeError(err.value.decode())

    def wait(self) -> None:
        """The extension's synchronize(COMMIT_AND_WAIT): the GPU ran everything."""
        self.bridge.synchronize(wait=True)


class SimRuntime(Runtime):
    """The bridge over the simulation, the model, the stand-ins, the test
    consumers; the model's instruments for the tests marked `model`."""

    def __init__(self, build: Path) -> None:
        sim_dir = build / "tests" / "sim"
        tag = f"torch{torch.__version__.split('.')[0]}{torch.__version__.split('.')[1]}"
        library = build / "shim" / f"libkestrel_mps_torch_ext_simulated_{tag}.so"
        os.environ["KESTREL_MPS_TORCH_EXT_LIBRARY"] = str(library)
        dispatch_lib = os.environ.get("KESTREL_SIM_DISPATCH_LIBRARY", str(sim_dir / "libkestrel_sim_dispatch.so"))
        super().__init__(sim_dir / "libkestrel_sim_consumer.so", dispatch_lib)
        assert self.bridge.path == library, self.bridge.path
        self.build = build
        self.model = ctypes.CDLL(str(sim_dir / "libkestrel_sim_mps.so"))
        self.objc = ctypes.CDLL(str(sim_dir / "libkestrel_sim_objc.so"))
        self.example_v1 = ctypes.PyDLL(str(sim_dir / "libkestrel_sim_example_v1.so"))
        self.example_ext = ctypes.PyDLL(str(sim_dir / "libkestrel_sim_example_ext.so"))
        # The suite's own entries beside the self-test's (consumer/threads.c).
        _declare(self.consumer, {"launch_prepare": (I, [I] + [ctypes.py_object] * 3 + [CS, S])})
        _declare(self.consumer_nogil, {"launch_run_threads": (I, [I, I, CS, S])})
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

    # ---- per test ----
    def before_test(self) -> None:
        self.reset()

    def after_test(self, check: bool) -> None:
        self.model.kestrel_sim_mps_gpu_wait_all()
        if not check:
            return
        total, report = self.report()
        assert total == 0, f"the model recorded {total} breach(es):\n{report}"
        counts = self.objc_counts()
        assert counts["outside_pool"] == 0, counts
        assert counts["pushes"] == counts["pops"], counts
        assert counts["out_of_order_pops"] == 0 and counts["unknown_pops"] == 0, counts

    def torch_op(self, commit: bool = False) -> None:
        self.model.kestrel_sim_mps_torch_op(self.default_stream, int(commit))

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

    def stream_queue(self, stream: int) -> int:
        return int(self.model.kestrel_sim_mps_stream_queue(stream))


class MPSRuntime(Runtime):
    """The installed bridge over real torch and Metal (macOS, a usable
    device): the consumer is the self-test library the macOS wheel ships
    (selftest/launch.c and metal_apple.mm), libdispatch is libSystem's."""

    device = "mps"

    def __init__(self, build: Path) -> None:
        build.mkdir(parents=True, exist_ok=True)
        self._build = build
        super().__init__(kmte.selftest_library(), "/usr/lib/libSystem.B.dylib")
        examples = ROOT / "examples"
        self.example_v1 = ctypes.PyDLL(str(self._link("libexample_v1.dylib",
                                                      [examples / "published_consumer" / "consumer_v1.c"])))
        self.example_ext = ctypes.PyDLL(str(self._link("libexample_ext.dylib", [examples / "consumer" / "consumer.c"])))
        import torch.mps  # noqa: F401 - the stream exists before the first test

        self._scratch = torch.zeros(1024, device="mps")

    def _link(self, name: str, sources: list[Path]) -> Path:
        """A shared library of C99 sources, built with the system's clang
        against the installed header only."""
        clang = shutil.which("clang") or "clang"
        library = self._build / name
        subprocess.run([clang, "-std=c99", "-shared", "-fPIC", "-O1", "-Wall", "-Werror",
                        f"-I{kmte.include_dir()}", *map(str, sources), "-o", str(library)], check=True)
        return library

    def after_test(self, check: bool) -> None:
        torch.mps.synchronize()

    def torch_op(self, commit: bool = False) -> None:
        self._scratch.add_(1.0)  # a torch kernel on its coalesced encoder
        if commit:
            torch.mps.synchronize()
