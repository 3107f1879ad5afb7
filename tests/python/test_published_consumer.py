"""A consumer written against the published 0.1.x header (examples/
published_consumer/consumer_v1.c), header-only, linked to neither torch nor
the bridge, finds the getter with dlsym() after load_torch_mps_bridge() and
drives every published entry on real tensors. Built twice: against the
published wheel's own header (fetched from PyPI) and against ours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kestrel_mps_torch_ext as kmte
from support import (
    DTYPES, PUBLISHED_MPS_ONLY, fake, functional, make, meta, mkldnn, nested, published_device, published_include_dir, quantized, sparse_coo, sparse_csr, views, wrapper_subclass,
)
from published_consumer import SCALAR_TYPES, SUB_BYTE, V1Consumer, build, check_view


ON_MACOS = sys.platform == "darwin"


@pytest.fixture(scope="module", params=["published_header", "our_header"])
def consumer(request, bridge, tmp_path_factory) -> V1Consumer:
    if request.param == "published_header":
        try:
            include = published_include_dir()
        except RuntimeError as e:
            pytest.skip(f"offline: the published header comes from the published wheel ({e})")
    else:
        include = Path(kmte.get_include())
    out = tmp_path_factory.mktemp(request.param) / "libconsumer_v1.so"
    return V1Consumer(build(include, out))


@pytest.mark.skipif(ON_MACOS, reason="readelf: the ELF check; macOS has otool")
def test_consumer_links_neither_torch_nor_the_bridge(consumer):
    dynamic = subprocess.run(["readelf", "-d", str(consumer.path)], capture_output=True, text=True, check=True).stdout
    needed = [line for line in dynamic.splitlines() if "(NEEDED)" in line]
    assert needed and not any("torch" in n or "kestrel" in n or "c10" in n for n in needed)


def test_torch_tag_through_the_table(consumer):
    major, minor = torch.__version__.split(".")[:2]
    assert consumer.stream_entry("torch_tag", None) == (0, f"torch{major}{minor}")


cpu_only = pytest.mark.skipif(
    PUBLISHED_MPS_ONLY, reason="this build's published entry takes MPS tensors only, as macOS builds do "
                               "(test_mps_only_build_refuses_every_other_tensor; MPS views: the mps tests)")


def on_published_device(make):
    """make(device) on the device this build's published entry takes; a
    macOS-rule build without a usable Metal device cannot reach the check
    under test (its device check refuses every tensor first), so skip."""
    device = published_device()
    if device is None:
        pytest.skip("this build takes MPS tensors only and this machine has no usable Metal device: "
                    "the device check refuses first (test_mps_only_build_refuses_every_other_tensor)")
    return make(device)


@cpu_only
@pytest.mark.parametrize("name", list(views()))
def test_views_every_field_equals_torch(consumer, name):
    check_view(consumer, views()[name])


@cpu_only
@pytest.mark.parametrize("dtype", [*DTYPES, torch.bits8, *SUB_BYTE], ids=str)
def test_every_dtype_scalar_type_and_element_size(consumer, dtype):
    # Sub-byte dtypes included: torch stores them one element per byte
    # (element_size() 1), and the view says exactly that.
    t = make(dtype, (3, 4)) if dtype in DTYPES else torch.zeros(12, dtype=torch.uint8).view(dtype).reshape(3, 4)
    check_view(consumer, t[1:, ::2])
    assert SCALAR_TYPES[dtype] >= 0


@cpu_only
def test_parameter_and_plain_subclass_are_accepted(consumer):
    class Plain(torch.Tensor):
        pass

    check_view(consumer, torch.nn.Parameter(torch.randn(3, 2)))
    check_view(consumer, torch.randn(5, 2).as_subclass(Plain).t())


def refused(consumer: V1Consumer, obj: object, *words: str, null: bool = False) -> str:
    rc, message = consumer.describe(obj, null=null)
    assert rc == 1, message
    assert message.endswith("(out zeroed)")  # stricter than 0.1.x: no partial output
    # One prefix scheme: every published message names its entry.
    assert message.startswith("tensor_view_from_pyobject: "), message
    for w in words:
        assert w in message
    return message


def test_null_object_and_non_tensors(consumer):
    refused(consumer, None, "object is NULL", null=True)
    for obj, type_name in [(None, "NoneType"), (3, "int"), ([1.0], "list"), ("t", "str"), (torch.float32, "torch.dtype")]:
        refused(consumer, obj, type_name)


def test_isinstance_raising_gives_a_message_and_clears_the_python_error(consumer):
    class Weird:
        @property
        def __class__(self):
            raise RuntimeError("no class for you")

    message = refused(consumer, Weird(), "isinstance", "Weird")
    assert message  # 0.1.x returned "" and left the Python error set


@pytest.mark.parametrize(
    "make_view, words",
    [
        (lambda d: torch.randn(3, dtype=torch.complex64, device=d).conj(), "conjugate"),
        (lambda d: torch._neg_view(torch.randn(3, device=d)), "negative"),
        (lambda d: torch.randn(2, 3, dtype=torch.complex64, device=d).conj().t(), "conjugate"),
    ],
    ids=["conj", "neg_view", "conj_transposed"],
)
def test_conjugate_and_negative_views_are_refused(consumer, make_view, words):
    t = on_published_device(make_view)
    assert t.is_conj() or t.is_neg()
    refused(consumer, t, words)
    check_view(consumer, t.resolve_conj().resolve_neg())  # materialized, the same values resolve


@pytest.mark.parametrize(
    "factory, words",
    [(sparse_coo, "layout"), (sparse_csr, "layout"), (mkldnn, "layout"), (nested, "nested"),
     (quantized, "quantized"), (meta, "meta"), (functional, "functional"), (fake, "__torch_dispatch__"),
     (wrapper_subclass, "__torch_dispatch__")],
    ids=lambda x: getattr(x, "__name__", None),
)
def test_tensors_without_bindable_storage(consumer, factory, words):
    # A macOS-rule build refuses them by device first: none is an MPS tensor.
    refused(consumer, factory(), "expected an MPS tensor" if PUBLISHED_MPS_ONLY else words)


def test_seventeen_dims_refused_sixteen_accepted(consumer):
    refused(consumer, on_published_device(lambda d: torch.zeros((1,) * 17, device=d)), "17", "16")
    check_view(consumer, on_published_device(lambda d: torch.zeros((1,) * 16, device=d)))


@pytest.mark.skipif(not PUBLISHED_MPS_ONLY, reason="Linux builds take CPU tensors by design")
def test_mps_only_build_refuses_every_other_tensor(consumer):
    for t, device in [(torch.zeros(3), "cpu"), (torch.zeros(3, device="meta"), "meta"),
                      (torch.zeros((1,) * 17), "cpu"), (torch.randn(3, dtype=torch.complex64).conj(), "cpu")]:
        refused(consumer, t, f"expected an MPS tensor, got a {device} tensor")


@pytest.mark.skipif(PUBLISHED_MPS_ONLY, reason="the other rule: this build takes MPS tensors only")
def test_linux_build_takes_cpu_tensors(consumer):
    check_view(consumer, torch.zeros(3))


STREAM_ENTRIES = ["end_kernel_coalescing", "command_buffer", "commit_stream", "command_encoder"]


@pytest.mark.parametrize("entry", STREAM_ENTRIES)
def test_null_stream_is_refused_by_every_stream_entry(consumer, entry):
    rc, message = consumer.stream_entry(entry, None)
    assert rc == 1 and "stream is NULL" in message


@pytest.mark.parametrize("entry", ["command_buffer", "command_encoder"])
def test_null_out_is_refused_after_the_stream(consumer, entry):
    assert "stream is NULL" in consumer.stream_entry(entry, None, null_out=True)[1]
    rc, message = consumer.stream_entry(entry, 0x1000, null_out=True)
    assert rc == 1 and "out is NULL" in message
    rc, message = consumer.stream_entry("current_stream_view", None, null_out=True)
    assert rc == 1 and "out is NULL" in message


@pytest.mark.skipif(ON_MACOS, reason="off macOS only")
def test_stream_entries_say_mps_unavailable_off_macos(consumer):
    rc, message = consumer.launch()
    assert rc == 1 and message.startswith("current_stream_view:") and "MPS unavailable" in message
    assert "without the Metal stream backend" in message
    for entry in STREAM_ENTRIES:  # a non-NULL stream gets as far as the backend
        rc, message = consumer.stream_entry(entry, 0x1000)
        assert rc == 1 and "MPS unavailable" in message, entry


@cpu_only
@pytest.mark.parametrize("ndim", range(0, 9))
def test_shapes_of_every_rank_including_zero_sizes(consumer, ndim):
    g = torch.Generator().manual_seed(ndim)
    for _ in range(10):
        shape = tuple(int(x) for x in torch.randint(0, 4, (ndim,), generator=g))
        check_view(consumer, torch.randn(shape, generator=g))
