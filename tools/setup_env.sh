# Sourced by demo.sh and test.sh: installs what a fresh machine lacks.
# PYTHON: the interpreter to build and test with (default: the active
#   virtualenv's, else the project's own .venv, made on first use; a system
#   interpreter that refuses pip installs gets the .venv made from it).
# KESTREL_TORCH_SPEC: what `pip install` gets when no torch is importable
#   (default: torch 2.13.0, the CPU build on Linux; pip options allowed).
# KESTREL_BUILD_DIR: where builds go (default build/ in the checkout).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${KESTREL_BUILD_DIR:-$ROOT/build}

# apt on Linux (through sudo unless root); on macOS bring cmake, ninja and
# Catch2 yourself (brew).
apt_install() {
  local sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  echo "== apt-get install $*"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
}
if [[ $(uname) == Linux ]]; then
  need_apt=()
  command -v cmake >/dev/null || need_apt+=(cmake)
  command -v ninja >/dev/null || need_apt+=(ninja-build)
  command -v g++ >/dev/null || need_apt+=(g++)
  command -v ccache >/dev/null || need_apt+=(ccache)
  if [[ ${KESTREL_WITH_TESTS:-0} == 1 ]]; then
    [[ -f /usr/include/catch2/catch.hpp || -f /usr/include/catch2/catch_test_macros.hpp ]] || need_apt+=(catch2)
    command -v clang >/dev/null || need_apt+=(clang)
    command -v pkg-config >/dev/null || need_apt+=(pkg-config)
  fi
  if ((${#need_apt[@]})); then apt_install "${need_apt[@]}"; fi
fi
# ccache: the same translation unit is compiled by several steps of a run
# (the wheel, the tests, the example), and again by the next run; CMake
# reads these variables when it first configures a build directory. With no
# ccache, nothing changes. KESTREL_NO_CCACHE=1 turns it off.
# Paths under the checkout are hashed relative to it, so that a fresh clone
# elsewhere (CI's) hits what the last one compiled.
if [[ -z ${KESTREL_NO_CCACHE:-} ]] && command -v ccache >/dev/null; then
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
  export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
fi

# The interpreter: $PYTHON, else the active virtualenv's, else the
# project's own .venv, made once and reused. It sees the system's packages
# (an installed torch is reused, not downloaded again) and takes pip
# installs, which a stock Debian/Ubuntu python refuses outside a venv.
# An interpreter that takes pip installs as it is: a venv's, or one not
# marked externally managed (PEP 668, as Debian's and Ubuntu's are).
takes_pip() {
  "$1" -c 'import sys, sysconfig, os
sys.exit(0 if sys.prefix != sys.base_prefix or not os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")) else 1)'
}
# The project's .venv, made once from interpreter $1.
project_venv() {
  if [[ ! -x $ROOT/.venv/bin/python ]]; then
    if [[ $(uname) == Linux ]] && ! "$1" -c "import ensurepip" 2>/dev/null; then
      apt_install python3-venv  # Debian and Ubuntu split venv's pip out of python3
    fi
    echo "== a project virtualenv: $ROOT/.venv from $1 (reused next time)" >&2
    "$1" -m venv --system-site-packages "$ROOT/.venv"
  fi
  echo "$ROOT/.venv/bin/python"
}
if [[ -n ${PYTHON:-} ]]; then
  PY=$PYTHON
  # A system interpreter that refuses pip installs: the .venv is made from it.
  takes_pip "$PY" || PY=$(project_venv "$PY")
elif [[ -n ${VIRTUAL_ENV:-} ]]; then
  PY=$VIRTUAL_ENV/bin/python
else
  PY=$(project_venv python3)
fi
echo "== python: $PY"

# The default torch: on Linux x86-64 the CPU build from PyTorch's own index
# (about 200 MB; PyPI's default there is the CUDA build, about 3 GB with its
# nvidia-* wheels, of no use to a Metal project); elsewhere PyPI's.
if [[ $(uname -sm) == "Linux x86_64" ]]; then
  default_torch="torch==2.13.0+cpu --extra-index-url https://download.pytorch.org/whl/cpu"
else
  default_torch="torch==2.13.0"
fi
if [[ ${KESTREL_SETUP_PRINT:-} == 1 ]]; then  # what would be used, and stop (tests/python/test_setup_env.py)
  echo "python=$PY"
  echo "torch_spec=${KESTREL_TORCH_SPEC:-$default_torch}"
  return 0 2>/dev/null || exit 0
fi
if ! "$PY" -c "import torch" 2>/dev/null; then
  spec=${KESTREL_TORCH_SPEC:-$default_torch}
  echo "== pip install $spec (no torch is importable with $PY; KESTREL_TORCH_SPEC picks another)"
  # Word-split on purpose: the spec may carry pip options (an index URL).
  # shellcheck disable=SC2086
  "$PY" -m pip install $spec
fi
# numpy: torch warns "Failed to initialize NumPy" without it.
pip_pkgs=("scikit-build-core>=0.10" "packaging>=21" cmake ninja numpy)
[[ ${KESTREL_WITH_TESTS:-0} == 1 ]] && pip_pkgs+=(pytest pytest-xdist hypothesis mypy)
# pip's progress at a terminal; quiet in logs.
[[ -t 1 ]] && PIP_Q=() || PIP_Q=(-q)
echo "== pip install ${pip_pkgs[*]} (those missing)"
"$PY" -m pip install "${PIP_Q[@]}" "${pip_pkgs[@]}"

# pytest's workers: one per core (pytest-xdist), the suites are independent
# per process. KESTREL_PYTEST_WORKERS=0 runs in one process.
PYTEST_N=(-n "${KESTREL_PYTEST_WORKERS:-auto}")

# Builds the wheel for the installed torch and installs it.
build_and_install_wheel() {
  rm -rf "$BUILD/dist"
  echo "== building the wheel for torch $("$PY" -c 'import torch; print(torch.__version__)')"
  "$PY" "$ROOT/tools/build_wheel.py" --out "$BUILD/dist"  # named for its torch minor
  "$PY" -m pip install -q --no-deps --force-reinstall "$BUILD"/dist/kestrel_mps_torch_ext-*.whl
}

# Builds the Catch2 tests and the header matrix (no shim: they use the
# installed package) into $BUILD/tests.
build_catch2_tests() {
  cmake -S "$ROOT" -B "$BUILD/tests" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKESTREL_BUILD_SHIM=OFF -DKESTREL_BUILD_TESTS=ON -DPython_EXECUTABLE="$(command -v "$PY")" >/dev/null
  cmake --build "$BUILD/tests"
}

# Installs examples/stable_op as its README says (pip, no build isolation,
# against the installed torch and package) into $BUILD/stable_op-site, and
# exports KESTREL_STABLE_OP_SITE there, so that tests/python/test_stable_op.py
# runs that binary instead of building its own.
build_stable_op_example() {
  local site="$BUILD/stable_op-site"
  rm -rf "$site"
  "$PY" -m pip install -q --no-build-isolation --no-deps --target "$site" "$ROOT/examples/stable_op"
  export KESTREL_STABLE_OP_SITE="$site"
}

# A venv beside the installed packages with torch==$1 (served locally),
# made once; prints its python.
torch_venv() {
  local venv=${KESTREL_CACHE:-$HOME/.cache/kestrel}/venv-torch$1${KESTREL_TORCH_INDEX:+-candidate}
  if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "== venv with torch $1" >&2
    "$PY" -m venv --system-site-packages "$venv"
    # It sees the base interpreter's packages; also those of $PY when that
    # is itself a venv (the project's .venv: pytest, the build tools), after
    # its own, so that its own torch wins.
    "$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" \
      >"$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/_kestrel_parent.pth"
    # Past this machine's torch cap (a pip constraint) when asked for a
    # newer release; from PyTorch's test index too for a release candidate
    # (KESTREL_TORCH_INDEX, tools/torch_wheels.py).
    local from=()
    [[ -n ${KESTREL_TORCH_INDEX:-} ]] && from=(--extra-index-url "$KESTREL_TORCH_INDEX" --pre)
    PIP_CONSTRAINT=/dev/null "$venv/bin/python" -m pip install "${PIP_Q[@]}" "${from[@]}" "torch==$1" >&2
  fi
  echo "$venv/bin/python"
}
