"""The value types the bridge hands out. A module of their own because it
alone has no `from __future__ import annotations`: NamedTuple would keep
its field types as ForwardRef strings, which help() and inspect.signature()
then show."""

from typing import NamedTuple

from . import _abi

__all__ = ["TensorDescriptor", "TorchVersion"]


class TorchVersion(NamedTuple):
    """The torch release a bridge library was built against, from its table."""

    major: int
    minor: int
    patch: int


# NamedTuple and a plain class rather than dataclasses: defining two
# dataclasses took 1.8 ms of the 5 ms load budget.
class TensorDescriptor(NamedTuple):
    """A kestrel_mps_tensor, copied into Python. `buffer` is the MTLBuffer
    (MPS) or base data pointer (CPU, CUDA) as an integer, 0 for NULL."""

    buffer: int
    byte_offset: int
    nbytes: int
    numel: int
    device_type: int
    device_index: int
    dtype: tuple[int, int, int]
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    flags: int
    byte_offset_align: int = 0
    """The largest power of two, at most 256, dividing byte_offset (256 for
    offset 0): whether a kernel may take a 16-byte vector path, say."""

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def contiguous(self) -> bool:
        return bool(self.flags & _abi.TENSOR_CONTIGUOUS)

    @property
    def writable(self) -> bool:
        return bool(self.flags & _abi.TENSOR_WRITABLE)

    @staticmethod
    def from_c(t: _abi.Tensor) -> "TensorDescriptor":
        n = t.ndim
        return TensorDescriptor(
            buffer=t.buffer or 0,
            byte_offset=t.byte_offset,
            nbytes=t.nbytes,
            numel=t.numel,
            device_type=t.device_type,
            device_index=t.device_index,
            dtype=(t.dtype.code, t.dtype.bits, t.dtype.lanes),
            shape=tuple(t.shape[:n]),
            strides=tuple(t.strides[:n]),
            flags=t.flags,
            byte_offset_align=t.byte_offset_align,
        )
