"""The macOS MPS audit, run on Linux: for each torch minor, compile the whole
shim (the Metal stream backend included) against that minor's macOS arm64
wheel's headers, then check that every torch symbol the objects need is
exported by that wheel's libtorch_cpu / libc10 / libtorch_python dylibs.

    python tools/audit_macos.py [2.9.1 2.10.0 ...] [--markdown docs/audit.md]

Compiled with clang and libc++ so that mangled names carry std::__1 as on
macOS; the remaining Darwin difference (int64_t is long long there, long
here) is removed by comparing demangled names with "long long" folded to
"long". <dispatch/dispatch.h> comes from tools/audit/include, a stand-in
marked as such. Nothing here links or runs Mach-O code.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_wheels  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MINORS = ["2.9.1", "2.10.0", "2.11.0", "2.12.1", "2.13.0", "2.14.1", "2.15.0"]
LINKED = ("libtorch_cpu.dylib", "libc10.dylib", "libtorch_python.dylib")

# Provided by the OS, the C++ runtime or the Python interpreter, not by torch.
_EXTERNAL = re.compile(
    r"^(std::|operator (new|delete)|__cxa_|__gxx_personality|_Unwind_|__stack_chk|_Py|Py|dispatch_"
    r"|typeinfo for std::|vtable for std::|__dso_handle|_GLOBAL_OFFSET_TABLE_|__tls_get_addr"
    r"|(mem|str)\w+$|v?snprintf$|(f|v)?printf$|abort$|__assert|dl\w+$)"
)


def run(cmd: list[str], **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def demangle(names: list[str]) -> list[str]:
    out = run(["llvm-cxxfilt"], input="\n".join(names) + "\n").splitlines()
    return [" ".join(n.replace("long long", "long").split()) for n in out]


def compile_objects(torch_root: Path, build: Path) -> list[Path]:
    run(["cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
         f"-DKESTREL_TORCH_ROOT={torch_root}", "-DKESTREL_STREAM_BACKEND=mps",
         "-DCMAKE_C_COMPILER=clang", "-DCMAKE_CXX_COMPILER=clang++",
         f"-DCMAKE_CXX_FLAGS=-stdlib=libc++ -isystem {ROOT / 'tools' / 'audit' / 'include'}",
         f"-DPython_EXECUTABLE={sys.executable}"])
    run(["cmake", "--build", str(build)])
    return sorted(build.glob("shim/CMakeFiles/kestrel_shim.dir/*.o"))


def needed_symbols(objects: list[Path]) -> dict[str, str]:
    """demangled -> mangled, for every undefined symbol that torch must supply."""
    def names(*flags: str) -> set[str]:
        return {line.split()[-1] for o in objects for line in run(["llvm-nm", *flags, str(o)]).splitlines() if line.strip()}

    mangled = sorted(names("-u") - names("--defined-only"))  # references between our own objects are not torch's
    return {d: m for d, m in zip(demangle(mangled), mangled) if not _EXTERNAL.match(d)}


def exported_symbols(torch_root: Path) -> set[str]:
    names: list[str] = []
    for lib in LINKED:
        for line in run(["llvm-nm", "-gU", "--defined-only", str(torch_root / "lib" / lib)]).splitlines():
            name = line.split()[-1]
            names.append(name[1:] if name.startswith("_") else name)  # Mach-O's extra underscore
    return set(demangle(names))


def audit(version: str) -> dict:
    start = time.monotonic()
    torch_root = torch_wheels.torch_root(version, torch_wheels.MACOS_PLATFORMS)
    row: dict = {"version": version, "wheel": torch_root.parent.name}
    try:
        objects = compile_objects(torch_root, ROOT / "build" / "audit" / f"torch{version}")
    except subprocess.CalledProcessError as e:
        errors = [l for l in (e.stdout + e.stderr).splitlines() if "error" in l][:5]
        return row | {"compiled": False, "ok": False, "errors": errors}
    needed = needed_symbols(objects)
    exported = exported_symbols(torch_root)
    missing = sorted(d for d in needed if d not in exported)
    return row | {"compiled": True, "objects": len(objects), "needed": sorted(needed), "missing": missing,
                  "ok": not missing, "seconds": round(time.monotonic() - start, 1)}


def markdown(rows: list[dict]) -> str:
    lines = ["| torch | macOS arm64 wheel | shim + Metal backend compiled | torch symbols needed | all exported by the dylibs | missing |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['version']} | `{r['wheel']}` | {'yes' if r['compiled'] else 'NO'} | "
                     f"{len(r.get('needed', []))} | {'yes' if r['ok'] else 'NO'} | "
                     f"{', '.join(r.get('missing', []) or r.get('errors', [])) or '-'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("versions", nargs="*", default=MINORS)
    parser.add_argument("--symbols", action="store_true", help="list every needed symbol")
    args = parser.parse_args()
    rows = []
    for v in args.versions:
        row = audit(v)
        rows.append(row)
        status = "OK" if row["ok"] else "FAIL"
        print(f"torch {v}: {status} ({len(row.get('needed', []))} torch symbols, {row.get('seconds', '?')} s)", flush=True)
        for m in row.get("missing", []):
            print(f"  MISSING in torch {v}'s dylibs: {m}")
        for e in row.get("errors", []):
            print(f"  COMPILE ERROR for torch {v}: {e}")
        if args.symbols:
            for s in row.get("needed", []):
                print(f"    needs {s}")
    print()
    print(markdown(rows))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
