#!/usr/bin/env bash
# The whole test suite: builds and installs the wheel for the installed torch,
# then runs the Catch2 tests (ctest), mypy, the stream suite (tests/stream:
# over the simulated MPS runtime on Linux, over real MPS on a Mac) and the
# pytest suite. Arguments go to the last pytest.
#
#   bash tools/test.sh --dry-run [linux|darwin]   the steps it runs there
#                                                 (default: this platform)

# The steps, by platform: the simulation links the model in place of torch's
# at::mps members, which only an ELF (flat-namespace) build can do.
steps_for() {
  case $1 in
    linux) echo wheel ctest mypy stream_sim pytest ;;
    darwin) echo wheel ctest mypy stream_mps pytest ;;
    *) echo "test.sh: unknown platform '$1' (linux or darwin)" >&2; return 2 ;;
  esac
}
# A case, not an associative array: macOS's /bin/bash is 3.2.
what() {
  case $1 in
    wheel) echo "build and install the wheel for the installed torch" ;;
    ctest) echo "Catch2 and header tests (ctest)" ;;
    mypy) echo "mypy --strict (the typed Python API)" ;;
    stream_sim) echo "the stream suite over the simulated MPS runtime (tools/test_simulated.sh)" ;;
    stream_mps) echo "the stream suite over real MPS (tests/stream, KESTREL_STREAM_BACKEND=mps)" ;;
    pytest) echo "pytest (tests/python)" ;;
  esac
}
platform=$(uname | tr '[:upper:]' '[:lower:]')
if [[ ${1:-} == --dry-run ]]; then
  steps=$(steps_for "${2:-$platform}") || exit
  for step in $steps; do echo "$step: $(what "$step")"; done
  exit 0
fi
steps=$(steps_for "$platform") || exit

KESTREL_WITH_TESTS=1 source "$(dirname "$0")/setup_env.sh"
for step in $steps; do
  echo "== $(what "$step")"
  case $step in
    wheel) build_and_install_wheel ;;
    ctest) build_catch2_tests && (cd "$BUILD/tests" && ctest --output-on-failure) ;;
    mypy) (cd "$ROOT" && "$PY" -m mypy) ;;
    stream_sim) bash "$ROOT/tools/test_simulated.sh" ;;
    stream_mps) (cd "$ROOT/tests/stream" && KESTREL_STREAM_BACKEND=mps KESTREL_BUILD_DIR="$BUILD" \
                   "$PY" -m pytest -q -rs -p no:cacheprovider .) ;;
    # The stable-ABI example installed once, as its README says, rather
    # than built by each pytest worker.
    pytest) build_stable_op_example && (cd "$ROOT" && "$PY" -m pytest tests/python -q -rs "${PYTEST_N[@]}" "$@") ;;
  esac
done
