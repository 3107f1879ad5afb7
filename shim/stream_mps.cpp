// The Metal stream core (macOS). Plain C++, not Objective-C++: with __OBJC__
// undefined torch's MPS headers turn Metal types into void*, which is what
// the C ABI hands out, and every MPSStream member called here takes no
// Objective-C parameter, so its mangled name is the one libtorch_cpu exports
// (tools/build_macos.py links it against each macOS wheel to prove it).
#include <atomic>
#include <mutex>

#include <dispatch/dispatch.h>

#include <ATen/mps/MPSDevice.h>
#include <ATen/mps/MPSStream.h>

#include "kestrel_mps_api.h"
#include "stream.h"

// libobjc's C entry points behind @autoreleasepool.
extern "C" void* objc_autoreleasePoolPush(void);
extern "C" void objc_autoreleasePoolPop(void* token);

namespace kestrel_shim::stream {
namespace {

at::mps::MPSStream* as_stream(void* stream) { return static_cast<at::mps::MPSStream*>(stream); }

// A NULL handle from torch becomes an error here, not a crash in the kernel
// library that would bind or encode through it.
template <class T>
T* non_null(T* handle, const char* what) {
  TORCH_CHECK(handle != nullptr, what, " returned NULL");
  return handle;
}

// The key of our tag on a stream's serial queue; its value is the stream.
char queue_key;

// The stream tagged last: tagging takes a lock inside libdispatch, and
// nearly every call asks for the same stream.
std::atomic<void*> last_tagged{nullptr};

}  // namespace

AutoreleasePool::AutoreleasePool() noexcept : token_(objc_autoreleasePoolPush()) {}
AutoreleasePool::~AutoreleasePool() { objc_autoreleasePoolPop(token_); }

void* current_on_this_thread() {
  // Computed once: creating the stream on a Mac without a usable GPU would
  // fail inside torch.
  static const bool available = at::mps::is_available();
  if (!available) {
    throw Unavailable(
        "torch reports no usable Metal device (torch.backends.mps.is_available() is False)");
  }
  // torch creates the default stream with an unlocked check-then-create, so
  // first calls from several threads at once could each make one, with
  // queues of its own: ours create it once, before any of them asks.
  static std::once_flag default_made;
  std::call_once(default_made,
                 [] { non_null(at::mps::getDefaultMPSStream(), "getDefaultMPSStream()"); });
  // From torch 2.14 (PR #190375) the current stream is per thread and not
  // always the default stream that torch::mps::* used up to 2.14.1.
  return non_null(at::mps::getCurrentMPSStream(), "getCurrentMPSStream()");
}

void* device(void* stream) { return non_null(as_stream(stream)->device(), "MPSStream::device()"); }
void* serial_queue(void* stream) {
  return non_null(as_stream(stream)->queue(), "MPSStream::queue()");
}
void* command_queue(void* stream) {
  return non_null(as_stream(stream)->commandQueue(), "MPSStream::commandQueue()");
}
void* command_buffer(void* stream) {
  return non_null(as_stream(stream)->commandBuffer(), "MPSStream::commandBuffer()");
}
void* command_encoder(void* stream) {
  return non_null(as_stream(stream)->commandEncoder(), "MPSStream::commandEncoder()");
}
void end_kernel_coalescing(void* stream) { as_stream(stream)->endKernelCoalescing(); }

void synchronize(void* stream, int32_t kind) {
  // KESTREL_MPS_SYNC_* are torch's SyncType values (static_asserts below);
  // COMMIT_AND_CONTINUE is passed as is: torch does not fall back to COMMIT.
  as_stream(stream)->synchronize(static_cast<at::mps::SyncType>(kind));
}
static_assert(static_cast<int>(at::mps::SyncType::COMMIT) == KESTREL_MPS_SYNC_COMMIT);
static_assert(static_cast<int>(at::mps::SyncType::COMMIT_AND_WAIT) ==
              KESTREL_MPS_SYNC_COMMIT_AND_WAIT);
static_assert(static_cast<int>(at::mps::SyncType::COMMIT_AND_CONTINUE) ==
              KESTREL_MPS_SYNC_COMMIT_AND_CONTINUE);

void Queues::tag(void* stream) {
  if (last_tagged.load(std::memory_order_acquire) == stream) return;
  dispatch_queue_set_specific(static_cast<dispatch_queue_t>(serial_queue(stream)), &queue_key,
                              stream, nullptr);
  last_tagged.store(stream, std::memory_order_release);
}

void* Queues::tagged_here() noexcept { return dispatch_get_specific(&queue_key); }

void Queues::dispatch_sync(void* stream, void* context, void (*fn)(void*)) {
  dispatch_sync_f(as_stream(stream)->queue(), context, fn);
}

}  // namespace kestrel_shim::stream
