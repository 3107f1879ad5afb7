"""The loader's structural check of a library file (ELF, thin and universal
Mach-O), rule by rule: each file is built here byte by byte at the edge of
a rule, accepted there and refused one byte past it with the rule's own
message. test_loader.py covers what the loader does with the refusal;
tests/fuzz throws random bytes at the same parser."""

from __future__ import annotations

import struct

import pytest

from kestrel_mps_torch_ext._loader import BinaryCheckError, check_library_bytes

PT_LOAD, PT_NOTE = 1, 4
LC_SEGMENT_64, LC_UUID = 0x19, 0x1B


def elf(phdrs: list[tuple[int, int, int]], *, size: int | None = None, order: str = "<",
        cls: int = 2, e_type: int = 3, phentsize: int = 56, shoff: int = 0, shnum: int = 0,
        shentsize: int = 64, phoff: int | None = None) -> bytes:
    """A 64-bit ELF image: the header, then program headers (p_type,
    p_offset, p_filesz) from byte 64, zero-padded to size."""
    head = bytearray(64)
    head[:6] = b"\x7fELF" + bytes([cls, 1 if order == "<" else 2])
    struct.pack_into(order + "H", head, 16, e_type)
    struct.pack_into(order + "QQ", head, 32, (64 if phdrs else 0) if phoff is None else phoff, shoff)
    struct.pack_into(order + "HHHH", head, 54, phentsize, len(phdrs), shentsize, shnum)
    table = b"".join(struct.pack(order + "IIQQQQ", t, 5, off, 0, 0, n).ljust(phentsize, b"\0")
                     for t, off, n in phdrs)
    image = bytes(head) + table
    return image.ljust(size if size is not None else len(image), b"\0")


def macho(commands: list[bytes], *, size: int | None = None, ncmds: int | None = None,
          sizeofcmds: int | None = None, magic: int = 0xFEEDFACF) -> bytes:
    body = b"".join(commands)
    header = struct.pack("<IiiIIIII", magic, 0x0100000C, 0, 6, len(commands) if ncmds is None else ncmds,
                         len(body) if sizeofcmds is None else sizeofcmds, 0, 0)
    image = header + body
    return image.ljust(size if size is not None else len(image), b"\0")


def segment(fileoff: int, filesize: int, cmdsize: int = 72) -> bytes:
    return struct.pack("<II16sQQQQ", LC_SEGMENT_64, cmdsize, b"__TEXT", 0, 0, fileoff, filesize).ljust(cmdsize, b"\0")


def uuid_command() -> bytes:
    return struct.pack("<II16s", LC_UUID, 24, b"\1" * 16)


def universal(slices: list[bytes], *, nfat: int | None = None, sizes: list[int] | None = None,
              offsets: list[int] | None = None) -> bytes:
    """A universal file: its big-endian header, then each slice 16-byte aligned."""
    count = len(slices) if nfat is None else nfat
    at = (8 + 20 * max(count, len(slices)) + 15) // 16 * 16
    arches, body = b"", b""
    for i, s in enumerate(slices):
        size = len(s) if sizes is None else sizes[i]
        offset = at + len(body) if offsets is None else offsets[i]
        arches += struct.pack(">iiIII", 0x0100000C, 0, offset, size, 4)
        body += s.ljust((len(s) + 15) // 16 * 16, b"\0")
    head = struct.pack(">II", 0xCAFEBABE, count) + arches
    return head.ljust(at, b"\0") + body


def refused(data: bytes, message: str) -> None:
    with pytest.raises(BinaryCheckError) as e:
        check_library_bytes(data)
    assert str(e.value) == message


# ---- ELF ----

def test_an_elf_library_whose_segments_end_at_the_last_byte_is_accepted():
    check_library_bytes(elf([(PT_LOAD, 0, 200)], size=200))
    check_library_bytes(elf([(PT_LOAD, 0, 120), (PT_LOAD, 120, 80)], size=200))
    check_library_bytes(elf([(PT_LOAD, 0, 200)], size=200, order=">"))  # big-endian


@pytest.mark.parametrize("order", ["<", ">"])
def test_an_elf_segment_one_byte_past_the_end_is_refused(order):
    refused(elf([(PT_LOAD, 0, 201)], size=200, order=order), "an ELF segment lies past the end of the file")
    # The second program header is read where the first one's size says.
    refused(elf([(PT_LOAD, 0, 120), (PT_LOAD, 120, 81)], size=200, order=order),
            "an ELF segment lies past the end of the file")
    refused(elf([(PT_LOAD, 0, 120), (PT_LOAD, 120, 81)], size=200, order=order, phentsize=64),
            "an ELF segment lies past the end of the file")


def test_only_loadable_elf_segments_must_lie_in_the_file():
    # The loader maps PT_LOAD segments only; a note's offset is not read.
    check_library_bytes(elf([(PT_LOAD, 0, 200), (PT_NOTE, 150, 10_000)], size=200))


def test_the_elf_header_rules():
    refused(elf([(PT_LOAD, 0, 63)])[:63], "ELF header truncated")
    refused(elf([(PT_LOAD, 0, 200)], size=200, cls=1), "not a 64-bit ELF file")
    refused(elf([(PT_LOAD, 0, 200)], size=200, e_type=2), "ELF file is not a shared object")
    refused(elf([], size=200), "ELF file has no program headers")
    refused(elf([(PT_LOAD, 0, 200)], size=200, phentsize=55), "ELF file has no program headers")


def test_elf_header_tables_must_end_inside_the_file():
    # Program headers: 64 + 56 bytes, in a file of 119 and of 120.
    refused(elf([(PT_LOAD, 0, 100)])[:119], "ELF program headers lie past the end of the file")
    check_library_bytes(elf([(PT_LOAD, 0, 120)], size=120))
    # Section headers: 2 x 64 bytes from offset 72, in a file of 199 and 200.
    refused(elf([(PT_LOAD, 0, 199)], size=199, shoff=72, shnum=2),
            "ELF section headers lie past the end of the file")
    check_library_bytes(elf([(PT_LOAD, 0, 200)], size=200, shoff=72, shnum=2))
    refused(elf([(PT_LOAD, 0, 200)], size=200, shoff=72, shnum=2, shentsize=65),
            "ELF section headers lie past the end of the file")


def test_elf_offsets_and_sizes_are_unsigned():
    # Read as signed, each of these would be negative and pass its check.
    refused(elf([(PT_LOAD, 0, 2**64 - 1)], size=200), "an ELF segment lies past the end of the file")
    refused(elf([(PT_LOAD, 0, 200)], size=200, phoff=2**64 - 64), "ELF program headers lie past the end of the file")
    refused(elf([(PT_LOAD, 0, 200)], phentsize=0xFFFF)[:200], "ELF program headers lie past the end of the file")


def test_a_bare_elf_header_is_read_not_called_truncated():
    refused(elf([], size=64), "ELF file has no program headers")


# ---- Mach-O, thin ----

def test_a_macho_library_whose_segment_ends_at_the_last_byte_is_accepted():
    check_library_bytes(macho([segment(0, 4096)], size=4096))
    check_library_bytes(macho([uuid_command(), segment(0, 2048), segment(2048, 2048)], size=4096))


def test_a_macho_segment_one_byte_past_the_end_is_refused():
    refused(macho([segment(0, 4097)], size=4096), "a Mach-O segment lies past the end of the file")
    refused(macho([uuid_command(), segment(0, 2048), segment(2048, 2049)], size=4096),
            "a Mach-O segment lies past the end of the file")


def test_only_macho_segments_are_read_for_file_ranges():
    # An LC_UUID's bytes are not offsets: 16 bytes of 0x01 would point far away.
    check_library_bytes(macho([uuid_command(), segment(0, 200)], size=200))


def test_the_macho_header_rules():
    refused(b"\xcf\xfa\xed\xfe", "Mach-O header truncated")
    refused(macho([])[:31], "Mach-O header truncated")
    check_library_bytes(macho([]))  # 32 bytes, no commands: nothing past the end
    refused(macho([segment(0, 104)], magic=0xFEEDFACE), "not an ELF or Mach-O file")  # 32-bit
    refused(macho([segment(0, 104)], sizeofcmds=73), "Mach-O load commands lie past the end of the file")
    check_library_bytes(macho([segment(0, 104)], sizeofcmds=72))


def test_macho_load_commands_must_lie_in_the_file_and_be_whole():
    refused(macho([segment(0, 104)], ncmds=2, size=111), "Mach-O load command truncated")
    refused(macho([segment(0, 112)], ncmds=2, size=112), "Mach-O load command truncated")
    # The second command: 8 bytes of header that say it is 7 bytes long.
    refused(macho([segment(0, 112), struct.pack("<II", LC_UUID, 7)], size=112), "Mach-O load command truncated")
    refused(macho([uuid_command()], sizeofcmds=0)[:55], "Mach-O load command truncated")
    check_library_bytes(macho([segment(0, 112), struct.pack("<II", LC_UUID, 8)], size=112))
    refused(macho([segment(0, 103, cmdsize=71)], size=103), "Mach-O segment command truncated")


# ---- Mach-O, universal ----

def test_a_universal_library_with_whole_slices_is_accepted():
    check_library_bytes(universal([macho([segment(0, 256)], size=256), macho([segment(0, 512)], size=512)]))


def test_a_slice_is_checked_against_its_own_end_not_the_files():
    # The second slice's segment fits the file but not the slice.
    inner = macho([segment(0, 256)], size=256)
    refused(universal([inner, inner], sizes=[256, 255]), "a Mach-O segment lies past the end of the file")
    # The first slice's segment reaches into the second slice.
    refused(universal([macho([segment(0, 257)], size=256), inner]),
            "a Mach-O segment lies past the end of the file")


def test_macho_and_universal_offsets_and_sizes_are_unsigned():
    refused(macho([segment(0, 2**64 - 1)], size=200), "a Mach-O segment lies past the end of the file")
    refused(universal([macho([segment(0, 64)], size=64)], offsets=[2**32 - 16], sizes=[32]),
            "a universal binary slice lies past the end of the file")


def test_a_slice_shorter_than_a_header_is_truncated():
    # Its start is past byte 32, so only end - start tells.
    refused(universal([macho([])[:16]]), "Mach-O header truncated")


def test_a_universal_header_may_end_at_the_last_byte():
    # 8 + 20 bytes; its one slice is those 28 bytes, too short for a Mach-O header.
    refused(struct.pack(">II", 0xCAFEBABE, 1) + struct.pack(">iiIII", 0, 0, 0, 28, 0), "Mach-O header truncated")


def test_a_slice_must_be_a_64_bit_little_endian_macho():
    refused(universal([macho([segment(0, 104)], magic=0xFEEDFACE)]), "not a 64-bit little-endian Mach-O file")


def test_a_slice_past_the_end_of_the_file_is_refused():
    data = universal([macho([segment(0, 256)], size=256)])
    refused(data[:-1], "a universal binary slice lies past the end of the file")


def test_the_universal_header_rules():
    one = macho([segment(0, 64)], size=64)
    refused(universal([], nfat=0), "universal binary header truncated")
    refused(universal([one] * 16), "universal binary header truncated")
    check_library_bytes(universal([one] * 15))
    refused(universal([one], nfat=2)[:8 + 20 * 2 - 1], "universal binary header truncated")
    refused(struct.pack(">II", 0xCAFEBABE, 1), "universal binary header truncated")  # 8 bytes


@pytest.mark.parametrize("data", [b"", b"\x7fEL", b"MZ\x90\x00" * 20, b"\xca\xfe\xba", b"\xca\xfe\xba\xbe\0\0\0"],
                         ids=["empty", "short-elf", "pe", "short-fat", "seven-byte-fat"])
def test_anything_else_is_not_a_library(data):
    refused(data, "not an ELF or Mach-O file")
