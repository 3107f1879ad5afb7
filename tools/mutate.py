"""Mutation testing: how many plausible one-line bugs the suites catch.

    python tools/mutate.py [--only ID ...] [--list]

Each mutant below is one small edit with an id, the file and the behaviour
it breaks. For each, in a scratch clone of HEAD (build/mutate/src), the edit
is applied, what it touches is rebuilt incrementally, and its suites run in
order, each stopping at its first failure: a failure anywhere is a kill,
named by the suite; the edit is then reverted. Suites:
  ctest            the Catch2 tests (the header's helpers)
  py:FILES         pytest over tests/python/FILES, with the scratch package
                   and the scratch bridge library (KESTREL_MPS_TORCH_EXT_LIBRARY_DIR)
  stream:FILTER    the stream suite over the scratch simulated build (-k FILTER)
Not part of CI (it takes minutes per mutant); docs/reliability.md has the
last run's result. Needs what tools/test.sh installs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutate"
SRC = WORK / "src"

# (id, file, find (must occur once), replace, what it breaks, suites)
MUTANTS = [
    ("core-offset-elements", "shim/resolve_core.h",
     "out->byte_offset = static_cast<uint64_t>(t.impl->storage_offset()) * itemsize;",
     "out->byte_offset = static_cast<uint64_t>(t.impl->storage_offset());",
     "byte_offset in elements, not bytes", ["py:test_descriptor.py"]),
    ("core-nbytes-off-by-one", "shim/resolve_core.h",
     "out->nbytes = numel == 0 ? 0 : (last + 1) * itemsize;",
     "out->nbytes = numel == 0 ? 0 : last * itemsize;",
     "nbytes one element short", ["py:test_descriptor.py"]),
    ("core-contiguous-flag", "shim/resolve_core.h",
     "out->flags = (t.impl->is_contiguous() ? KESTREL_MPS_TENSOR_CONTIGUOUS : 0u) |",
     "out->flags = (!t.impl->is_contiguous() ? KESTREL_MPS_TENSOR_CONTIGUOUS : 0u) |",
     "the contiguous flag inverted", ["py:test_descriptor.py"]),
    ("core-align-zero-offset", "shim/resolve_core.h",
     "return lowest == 0 || lowest > 256 ? 256u : static_cast<uint32_t>(lowest);",
     "return lowest > 256 ? 256u : static_cast<uint32_t>(lowest);",
     "byte_offset_align 0 for offset 0", ["py:test_descriptor.py"]),
    ("core-device-index-first", "shim/resolve_core.h",
     "out->device_index = device.has_index() ? device.index() : 0;",
     "out->device_index = 0;",
     "every tensor reported on device 0", ["py:test_descriptor.py"]),
    ("python-gil-unchecked", "shim/resolve_python.cpp",
     "return fail(KESTREL_MPS_ERROR_GIL_NOT_HELD,",
     "if (false) return fail(KESTREL_MPS_ERROR_GIL_NOT_HELD,",
     "a caller without the GIL not refused", ["py:test_bad_input.py,test_concurrency.py"]),
    ("published-out-kept", "shim/api_published.cpp",
     "if (out != nullptr) *out = nullptr;  // cleared, so a failure never leaves a stale handle",
     "(void)out;",
     "a failing published handle entry leaves *out", ["py:test_stream.py"]),
    ("ext-cap-align-missing", "shim/api_extension.cpp",
     "KESTREL_MPS_CAP_ATEN_TENSORS | KESTREL_MPS_CAP_OFFSET_ALIGN,",
     "KESTREL_MPS_CAP_ATEN_TENSORS,",
     "the table does not announce byte_offset_align", ["py:test_descriptor.py"]),
    ("ext-buffer-keeps-coalescing", "shim/api_extension.cpp",
     "    stream::end_kernel_coalescing(stream);\n    *out = stream::command_buffer(stream);",
     "    *out = stream::command_buffer(stream);",
     "command_buffer leaves torch's encoder open", ["stream:command_buffer or launch"]),
    ("queue-off-queue-allowed", "shim/queue_discipline.h",
     "    if (stream_here() != s) {\n      return fail(KESTREL_MPS_ERROR_WRONG_QUEUE,",
     "    if (false) {\n      return fail(KESTREL_MPS_ERROR_WRONG_QUEUE,",
     "off-queue command buffer and encoder calls not refused", ["stream:queue"]),
    ("queue-reentry-allowed", "shim/queue_discipline.h",
     "    if (stream_here() == s) {\n      return fail(KESTREL_MPS_ERROR_REENTRANT,",
     "    if (false) {\n      return fail(KESTREL_MPS_ERROR_REENTRANT,",
     "run_on_stream_queue re-entered: a libdispatch trap", ["stream:reentrant"]),
    ("queue-sync-in-place-off-queue", "shim/queue_discipline.h",
     "    if (stream_here() == stream) return body();\n    return dispatch(stream, body);",
     "    return body();",
     "synchronize off the queue, racing torch's encoders", ["stream:synchronize or queue"]),
    ("header-check-size-first", "include/kestrel_mps_api.h",
     "} else if (api->struct_size < 2 * sizeof(uint32_t)) {",
     "} else if (0) {",
     "check_api reads abi_version past a tiny table", ["ctest"]),
    ("header-require-aten-bit", "include/kestrel_mps_api.h",
     "      ((api->capabilities & KESTREL_MPS_CAP_ATEN_TENSORS) == 0 ||",
     "      ((api->capabilities & KESTREL_MPS_CAP_MPS_STREAM) == 0 ||",
     "require_api tests the wrong bit for the handle entries", ["ctest"]),
    ("header-published-version", "include/kestrel_mps_api.h",
     "  } else if (api->api_version != KESTREL_MPS_TORCH_EXT_API_VERSION) {",
     "  } else if (0) {",
     "find_published_api takes a table of another api_version", ["ctest"]),
    ("loader-no-structural-check", "python/kestrel_mps_torch_ext/_loader.py",
     "    check_library_bytes(path.read_bytes())", "    path.read_bytes()",
     "a truncated library reaches dlopen", ["py:test_loader.py"]),
    ("loader-minor-fast-path", "python/kestrel_mps_torch_ext/_paths.py",
     "        return int(fast[1]), int(fast[2])", "        return int(fast[1]), int(fast[1])",
     "the torch minor misread", ["py:test_loader.py"]),
    ("loader-bad-dir-silent", "python/kestrel_mps_torch_ext/_loader.py",
     "        if not _paths.bundled_minors(directory):", "        if False:",
     "an empty KESTREL_MPS_TORCH_EXT_LIBRARY_DIR not named", ["py:test_loader.py"]),
    ("probe-floor-off-by-one", "python/kestrel_mps_torch_ext/_probe.py",
     "    if not mac or mac >= floor:", "    if not mac or mac > floor:",
     "macOS 15.0 reported below torch 2.15's floor", ["py:test_probe.py"]),
    ("probe-no-round-trip", "python/kestrel_mps_torch_ext/_probe.py",
     '    return _round_trip("mps")', '    return MPSProbe(True, True, "usable")',
     "an available but unusable device called usable", ["py:test_probe.py"]),
    ("selftest-nan-equal", "python/kestrel_mps_torch_ext/_selftest.py",
     "    same = (got == expected) | (torch.isnan(got) & torch.isnan(expected))",
     "    same = got == expected",
     "the self-test reports NaN expected as wrong", ["py:test_selftest_cli.py"]),
    ("selftest-launch-offset", "selftest/launch.c",
     "    ops->offset[k] = t[k].byte_offset;", "    ops->offset[k] = 0;",
     "the self-test's extension launch binds offset 0", ["stream:selftest or launch"]),
    ("backend-tag-prefix", "backend/kestrel_build_backend.py",
     '    return "1_" + "_".join(', '    return "_".join(',
     "a build tag that does not start with a digit",
     ["py:test_package.py::test_build_tags_name_the_minors_and_sort_as_pip_sorts_them"]),
    ("workflow-retired-14", "tools/check_workflows.py",
     '    "macos-14": "2026-11-02, actions/runner-images #13518",\n', "",
     "macos-14 no longer refused", ["py:test_scripts.py"]),
]


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def clone_at_head(dest: Path) -> None:
    """A scratch clone of HEAD at dest; one kept from an earlier run (its
    builds stay warm) is moved to HEAD."""
    if not dest.exists():
        run(["git", "clone", "-q", "--shared", str(ROOT), str(dest)], check=True)
    run(["git", "-C", str(dest), "fetch", "-q", str(ROOT), "HEAD"], check=True)
    run(["git", "-C", str(dest), "reset", "-q", "--hard", "FETCH_HEAD"], check=True)


def build(kind: str) -> Path:
    """Build (incrementally) the scratch tree's `kind`: shim, tests or sim."""
    options = {"shim": ["-DKESTREL_BUILD_SHIM=ON", "-DCMAKE_BUILD_TYPE=Release"],
               "tests": ["-DKESTREL_BUILD_SHIM=OFF", "-DKESTREL_BUILD_TESTS=ON"],
               "sim": ["-DKESTREL_SIMULATED_MPS=ON", "-DKESTREL_BUILD_TESTS=ON"]}[kind]
    out = SRC / "build" / kind
    if not (out / "build.ninja").exists():
        run(["cmake", "-S", str(SRC), "-B", str(out), "-G", "Ninja", *options,
             f"-DPython_EXECUTABLE={sys.executable}"], check=True)
    done = run(["cmake", "--build", str(out)])
    if done.returncode != 0:
        raise RuntimeError(f"build of {kind} failed:\n{done.stdout[-2000:]}")
    return out


def suite_fails(suite: str) -> bool:
    """Whether the suite fails on the scratch tree (a kill)."""
    kind, _, arg = suite.partition(":")
    env = {**os.environ, "PYTHONPATH": str(SRC / "python"), "KESTREL_HYPOTHESIS_EXAMPLES": "300",
           "KESTREL_STRESS_SECONDS": "2"}
    if kind == "ctest":
        return run(["ctest", "--stop-on-failure"], cwd=build("tests")).returncode != 0
    if kind == "py":
        env["KESTREL_MPS_TORCH_EXT_LIBRARY_DIR"] = str(build("shim") / "shim")
        files = [str(SRC / "tests" / "python" / f) for f in arg.split(",")]
        return run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *files],
                   cwd=SRC, env=env).returncode != 0
    env["KESTREL_SIM_BUILD"] = str(build("sim"))
    env["KESTREL_STREAM_BACKEND"] = "sim"
    return run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-k", arg, "."],
               cwd=SRC / "tests" / "stream", env=env).returncode != 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="mutant ids to run")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.only or m[0] in args.only]
    if args.list:
        for m in chosen:
            print(f"{m[0]:32} {m[1]:42} {m[4]}")
        return 0
    clone_at_head(SRC)
    # The package's include/ where include_dir() looks, as in a wheel.
    link = SRC / "python" / "kestrel_mps_torch_ext" / "include"
    if not link.exists():
        link.symlink_to(SRC / "include")
    # Each suite must pass on the tree as it is, or it cannot judge a mutant.
    for suite in dict.fromkeys(s for m in chosen for s in m[5]):
        if suite_fails(suite):
            print(f"the suite {suite} fails without any mutant: fix that first", file=sys.stderr)
            return 2
    results = []
    for mid, path, find, replace, breaks, suites in chosen:
        file = SRC / path
        original = file.read_text()
        assert original.count(find) == 1, f"{mid}: the edit's text is not in {path} exactly once"
        file.write_text(original.replace(find, replace))
        start = time.monotonic()
        killed_by = None
        try:
            killed_by = next((s for s in suites if suite_fails(s)), None)
        except RuntimeError as e:  # a build the edit breaks is a kill by the compiler
            killed_by = f"build ({str(e).splitlines()[0]})"
        finally:
            file.write_text(original)
        results.append({"id": mid, "file": path, "breaks": breaks, "killed_by": killed_by,
                        "seconds": round(time.monotonic() - start)})
        print(f"{'KILLED  ' if killed_by else 'SURVIVED'} {mid:32} {killed_by or '-':32} {breaks}", flush=True)
    killed = sum(1 for r in results if r["killed_by"])
    print(f"score: {killed} of {len(results)} killed")
    (WORK / "result.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
