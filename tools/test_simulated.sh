#!/usr/bin/env bash
# The Metal half executed on Linux: the real stream backend (shim/stream_mps.cpp)
# and both front ends built over the simulated MPS runtime (tests/sim: a model
# of torch's MPSStream and of Metal, libdispatch and libobjc stand-ins; never
# in a wheel), then its Catch2 tests and the stream suite (tests/stream) over
# it, for the torch of $PYTHON (default python3). Linux only: on macOS the
# shim binds torch's real at::mps members (CMake refuses the build there),
# and tools/test.sh runs the same stream suite over real MPS instead.
#
#   KESTREL_SIM_TORCH=2.14.1   run it for that torch, in a venv of its own
#   KESTREL_SIM_LIBDISPATCH=<prefix>   a real libdispatch instead of the
#       stand-in (swift-corelibs-libdispatch; its headers need clang, so set
#       CC=clang CXX=clang++)
#   KESTREL_SIM_TSAN=1   the build and the threads tests under ThreadSanitizer
#       (tools/test_sanitizers.sh does this)
KESTREL_WITH_TESTS=1 source "$(dirname "$0")/setup_env.sh"
if [[ $(uname) != Linux ]]; then
  echo "test_simulated.sh: the simulated MPS runtime runs on Linux only (on a Mac, tools/test.sh runs the stream suite over real MPS)" >&2
  exit 2
fi
if [[ -n ${KESTREL_SIM_TORCH:-} ]]; then
  PY=$(torch_venv "$KESTREL_SIM_TORCH")
fi
version=$("$PY" -c "import torch; print(torch.__version__)")
SIM_BUILD="$BUILD/sim-torch${version%%+*}${KESTREL_SIM_TSAN:+-tsan}"
options=(-DKESTREL_SIMULATED_MPS=ON -DKESTREL_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
         -DPython_EXECUTABLE="$(command -v "$PY")")
if [[ -n ${KESTREL_SIM_LIBDISPATCH:-} ]]; then
  SIM_BUILD+=-libdispatch
  options+=(-DKESTREL_SIM_LIBDISPATCH="$KESTREL_SIM_LIBDISPATCH")
  # What the tests load for their own dispatch_sync_f calls: the same library.
  export KESTREL_SIM_DISPATCH_LIBRARY=$(ls "$KESTREL_SIM_LIBDISPATCH"/lib*/{,*/}libdispatch.so 2>/dev/null | head -1)
fi
[[ -n ${KESTREL_SIM_TSAN:-} ]] && options+=(-DKESTREL_TSAN=ON)
echo "== the simulated MPS runtime, torch $version${KESTREL_SIM_LIBDISPATCH:+, libdispatch from $KESTREL_SIM_LIBDISPATCH}${KESTREL_SIM_TSAN:+, ThreadSanitizer}"
cmake -S "$ROOT" -B "$SIM_BUILD" -G Ninja "${options[@]}" >/dev/null
cmake --build "$SIM_BUILD"
export KESTREL_SIM_BUILD="$SIM_BUILD"
export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
if [[ -n ${KESTREL_SIM_TSAN:-} ]]; then
  export TSAN_OPTIONS="halt_on_error=1 abort_on_error=1 second_deadlock_stack=1 suppressions=$ROOT/tools/tsan.supp"
  echo "== ctest (the libdispatch stand-in and the queue discipline) under TSan"
  (cd "$SIM_BUILD" && ctest --output-on-failure -R '^(sim_|queue_discipline)')
  echo "== the threads tests under TSan"
  # Python and torch are not instrumented: the runtime is preloaded, into
  # the interpreter itself (not a pyenv shim script).
  real_py=$("$PY" -c "import sys; print(sys.executable)")
  cd "$ROOT/tests/stream" && KESTREL_STREAM_BACKEND=sim LD_PRELOAD=$(${CXX:-g++} -print-file-name=libtsan.so) \
    "$real_py" -m pytest -q -p no:cacheprovider test_threads.py test_two_streams.py "$@"
  exit
fi
echo "== no wheel can be built with the simulation"
if "$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$SIM_BUILD/refused" \
     --config-settings=cmake.define.KESTREL_SIMULATED_MPS=ON "$ROOT" >"$SIM_BUILD/refused.log" 2>&1 ||
   ! grep -q "KESTREL_SIMULATED_MPS" "$SIM_BUILD/refused.log"; then
  echo "a wheel build with KESTREL_SIMULATED_MPS=ON was not refused as it should be"; exit 1
fi
echo "ok: the wheel build was refused, as it must be ($(grep -m1 -o 'KESTREL_SIMULATED_MPS[^"]*' "$SIM_BUILD/refused.log"))"
echo "== ctest over the simulation"
(cd "$SIM_BUILD" && ctest --output-on-failure -R '^(sim_|queue_discipline)')
echo "== the stream suite over the simulation (tests/stream)"
cd "$ROOT/tests/stream" && KESTREL_STREAM_BACKEND=sim "$PY" -m pytest -q -rs -p no:cacheprovider . "$@"
