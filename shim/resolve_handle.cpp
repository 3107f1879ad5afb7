// The handle front end of the resolve core: torch's AtenTensorHandle, what
// a stable-ABI kernel library holds (torch::stable::Tensor::get()). It is an
// at::Tensor* in every minor 2.9 to 2.15 (torch's tensor_converter.cpp
// reinterprets one as the other), so no Python and no GIL are involved:
// callable from any thread, from many at once.
#include "resolve.h"

#include "resolve_core.h"

// Kept out of this file on purpose: nothing here may need the interpreter.
#ifdef Py_PYTHON_H
#error "resolve_handle.cpp must not include Python.h"
#endif

namespace kestrel_shim {
namespace {

kestrel_mps_status write_extension(void* handle, uint32_t access, kestrel_mps_tensor* out) {
  if (handle == nullptr) {
    return fail(KESTREL_MPS_ERROR_INVALID_ARGUMENT, "resolve: the tensor handle is NULL");
  }
  return core::write_extension(*static_cast<const at::Tensor*>(handle), access, out);
}

}  // namespace

kestrel_mps_status resolve_aten_tensor(void* handle, uint32_t access,
                                       kestrel_mps_tensor* out) noexcept {
  return core::cleared_on_failure(
      guarded("resolve_aten_tensor", [&] { return write_extension(handle, access, out); }), out);
}

kestrel_mps_status resolve_aten_tensors(void* const* handles, std::size_t count,
                                        const uint32_t* access, kestrel_mps_tensor* out,
                                        std::size_t* failed_index) noexcept {
  return core::resolve_batch("resolve_aten_tensors", count, access, out, failed_index,
                             [&](std::size_t i, uint32_t access_i, kestrel_mps_tensor* out_i) {
                               return write_extension(handles[i], access_i, out_i);
                             });
}

}  // namespace kestrel_shim
