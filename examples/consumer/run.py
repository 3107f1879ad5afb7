"""Load the bridge, then let the header-only C consumer resolve real tensors
and check every field it saw against what torch reports.

usage: python run.py path/to/libconsumer.so
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


def main(consumer_path: str) -> int:
    bridge = kestrel_mps_torch_ext.load_torch_mps_bridge()
    print(f"bridge: {bridge.path.name} (built for torch "
          f"{'.'.join(map(str, bridge.built_for))}, running {torch.__version__})")
    consumer = ctypes.PyDLL(consumer_path)  # PyDLL: the GIL stays held
    describe = consumer.consumer_describe
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
            got = seen[key]
            if key == "buffer":
                got = hex(int(got, 16))
            if got != want:
                print(f"  MISMATCH {key}: consumer saw {got}, torch says {want}")
                failures += 1
    print("consumer OK: every field matches torch" if not failures else f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
