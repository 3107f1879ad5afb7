# Cross-builds the bridge as a real macOS arm64 Mach-O library on Linux, with
# zig (PyPI's ziglang): its clang, its bundled macOS SDK headers (the real
# <dispatch/dispatch.h>) and its Mach-O linker. Point the ordinary build at an
# unpacked macOS torch wheel:
#
#   cmake -S . -B build/macos -G Ninja \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/zig-macos-arm64.cmake \
#     -DKESTREL_TORCH_ROOT=<unpacked macOS wheel>/torch -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON
#
# The library links against that wheel's own dylibs, two-level. Python's C
# API is resolved at load time (-undefined dynamic_lookup), as on a Mac; the
# Python headers are the build machine's (the same CPython version has the
# same C API on both). This proves compiling and linking, not running.
#
# KESTREL_ZIG: the zig executable (default: the one of the ziglang package
# importable by python3).
set(CMAKE_SYSTEM_NAME Darwin)
set(CMAKE_SYSTEM_PROCESSOR arm64)
set(CMAKE_OSX_ARCHITECTURES "" CACHE STRING "zig's -target picks the architecture")
set(CMAKE_OSX_SYSROOT "" CACHE PATH "zig brings its own SDK headers")
include("${CMAKE_CURRENT_LIST_DIR}/../KestrelDeploymentTarget.cmake")

if(NOT KESTREL_ZIG)
  execute_process(
    COMMAND python3 -c "import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), 'zig'))"
    OUTPUT_VARIABLE KESTREL_ZIG OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _kestrel_rc)
  if(NOT _kestrel_rc EQUAL 0)
    message(FATAL_ERROR "kestrel: no zig: pip install ziglang, or pass -DKESTREL_ZIG=<path>")
  endif()
  set(KESTREL_ZIG "${KESTREL_ZIG}" CACHE FILEPATH "zig executable")
endif()

# CMake wants one program per compiler: small wrappers around `zig cc`.
set(_kestrel_wrappers "${CMAKE_BINARY_DIR}/zig-wrappers")
set(_kestrel_target "aarch64-macos.${CMAKE_OSX_DEPLOYMENT_TARGET}")
foreach(_tool cc c++)
  file(WRITE "${_kestrel_wrappers}/zig-${_tool}"
       "#!/bin/sh\nexec \"${KESTREL_ZIG}\" ${_tool} -target ${_kestrel_target} \"$@\"\n")
  file(CHMOD "${_kestrel_wrappers}/zig-${_tool}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE)
endforeach()
# zig caches its own compilations; ccache would not know its wrappers.
set(CMAKE_C_COMPILER_LAUNCHER "" CACHE STRING "" FORCE)
set(CMAKE_CXX_COMPILER_LAUNCHER "" CACHE STRING "" FORCE)
set(CMAKE_C_COMPILER "${_kestrel_wrappers}/zig-cc")
set(CMAKE_CXX_COMPILER "${_kestrel_wrappers}/zig-c++")

# zig's SDK stubs cover libSystem only; libobjc's two pool functions come
# from a text stub of ours, so that they bind two-level to libobjc as with
# Apple's SDK. -nostdlib++: zig would link a static libc++ of its own; torch
# and the bridge must share the Mac's libc++ (exceptions and std types cross
# between them), so the C++ runtime is left to load-time lookup, where
# torch's libc++.1.dylib is already loaded.
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-L${CMAKE_CURRENT_LIST_DIR}/macos-stubs -nostdlib++")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# zig has no Objective-C++ toolchain with Apple's frameworks: the self-test's
# Metal half (selftest/metal_apple.mm) is built on a Mac only.
set(KESTREL_BUILD_SELFTEST OFF CACHE BOOL "Build the self-test's Metal launch sequence (macOS)")
