"""The extension table grows only at its end, proved with the compiler: every
field an older consumer knows has the same offset, size and type in the
previous release's header (tests/abi/header_0.2.0) and in ours; the new
entries lie past the base size, behind their capability bit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import kestrel_mps_torch_ext as kmte
from support import STANDARDS, compiler

ROOT = Path(__file__).resolve().parents[2]
FINGERPRINT = ROOT / "tests" / "abi" / "ext_fingerprint.c"
PREVIOUS = ROOT / "tests" / "abi" / "header_0.2.0"


def fingerprint(include: Path, lang: str, std: str, tmp: Path, *defines: str) -> str:
    exe = tmp / f"ext-fp-{lang}-{std.lstrip('-')}-{include.name}"
    subprocess.run([compiler(lang), "-x", lang, std, "-Wall", "-Wextra", "-Werror", *defines, f"-I{include}",
                    str(FINGERPRINT), "-o", str(exe)], check=True)
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("lang, std", [(l, s) for l, ss in STANDARDS.items() for s in ss])
def test_every_field_an_older_consumer_knows_is_unchanged(lang, std, tmp_path):
    previous = fingerprint(PREVIOUS, lang, std, tmp_path)
    current = fingerprint(Path(kmte.get_include()), lang, std, tmp_path)
    assert previous.count("\n") == 40  # every line printed
    assert current == previous


def test_new_entries_lie_past_the_base_size_behind_a_capability(bridge, tmp_path):
    source = tmp_path / "tail.c"
    source.write_text(
        '#include <stdio.h>\n#include "kestrel_mps_api.h"\n'
        "int main(void) {\n"
        '  printf("%zu %zu %zu %u %u\\n", offsetof(kestrel_mps_ext_api, resolve_aten_tensor),\n'
        "         offsetof(kestrel_mps_ext_api, resolve_aten_tensors), sizeof(kestrel_mps_ext_api),\n"
        "         KESTREL_MPS_EXT_API_BASE_SIZE, KESTREL_MPS_CAP_ATEN_TENSORS);\n"
        "  return 0;\n}\n")
    exe = tmp_path / "tail"
    subprocess.run([compiler("c"), "-std=c99", "-Wall", "-Werror", f"-I{kmte.get_include()}", str(source),
                    "-o", str(exe)], check=True)
    first, second, size, base, cap = map(int, subprocess.run([str(exe)], capture_output=True, text=True,
                                                             check=True).stdout.split())
    old_size = int(fingerprint(PREVIOUS, "c", "-std=c99", tmp_path).split("command_encoder: offset ")[1]
                   .split()[0]) + 8
    assert first == base == old_size
    assert (second, size) == (first + 8, first + 16)
    assert bridge.api.struct_size == size
    assert bridge.capabilities & cap and bridge.has_aten_tensors
