#!/usr/bin/env bash
# The main job: build the bridge for the installed torch, load it, and let a C
# consumer that only knows kestrel_mps_api.h resolve real tensors through it.
source "$(dirname "$0")/setup_env.sh"

build_and_install_wheel
echo "== diagnostics"
"$PY" -m kestrel_mps_torch_ext
echo "== building the header-only consumer against the installed CMake package"
cmake -S "$ROOT/examples/consumer" -B "$BUILD/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DKestrelMPSTorchExt_DIR="$("$PY" -m kestrel_mps_torch_ext --cmake-dir)" >/dev/null
cmake --build "$BUILD/consumer" >/dev/null
echo "== the consumer resolves tensors through dlsym(\"KestrelMPSTorchExtAPI_v1\")"
"$PY" "$ROOT/examples/consumer/run.py" "$BUILD/consumer/libconsumer.so"
