"""Our header against the published 0.1.x header, proved with the compiler:
the same struct sizes, field offsets, sizes and types, macro values and
function types, in C and in C++ (the published wheel is fetched from PyPI
once and cached; only an offline machine skips, saying so)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import kestrel_mps_torch_ext as kmte
from support import STANDARDS, compiler, published_include_dir

ROOT = Path(__file__).resolve().parents[2]

FINGERPRINT = ROOT / "tests" / "abi" / "fingerprint.c"


@pytest.fixture(scope="module")
def published_include() -> Path:
    try:
        return published_include_dir()
    except RuntimeError as e:
        pytest.skip(f"offline: the published wheel is needed to compare with it ({e})")


def fingerprint(include: Path, lang: str, std: str, tmp: Path) -> str:
    exe = tmp / f"fp-{lang}-{std.lstrip('-')}-{include.parent.name}"
    subprocess.run([compiler(lang), "-x", lang, std, "-Wall", "-Wextra", "-Werror", f"-I{include}",
                    str(FINGERPRINT), "-o", str(exe)], check=True)
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("lang, std", [(l, s) for l, ss in STANDARDS.items() for s in ss])
def test_every_layout_macro_and_type_equals_the_published(published_include, lang, std, tmp_path):
    ours = Path(kmte.get_include())
    assert (ours / "kestrel_mps_torch_ext.h").is_file()
    theirs = fingerprint(published_include, lang, std, tmp_path)
    mine = fingerprint(ours, lang, std, tmp_path)
    assert theirs.count("\n") == 31  # every line of the fingerprint printed
    assert mine == theirs
    if lang == "c++":
        assert "type (C)" not in mine


def published_prototypes(include: Path) -> list[str]:
    """The published function declarations, read from the published header."""
    text = (include / "kestrel_mps_torch_ext.h").read_text()
    found = re.findall(r"const[^;{}#]*?\bKestrelMPS\w+\s*\([^;{}]*?\)\s*KESTREL_MPS_TORCH_EXT_NOEXCEPT\s*;", text)
    assert len(found) == 8
    return found


@pytest.mark.parametrize("lang, std", [("c", "-std=c99"), ("c", "-std=c11"), ("c++", "-std=c++17")])
def test_published_prototypes_redeclare_ours_without_conflict(published_include, lang, std, tmp_path):
    """Each published declaration, repeated after our header: a different
    function type (or noexcept in C++) is a compile error."""
    noexcept = "noexcept" if lang == "c++" else ""
    source = tmp_path / ("redeclare.c" if lang == "c" else "redeclare.cpp")
    source.write_text(
        '#include "kestrel_mps_torch_ext.h"\n'
        f"#define KESTREL_MPS_TORCH_EXT_NOEXCEPT {noexcept}\n"
        + ('extern "C" {\n' if lang == "c++" else "")
        + "\n".join(published_prototypes(published_include))
        + ("\n}\n" if lang == "c++" else "\n")
    )
    subprocess.run([compiler(lang), std, "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only",
                    f"-I{kmte.get_include()}", str(source)], check=True)


def test_a_changed_type_would_be_caught(published_include, tmp_path):
    """The redeclaration check is not vacuous: one changed parameter type fails."""
    wrong = published_prototypes(published_include)[0].replace("(void)", "(int)", 1)
    assert "(int)" in wrong
    source = tmp_path / "wrong.c"
    source.write_text('#include "kestrel_mps_torch_ext.h"\n#define KESTREL_MPS_TORCH_EXT_NOEXCEPT\n' + wrong + "\n")
    done = subprocess.run([compiler("c"), "-std=c11", "-fsyntax-only", f"-I{kmte.get_include()}", str(source)],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "conflicting types" in done.stderr
