#!/usr/bin/env bash
# The main job: build the bridge for the installed torch, load it, and let a C
# consumer that only knows kestrel_mps_api.h resolve real tensors through it.
source "$(dirname "$0")/setup_env.sh"

build_and_install_wheel
echo "== diagnostics"
"$PY" -m kestrel_mps_torch_ext
echo "== building the header-only consumers against the installed CMake package"
for example in consumer published_consumer; do
  cmake -S "$ROOT/examples/$example" -B "$BUILD/$example" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DKestrelMPSTorchExt_DIR="$("$PY" -m kestrel_mps_torch_ext --cmake-dir)" >/dev/null
  cmake --build "$BUILD/$example" >/dev/null
done
echo "== the consumers resolve real tensors through the bridge, found with dlsym()"
"$PY" "$ROOT/examples/consumer/run.py" "$BUILD/consumer/libconsumer.so" \
  "$BUILD/published_consumer/libconsumer_v1.so"
