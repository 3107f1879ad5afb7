"""Many threads on one stream, through the real backend: C threads without
the GIL and Python threads with it, both front ends and both encoders, while
a model "torch" thread runs blocks of its own on the queue. Each run is a
child process whose timeout is the deadlock watchdog."""

from __future__ import annotations

import json

import pytest

# Every test here drives the model (its "torch" thread, latency, creation delay).
pytestmark = pytest.mark.model

THREADS_BODY = """
import json, threading
C_THREADS, PY_THREADS, LAUNCHES = {c_threads}, {py_threads}, {launches}
stream = rt.default_stream
rt.set_option(harness.GPU_LATENCY_US, 50)

def operands(k):
    # Views with non-zero byte offsets and strides, a different shape per thread.
    base = torch.arange(4.0 * (k + 8) * 3).reshape(4, k + 8, 3)
    return base[1:, 2:, 1], torch.full((3, k + 6), float(k)), torch.zeros(3, k + 6)

tensors = [operands(k) for k in range(C_THREADS + PY_THREADS)]
err = harness.ctypes.create_string_buffer(256)
for slot in range(C_THREADS):
    assert rt.consumer.launch_prepare(slot, *tensors[slot], err, len(err)) == 0, err.value

failures, errors = [0], []
def c_threads():
    failures[0] += rt.consumer_nogil.launch_run_threads(C_THREADS, LAUNCHES, err, len(err))

def py_thread(k):
    a, b, out = tensors[C_THREADS + k]
    try:
        for i in range(LAUNCHES):
            flags = harness.OWN_ENCODER if (i // 2) % 2 else 0
            if i % 2 == 0:
                rt.ext_add(a, b, out, flags=flags, sync=1 if i % 16 == 0 else 0)
            else:
                rt.v1_add(a, b, out, flags=flags, commit=i % 16 == 1)
    except Exception as e:
        errors.append(repr(e))

stop, torch_ops = threading.Event(), [0]
def torch_thread():  # CDLL: the GIL is released while it waits for the queue
    while not stop.is_set():
        rt.model.kestrel_sim_mps_torch_op(stream, torch_ops[0] % 8 == 0)
        torch_ops[0] += 1

workers = [threading.Thread(target=c_threads)] + [
    threading.Thread(target=py_thread, args=(k,)) for k in range(PY_THREADS)]
torch_worker = threading.Thread(target=torch_thread)
torch_worker.start()
for w in workers: w.start()
for w in workers: w.join()
stop.set(); torch_worker.join()
rt.wait()
rt.model.kestrel_sim_mps_gpu_wait_all()
total, report = rt.report()
print(json.dumps({{
    "failures": failures[0], "last_error": err.value.decode(), "errors": errors[:3],
    "wrong_results": [k for k, (a, b, out) in enumerate(tensors) if not torch.equal(out, a + b)],
    "kernels_run": rt.stat(stream, "kernels_run"), "kernels_lost": rt.stat(stream, "kernels_lost"),
    "torch_ops": torch_ops[0], "breaches": total, "report": report, "objc": rt.objc_counts(),
}}))
"""


def run_threads(child, c_threads: int, py_threads: int, launches: int) -> dict:
    proc = child(THREADS_BODY.format(c_threads=c_threads, py_threads=py_threads, launches=launches),
                 timeout=300)
    assert proc.returncode == 0 and "survived" in proc.stdout, (proc.returncode, proc.stderr[-3000:])
    return json.loads(proc.stdout.splitlines()[-2])


def test_eight_threads_ten_thousand_launches_each_with_torch_on_the_queue(child) -> None:
    c_threads, py_threads, launches = 6, 2, 10_000
    r = run_threads(child, c_threads, py_threads, launches)
    assert r["failures"] == 0 and r["errors"] == [], r
    assert r["breaches"] == 0, r["report"]  # no off-queue touch, no two threads in the stream
    assert r["wrong_results"] == [], r
    assert r["torch_ops"] > 0
    # Every launch's kernel and every torch op ran on the GPU, none was lost.
    assert r["kernels_run"] == (c_threads + py_threads) * launches + r["torch_ops"], r
    assert r["kernels_lost"] == 0
    objc = r["objc"]
    assert objc["pushes"] == objc["pops"] >= (c_threads + py_threads) * launches, objc
    assert objc["outside_pool"] == 0 and objc["out_of_order_pops"] == 0, objc


def test_first_use_from_many_threads_creates_one_default_stream(child) -> None:
    threads = 8
    # torch's check-then-create is unlocked (facts doc, "Lock order"); a slow
    # creation widens the window so that the race is real.
    proc = child(f"""
        import threading
        rt.set_option(harness.CREATION_DELAY_US, 20000)
        start = threading.Barrier({threads})
        def first_call():
            start.wait()
            rt.ext_handle("current_stream")
        workers = [threading.Thread(target=first_call) for _ in range({threads})]
        for w in workers: w.start()
        for w in workers: w.join()
        print(rt.model.kestrel_sim_mps_default_streams_created())
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-2] == "1"


def test_the_first_use_race_is_real_without_the_bridge(child) -> None:
    # The same threads asking the model's default stream directly: more than
    # one is created, so the test above is not vacuous.
    proc = child("""
        import threading
        rt.set_option(harness.CREATION_DELAY_US, 20000)
        start = threading.Barrier(8)
        def first_call():
            start.wait()
            rt.model.kestrel_sim_mps_default_stream()
        workers = [threading.Thread(target=first_call) for _ in range(8)]
        for w in workers: w.start()
        for w in workers: w.join()
        print(rt.model.kestrel_sim_mps_default_streams_created())
    """)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.splitlines()[-2]) > 1
