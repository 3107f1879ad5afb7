# Sourced by demo.sh and test.sh: installs what a fresh machine lacks.
# PYTHON: the interpreter to build and test with (default: the active
#   virtualenv's, else the project's own .venv, made on first use).
# KESTREL_TORCH_SPEC: what `pip install` gets when no torch is importable
#   (default torch==2.13.0; pip options allowed, e.g. an --index-url).
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
  if [[ ${KESTREL_WITH_TESTS:-0} == 1 ]]; then
    [[ -f /usr/include/catch2/catch.hpp || -f /usr/include/catch2/catch_test_macros.hpp ]] || need_apt+=(catch2)
    command -v clang >/dev/null || need_apt+=(clang)
    command -v pkg-config >/dev/null || need_apt+=(pkg-config)
  fi
  if ((${#need_apt[@]})); then apt_install "${need_apt[@]}"; fi
fi

# The interpreter: $PYTHON, else the active virtualenv's, else the
# project's own .venv, made once and reused. It sees the system's packages
# (an installed torch is reused, not downloaded again) and takes pip
# installs, which a stock Debian/Ubuntu python refuses outside a venv.
if [[ -n ${PYTHON:-} ]]; then
  PY=$PYTHON
elif [[ -n ${VIRTUAL_ENV:-} ]]; then
  PY=$VIRTUAL_ENV/bin/python
else
  PY=$ROOT/.venv/bin/python
  if [[ ! -x $PY ]]; then
    if [[ $(uname) == Linux ]] && ! python3 -c "import ensurepip" 2>/dev/null; then
      apt_install python3-venv  # Debian and Ubuntu split venv's pip out of python3
    fi
    echo "== a project virtualenv: $ROOT/.venv (reused next time; PYTHON=... picks another interpreter)"
    python3 -m venv --system-site-packages "$ROOT/.venv"
  fi
fi
echo "== python: $PY"

if ! "$PY" -c "import torch" 2>/dev/null; then
  spec=${KESTREL_TORCH_SPEC:-torch==2.13.0}
  echo "== pip install $spec (no torch is importable with $PY)"
  echo "   From PyPI on Linux x86-64 that is the CUDA build: about 3 GB with its nvidia-* wheels."
  echo "   CPU only (about 200 MB): KESTREL_TORCH_SPEC='torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu'"
  # Word-split on purpose: the spec may carry pip options (an index URL).
  # shellcheck disable=SC2086
  "$PY" -m pip install $spec
fi
# numpy: torch warns "Failed to initialize NumPy" without it.
pip_pkgs=("scikit-build-core>=0.10" "packaging>=21" cmake ninja numpy)
[[ ${KESTREL_WITH_TESTS:-0} == 1 ]] && pip_pkgs+=(pytest hypothesis mypy)
# pip's progress at a terminal; quiet in logs.
[[ -t 1 ]] && PIP_Q=() || PIP_Q=(-q)
echo "== pip install ${pip_pkgs[*]} (those missing)"
"$PY" -m pip install "${PIP_Q[@]}" "${pip_pkgs[@]}"

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

# Builds examples/stable_op against the installed torch and package, installs
# it under $BUILD/stable_op-site and exports KESTREL_STABLE_OP_SITE there, so
# that tests/python/test_stable_op.py runs that binary instead of building
# its own.
build_stable_op_example() {
  local site="$BUILD/stable_op-site"
  rm -rf "$BUILD/stable_op" "$site"
  cmake -S "$ROOT/examples/stable_op" -B "$BUILD/stable_op" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPython_EXECUTABLE="$(command -v "$PY")" \
    -DKestrelMPSTorchExt_DIR="$("$PY" -m kestrel_mps_torch_ext --cmake-dir)" >/dev/null
  cmake --build "$BUILD/stable_op" >/dev/null
  cmake --install "$BUILD/stable_op" --prefix "$site" >/dev/null
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
