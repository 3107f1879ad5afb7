"""What the release job would upload, checked before it does: twine's
metadata check on every file, one sdist, one wheel per CPython ABI and
platform (a second one would overwrite the first's name on PyPI, or
shadow it), each wheel tagged for a CPython ABI, and a wheel built from the
sdist with --no-build-isolation against the installed torch, as a user
without a matching wheel builds it.

    python tools/check_release.py DIST [--build-from-sdist]

Run by the workflow's release job (before publishing) and by .ci/run
(tools/test_minors.sh) on what this machine builds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path


def wheel_tags(name: str) -> tuple[str, str, str]:
    """(python, abi, platform) of a wheel file name (PEP 427; the optional
    build tag is skipped)."""
    parts = name[: -len(".whl")].split("-")
    if len(parts) not in (5, 6):
        raise ValueError(f"{name}: not a wheel file name")
    return parts[-3], parts[-2], parts[-1]


def problems(dist: Path) -> list[str]:
    """What is wrong with DIST as an upload, without running anything."""
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    found = []
    if len(sdists) != 1:
        found.append(f"expected one sdist, found {len(sdists)}: {[p.name for p in sdists]}")
    if not wheels:
        found.append("no wheel")
    seen = Counter()
    for wheel in wheels:
        python, abi, platform = wheel_tags(wheel.name)
        if not (abi.startswith("cp3") and python == abi.rstrip("t")):
            found.append(f"{wheel.name}: not tagged for one CPython ABI (python {python}, abi {abi})")
        seen[(abi, platform)] += 1
    found += [f"{count} wheels for {abi} on {platform}" for (abi, platform), count in seen.items() if count > 1]
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dist", type=Path)
    parser.add_argument("--build-from-sdist", action="store_true")
    args = parser.parse_args(argv)
    found = problems(args.dist)
    for line in found:
        print(f"check_release: {line}", file=sys.stderr)
    if found:
        return 1
    files = sorted(str(p) for p in args.dist.iterdir() if p.suffix == ".whl" or p.name.endswith(".tar.gz"))
    subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *files], check=True)
    if args.build_from_sdist:
        (sdist,) = args.dist.glob("*.tar.gz")
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps",
                            "-w", out, str(sdist)], check=True)
            (built,) = Path(out).glob("*.whl")
            print(f"check_release: built {built.name} from {sdist.name}")
    print(f"check_release: {len(files)} files ready to upload")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
