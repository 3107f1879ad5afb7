# Locates one torch install or unpacked wheel and reads its facts from its own
# files, so that the same code serves the installed torch, another minor's
# unpacked Linux wheel and a macOS wheel audited on Linux.
#
# In:  KESTREL_TORCH_ROOT (the torch package directory). When empty, the
#      installed torch is found through torch.utils.cmake_prefix_path.
# Out: KESTREL_TORCH_VERSION_{MAJOR,MINOR,PATCH}, KESTREL_TORCH_INCLUDE_DIRS,
#      KESTREL_TORCH_LIBRARY_DIR, KESTREL_TORCH_CXX11_ABI ("" when torch sets
#      none, as on macOS), KESTREL_TORCH_CXX_STANDARD (the C++ standard torch's
#      own config asks for: 17 up to 2.11, 20 from 2.12 on; 17 when the file
#      names none).

if(NOT KESTREL_TORCH_ROOT)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _kestrel_prefix
    OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _kestrel_rc)
  if(NOT _kestrel_rc EQUAL 0 AND "$ENV{PYTHONPATH}" MATCHES "pip-build-env")
    # pip's build isolation runs the build in a fresh environment that has
    # only the build requirements: an installed torch is invisible there.
    message(FATAL_ERROR "kestrel: cannot import torch inside pip's isolated build environment, "
                        "which hides the torch you installed. This package builds against the "
                        "installed torch: install the build tools, then build without isolation:\n"
                        "  python -m pip install scikit-build-core cmake ninja\n"
                        "  python -m pip install --no-build-isolation .")
  elseif(NOT _kestrel_rc EQUAL 0)
    message(FATAL_ERROR "kestrel: cannot import torch with ${Python_EXECUTABLE}; install torch "
                        "or pass -DKESTREL_TORCH_ROOT=<site-packages>/torch")
  endif()
  # cmake_prefix_path is <torch>/share/cmake
  get_filename_component(KESTREL_TORCH_ROOT "${_kestrel_prefix}/../.." ABSOLUTE)
endif()

set(_kestrel_version_header "")
foreach(_candidate include/torch/headeronly/version.h include/torch/csrc/api/include/torch/version.h)
  if(EXISTS "${KESTREL_TORCH_ROOT}/${_candidate}")
    file(STRINGS "${KESTREL_TORCH_ROOT}/${_candidate}" _lines REGEX "#define TORCH_VERSION_(MAJOR|MINOR|PATCH) ")
    if(_lines)
      set(_kestrel_version_header "${KESTREL_TORCH_ROOT}/${_candidate}")
      break()
    endif()
  endif()
endforeach()
if(NOT _kestrel_version_header)
  message(FATAL_ERROR "kestrel: no torch version header under ${KESTREL_TORCH_ROOT}/include")
endif()
foreach(_part MAJOR MINOR PATCH)
  string(REGEX MATCH "#define TORCH_VERSION_${_part} ([0-9]+)" _m "${_lines}")
  set(KESTREL_TORCH_VERSION_${_part} "${CMAKE_MATCH_1}")
endforeach()

set(KESTREL_TORCH_INCLUDE_DIRS
    "${KESTREL_TORCH_ROOT}/include"
    "${KESTREL_TORCH_ROOT}/include/torch/csrc/api/include")
set(KESTREL_TORCH_LIBRARY_DIR "${KESTREL_TORCH_ROOT}/lib")

# torch records the libstdc++ ABI it was built with and the C++ standard its
# headers need in its CMake config.
set(KESTREL_TORCH_CXX11_ABI "")
set(KESTREL_TORCH_CXX_STANDARD 17)
set(_kestrel_config "${KESTREL_TORCH_ROOT}/share/cmake/Torch/TorchConfig.cmake")
if(EXISTS "${_kestrel_config}")
  file(STRINGS "${_kestrel_config}" _abi REGEX "_GLIBCXX_USE_CXX11_ABI=[01]")
  if(_abi)
    string(REGEX MATCH "_GLIBCXX_USE_CXX11_ABI=([01])" _m "${_abi}")
    set(KESTREL_TORCH_CXX11_ABI "${CMAKE_MATCH_1}")
  endif()
  # Up to 2.14 a CXX_STANDARD property, from 2.15 on a cxx_std_NN feature.
  file(STRINGS "${_kestrel_config}" _std REGEX "CXX_STANDARD [0-9]+|cxx_std_[0-9]+")
  if(_std)
    string(REGEX MATCH "(CXX_STANDARD |cxx_std_)([0-9]+)" _m "${_std}")
    set(KESTREL_TORCH_CXX_STANDARD "${CMAKE_MATCH_2}")
  endif()
endif()

# A macOS wheel's torch on a Linux host (its dylibs cannot be linked here):
# the targets compile against its headers and are never linked, as the
# header checks of tools/test_macos.sh want.
set(KESTREL_TORCH_HEADERS_ONLY FALSE)
if(NOT APPLE AND EXISTS "${KESTREL_TORCH_LIBRARY_DIR}/libtorch_cpu.dylib")
  set(KESTREL_TORCH_HEADERS_ONLY TRUE)
  message(STATUS "kestrel: a macOS torch on a non-Apple host: compile only, nothing links")
endif()

message(STATUS "kestrel: torch ${KESTREL_TORCH_VERSION_MAJOR}.${KESTREL_TORCH_VERSION_MINOR}."
               "${KESTREL_TORCH_VERSION_PATCH} at ${KESTREL_TORCH_ROOT} (C++${KESTREL_TORCH_CXX_STANDARD})")

# Compiles `target` against this torch and, unless it is an object library,
# links the three libraries the bridge needs from it where they lie (never
# copied into a wheel).
function(kestrel_use_torch target)
  set_target_properties(${target} PROPERTIES
    CXX_STANDARD ${KESTREL_TORCH_CXX_STANDARD}
    CXX_STANDARD_REQUIRED ON
    BUILD_RPATH "${KESTREL_TORCH_LIBRARY_DIR}")
  target_include_directories(${target} SYSTEM PRIVATE ${KESTREL_TORCH_INCLUDE_DIRS})
  if(KESTREL_TORCH_CXX11_ABI STREQUAL "0" OR KESTREL_TORCH_CXX11_ABI STREQUAL "1")
    target_compile_definitions(${target} PRIVATE _GLIBCXX_USE_CXX11_ABI=${KESTREL_TORCH_CXX11_ABI})
  endif()
  get_target_property(_type ${target} TYPE)
  if(_type STREQUAL "OBJECT_LIBRARY" OR KESTREL_TORCH_HEADERS_ONLY)
    return()
  endif()
  foreach(_lib torch_python torch_cpu c10)
    find_library(KESTREL_LIB_${_lib} NAMES ${_lib} PATHS "${KESTREL_TORCH_LIBRARY_DIR}" NO_DEFAULT_PATH REQUIRED)
    target_link_libraries(${target} PRIVATE "${KESTREL_LIB_${_lib}}")
  endforeach()
endfunction()
