"""Fuzzes the loader's structural check of library files
(kestrel_mps_torch_ext._loader.check_library_bytes), the one parser here
that reads bytes the user's disk hands it: any exception but the loader's
own BinaryCheckError is a failure, and so is an input that takes over 1 s.
Seeded from tests/fuzz/binary_corpus (an ELF shared library, a Mach-O
dylib's headers, a universal header), which libFuzzer mutates: truncates,
flips, splices.

    python tests/fuzz/fuzz_library_check.py -max_total_time=30      # CI's short run
    python tests/fuzz/fuzz_library_check.py -runs=1000000            # the long run, by hand

libFuzzer writes what it finds into its first corpus directory: a copy of
the seeds in a scratch directory, unless one is given; the seeds in the tree
stay three files.
"""

import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from kestrel_mps_torch_ext import _loader


def one_input(data: bytes) -> None:
    try:
        _loader.check_library_bytes(data)
    except _loader.BinaryCheckError:
        pass


if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(not a.startswith("-") for a in args):
        scratch = Path(tempfile.mkdtemp(prefix="kestrel-fuzz-"))
        shutil.copytree(Path(__file__).with_name("binary_corpus"), scratch, dirs_exist_ok=True)
        args.append(str(scratch))
    atheris.Setup([sys.argv[0], "-timeout=1", "-rss_limit_mb=2048", *args], one_input)
    atheris.Fuzz()
