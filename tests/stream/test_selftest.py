"""`python -m kestrel_mps_torch_ext selftest`'s checks (_selftest.run_checks)
over this backend: every path, case and dtype equal to torch, the report's
lines, the timing; and the deliberately broken variants reported with their
first wrong element. Over the simulation the native launch sequence is the
same selftest/launch.c as the macOS wheel's, its Metal calls the model's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import harness
from conftest import BACKEND, BUILD
from kestrel_mps_torch_ext import _selftest


@pytest.fixture(scope="module")
def stable_ops(rt: harness.Runtime) -> tuple[object, str]:
    if BACKEND == "mps":
        return _selftest._stable_ops()
    if tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 10):
        return None, "the example needs torch 2.10 or later (its TORCH_TARGET_VERSION)"
    torch.ops.load_library(str(BUILD / "tests" / "sim" / "libkestrel_sim_stable_op.so"))
    return torch.ops.kestrel_example, ""


def run(rt: harness.Runtime, stable_ops: tuple[object, str], **flags: int) -> dict:
    return _selftest.run_checks(rt.bridge, Path(rt.consumer._name), rt.device,
                                stream_ordered=BACKEND == "mps", flags=flags,
                                stable_ops=stable_ops[0], stable_why=stable_ops[1])


def test_every_path_case_and_dtype_equals_torch(rt: harness.Runtime, stable_ops) -> None:
    report = run(rt, stable_ops)
    rows = {(c["path"], c["case"], c["dtype"]): c for c in report["checks"]}
    assert len(rows) == len(_selftest.PATHS) * len(_selftest.CASES) * len(_selftest.DTYPES)
    for (path, case, dtype), c in rows.items():
        if path == "handle" and (dtype != "float32" or stable_ops[0] is None):
            assert c["status"] == "SKIP" and c["detail"], c
        else:
            assert c["status"] == "PASS", c
            assert c["elements"] == {"contiguous": 3072, "offset view": 1248, "transposed": 3072}[case]
    assert report["result"] == "PASS"
    for path in ("published", "extension"):
        t = report["timing"][path]
        assert t["launches"] == _selftest.TIMED_LAUNCHES
        assert 0 < t["bridge_ns"]["p10"] <= t["bridge_ns"]["median"] <= t["bridge_ns"]["p90"]
        assert 0 < t["metal_ns"]["median"] and t["bridge_per_metal"] > 0
    text = _selftest.format_report(report)
    assert text.count("\nPASS  ") + text.startswith("PASS") >= 12
    assert "time  published" in text and "time  extension" in text and text.endswith("result   PASS")


@pytest.mark.breaches
def test_a_wrong_offset_is_reported_at_its_first_wrong_element(rt: harness.Runtime, stable_ops) -> None:
    report = run(rt, stable_ops, published=harness.WRONG_OFFSET_ZERO)
    failed = {(c["case"], c["dtype"]): c for c in report["checks"]
              if c["path"] == "published" and c["status"] == "FAIL"}
    # Offset 0 is right for views that start at byte 0: only the offset views fail.
    assert set(failed) == {("offset view", "float32"), ("offset view", "float16")}
    for (case, dtype), c in failed.items():
        a, b, out, base = _selftest.operands(case, getattr(torch, dtype), rt.device)
        w = c["first_wrong"]
        assert w["in"] == "the kernel's output" and w["index"] == [0, 0, 0]
        assert w["expected"] == float((a + b)[0, 0, 0])  # a_base[2, 3, 0] + b_base[1, 0, 0]
        # What offset 0 reads and writes: base[3, 2, 0] from a_base[3, 2, 0] + b_base[3, 2, 0].
        a_base, b_base = a._base, b._base
        assert w["got"] == float((a_base + b_base)[3, 2, 0])
    assert report["result"] == "FAIL"
    assert "FAIL  published offset view float32 first wrong element in the kernel's output: index [0, 0, 0]" in \
        _selftest.format_report(report)


@pytest.mark.model  # on a Mac Metal refuses the commit outright (an assertion), which kills the process
@pytest.mark.breaches
def test_a_missing_end_of_encoding_is_reported(rt: harness.Runtime, stable_ops) -> None:
    report = run(rt, stable_ops, extension=harness.WRONG_ENCODER_LEFT_OPEN)
    failed = [c for c in report["checks"] if c["status"] == "FAIL"]
    assert {c["path"] for c in failed} == {"extension"} and len(failed) == 6
    for c in failed:
        w = c["first_wrong"]
        assert w["in"] == "the kernel's output" and w["index"] == [0, 0, 0] and w["got"] != w["got"]  # NaN
    assert rt.detections("commit_with_open_encoder") >= 6
