"""Structural checks of a shared library before dlopen().

The dynamic loader maps a library's segments straight from the file: a
truncated file whose headers point past its end makes glibc's loader fault
with SIGBUS instead of failing. Checking that every header and segment lies
inside the file turns that crash into an exception."""

from __future__ import annotations

import struct
from pathlib import Path

__all__ = ["BinaryCheckError", "check_shared_library"]

_ELF_MAGIC = b"\x7fELF"
_MACHO_64 = 0xFEEDFACF
_FAT_MAGIC = 0xCAFEBABE
_PT_LOAD = 1
_LC_SEGMENT_64 = 0x19


class BinaryCheckError(ValueError):
    """The file is not a complete shared library for a 64-bit platform."""


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise BinaryCheckError(what)


def _check_elf(data: bytes) -> None:
    _need(len(data) >= 64, "ELF header truncated")
    _need(data[4] == 2, "not a 64-bit ELF file")
    order = "<" if data[5] == 1 else ">"
    e_type, = struct.unpack_from(order + "H", data, 16)
    _need(e_type == 3, "ELF file is not a shared object")
    phoff, shoff = struct.unpack_from(order + "QQ", data, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHH", data, 54)
    _need(phnum > 0 and phentsize >= 56, "ELF file has no program headers")
    _need(phoff + phnum * phentsize <= len(data), "ELF program headers lie past the end of the file")
    _need(shoff + shnum * shentsize <= len(data), "ELF section headers lie past the end of the file")
    for i in range(phnum):
        p_type, _flags, p_offset, _v, _p, p_filesz = struct.unpack_from(order + "IIQQQQ", data, phoff + i * phentsize)
        if p_type == _PT_LOAD:
            _need(p_offset + p_filesz <= len(data), "an ELF segment lies past the end of the file")


def _check_macho(data: bytes, start: int, end: int) -> None:
    _need(end - start >= 32, "Mach-O header truncated")
    magic, _cpu, _sub, _ftype, ncmds, sizeofcmds = struct.unpack_from("<IiiIII", data, start)
    _need(magic == _MACHO_64, "not a 64-bit little-endian Mach-O file")
    _need(start + 32 + sizeofcmds <= end, "Mach-O load commands lie past the end of the file")
    at = start + 32
    for _ in range(ncmds):
        _need(at + 8 <= end, "Mach-O load command truncated")
        cmd, cmdsize = struct.unpack_from("<II", data, at)
        _need(cmdsize >= 8 and at + cmdsize <= end, "Mach-O load command truncated")
        if cmd == _LC_SEGMENT_64:
            _need(cmdsize >= 72, "Mach-O segment command truncated")
            fileoff, filesize = struct.unpack_from("<QQ", data, at + 40)
            _need(start + fileoff + filesize <= end, "a Mach-O segment lies past the end of the file")
        at += cmdsize


def check_shared_library(path: Path) -> None:
    """Raise BinaryCheckError unless path holds a structurally complete ELF or
    Mach-O (thin or universal) shared library. Reads the file once."""
    data = path.read_bytes()
    if data[:4] == _ELF_MAGIC:
        _check_elf(data)
    elif len(data) >= 8 and struct.unpack_from(">I", data)[0] == _FAT_MAGIC:
        nfat, = struct.unpack_from(">I", data, 4)
        _need(0 < nfat < 16 and 8 + 20 * nfat <= len(data), "universal binary header truncated")
        for i in range(nfat):
            _cpu, _sub, offset, size, _align = struct.unpack_from(">iiIII", data, 8 + 20 * i)
            _need(offset + size <= len(data), "a universal binary slice lies past the end of the file")
            _check_macho(data, offset, offset + size)
    elif len(data) >= 4 and struct.unpack_from("<I", data)[0] == _MACHO_64:
        _check_macho(data, 0, len(data))
    else:
        raise BinaryCheckError("not an ELF or Mach-O file")
