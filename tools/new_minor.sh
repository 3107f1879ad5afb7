#!/usr/bin/env bash
# A new torch minor, from "its wheels are on the index" to green, in one
# command (docs/releasing.md is the runbook around it):
#
#   bash tools/new_minor.sh 2.16.0 [--index URL]   (URL: PyTorch's test index, for a release candidate)
#
# 1. tools/torch_minors.txt gets the release (in place of an older release of
#    the same minor);
# 2. its macOS arm64 wheel: the shim built and linked as Mach-O against it,
#    with every check of tools/build_macos.py;
# 3. the simulation compiled against its MPS headers (tools/check_sim_headers.py);
# 4. its MPSStream.h against the previous minor's: the members the shim
#    calls, SyncType, the field offsets (tools/diff_mps_headers.py, with its
#    self-test);
# 5. the Linux bridge built for it in a venv of its own, installed, and the
#    pytest suite and the stream suite over the simulation run under it;
# 6. what to review, printed. Each step's time is printed, and the total.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=${1:?usage: tools/new_minor.sh X.Y.Z [--index URL]}
if [[ ${2:-} == --index ]]; then export KESTREL_TORCH_INDEX=${3:?--index needs a URL}; fi
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "new_minor.sh: '$VERSION' is not X.Y.Z" >&2; exit 2; }
KESTREL_WITH_TESTS=1 source "$ROOT/tools/setup_env.sh"
start_all=$SECONDS
step() {
  local start=$SECONDS
  echo "==== $1"
  shift
  "$@"
  echo "==== took $((SECONDS - start)) s"
}

# The list with this release in place of its minor's older one, and the
# release before it (the one to diff against).
PREVIOUS=$("$PY" "$ROOT/tools/torch_wheels.py" --add-release "$VERSION")
[[ -n $PREVIOUS ]] || { echo "new_minor.sh: no older minor in tools/torch_minors.txt to compare with" >&2; exit 1; }
echo "== torch $VERSION after $PREVIOUS${KESTREL_TORCH_INDEX:+, from $KESTREL_TORCH_INDEX}: tools/torch_minors.txt now lists $(grep -cv '^#' "$ROOT/tools/torch_minors.txt") minors"

command -v llvm-objdump >/dev/null || apt_install llvm
"$PY" -m pip install -q "ziglang==0.17.0"
step "macOS arm64: the shim linked against torch $VERSION's wheel, checked" \
  "$PY" "$ROOT/tools/build_macos.py" "$VERSION"
step "the simulation against torch $VERSION's MPS headers" "$PY" "$ROOT/tools/check_sim_headers.py" "$VERSION"
diff_status=0
step "MPSStream.h: torch $PREVIOUS -> $VERSION" \
  "$PY" "$ROOT/tools/diff_mps_headers.py" "$PREVIOUS" "$VERSION" --selftest || diff_status=$?

NEW_PY=$(torch_venv "$VERSION")
linux_bridge() {
  rm -rf "$BUILD/dist-$VERSION"
  "$NEW_PY" "$ROOT/tools/build_wheel.py" --out "$BUILD/dist-$VERSION"
  "$NEW_PY" -m pip install -q --no-deps --force-reinstall "$BUILD/dist-$VERSION"/kestrel_mps_torch_ext-*.whl
  "$NEW_PY" -m kestrel_mps_torch_ext | grep -E "^(torch|library) "
  (cd "$ROOT" && KESTREL_HYPOTHESIS_EXAMPLES=2000 "$NEW_PY" -m pytest tests/python -q -p no:cacheprovider -m "not cuda")
}
step "Linux: the bridge built for torch $VERSION, pytest under it" linux_bridge
step "the stream suite over the simulation under torch $VERSION" \
  env KESTREL_SIM_TORCH="$VERSION" bash "$ROOT/tools/test_simulated.sh"

floor=$(unzip -p "$(ls "${KESTREL_CACHE:-$HOME/.cache/kestrel}"/wheels/${KESTREL_TORCH_INDEX:+index-*/}torch-"$VERSION"-*macosx*.whl | head -1)" \
  torch/lib/libtorch_cpu.dylib | grep -ao "supported on macOS [0-9.]*+" | head -1 || true)
cat <<EOF2
==== torch $VERSION: green in $((SECONDS - start_all)) s. To review before committing:
  - MPSStream.h: $([[ $diff_status == 0 ]] && echo "nothing the shim depends on changed" || echo "CHANGES above: read shim/stream_mps.cpp against them")
  - torch's MPS floor in its libtorch_cpu: "${floor:-not found}"; the package says macOS $("$PY" -c "import sys; sys.path.insert(0, '$ROOT/python'); from kestrel_mps_torch_ext._probe import mps_macos_floor as f; print('%d.%d' % f('$VERSION'))") (_probe.mps_macos_floor)
  - ../shared/docs/torch-mps-facts.md, "Upstream changes in flight": has one landed in $VERSION?
  - git diff tools/torch_minors.txt; then commit, and the workflow's matrix follows the list.
EOF2
exit "$diff_status"
