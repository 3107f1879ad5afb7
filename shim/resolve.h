// The resolve front ends: how each entry reaches the at::Tensor before the
// one resolve core (resolve_core.h) describes it. resolve_python.cpp takes a
// Python object under the GIL; resolve_handle.cpp takes torch's
// AtenTensorHandle with no Python at all.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kestrel_mps_api.h"

namespace kestrel_shim {

// Extension front end, less the NULL-out check of api_extension.cpp. Checks
// the GIL; on failure zero-fills *out and sets the thread's message.
kestrel_mps_status resolve_tensor(void* py_tensor, uint32_t access,
                                  kestrel_mps_tensor* out) noexcept;

// Extension batch front end: py_tensors and out are not NULL, count > 0.
kestrel_mps_status resolve_tensors(void* const* py_tensors, std::size_t count,
                                   const uint32_t* access, kestrel_mps_tensor* out,
                                   std::size_t* failed_index) noexcept;

// Published front end (tensor_view_from_pyobject): every check, NULL out
// included; on failure zero-fills *out (when not NULL). mps_only: refuse
// every non-MPS tensor, as the published macOS library does.
kestrel_mps_status tensor_view(void* py_tensor, KestrelMPSTensorView* out,
                               bool mps_only) noexcept;

// The handle entries (an AtenTensorHandle is an at::Tensor* in every minor):
// as resolve_tensor(s), without the GIL. Same preconditions.
kestrel_mps_status resolve_aten_tensor(void* handle, uint32_t access,
                                       kestrel_mps_tensor* out) noexcept;
kestrel_mps_status resolve_aten_tensors(void* const* handles, std::size_t count,
                                        const uint32_t* access, kestrel_mps_tensor* out,
                                        std::size_t* failed_index) noexcept;

}  // namespace kestrel_shim
