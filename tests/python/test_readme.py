"""Every C block of the README and docs/c-api.md compiles as a user would
paste it: C99 (and C11), -pedantic -Wall -Werror, against the installed package's headers and
Python's. <dispatch/dispatch.h> is macOS's; off macOS the simulated
runtime's stand-in declares the same functions (tests/sim/include)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import kestrel_mps_torch_ext as kmte

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("README.md", "docs/c-api.md")
BLOCKS = [(page, block) for page in PAGES
          for block in re.findall(r"```c\n(.*?)```", (ROOT / page).read_text(), re.S)]


def test_the_pages_have_c_blocks():
    assert {page for page, _ in BLOCKS} == set(PAGES)
    assert len(BLOCKS) >= 3  # the README's; the published table's and the extension's in c-api.md


@pytest.mark.parametrize("std", ["c99", "c11"])
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_c_block_compiles(tmp_path, index, std):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    assert cc, "a C compiler (tools/setup_env.sh installs g++, which brings gcc)"
    source = tmp_path / f"block{index}.c"
    page, block = BLOCKS[index]
    source.write_text(block)
    includes = [f"-I{kmte.get_include()}", f"-I{sysconfig.get_paths()['include']}"]
    if sys.platform != "darwin":
        includes.append(f"-I{ROOT / 'tests' / 'sim' / 'include'}")
    out = subprocess.run([cc, f"-std={std}", "-pedantic", "-Wall", "-Werror", "-fsyntax-only", *includes,
                          str(source)], capture_output=True, text=True)
    assert out.returncode == 0, f"{page}'s C block {index}:\n{out.stderr[-3000:]}"
