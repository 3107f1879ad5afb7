// The one exported symbol: the v1 table. Each entry checks its arguments,
// then runs its concern (tensor.cpp or a stream backend) under the barrier.
#include <Python.h>

#include <cstring>

#include <torch/version.h>

#include "barrier.h"
#include "stream.h"
#include "tensor.h"

#ifndef KESTREL_MPS_STREAM_BACKEND
#error "the build must define KESTREL_MPS_STREAM_BACKEND to 0 or 1"
#endif

namespace kestrel_shim {
namespace {

#define KESTREL_REQUIRE_ARG(cond, entry, what) \
  do {                                         \
    if (!(cond)) {                             \
      return fail(KESTREL_MPS_ERROR_INVALID_ARGUMENT, "%s: %s", entry, what); \
    }                                          \
  } while (0)

// Reading a PyObject without the GIL races with the interpreter; refusing
// costs one thread-state lookup. From 3.12 on the attached thread state is
// thread-local and NULL while the GIL is released, which is cheaper to read
// than PyGILState_Check's TSS lookup (3 ns of a 15 ns resolve on 3.11).
inline bool holds_gil() {
#if PY_VERSION_HEX >= 0x030D0000
  return PyThreadState_GetUnchecked() != nullptr;
#elif PY_VERSION_HEX >= 0x030C0000
  return _PyThreadState_UncheckedGet() != nullptr;
#else
  return PyGILState_Check() != 0;
#endif
}

kestrel_mps_status api_resolve_tensor(void* py_tensor, uint32_t access,
                                      kestrel_mps_tensor* out) {
  KESTREL_REQUIRE_ARG(out != nullptr, "resolve_tensor", "out is NULL");
  if (!holds_gil()) {
    std::memset(out, 0, sizeof *out);
    return fail(KESTREL_MPS_ERROR_GIL_NOT_HELD,
                "resolve_tensor: the calling thread does not hold the Python GIL");
  }
  return resolve_tensor(py_tensor, access, out);
}

kestrel_mps_status api_resolve_tensors(void* const* py_tensors, size_t count,
                                       const uint32_t* access, kestrel_mps_tensor* out,
                                       size_t* failed_index) {
  if (failed_index != nullptr) *failed_index = 0;
  if (count == 0) {
    return KESTREL_MPS_OK;
  }
  KESTREL_REQUIRE_ARG(py_tensors != nullptr, "resolve_tensors", "py_tensors is NULL");
  KESTREL_REQUIRE_ARG(out != nullptr, "resolve_tensors", "out is NULL");
  KESTREL_REQUIRE_ARG(count <= PTRDIFF_MAX / sizeof(kestrel_mps_tensor), "resolve_tensors",
                      "count is too large");
  if (!holds_gil()) {
    return fail(KESTREL_MPS_ERROR_GIL_NOT_HELD,
                "resolve_tensors: the calling thread does not hold the Python GIL");
  }
  return resolve_tensors(py_tensors, count, access, out, failed_index);
}

template <kestrel_mps_status (*Backend)(void**)>
kestrel_mps_status api_handle(void** out, const char* entry) {
  KESTREL_REQUIRE_ARG(out != nullptr, entry, "out is NULL");
  return guarded(entry, [&] { return Backend(out); });
}

kestrel_mps_status api_current_stream(void** out) {
  return api_handle<stream::current_stream>(out, "current_stream");
}
kestrel_mps_status api_command_buffer(void** out) {
  return api_handle<stream::command_buffer>(out, "command_buffer");
}
kestrel_mps_status api_command_queue(void** out) {
  return api_handle<stream::command_queue>(out, "command_queue");
}
kestrel_mps_status api_device(void** out) { return api_handle<stream::device>(out, "device"); }
kestrel_mps_status api_dispatch_queue(void** out) {
  return api_handle<stream::dispatch_queue>(out, "dispatch_queue");
}

kestrel_mps_status api_end_kernel_coalescing() {
  return guarded("end_kernel_coalescing", [] { return stream::end_kernel_coalescing(); });
}

kestrel_mps_status api_synchronize(int32_t sync_kind) {
  KESTREL_REQUIRE_ARG(sync_kind == KESTREL_MPS_SYNC_COMMIT ||
                          sync_kind == KESTREL_MPS_SYNC_COMMIT_AND_WAIT ||
                          sync_kind == KESTREL_MPS_SYNC_COMMIT_AND_CONTINUE,
                      "synchronize", "sync_kind is not a KESTREL_MPS_SYNC_* value");
  return guarded("synchronize", [&] { return stream::synchronize(sync_kind); });
}

kestrel_mps_status api_run_on_stream_queue(void (*fn)(void*), void* context) {
  KESTREL_REQUIRE_ARG(fn != nullptr, "run_on_stream_queue", "fn is NULL");
  return guarded("run_on_stream_queue", [&] { return stream::run_on_stream_queue(fn, context); });
}

const char* api_last_error() { return last_error(); }

}  // namespace
}  // namespace kestrel_shim

extern "C" {

__attribute__((visibility("default"))) extern const KestrelMPSTorchExtAPIv1
    KestrelMPSTorchExtAPI_v1;

// Constant-initialised: no constructor runs at load time, so the table is
// complete the moment dlopen() returns.
const KestrelMPSTorchExtAPIv1 KestrelMPSTorchExtAPI_v1 = {
    sizeof(KestrelMPSTorchExtAPIv1),
    KESTREL_MPS_ABI_VERSION,
    sizeof(kestrel_mps_tensor),
    KESTREL_MPS_MAX_NDIM,
    TORCH_VERSION_MAJOR,
    TORCH_VERSION_MINOR,
    TORCH_VERSION_PATCH,
    KESTREL_MPS_STREAM_BACKEND ? KESTREL_MPS_CAP_MPS_STREAM : 0u,
    kestrel_shim::api_resolve_tensor,
    kestrel_shim::api_resolve_tensors,
    kestrel_shim::api_current_stream,
    kestrel_shim::api_command_buffer,
    kestrel_shim::api_command_queue,
    kestrel_shim::api_device,
    kestrel_shim::api_dispatch_queue,
    kestrel_shim::api_end_kernel_coalescing,
    kestrel_shim::api_synchronize,
    kestrel_shim::api_run_on_stream_queue,
    kestrel_shim::api_last_error,
};

}  // extern "C"
