// The extension front end: the kestrel_mps_ext_api table, exported as the
// data symbol KestrelMPS_kmte_ext_v1. Argument checks here; the work is the
// resolve core (resolve_core.h) and the stream core (stream.h) under the queue
// discipline, shared with the published front end (api_published.cpp).
#include <torch/version.h>

#include "barrier.h"
#include "queue_discipline.h"
#include "stream.h"
#include "resolve.h"

#ifndef KESTREL_MPS_STREAM_BACKEND
#error "the build must define KESTREL_MPS_STREAM_BACKEND to 0 or 1"
#endif

namespace kestrel_shim {
namespace {

using Queue = QueueDiscipline<stream::Queues>;

#define KESTREL_REQUIRE_ARG(cond, entry, what) \
  do {                                         \
    if (!(cond)) {                             \
      return fail(KESTREL_MPS_ERROR_INVALID_ARGUMENT, "%s: %s", entry, what); \
    }                                          \
  } while (0)

using ResolveOne = kestrel_mps_status (*)(void*, uint32_t, kestrel_mps_tensor*) noexcept;
using ResolveMany = kestrel_mps_status (*)(void* const*, size_t, const uint32_t*,
                                           kestrel_mps_tensor*, size_t*) noexcept;

// The argument checks of the single and batch entries, the same for the
// Python-object and the handle front end.
template <ResolveOne Resolve>
kestrel_mps_status resolve_one(const char* entry, void* tensor, uint32_t access,
                               kestrel_mps_tensor* out) {
  KESTREL_REQUIRE_ARG(out != nullptr, entry, "out is NULL");
  return Resolve(tensor, access, out);
}

template <ResolveMany Resolve>
kestrel_mps_status resolve_many(const char* entry, const char* array, void* const* tensors,
                                size_t count, const uint32_t* access, kestrel_mps_tensor* out,
                                size_t* failed_index) {
  if (failed_index != nullptr) *failed_index = 0;
  if (count == 0) {
    return KESTREL_MPS_OK;
  }
  if (tensors == nullptr) {
    return fail(KESTREL_MPS_ERROR_INVALID_ARGUMENT, "%s: %s is NULL", entry, array);
  }
  KESTREL_REQUIRE_ARG(out != nullptr, entry, "out is NULL");
  KESTREL_REQUIRE_ARG(count <= PTRDIFF_MAX / sizeof(kestrel_mps_tensor), entry,
                      "count is too large");
  return Resolve(tensors, count, access, out, failed_index);
}

kestrel_mps_status api_resolve_tensor(void* py_tensor, uint32_t access,
                                      kestrel_mps_tensor* out) {
  return resolve_one<resolve_tensor>("resolve_tensor", py_tensor, access, out);
}

kestrel_mps_status api_resolve_tensors(void* const* py_tensors, size_t count,
                                       const uint32_t* access, kestrel_mps_tensor* out,
                                       size_t* failed_index) {
  return resolve_many<resolve_tensors>("resolve_tensors", "py_tensors", py_tensors, count,
                                       access, out, failed_index);
}

kestrel_mps_status api_resolve_aten_tensor(void* handle, uint32_t access,
                                           kestrel_mps_tensor* out) {
  return resolve_one<resolve_aten_tensor>("resolve_aten_tensor", handle, access, out);
}

kestrel_mps_status api_resolve_aten_tensors(void* const* handles, size_t count,
                                            const uint32_t* access, kestrel_mps_tensor* out,
                                            size_t* failed_index) {
  return resolve_many<resolve_aten_tensors>("resolve_aten_tensors", "handles", handles, count,
                                            access, out, failed_index);
}

// A handle of the current stream, from any thread.
template <void* (*Get)(void*)>
kestrel_mps_status any_thread_handle(const char* entry, void** out) {
  KESTREL_REQUIRE_ARG(out != nullptr, entry, "out is NULL");
  *out = nullptr;  // cleared, so a failure never leaves a stale handle
  return guarded_stream(entry, [&] {
    *out = Get(Queue::current());
    return KESTREL_MPS_OK;
  });
}

// body(stream) for the stream whose queue the caller is on; refused off it.
template <class Body>
kestrel_mps_status on_queue(const char* entry, Body&& body) {
  return guarded_stream(entry, [&]() -> kestrel_mps_status {
    void* stream = nullptr;
    const kestrel_mps_status status = Queue::require_on_queue(entry, &stream);
    if (status != KESTREL_MPS_OK) return status;
    return body(stream);
  });
}

void* stream_itself(void* stream) { return stream; }

kestrel_mps_status api_current_stream(void** out) {
  return any_thread_handle<stream_itself>("current_stream", out);
}
kestrel_mps_status api_command_queue(void** out) {
  return any_thread_handle<stream::command_queue>("command_queue", out);
}
kestrel_mps_status api_device(void** out) {
  return any_thread_handle<stream::device>("device", out);
}
kestrel_mps_status api_dispatch_queue(void** out) {
  return any_thread_handle<stream::serial_queue>("dispatch_queue", out);
}

kestrel_mps_status api_command_buffer(void** out) {
  KESTREL_REQUIRE_ARG(out != nullptr, "command_buffer", "out is NULL");
  *out = nullptr;
  return on_queue("command_buffer", [&](void* stream) {
    // Ending coalescing first lets the caller open an encoder of its own.
    stream::end_kernel_coalescing(stream);
    *out = stream::command_buffer(stream);
    return KESTREL_MPS_OK;
  });
}

kestrel_mps_status api_command_encoder(void** out) {
  KESTREL_REQUIRE_ARG(out != nullptr, "command_encoder", "out is NULL");
  *out = nullptr;
  return on_queue("command_encoder", [&](void* stream) {
    *out = stream::command_encoder(stream);
    return KESTREL_MPS_OK;
  });
}

kestrel_mps_status api_end_kernel_coalescing() {
  return on_queue("end_kernel_coalescing", [](void* stream) {
    stream::end_kernel_coalescing(stream);
    return KESTREL_MPS_OK;
  });
}

kestrel_mps_status api_synchronize(int32_t sync_kind) {
  KESTREL_REQUIRE_ARG(sync_kind == KESTREL_MPS_SYNC_COMMIT ||
                          sync_kind == KESTREL_MPS_SYNC_COMMIT_AND_WAIT ||
                          sync_kind == KESTREL_MPS_SYNC_COMMIT_AND_CONTINUE,
                      "synchronize", "sync_kind is not a KESTREL_MPS_SYNC_* value");
  return guarded_stream("synchronize", [&] {
    void* stream = Queue::current();
    // On the queue, so that the commit cannot race torch's own encoders
    // (the torch 2.14 two-thread crash, pytorch #197805).
    return Queue::on_queue_of(stream, [&]() noexcept {
      return guarded("synchronize", [&] {
        stream::synchronize(stream, sync_kind);
        return KESTREL_MPS_OK;
      });
    });
  });
}

kestrel_mps_status api_run_on_stream_queue(void (*fn)(void*), void* context) {
  KESTREL_REQUIRE_ARG(fn != nullptr, "run_on_stream_queue", "fn is NULL");
  return guarded_stream("run_on_stream_queue",
                        [&] { return Queue::run("run_on_stream_queue", fn, context); });
}

const char* api_last_error() { return last_error(); }

}  // namespace
}  // namespace kestrel_shim

extern "C" {

__attribute__((visibility("default"))) extern const kestrel_mps_ext_api KestrelMPS_kmte_ext_v1;

// Constant-initialised: no constructor runs at load time, so the table is
// complete the moment dlopen() returns.
const kestrel_mps_ext_api KestrelMPS_kmte_ext_v1 = {
    sizeof(kestrel_mps_ext_api),
    KESTREL_MPS_ABI_VERSION,
    sizeof(kestrel_mps_tensor),
    KESTREL_MPS_MAX_NDIM,
    TORCH_VERSION_MAJOR,
    TORCH_VERSION_MINOR,
    TORCH_VERSION_PATCH,
    (KESTREL_MPS_STREAM_BACKEND ? KESTREL_MPS_CAP_MPS_STREAM : 0u) |
        KESTREL_MPS_CAP_ATEN_TENSORS | KESTREL_MPS_CAP_OFFSET_ALIGN,
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
    kestrel_shim::api_command_encoder,
    kestrel_shim::api_resolve_aten_tensor,
    kestrel_shim::api_resolve_aten_tensors,
};

}  // extern "C"
