// Tensor resolution: a Python torch.Tensor object to a kestrel_mps_tensor.
// Device-agnostic: the same storage-pointer-plus-byte-offset rule gives an
// MPS tensor's MTLBuffer and a CPU or CUDA tensor's base pointer.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kestrel_mps_api.h"

namespace kestrel_shim {

// The table's resolve entries, less the argument and GIL checks of
// api_table.cpp: the caller holds the GIL and out (py_tensors) are not NULL.
// Failures zero-fill what the header says and set the thread's message.
kestrel_mps_status resolve_tensor(void* py_tensor, uint32_t access,
                                  kestrel_mps_tensor* out) noexcept;

kestrel_mps_status resolve_tensors(void* const* py_tensors, std::size_t count,
                                   const uint32_t* access, kestrel_mps_tensor* out,
                                   std::size_t* failed_index) noexcept;

}  // namespace kestrel_shim
