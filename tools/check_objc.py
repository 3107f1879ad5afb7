"""Every Objective-C++ file in the tree, compiled here: clang
-fsyntax-only -fobjc-arc against the stand-in declarations of Foundation and
Metal (tests/sim/include, written from Apple's documentation, never Apple's
SDK). It proves the code parses, type-checks and obeys ARC's casting rules
against those declarations; not that it links or runs (only a Mac does).

    python tools/check_objc.py [FILE.mm ...]   default: every tracked .mm
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDINS = ROOT / "tests" / "sim" / "include"


def objc_files() -> list[Path]:
    """Every .mm of the checkout (git's list, so a new one cannot be missed;
    the file system's where there is no git)."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.mm"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        return [ROOT / line for line in out.splitlines() if line]
    except (OSError, subprocess.CalledProcessError):
        return sorted(p for p in ROOT.rglob("*.mm") if "build" not in p.relative_to(ROOT).parts)


def compile_command(path: Path, clang: str) -> list[str]:
    return [clang, "-x", "objective-c++", "-std=c++17", "-fobjc-arc", "-fobjc-runtime=macosx",
            "-fsyntax-only", "-Wall", "-Wextra", "-Werror", f"-I{STANDINS}", f"-I{ROOT / 'include'}",
            f"-I{path.parent}", str(path)]


def main(argv: list[str]) -> int:
    clang = shutil.which("clang++") or shutil.which("clang")
    if clang is None:
        print("check_objc: clang is not installed (apt-get install clang)", file=sys.stderr)
        return 2
    files = [Path(a).resolve() for a in argv] or objc_files()
    if not files:
        print("check_objc: no .mm file found", file=sys.stderr)
        return 1
    failed = 0
    for path in files:
        proc = subprocess.run(compile_command(path, clang), capture_output=True, text=True)
        status = "ok" if proc.returncode == 0 else "FAILED"
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"check_objc: {name}: {status}")
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            failed += 1
    print(f"check_objc: {len(files) - failed} of {len(files)} Objective-C++ files compile against the stand-ins")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
