// The stream core of builds without Metal (Linux): every operation throws
// Unavailable, which the barrier turns into KESTREL_MPS_ERROR_MPS_UNAVAILABLE
// (a message, through the published entries) saying why, so a consumer can
// tell a missing backend from a failing one.
#include <string>

#include <torch/version.h>

#include "stream.h"

namespace kestrel_shim::stream {
namespace {

[[noreturn]] void unavailable() {
  throw Unavailable("this bridge library was built for torch " +
                    std::to_string(TORCH_VERSION_MAJOR) + "." +
                    std::to_string(TORCH_VERSION_MINOR) +
                    " without the Metal stream backend (only macOS builds have it); tensors "
                    "resolve, stream calls do not");
}

}  // namespace

AutoreleasePool::AutoreleasePool() noexcept : token_(nullptr) {}
AutoreleasePool::~AutoreleasePool() = default;

void* current_on_this_thread() { unavailable(); }
void* device(void*) { unavailable(); }
void* serial_queue(void*) { unavailable(); }
void* command_queue(void*) { unavailable(); }
void* command_buffer(void*) { unavailable(); }
void* command_encoder(void*) { unavailable(); }
void end_kernel_coalescing(void*) { unavailable(); }
void synchronize(void*, int32_t) { unavailable(); }

void Queues::tag(void*) { unavailable(); }
void* Queues::tagged_here() noexcept { return nullptr; }
void Queues::dispatch_sync(void*, void*, void (*)(void*)) { unavailable(); }

}  // namespace kestrel_shim::stream
