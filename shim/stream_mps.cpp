// The Metal stream backend (macOS). Plain C++, not Objective-C++: with
// __OBJC__ undefined torch's MPS headers turn Metal types into void*, which
// is what the C ABI hands out, and every MPSStream member called here takes
// no Objective-C parameter, so its mangled name is the one libtorch_cpu
// exports (see docs/verification.md for the symbol audit).
//
// Everything works on the *current* stream: from torch's per-thread stream
// pool on (PR #190375) it is not always the default stream that
// torch::mps::* uses.
#include <dispatch/dispatch.h>

#include <ATen/mps/MPSDevice.h>
#include <ATen/mps/MPSStream.h>
#include <torch/version.h>

#include "barrier.h"
#include "queued_call.h"
#include "stream.h"

namespace kestrel_shim::stream {
namespace {

// Null when the Metal device exists; else why not. Computed once: creating
// the stream on a Mac without a usable GPU would fail inside torch.
const char* unavailable_reason() {
  static const bool available = at::mps::is_available();
  return available ? nullptr
                   : "torch reports no usable Metal device (torch.backends.mps.is_available() "
                     "is False)";
}

#define KESTREL_REQUIRE_MPS(entry)                                                      \
  do {                                                                                  \
    if (const char* reason = unavailable_reason()) {                                    \
      return fail(KESTREL_MPS_ERROR_MPS_UNAVAILABLE, "%s: MPS unavailable: %s", entry, \
                  reason);                                                              \
    }                                                                                   \
  } while (0)

at::mps::MPSStream& current() {
  at::mps::MPSStream* stream = at::mps::getCurrentMPSStream();
  TORCH_CHECK(stream != nullptr, "getCurrentMPSStream() returned NULL");
  return *stream;
}

}  // namespace

kestrel_mps_status current_stream(void** out) {
  KESTREL_REQUIRE_MPS("current_stream");
  *out = &current();
  return KESTREL_MPS_OK;
}

kestrel_mps_status command_buffer(void** out) {
  KESTREL_REQUIRE_MPS("command_buffer");
  at::mps::MPSStream& stream = current();
  // Before torch 2.10 (PR #164093) torch::mps::get_command_buffer() left the
  // coalesced encoder open; ending it here makes every minor behave alike.
  stream.endKernelCoalescing();
  *out = stream.commandBuffer();
  return KESTREL_MPS_OK;
}

kestrel_mps_status command_queue(void** out) {
  KESTREL_REQUIRE_MPS("command_queue");
  *out = current().commandQueue();
  return KESTREL_MPS_OK;
}

kestrel_mps_status device(void** out) {
  KESTREL_REQUIRE_MPS("device");
  *out = at::mps::MPSDevice::getInstance()->device();
  return KESTREL_MPS_OK;
}

kestrel_mps_status dispatch_queue(void** out) {
  KESTREL_REQUIRE_MPS("dispatch_queue");
  *out = current().queue();
  return KESTREL_MPS_OK;
}

kestrel_mps_status end_kernel_coalescing() {
  KESTREL_REQUIRE_MPS("end_kernel_coalescing");
  current().endKernelCoalescing();
  return KESTREL_MPS_OK;
}

kestrel_mps_status synchronize(int32_t sync_kind) {
  KESTREL_REQUIRE_MPS("synchronize");
  at::mps::SyncType type;
  switch (sync_kind) {
    case KESTREL_MPS_SYNC_COMMIT: type = at::mps::SyncType::COMMIT; break;
    case KESTREL_MPS_SYNC_COMMIT_AND_WAIT: type = at::mps::SyncType::COMMIT_AND_WAIT; break;
    case KESTREL_MPS_SYNC_COMMIT_AND_CONTINUE:
      type = at::mps::SyncType::COMMIT_AND_CONTINUE;
      break;
    default:  // api_table.cpp lets only the three kinds through
      return fail(KESTREL_MPS_ERROR_INTERNAL, "synchronize: unmapped sync kind %d",
                  static_cast<int>(sync_kind));
  }
  current().synchronize(type);
  return KESTREL_MPS_OK;
}

kestrel_mps_status run_on_stream_queue(void (*fn)(void*), void* context) {
  KESTREL_REQUIRE_MPS("run_on_stream_queue");
  QueuedCall call{fn, context, false, {0}};
  dispatch_sync_f(current().queue(), &call, run_queued);
  if (call.failed) {
    return fail(KESTREL_MPS_ERROR_CALLBACK_FAILED,
                "run_on_stream_queue: the callback threw: %s", call.message);
  }
  return KESTREL_MPS_OK;
}

}  // namespace kestrel_shim::stream
