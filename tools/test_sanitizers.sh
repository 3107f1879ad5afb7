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
# The files that call into the shim. Left to tools/test.sh's uninstrumented
# run: the packaging, README, script, set-up, probe and self-test CLI tests
# (Python and compilers only) and the header comparisons (compilers only).
NATIVE_TESTS=(tests/python/test_bad_input.py tests/python/test_concurrency.py tests/python/test_cow.py
  tests/python/test_cuda.py tests/python/test_descriptor.py tests/python/test_loader.py tests/python/test_memory.py
  tests/python/test_properties.py tests/python/test_published_api.py tests/python/test_published_consumer.py
  tests/python/test_stable_op.py tests/python/test_stream.py)
build_stable_op_example  # before the preload: cmake and the compiler run uninstrumented
asan_rt="$(${CXX:-g++} -print-file-name=libasan.so) $(${CXX:-g++} -print-file-name=libubsan.so)"
LD_PRELOAD="$asan_rt" "$PY" -c "import kestrel_mps_torch_ext as k, sys; p = str(k.load_torch_mps_bridge().path); print('loaded', p); sys.exit(0 if p.startswith('$ASAN_BUILD') else 'not the instrumented shim')"
cd "$ROOT" && LD_PRELOAD="$asan_rt" KESTREL_HYPOTHESIS_EXAMPLES=${KESTREL_HYPOTHESIS_EXAMPLES:-1000} \
  KESTREL_STRESS_SECONDS=${KESTREL_STRESS_SECONDS:-4} \
  "$PY" -m pytest -q -p no:cacheprovider "${PYTEST_N[@]}" -k "not test_rss_flat" "$@" "${NATIVE_TESTS[@]}"
echo "== the simulated MPS runtime under ThreadSanitizer"
KESTREL_SIM_TSAN=1 bash "$ROOT/tools/test_simulated.sh"
