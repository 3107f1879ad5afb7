"""mutmut over the package's pure-Python code: every mutant mutmut invents,
beside tools/mutate.py's curated list (which stays the reference).

    python tools/mutate_python.py [--jobs N] [--show-survivors]

Works in build/mutmut: a clone of HEAD whose src/ holds the installed
package (its bundled libraries, headers and CMake files, as a wheel installs
them) with HEAD's Python files over it, since mutmut imports mutated code
from src/. mutmut (pinned below) goes into build/mutmut/venv, which sees the
interpreter's own packages (torch, pytest). Not part of CI; about 10 minutes
here. Prints the counts by status and module; docs/reliability.md has the
last run's. Needs what tools/test.sh installs.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from mutate import clone_at_head  # tools/mutate.py, beside this file

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutmut"
CLONE = WORK / "src-tree"
VENV = WORK / "venv"
MUTMUT = "mutmut==3.8.1"

# The pytest files that test Python code in-process. Left out: those that
# time threads or memory, build C, run shell scripts or need a GPU.
TESTS = ["test_bad_input.py", "test_binary_check.py", "test_cow.py", "test_descriptor.py", "test_ext_abi.py",
         "test_loader.py", "test_package.py", "test_probe.py", "test_properties.py", "test_published_api.py",
         "test_selftest_cli.py", "test_stream.py"]
# Tests of the installed layout itself, which src/ only imitates: one runs
# the system python as another user, one runs CMake against site-packages.
DESELECT = ["test_loader.py::test_an_unreadable_library_file",
            "test_package.py::test_find_package_works_from_the_entry_point_and_from_site_packages"]
# What the tests read from the checkout besides the package.
ALSO_COPY = ["src/KestrelMPSTorchExt.cmake", "include", "examples", "tools", "backend", "python", "selftest",
             "shim", "cmake", "CMakeLists.txt", "README.md", "docs", "bench"]


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    kw.setdefault("check", True)
    return subprocess.run(cmd, text=True, **kw)


def mutmut_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)])
    if run([str(python), "-c", "import mutmut"], check=False).returncode != 0:
        run([str(python), "-m", "pip", "install", "-q", MUTMUT])
    return python


def config() -> str:
    lines = ["[mutmut]", "source_paths=src/kestrel_mps_torch_ext", "pytest_add_cli_args_test_selection="]
    lines += [f"    tests/python/{t}" for t in TESTS]
    lines += ["pytest_add_cli_args=", "    -p", "    no:cacheprovider", "    -p", "    no:xdist"]
    for d in DESELECT:
        lines += ["    --deselect", f"    tests/python/{d}"]
    lines += ["also_copy="] + [f"    {p}" for p in ALSO_COPY]
    # torch is not fork-safe after a test run: fork each mutant from a clean server.
    lines += ["process_isolation=forkserver", ""]
    return "\n".join(lines)


def prepare() -> None:
    import kestrel_mps_torch_ext

    clone_at_head(CLONE)
    run(["git", "-C", str(CLONE), "clean", "-qfdx"])  # mutants/ of an earlier run included
    installed = Path(kestrel_mps_torch_ext.__file__).parent
    package = CLONE / "src" / "kestrel_mps_torch_ext"
    shutil.copytree(installed, package, ignore=shutil.ignore_patterns("__pycache__"))
    for source in (ROOT / "python" / "kestrel_mps_torch_ext").glob("*.py"):
        shutil.copy2(source, package / source.name)
    redirect = Path(sysconfig.get_paths()["purelib"]) / "KestrelMPSTorchExt.cmake"
    shutil.copytree(redirect, CLONE / "src" / redirect.name)
    (CLONE / "setup.cfg").write_text(config())
    # mutmut puts mutants/src first on sys.path; subprocesses of the tests
    # need it too, and it must exist before the first import looks there.
    (CLONE / "mutants" / "src").mkdir(parents=True)


def summary(python: Path) -> collections.Counter[tuple[str, str]]:
    out = run([str(python), "-m", "mutmut", "results", "--all", "true"], cwd=CLONE,
              capture_output=True).stdout
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name.startswith("kestrel_mps_torch_ext."):
            counts[(name.split(".")[1], status)] += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--show-survivors", action="store_true", help="print each survivor's diff")
    args = parser.parse_args()
    python = mutmut_python()
    prepare()
    env = {**os.environ, "PYTHONPATH": str(CLONE / "mutants" / "src"), "KESTREL_HYPOTHESIS_EXAMPLES": "300"}
    env.pop("KESTREL_MPS_TORCH_EXT_LIBRARY_DIR", None)
    done = run([str(python), "-m", "mutmut", "run", "--max-children", str(args.jobs)], cwd=CLONE, env=env,
               capture_output=True, check=False)
    if done.returncode != 0:  # its progress lines end in \r: keep the last real ones
        print(done.stdout.replace("\r", "\n")[-3000:], done.stderr[-3000:], file=sys.stderr)
        return done.returncode
    counts = summary(python)
    statuses = sorted({s for _, s in counts})
    modules = sorted({m for m, _ in counts})
    print(f"{'module':14}" + "".join(f"{s:>12}" for s in statuses))
    for m in modules:
        print(f"{m:14}" + "".join(f"{counts[(m, s)]:12}" for s in statuses))
    total = collections.Counter()
    for (_, s), n in counts.items():
        total[s] += n
    judged = total["killed"] + total["survived"] + total["timeout"] + total["suspicious"]
    print(f"\nmutmut: {sum(total.values())} mutants; {total['no tests']} reached by no in-process test; "
          f"of the other {judged}: {total['killed']} killed, {total['timeout']} timed out, "
          f"{total['suspicious']} suspicious, {total['survived']} survived "
          f"({100 * (judged - total['survived']) / max(judged, 1):.0f}% not surviving)")
    if args.show_survivors:
        for line in run([str(python), "-m", "mutmut", "results"], cwd=CLONE, capture_output=True).stdout.splitlines():
            name, _, status = line.strip().rpartition(": ")
            if status == "survived":
                print(run([str(python), "-m", "mutmut", "show", name], cwd=CLONE, capture_output=True).stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
