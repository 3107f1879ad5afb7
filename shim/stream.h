// The stream core: the MPSStream operations both front ends are built on,
// and the queue primitives queue_discipline.h builds its rules on. Two
// implementations: stream_mps.cpp (macOS, ATen's MPSStream and libdispatch)
// and stream_unavailable.cpp (every other build: each call throws
// Unavailable). Streams are opaque at::mps::MPSStream*. Everything here may
// throw; the front ends call it under guarded_stream() (barrier.h).
#pragma once

#include <cstdint>
#include <stdexcept>

namespace kestrel_shim::stream {

// No MPS stream can exist here: a build without the Metal backend, or a Mac
// without a usable Metal device. what() says which.
class Unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An autorelease pool for the scope: objc_autoreleasePoolPush/Pop on macOS,
// nothing elsewhere.
class AutoreleasePool {
 public:
  AutoreleasePool() noexcept;
  ~AutoreleasePool();
  AutoreleasePool(const AutoreleasePool&) = delete;
  AutoreleasePool& operator=(const AutoreleasePool&) = delete;

 private:
  void* token_;
};

// at::mps::getCurrentMPSStream() of the calling thread.
void* current_on_this_thread();

// The MPSStream members, on the caller's thread, with no queue check.
void* device(void* stream);
void* serial_queue(void* stream);
void* command_queue(void* stream);
void* command_buffer(void* stream);
void* command_encoder(void* stream);
void end_kernel_coalescing(void* stream);
// kind: a KESTREL_MPS_SYNC_* value (checked by the caller).
void synchronize(void* stream, int32_t kind);

// The primitives of QueueDiscipline (queue_discipline.h).
struct Queues {
  using Pool = AutoreleasePool;
  static void* current() { return current_on_this_thread(); }
  // Marks the stream's serial queue so that tagged_here() recognises blocks
  // running on it, whoever dispatched them. Idempotent.
  static void tag(void* stream);
  // The stream whose tagged queue the calling thread is running a block of;
  // null elsewhere. Never traps (unlike dispatch_assert_queue).
  static void* tagged_here() noexcept;
  // dispatch_sync_f onto the stream's serial queue.
  static void dispatch_sync(void* stream, void* context, void (*fn)(void*));
};

}  // namespace kestrel_shim::stream
