# macOS: the oldest macOS the libraries run on. Kestrel's Metal kernels need
# macOS 13, so that is the default; MACOSX_DEPLOYMENT_TARGET or an explicit
# -DCMAKE_OSX_DEPLOYMENT_TARGET wins. Included before project().
# The one place of this number: the zig toolchain includes this file, and
# tools/torch_wheels.py's macos_target() reads it.
set(KESTREL_MACOS_TARGET "13.0")
if(NOT CMAKE_OSX_DEPLOYMENT_TARGET)
  if(DEFINED ENV{MACOSX_DEPLOYMENT_TARGET} AND NOT "$ENV{MACOSX_DEPLOYMENT_TARGET}" STREQUAL "")
    set(CMAKE_OSX_DEPLOYMENT_TARGET "$ENV{MACOSX_DEPLOYMENT_TARGET}" CACHE STRING "Minimum macOS version")
  else()
    set(CMAKE_OSX_DEPLOYMENT_TARGET "${KESTREL_MACOS_TARGET}" CACHE STRING "Minimum macOS version")
  endif()
endif()
