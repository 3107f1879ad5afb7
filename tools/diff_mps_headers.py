"""What changed in ATen/mps/MPSStream.h between two torch releases, for the
parts the shim depends on (shim/stream_mps.cpp), read from each release's
macOS wheel:

- every MPSStream member and at::mps function the shim calls: still
  declared, and with the same declaration;
- the SyncType enumerators and their values (the shim casts its own
  KESTREL_MPS_SYNC_* to them);
- the offset of every data member of MPSStream and sizeof(MPSStream): the
  inline queue() and commandQueue() the shim calls read private fields, so
  a moved field changes what a library built for one minor reads in
  another (computed by compiling against the headers, LP64 as on arm64).

    python tools/diff_mps_headers.py 2.14.1 2.15.0 [--selftest]
Exit status 1 when something the shim relies on changed. --selftest also
shows the check is not blind: three edits of the new header (a member's
signature, a SyncType inserted, a field before the serial queue) must each
be reported.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import torch_wheels  # noqa: E402

HEADER = Path("ATen") / "mps" / "MPSStream.h"
DEVICE_HEADER = Path("ATen") / "mps" / "MPSDevice.h"  # is_available()


def shim_calls() -> list[str]:
    """Names the shim's Metal backend calls on MPSStream or in at::mps."""
    source = (ROOT / "shim" / "stream_mps.cpp").read_text()
    members = re.findall(r"->\s*(\w+)\s*\(", source)
    functions = re.findall(r"at::mps::(\w+)\s*\(", source)
    return sorted(set(members) | set(functions))


def declaration(text: str, name: str) -> str | None:
    """The declaration of `name` (whitespace collapsed), or None."""
    m = re.search(r"^[^\n;{}]*?\b" + re.escape(name) + r"\s*\([^;{]*?\)\s*(const)?\s*[;{]", text, re.M)
    return " ".join(m.group(0).rstrip("{;").split()) if m else None


def sync_types(text: str) -> list[str]:
    body = re.search(r"enum class SyncType\s*{([^}]*)}", text)
    if body is None:
        return []
    lines = (re.sub(r"//.*", "", line) for line in body.group(1).splitlines())
    names = [n.strip() for line in lines for n in line.split(",") if n.strip()]
    return [f"{name}={value}" for value, name in enumerate(names)]  # no explicit values in any minor


def data_members(text: str) -> list[str]:
    body = text[text.index("class TORCH_API MPSStream"):]
    body = body[:body.index("\n};")]
    found = re.findall(r"^[ \t]+(?!return\b)\w[\w:<>*, ]*?[ *](_\w+)(?:\s*=[^;]*)?;", body, re.M)
    return list(dict.fromkeys(found))


def layout(torch_root: Path, overlay: Path | None = None) -> list[str]:
    """'name +offset' for every data member, and sizeof, compiled for LP64
    with this machine's libstdc++: exact up to the first std:: member
    (macOS's libc++ sizes std::mutex differently: 192 bytes in 2.15, not
    176), which comes after every field the shim reads."""
    text = ((overlay or torch_root / "include") / HEADER).read_text()
    names = data_members(text)
    lines = "\n".join(f'  std::printf("{n} +%zu\\n", offsetof(at::mps::MPSStream, {n}));' for n in names)
    # Everything MPSStream.h includes comes first, so that only its own text
    # sees private made public (#pragma once keeps the rest out).
    plain = re.sub(r"#ifdef __OBJC__.*?#else", "", text, flags=re.S)  # the C++ view of the header
    includes = "".join(f"#include {i}\n" for i in re.findall(r"^#include ([<\"][^>\"]+[>\"])", plain, re.M))
    program = (f"#include <cstddef>\n#include <cstdio>\n{includes}#define private public\n"
               "#include <ATen/mps/MPSStream.h>\n"
               f"int main() {{\n{lines}\n  std::printf(\"sizeof %zu\\n\", sizeof(at::mps::MPSStream));\n}}\n")
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "layout.cpp", Path(tmp) / "layout"
        src.write_text(program)
        first = [f"-I{overlay}"] if overlay else []
        subprocess.run(["g++", "-std=c++20", "-w", *first, f"-I{torch_root / 'include'}",
                        f"-I{ROOT / 'tests' / 'sim' / 'include'}", str(src), "-o", str(exe)], check=True)
        return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()


def compare(old: Path, new: Path, new_header: str | None = None, quiet: bool = False) -> int:
    """Prints what changed between the two torch trees (new_header: the new
    MPSStream.h's text instead of the file); returns how many changes the
    shim depends on."""
    say = (lambda *a: None) if quiet else print
    headers = [(root / "include" / HEADER).read_text() for root in (old, new)]
    if new_header is not None:
        headers[1] = new_header
    texts = [h + (root / "include" / DEVICE_HEADER).read_text() for h, root in zip(headers, (old, new))]
    changed = 0
    for name in shim_calls():
        before, after = (declaration(t, name) for t in texts)
        same = before == after and after is not None
        changed += not same
        say(f"  call {name}: {'same' if same else f'CHANGED: {before!r} -> {after!r}'}")
    before, after = (sync_types(t) for t in texts)
    changed += before != after
    say(f"  SyncType: {'same' if before == after else 'CHANGED'} ({', '.join(after)})")
    if before != after:
        say(f"    was {', '.join(before)}")
    with tempfile.TemporaryDirectory() as tmp:
        overlay = None
        if new_header is not None:
            overlay = Path(tmp)
            (overlay / HEADER).parent.mkdir(parents=True)
            (overlay / HEADER).write_text(new_header)
        before, after = layout(old), layout(new, overlay)
    fields_before = {line.split()[0]: line for line in before}
    for line in after:
        name = line.split()[0]
        was = fields_before.get(name)
        moved = was is not None and was != line and name != "sizeof"
        changed += moved
        note = "" if was == line else (" (new)" if was is None else f" (was {was.split()[1]})")
        say(f"  {'MOVED ' if moved else ''}{line}{note}")
    return changed


MUTATIONS = {
    "a member's signature": ("MTLComputeCommandEncoder_t commandEncoder();",
                             "MTLComputeCommandEncoder_t commandEncoder(bool coalesce);"),
    "a SyncType inserted": ("  COMMIT_AND_WAIT,", "  COMMIT_LAZY,\n  COMMIT_AND_WAIT,"),
    "a field before the serial queue": ("  dispatch_queue_t _serialQueue", "  void* _extra = nullptr;\n  dispatch_queue_t _serialQueue"),
}


def main(argv: list[str]) -> int:
    selftest = "--selftest" in argv
    versions = [a for a in argv if a != "--selftest"]
    if len(versions) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    old, new = (torch_wheels.torch_root(v, torch_wheels.MACOS_PLATFORMS) for v in versions)
    print(f"== MPSStream.h, torch {versions[0]} -> {versions[1]}: what shim/stream_mps.cpp depends on")
    changed = compare(old, new)
    print(f"== {changed} change(s) the shim depends on" + (": review shim/stream_mps.cpp" if changed else ""))
    if selftest:
        text = (new / "include" / HEADER).read_text()
        for what, (find, replace) in MUTATIONS.items():
            assert find in text, f"selftest: {find!r} is not in torch {versions[1]}'s MPSStream.h"
            caught = compare(old, new, text.replace(find, replace, 1), quiet=True) > changed
            print(f"self-test: {what}: {'reported' if caught else 'NOT REPORTED'}")
            changed += not caught
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
