// The published front end (kestrel-mps-torch-ext 0.1.x): eight exported
// functions, the getter KestrelMPSTorchExtAPI_v1 returning a constant table.
// Thin wrappers over the same resolve and stream cores as the extension,
// with the published conventions: NULL on success or this thread's message,
// an explicit stream (NULL refused, never the current one), no dispatch onto
// the stream's queue and no queue check (the caller is expected on it).
#include <torch/version.h>

#include "barrier.h"
#include "queue_discipline.h"
#include "stream.h"
#include "resolve.h"

#if !defined(KESTREL_MPS_STREAM_BACKEND) || !defined(KESTREL_MPS_ONLY_TENSORS)
#error "the build must define KESTREL_MPS_STREAM_BACKEND and KESTREL_MPS_ONLY_TENSORS to 0 or 1"
#endif

#define KESTREL_EXPORT extern "C" __attribute__((visibility("default")))
#define KESTREL_STR2(x) #x
#define KESTREL_STR(x) KESTREL_STR2(x)

namespace kestrel_shim {
namespace {

// body(stream) under the barrier, the stream checked first.
template <class Body>
const char* with_stream(const char* entry, void* stream, Body&& body) noexcept {
  if (stream == nullptr) {
    return published_result(fail(KESTREL_MPS_ERROR_INVALID_ARGUMENT,
                                 "%s: stream is NULL (pass the stream of "
                                 "current_stream_view; there is no default)",
                                 entry));
  }
  return published_result(guarded_stream(entry, [&] {
    body(stream);
    return KESTREL_MPS_OK;
  }));
}

// *out = get(stream), the stream checked before the out-pointer.
template <class Get>
const char* with_stream_out(const char* entry, void* stream, void** out, Get&& get) noexcept {
  if (stream != nullptr && out == nullptr) {
    return published_result(
        fail(KESTREL_MPS_ERROR_INVALID_ARGUMENT, "%s: out is NULL", entry));
  }
  if (out != nullptr) *out = nullptr;  // cleared, so a failure never leaves a stale handle
  return with_stream(entry, stream, [&](void* s) { *out = get(s); });
}

}  // namespace
}  // namespace kestrel_shim

using kestrel_shim::with_stream;
using kestrel_shim::with_stream_out;
using kestrel_shim::stream::Queues;

KESTREL_EXPORT const char* KestrelMPSTorchExtTorchTag(void) noexcept {
  return "torch" KESTREL_STR(TORCH_VERSION_MAJOR) KESTREL_STR(TORCH_VERSION_MINOR);
}

KESTREL_EXPORT const char* KestrelMPSTensorViewFromPyObject(PyObject* obj,
                                                            KestrelMPSTensorView* out) noexcept {
  // macOS builds take MPS tensors only, as published; Linux builds (and the
  // simulated MPS runtime) also take CPU and CUDA tensors so that this path
  // runs for real in tests.
  const kestrel_mps_status status =
      kestrel_shim::tensor_view(obj, out, /*mps_only=*/KESTREL_MPS_ONLY_TENSORS != 0);
  // Every published message starts with its entry's name.
  if (status != KESTREL_MPS_OK) kestrel_shim::retitle("resolve:", "tensor_view_from_pyobject:");
  return kestrel_shim::published_result(status);
}

KESTREL_EXPORT const char* KestrelMPSGetCurrentStreamView(KestrelMPSStreamView* out) noexcept {
  using namespace kestrel_shim;
  if (out == nullptr) {
    return published_result(
        fail(KESTREL_MPS_ERROR_INVALID_ARGUMENT, "current_stream_view: out is NULL"));
  }
  *out = KestrelMPSStreamView{nullptr, nullptr, nullptr};  // cleared on failure
  return published_result(guarded_stream("current_stream_view", [&] {
    void* stream = QueueDiscipline<Queues>::current();
    *out = KestrelMPSStreamView{stream, stream::device(stream), stream::serial_queue(stream)};
    return KESTREL_MPS_OK;
  }));
}

KESTREL_EXPORT const char* KestrelMPSEndKernelCoalescing(void* stream) noexcept {
  return with_stream("end_kernel_coalescing", stream,
                     [](void* s) { kestrel_shim::stream::end_kernel_coalescing(s); });
}

KESTREL_EXPORT const char* KestrelMPSCommandBuffer(void* stream, void** out) noexcept {
  // Does not end coalescing, as published.
  return with_stream_out("command_buffer", stream, out, kestrel_shim::stream::command_buffer);
}

KESTREL_EXPORT const char* KestrelMPSCommitStream(void* stream) noexcept {
  return with_stream("commit_stream", stream, [](void* s) {
    kestrel_shim::stream::synchronize(s, KESTREL_MPS_SYNC_COMMIT);
  });
}

KESTREL_EXPORT const char* KestrelMPSCommandEncoder(void* stream, void** out) noexcept {
  return with_stream_out("command_encoder", stream, out, kestrel_shim::stream::command_encoder);
}

namespace {
// Constant-initialised: complete the moment dlopen() returns.
constexpr KestrelMPSTorchExtAPI kPublishedTable = {
    KESTREL_MPS_TORCH_EXT_API_VERSION,
    KestrelMPSTorchExtTorchTag,
    KestrelMPSTensorViewFromPyObject,
    KestrelMPSGetCurrentStreamView,
    KestrelMPSEndKernelCoalescing,
    KestrelMPSCommandBuffer,
    KestrelMPSCommitStream,
};
}  // namespace

KESTREL_EXPORT const KestrelMPSTorchExtAPI* KestrelMPSTorchExtAPI_v1(void) noexcept {
  return &kPublishedTable;
}
