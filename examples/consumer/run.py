"""Load the bridge, then let the header-only C consumers resolve real tensors
and check every field they saw against what torch reports: the extension
consumer (examples/consumer) and, when given, the consumer written for the
published 0.1.x ABI (examples/published_consumer).

usage: python run.py path/to/libconsumer.so [path/to/libconsumer_v1.so]
"""

from __future__ import annotations

import ctypes
import re
import sys

import torch

import kestrel_mps_torch_ext


def expected(t: torch.Tensor) -> dict[str, str]:
    return {
        "buffer": hex(t.untyped_storage().data_ptr()),
        "byte_offset": str(t.storage_offset() * t.element_size()),
        "numel": str(t.numel()),
        "shape": ",".join(map(str, t.shape)),
        "strides": ",".join(map(str, t.stride())),
    }


# Field names of each consumer's text for the facts checked against torch.
FIELDS = {
    "consumer_describe": {"buffer": "buffer", "byte_offset": "byte_offset", "numel": "numel",
                          "shape": "shape", "strides": "strides"},
    "v1_describe": {"buffer": "mtl_buffer", "byte_offset": "storage_offset_bytes", "numel": "numel",
                    "shape": "sizes", "strides": "strides"},
}


def check(consumer_path: str, entry: str) -> int:
    """Failures of one consumer over the demo's tensors (0: all fields match)."""
    consumer = ctypes.PyDLL(consumer_path)  # PyDLL: the GIL stays held
    describe = getattr(consumer, entry)
    describe.argtypes = [ctypes.py_object, ctypes.c_char_p, ctypes.c_size_t]
    describe.restype = ctypes.c_int

    device = "mps" if torch.backends.mps.is_available() else "cpu"
    base = torch.arange(120, dtype=torch.float32, device=device).reshape(4, 5, 6)
    cases = {
        "contiguous": base,
        "view base[1:, ::2, 3]": base[1:, ::2, 3],
        "transpose(0, 2)": base.transpose(0, 2),
    }
    failures = 0
    text = ctypes.create_string_buffer(1024)
    for name, t in cases.items():
        status = describe(t, text, len(text))
        line = text.value.decode()
        print(f"{name:>22}: status {status}: {line}")
        if status != 0:
            failures += 1
            continue
        seen = dict(re.findall(r"(\w+)=(\S*)", line))
        for key, want in expected(t).items():
            got = seen[FIELDS[entry][key]]
            if key == "buffer":
                got = hex(int(got, 16))
            if key in ("shape", "strides"):  # the published view lists all 16 entries
                got = ",".join(got.split(",")[: t.dim()])
            if got != want:
                print(f"  MISMATCH {key}: consumer saw {got}, torch says {want}")
                failures += 1
    return failures


def main(consumer_path: str, v1_consumer_path: str | None = None) -> int:
    bridge = kestrel_mps_torch_ext.load_torch_mps_bridge()
    print(f"bridge: {bridge.path.name} (built for torch "
          f"{'.'.join(map(str, bridge.built_for))}, running {torch.__version__})")
    print("extension consumer (kestrel_mps_api.h, dlsym(\"KestrelMPS_kmte_ext_v1\")):")
    failures = check(consumer_path, "consumer_describe")
    if v1_consumer_path:
        print("published-ABI consumer (kestrel_mps_torch_ext.h, dlsym(\"KestrelMPSTorchExtAPI_v1\")()):")
        failures += check(v1_consumer_path, "v1_describe")
        launch = ctypes.CDLL(v1_consumer_path).v1_launch
        launch.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        text = ctypes.create_string_buffer(1024)
        status = launch(text, len(text))
        print(f"{'stream sequence':>22}: status {status}: {text.value.decode()}")
    print("consumers OK: every field matches torch" if not failures else f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
