"""Builds and drives examples/published_consumer/consumer_v1.c, a consumer of
the published 0.1.x ABI, compiled against the published header or ours."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "examples" / "published_consumer" / "consumer_v1.c"

# c10::ScalarType numbers (stable across torch 2.9 to 2.15), the oracle for
# KestrelMPSTensorView.scalar_type.
SCALAR_TYPES = {
    torch.uint8: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.int64: 4,
    torch.float16: 5, torch.float32: 6, torch.float64: 7, torch.complex32: 8,
    torch.complex64: 9, torch.complex128: 10, torch.bool: 11, torch.bfloat16: 15,
    torch.bits8: 21, torch.float8_e5m2: 23, torch.float8_e4m3fn: 24, torch.float8_e5m2fnuz: 25,
    torch.float8_e4m3fnuz: 26, torch.uint16: 27, torch.uint32: 28, torch.uint64: 29,
    torch.float8_e8m0fnu: 44, torch.float4_e2m1fn_x2: 45,
    # The sub-byte placeholders, which torch stores one element per byte.
    **{getattr(torch, f"uint{b}"): 29 + b for b in range(1, 8)},
    **{getattr(torch, f"int{b}"): 36 + b for b in range(1, 8)},
}
SUB_BYTE = [getattr(torch, f"{kind}{b}") for kind in ("uint", "int") for b in range(1, 8)]


def build(include: Path, out: Path) -> Path:
    """The consumer as a shared library: C99, -Werror, linked to libdl only."""
    cc = shutil.which("cc")
    assert cc, "a C compiler is installed by the test setup"
    subprocess.run([cc, "-std=c99", "-O1", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fPIC", "-shared",
                    f"-I{include}", str(SOURCE), "-o", str(out), "-ldl"], check=True)
    return out


class V1Consumer:
    """ctypes access to the consumer (PyDLL: the GIL stays held)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        lib = ctypes.PyDLL(str(path))
        self._describe = lib.v1_describe
        self._describe.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        self._entry = lib.v1_stream_entry
        self._entry.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
        self._launch = lib.v1_launch
        self._launch.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        self._text = ctypes.create_string_buffer(4096)

    def _out(self, rc: int) -> tuple[int, str]:
        return rc, self._text.value.decode()

    def describe(self, obj: object, null=False) -> tuple[int, str]:
        """(0, "field=value ...") or (1, message). obj=None with null=True
        passes a NULL object pointer."""
        pointer = None if null else id(obj)
        return self._out(self._describe(pointer, self._text, len(self._text)))

    def describe_fields(self, obj: object) -> dict[str, str]:
        rc, text = self.describe(obj)
        assert rc == 0, text
        return dict(re.findall(r"(\w+)=(\S*)", text))

    def stream_entry(self, name: str, stream: int | None, null_out: bool = False) -> tuple[int, str]:
        return self._out(self._entry(name.encode(), stream, int(null_out), self._text, len(self._text)))

    def launch(self) -> tuple[int, str]:
        return self._out(self._launch(self._text, len(self._text)))


def expected_fields(t: torch.Tensor) -> dict[str, str]:
    """What a correct KestrelMPSTensorView holds for t, from torch."""
    pad = [0] * (16 - t.dim())
    return {
        "mtl_buffer": hex(t.untyped_storage().data_ptr()),
        "storage_offset_bytes": str(t.storage_offset() * t.element_size()),
        "element_size_bytes": str(t.element_size()),
        "scalar_type": str(SCALAR_TYPES[t.dtype]),
        "dim": str(t.dim()),
        "numel": str(t.numel()),
        "sizes": ",".join(map(str, [*t.shape, *pad])),
        "strides": ",".join(map(str, [*t.stride(), *pad])),
    }


def check_view(consumer: V1Consumer, t: torch.Tensor) -> None:
    seen = consumer.describe_fields(t)
    want = expected_fields(t)
    seen["mtl_buffer"] = hex(int(seen["mtl_buffer"], 16)) if seen["mtl_buffer"] not in ("(nil)", "0x0") else "0x0"
    assert seen == want
