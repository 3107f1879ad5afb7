"""The published kestrel-mps-torch-ext wheel (0.1.2, macOS arm64), fetched
with pip and cached outside the repository, for the tests that compare our
ABI with it. Only its header is read; nothing of it is run or copied.

    python tools/published_wheel.py     # prints the header directory
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

VERSION = "0.1.2"
CACHE = Path(os.environ.get("KESTREL_CACHE", Path.home() / ".cache" / "kestrel")) / "published"
HEADER = "kestrel_mps_torch_ext/include/kestrel_mps_torch_ext.h"


def include_dir() -> Path:
    """Directory holding the published kestrel_mps_torch_ext.h. Raises
    RuntimeError with pip's reason when the wheel cannot be fetched."""
    out = CACHE / VERSION
    header = out / HEADER
    if header.is_file():
        return header.parent
    wheels = CACHE / "wheels"
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--platform", "macosx_13_0_arm64", "--python-version", "3.12", "-d", str(wheels),
           f"kestrel-mps-torch-ext=={VERSION}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(wheels.glob(f"kestrel_mps_torch_ext-{VERSION}-*.whl"))
    if done.returncode != 0 or not found:
        lines = [l for l in done.stderr.splitlines() if l.strip() and "WARNING" not in l]
        raise RuntimeError(f"pip could not fetch kestrel-mps-torch-ext=={VERSION}: "
                           f"{lines[-1] if lines else 'no wheel'}")
    with zipfile.ZipFile(found[-1]) as z:
        z.extract(HEADER, out)
    return header.parent


if __name__ == "__main__":
    print(include_dir())
