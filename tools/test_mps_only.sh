#!/usr/bin/env bash
# The suite's macOS expectations, on Linux: the bridge built with macOS's
# tensor rule (-DKESTREL_PUBLISHED_MPS_ONLY=ON: the published entry refuses
# every non-MPS tensor), loaded in place of the installed one
# (KESTREL_MPS_TORCH_EXT_LIBRARY_DIR), and the tests that hold a macOS branch
# run with KESTREL_TEST_MPS_ONLY_BUILD=1, which selects it. What this machine
# still lacks (a Metal device, the stream backend) keeps its own marks.
KESTREL_WITH_TESTS=1 source "$(dirname "$0")/setup_env.sh"
MPS_ONLY_BUILD="$BUILD/mps-only"
"$PY" -c "import kestrel_mps_torch_ext" 2>/dev/null || build_and_install_wheel
cmake -S "$ROOT" -B "$MPS_ONLY_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKESTREL_PUBLISHED_MPS_ONLY=ON -DPython_EXECUTABLE="$(command -v "$PY")" >/dev/null
cmake --build "$MPS_ONLY_BUILD" >/dev/null
export KESTREL_MPS_TORCH_EXT_LIBRARY_DIR="$MPS_ONLY_BUILD/shim" KESTREL_TEST_MPS_ONLY_BUILD=1
cd "$ROOT" && "$PY" -m pytest -q -rs -p no:cacheprovider "${PYTEST_N[@]}" "$@" \
  tests/python/test_published_consumer.py tests/python/test_published_api.py tests/python/test_cow.py \
  tests/python/test_stream.py tests/python/test_concurrency.py tests/python/test_bad_input.py
