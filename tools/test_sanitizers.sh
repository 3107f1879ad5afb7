#!/usr/bin/env bash
# The shim and the Catch2 tests built with AddressSanitizer and UBSan
# (-DKESTREL_SANITIZE=ON), then: ctest, and the pytest suite with Python
# loading the instrumented shim (KESTREL_MPS_TORCH_EXT_LIBRARY_DIR). Any
# sanitizer report aborts the run (halt_on_error). Last, the simulated MPS
# runtime and its threads tests under ThreadSanitizer (test_simulated.sh).
KESTREL_WITH_TESTS=1 source "$(dirname "$0")/setup_env.sh"
ASAN_BUILD="$BUILD/asan"

cmake -S "$ROOT" -B "$ASAN_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKESTREL_SANITIZE=ON \
  -DKESTREL_BUILD_TESTS=ON -DPython_EXECUTABLE="$(command -v "$PY")" >/dev/null
cmake --build "$ASAN_BUILD"

export KESTREL_MPS_TORCH_EXT_LIBRARY_DIR="$ASAN_BUILD/shim"
# Leaks: the interpreter and torch keep their globals until exit by design.
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
echo "== ctest under ASan+UBSan"
(cd "$ASAN_BUILD" && ctest --output-on-failure -E '^header_(gcc|clang)_')
echo "== pytest with the instrumented shim"
build_stable_op_example  # before the preload: cmake and the compiler run uninstrumented
asan_rt="$(${CXX:-g++} -print-file-name=libasan.so) $(${CXX:-g++} -print-file-name=libubsan.so)"
LD_PRELOAD="$asan_rt" "$PY" -c "import kestrel_mps_torch_ext as k, sys; p = str(k.load_torch_mps_bridge().path); print('loaded', p); sys.exit(0 if p.startswith('$ASAN_BUILD') else 'not the instrumented shim')"
cd "$ROOT" && LD_PRELOAD="$asan_rt" KESTREL_HYPOTHESIS_EXAMPLES=${KESTREL_HYPOTHESIS_EXAMPLES:-1000} \
  KESTREL_STRESS_SECONDS=${KESTREL_STRESS_SECONDS:-4} \
  "$PY" -m pytest tests/python -q -p no:cacheprovider -k "not test_rss_flat" "$@"
echo "== the simulated MPS runtime under ThreadSanitizer"
KESTREL_SIM_TSAN=1 bash "$ROOT/tools/test_simulated.sh"
