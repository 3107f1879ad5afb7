// The stream backend of builds without Metal (Linux): every call answers
// KESTREL_MPS_ERROR_MPS_UNAVAILABLE and says why, so a consumer can tell a
// missing backend from a failing one.
#include <torch/version.h>

#include "barrier.h"
#include "stream.h"

namespace kestrel_shim::stream {
namespace {

kestrel_mps_status unavailable(const char* entry) {
  return fail(KESTREL_MPS_ERROR_MPS_UNAVAILABLE,
              "%s: MPS unavailable: this bridge library was built for torch %d.%d without "
              "the Metal stream backend (only macOS builds have it); tensors resolve, "
              "stream calls do not",
              entry, TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR);
}

}  // namespace

kestrel_mps_status current_stream(void**) { return unavailable("current_stream"); }
kestrel_mps_status command_buffer(void**) { return unavailable("command_buffer"); }
kestrel_mps_status command_queue(void**) { return unavailable("command_queue"); }
kestrel_mps_status device(void**) { return unavailable("device"); }
kestrel_mps_status dispatch_queue(void**) { return unavailable("dispatch_queue"); }
kestrel_mps_status end_kernel_coalescing() { return unavailable("end_kernel_coalescing"); }
kestrel_mps_status synchronize(int32_t) { return unavailable("synchronize"); }
kestrel_mps_status run_on_stream_queue(void (*)(void*), void*) {
  return unavailable("run_on_stream_queue");
}

}  // namespace kestrel_shim::stream
