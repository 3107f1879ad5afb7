"""Whole launch sequences of a kernel library, through both front ends
(GPU work runs only after commit): results against torch on contiguous
tensors and on views with non-zero byte offsets; and the deliberately wrong
consumers, each caught (by its wrong numbers, or by the model's detectors)."""

from __future__ import annotations

import ctypes

import pytest
import torch

import harness
from kestrel_mps_torch_ext import _abi


def operands(kind: str, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    base_a = torch.arange(96, dtype=torch.float32, device=device).reshape(4, 4, 6)
    base_b = torch.linspace(-3, 5, 96, device=device).reshape(4, 4, 6)
    zeros = torch.zeros(10, 4, 6, device=device)
    if kind == "contiguous":
        return base_a.clone(), base_b.clone(), zeros[:4].clone()
    if kind == "offset views":  # storage offsets > 0, contiguous rows
        return base_a[1:3], base_b[2:], zeros[3:5]
    if kind == "transposed":
        return base_a.transpose(0, 2), base_b.transpose(0, 2), zeros[:4].reshape(6, 4, 4)
    if kind == "strided slices":
        return base_a[1:, ::2, 1::2], base_b[:3, 1:3, ::2], zeros[:3, ::2, 1::2]
    if kind == "empty":
        return base_a[:0], base_b[:0], zeros[:0]
    raise AssertionError(kind)


KINDS = ["contiguous", "offset views", "transposed", "strided slices", "empty"]
ENCODERS = {"coalesced": 0, "own encoder": harness.OWN_ENCODER}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_extension_launch_matches_torch(rt: harness.Runtime, kind: str, encoder: str) -> None:
    a, b, out = operands(kind, rt.device)
    rt.ext_add(a, b, out, flags=ENCODERS[encoder], sync=_abi.SYNC_COMMIT_AND_WAIT)
    torch.testing.assert_close(out, a + b, rtol=0, atol=0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_published_launch_matches_torch(rt: harness.Runtime, kind: str, encoder: str) -> None:
    a, b, out = operands(kind, rt.device)
    rt.v1_add(a, b, out, flags=ENCODERS[encoder], commit=True)
    rt.wait()
    torch.testing.assert_close(out, a + b, rtol=0, atol=0)


@pytest.mark.model
def test_many_launches_accumulate_before_one_commit(rt: harness.Runtime) -> None:
    a, b, _ = operands("offset views")
    outs = [torch.zeros(2, 4, 6) for _ in range(5)]
    for i, out in enumerate(outs):  # coalesced and own encoders interleaved
        rt.ext_add(a, b, out, flags=harness.OWN_ENCODER if i % 2 else 0)
    rt.wait()
    for out in outs:
        torch.testing.assert_close(out, a + b, rtol=0, atol=0)
    assert rt.stat(rt.default_stream, "kernels_run") == 5
    assert rt.stat(rt.default_stream, "commits") == 1


def test_published_example_consumer_launch_runs_whole(rt: harness.Runtime) -> None:
    """examples/published_consumer's v1_launch, its macOS path (built over
    the simulation here, for Metal on a Mac)."""
    fn = rt.example_v1.v1_launch
    fn.argtypes, fn.restype = [ctypes.c_char_p, ctypes.c_size_t], ctypes.c_int
    text = ctypes.create_string_buffer(512)
    assert fn(text, len(text)) == 0, text.value
    fields = {k: int(v, 16) for k, v in (kv.split("=") for kv in text.value.decode().split())}
    view = rt.stream_view()
    assert fields["stream"] == view.stream and fields["queue"] == view.queue
    # Borrowed handles, possibly freed once torch ended its encoder and
    # committed: compared, never asked what they are.
    assert 0 not in (fields["encoder"], fields["command_buffer"])
    assert fields["encoder"] != fields["command_buffer"]


def test_extension_example_consumer_describes_views(rt: harness.Runtime) -> None:
    fn = rt.example_ext.consumer_describe
    fn.argtypes, fn.restype = [ctypes.py_object, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_int
    t = torch.arange(60.0, device=rt.device).reshape(3, 4, 5)[1:, ::2]
    text = ctypes.create_string_buffer(512)
    assert fn(t, text, len(text)) == 0, text.value
    fields = dict(kv.split("=") for kv in text.value.decode().split())
    assert int(fields["buffer"], 16) == t.untyped_storage().data_ptr()
    assert int(fields["byte_offset"]) == t.storage_offset() * 4


# ---- deliberately wrong consumers: each one is caught ----

@pytest.mark.breaches
@pytest.mark.parametrize("front", ["extension", "published"])
def test_offset_zero_for_a_view_computes_a_wrong_result(rt: harness.Runtime, front: str) -> None:
    a, b, out = operands("offset views", rt.device)
    if front == "extension":
        rt.ext_add(a, b, out, flags=harness.WRONG_OFFSET_ZERO, sync=_abi.SYNC_COMMIT_AND_WAIT)
    else:
        rt.v1_add(a, b, out, flags=harness.WRONG_OFFSET_ZERO)
        rt.wait()
    assert not torch.equal(out, a + b)
    # Offset 0 is right only where the offset is 0: the mistake is the view's.
    a, b, out = operands("contiguous", rt.device)
    rt.ext_add(a, b, out, flags=harness.WRONG_OFFSET_ZERO, sync=_abi.SYNC_COMMIT_AND_WAIT)
    assert torch.equal(out, a + b)


@pytest.mark.model
@pytest.mark.breaches
def test_reading_before_the_wait_sees_no_result(rt: harness.Runtime) -> None:
    a, b, out = operands("contiguous")
    rt.set_option(harness.GPU_LATENCY_US, 200_000)
    rt.ext_add(a, b, out, sync=_abi.SYNC_COMMIT)  # committed, not waited for
    early = out.clone()
    rt.wait()
    assert torch.equal(early, torch.zeros_like(out))
    assert torch.equal(out, a + b)


@pytest.mark.model
@pytest.mark.breaches
@pytest.mark.parametrize("front", ["extension", "published"])
def test_own_encoder_without_ending_coalescing_is_caught(rt: harness.Runtime, front: str) -> None:
    a, b, out = operands("contiguous")
    if front == "extension":
        rt.ext_add(a, b, out, flags=harness.WRONG_NO_END_COALESCING, sync=_abi.SYNC_COMMIT_AND_WAIT)
    else:
        rt.v1_add(a, b, out, flags=harness.WRONG_NO_END_COALESCING)
        rt.wait()
    assert rt.detections("already_encoding") == 1
    assert "already encoding to this command buffer" in rt.report()[1]


@pytest.mark.model
@pytest.mark.breaches
def test_command_buffer_kept_from_an_earlier_block_is_caught(rt: harness.Runtime) -> None:
    # Without commit-and-continue (Metal capture, signposts) every commit
    # ends the buffer; a consumer that kept the first one encodes into a
    # committed buffer, and its kernel never runs.
    rt.set_option(harness.COMMIT_AND_CONTINUE, 0)
    a, b, _ = operands("contiguous")
    first, second = torch.zeros(4, 4, 6), torch.zeros(4, 4, 6)
    rt.ext_add(a, b, first, flags=harness.OWN_ENCODER | harness.WRONG_STALE_BUFFER, sync=_abi.SYNC_COMMIT)
    rt.ext_add(a, b, second, flags=harness.OWN_ENCODER | harness.WRONG_STALE_BUFFER, sync=_abi.SYNC_COMMIT)
    rt.wait()
    assert torch.equal(first, a + b)
    assert torch.equal(second, torch.zeros_like(second))
    assert rt.detections("committed_buffer") >= 1
    assert rt.stat(rt.default_stream, "kernels_lost") == 1


@pytest.mark.model
def test_a_fresh_buffer_each_block_is_right_without_commit_and_continue(rt: harness.Runtime) -> None:
    rt.set_option(harness.COMMIT_AND_CONTINUE, 0)
    a, b, _ = operands("contiguous")
    outs = [torch.zeros(4, 4, 6) for _ in range(3)]
    for out in outs:
        rt.ext_add(a, b, out, flags=harness.OWN_ENCODER, sync=_abi.SYNC_COMMIT)
    rt.wait()
    for out in outs:
        assert torch.equal(out, a + b)
    assert rt.stat(rt.default_stream, "buffers_created") >= 3


@pytest.mark.model
@pytest.mark.breaches
def test_own_encoder_left_open_at_commit_is_caught(rt: harness.Runtime) -> None:
    a, b, out = operands("contiguous")
    rt.ext_add(a, b, out, flags=harness.OWN_ENCODER | harness.WRONG_ENCODER_LEFT_OPEN,
               sync=_abi.SYNC_COMMIT_AND_WAIT)
    assert rt.detections("commit_with_open_encoder") == 1


@pytest.mark.model
@pytest.mark.breaches
def test_published_block_without_a_pool_leaks_its_encoder(rt: harness.Runtime) -> None:
    # The published entries push a pool of their own, but an encoder the
    # consumer creates in its own dispatch_sync block needs the consumer's.
    a, b, out = operands("contiguous")
    rt.v1_add(a, b, out, flags=harness.OWN_ENCODER | harness.WRONG_NO_POOL)
    rt.wait()
    assert rt.objc_counts()["outside_pool"] == 1
    assert torch.equal(out, a + b)
