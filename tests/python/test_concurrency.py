"""8 threads hammering the bridge: no crash, no wrong descriptor, and each
thread's error message is its own. KESTREL_STRESS_SECONDS sets the duration
(10 s in CI)."""

from __future__ import annotations

import ctypes
import os
import threading
import time

import pytest
import torch

import kestrel_mps_torch_ext as kmte
import kestrel_mps_torch_ext._abi as abi
from support import MPS, stream_usable

SECONDS = float(os.environ.get("KESTREL_STRESS_SECONDS", "10"))
THREADS = 8


def run_threads(worker) -> None:
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_eight_threads_resolve_and_fail_without_mixing(bridge):
    base = torch.arange(4096.0).reshape(16, 16, 16)
    tensors = [base, base.transpose(0, 2), base[::3, 1:, 2], torch.zeros(0), torch.tensor(1.0)]
    expected = [bridge.resolve(t) for t in tensors]
    deadline = time.monotonic() + SECONDS / 2
    errors: list[str] = []
    counts = [0] * THREADS

    def worker(k: int) -> None:
        marker = f"NotATensor{k}"
        bad = type(marker, (), {})()
        i = 0
        try:
            while time.monotonic() < deadline:
                j = (i + k) % len(tensors)
                if bridge.resolve(tensors[j]) != expected[j]:
                    errors.append(f"thread {k}: wrong descriptor for tensor {j}")
                try:
                    bridge.resolve(bad)
                except kmte.BridgeCallError as e:
                    if marker not in e.message or marker not in bridge.last_error():
                        errors.append(f"thread {k}: message not its own: {e.message!r}")
                i += 1
        except Exception as e:  # noqa: BLE001 - anything at all is a failure
            errors.append(f"thread {k}: {type(e).__name__}: {e}")
        counts[k] = i

    run_threads(worker)
    assert not errors, errors[:5]
    assert all(c > 0 for c in counts)


def test_eight_threads_in_parallel_c_keep_thread_local_messages(bridge):
    """Stream calls take no GIL (CFUNCTYPE releases it), so these threads run
    the C side truly in parallel; each checks the message it got back."""
    entries = ["current_stream", "command_buffer", "command_queue", "device", "dispatch_queue"]
    code = {name: number for number, name in abi.STATUS_NAMES.items()}
    # What each entry gives with a valid out pointer, from this thread (off
    # the stream's queue).
    if stream_usable(bridge):
        given = {e: (code["KESTREL_MPS_OK"], "") for e in entries}
        given["command_buffer"] = (code["KESTREL_MPS_ERROR_WRONG_QUEUE"], "off the stream's serial queue")
    elif bridge.has_mps_stream and MPS.available:
        pytest.skip(f"MPS is available but unusable here ({MPS.detail}): what the stream calls give is torch's")
    else:
        given = {e: (code["KESTREL_MPS_ERROR_MPS_UNAVAILABLE"], e + ": MPS unavailable") for e in entries}
    deadline = time.monotonic() + SECONDS / 2
    errors: list[str] = []

    def worker(k: int) -> None:
        entry = entries[k % len(entries)]
        fn = getattr(bridge.api, entry)
        out = ctypes.c_void_p()
        n = 0
        while time.monotonic() < deadline:
            status = fn(ctypes.byref(out)) if n % 2 else fn(None)
            expected_status, want = given[entry] if n % 2 else (1, entry + ": out is NULL")
            msg = bridge.api.last_error().decode()
            if status != expected_status or want not in msg:
                errors.append(f"thread {k}: status {status}, message {msg!r}")
                return
            n += 1

    run_threads(worker)
    assert not errors, errors[:5]
