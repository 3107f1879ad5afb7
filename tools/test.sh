#!/usr/bin/env bash
# The whole test suite: builds and installs the wheel for the installed torch,
# then runs the Catch2 tests (ctest), the simulated MPS runtime's suite
# (tools/test_simulated.sh) and the pytest suite against it.
KESTREL_WITH_TESTS=1 source "$(dirname "$0")/setup_env.sh"

build_and_install_wheel
echo "== Catch2 and header tests (ctest)"
build_catch2_tests
(cd "$BUILD/tests" && ctest --output-on-failure)
echo "== mypy --strict (the typed Python API)"
(cd "$ROOT" && "$PY" -m mypy)
echo "== the Metal backend over the simulated MPS runtime"
bash "$ROOT/tools/test_simulated.sh"
echo "== pytest"
cd "$ROOT" && "$PY" -m pytest tests/python -q -rs "$@"
