"""Fails when a GitHub workflow names a runner image GitHub has retired: a
job on one gets no runner at all and waits until it times out. The list of
retired labels is kept here, and only here.

    python tools/check_workflows.py [.github/workflows/*.yml]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# label -> when and where GitHub retired it.
RETIRED = {
    "macos-13": "2025-12-04, actions/runner-images #13046",
    "macos-13-large": "2025-12-04, actions/runner-images #13046",
    "macos-13-xlarge": "2025-12-04, actions/runner-images #13046",
    "macos-14": "2026-11-02, actions/runner-images #13518",
    "macos-14-large": "2026-11-02, actions/runner-images #13518",
    "macos-14-xlarge": "2026-11-02, actions/runner-images #13518",
}
# A label as a whole token: macos-14 but not macos-140 or macos-14-arm64-beta's prefix.
_TOKEN = re.compile(r"(?<![\w.-])(" + "|".join(sorted(map(re.escape, RETIRED), key=len, reverse=True)) + r")(?![\w.-])")


def retired_labels(text: str) -> list[tuple[int, str]]:
    """(line number, label) for every retired label outside comments."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        found += [(number, m.group(1)) for m in _TOKEN.finditer(code)]
    return found


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
    bad = 0
    for path in paths:
        for number, label in retired_labels(path.read_text()):
            print(f"{path}:{number}: runner '{label}' was retired ({RETIRED[label]}): "
                  "use macos-15 or macos-26", file=sys.stderr)
            bad += 1
    if bad == 0:
        print(f"runner labels: none retired in {len(paths)} workflow(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
