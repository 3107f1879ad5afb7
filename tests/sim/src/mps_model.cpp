// torch's half of the model: the out-of-line MPSStream members and at::mps
// free functions that shim/stream_mps.cpp calls, defined against the
// installed torch's own ATen/mps/MPSStream.h (Linux libtorch exports none of
// them). Each behaves as torch-mps-facts.md describes the real one; the
// Metal objects underneath are metal_model.cpp's.
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include <ATen/mps/MPSDevice.h>
#include <ATen/mps/MPSStream.h>
#include <torch/version.h>

#include "kestrel_sim_objc.h"
#include "model.h"

namespace kestrel_sim {
namespace {

CommandQueue* state(const at::mps::MPSStream* s) {
  return static_cast<CommandQueue*>(s->commandQueue());
}

// Applies an injected fault: throws, or tells the caller to return NULL.
bool faulted(int member, const char* name) {
  switch (take_fault(member)) {
    case KESTREL_SIM_FAULT_C10_ERROR:
      TORCH_CHECK(false, name, ": injected failure (simulated torch error)");
    case KESTREL_SIM_FAULT_STD_EXCEPTION:
      throw std::runtime_error(std::string(name) + ": injected failure (std::exception)");
    case KESTREL_SIM_FAULT_RETURN_NULL:
      return true;
    default:
      return false;
  }
}

at::mps::MPSStream* make_stream(c10::StreamId id) {
  return new at::mps::MPSStream(
      c10::Stream(c10::Stream::UNSAFE, c10::Device(c10::DeviceType::MPS, 0), id));
}

// As torch does up to 2.15: an unlocked check-then-create. Atomic only so
// that the race it allows is a logic race, not undefined behaviour.
std::atomic<at::mps::MPSStream*> default_stream{nullptr};
std::atomic<int> default_streams_created{0};
std::atomic<c10::StreamId> next_stream_id{1};
thread_local at::mps::MPSStream* current_stream = nullptr;

at::mps::MPSStream* default_or_create() {
  at::mps::MPSStream* s = default_stream.load();
  if (s == nullptr) {
    const int64_t delay = option(KESTREL_SIM_CREATION_DELAY_US);
    if (delay > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay));
    s = make_stream(0);
    ++default_streams_created;
    default_stream.store(s);
  }
  return s;
}

at::mps::MPSStream* as_stream(void* stream, const char* entry) {
  CommandQueue* q = queue_of(stream, entry);
  return q != nullptr ? static_cast<at::mps::MPSStream*>(q->stream) : nullptr;
}

}  // namespace
}  // namespace kestrel_sim

namespace at::mps {

using namespace kestrel_sim;

MPSStream::MPSStream(Stream stream) : _stream(stream) {
  faulted(KESTREL_SIM_MEMBER_CONSTRUCTOR, "MPSStream()");
  CommandQueue* q = new_command_queue(this);
  _commandQueue = q;
  _serialQueue = q->queue;
}

// Streams live as long as the process, as torch's do.
MPSStream::~MPSStream() = default;

MPSCommandBuffer_t MPSStream::commandBuffer() {
  CommandQueue* q = state(this);
  Inside inside(q, "commandBuffer()");
  touch(q, "commandBuffer()");
  if (faulted(KESTREL_SIM_MEMBER_COMMAND_BUFFER, "commandBuffer()")) return nullptr;
  std::lock_guard<std::recursive_mutex> lock(q->mutex);
  return buffer_locked(q);
}

MTLComputeCommandEncoder_t MPSStream::commandEncoder() {
  CommandQueue* q = state(this);
  Inside inside(q, "commandEncoder()");
  TORCH_CHECK(option(KESTREL_SIM_ENCODER_NEEDS_QUEUE) == 0 || on_queue(q),
              "commandEncoder() must be called on the stream's serial queue (pytorch #198039)");
  touch(q, "commandEncoder()");
  if (faulted(KESTREL_SIM_MEMBER_COMMAND_ENCODER, "commandEncoder()")) return nullptr;
  std::lock_guard<std::recursive_mutex> lock(q->mutex);
  return coalesced_locked(q);
}

void MPSStream::endKernelCoalescing() {
  CommandQueue* q = state(this);
  Inside inside(q, "endKernelCoalescing()");
  touch(q, "endKernelCoalescing()");
  faulted(KESTREL_SIM_MEMBER_END_KERNEL_COALESCING, "endKernelCoalescing()");
  std::lock_guard<std::recursive_mutex> lock(q->mutex);
  end_coalescing_locked(q);
}

void MPSStream::synchronize(SyncType syncType) {
  CommandQueue* q = state(this);
  Inside inside(q, "synchronize()");
  ++q->stats[on_queue(q) ? KESTREL_SIM_STAT_SYNC_ON_QUEUE : KESTREL_SIM_STAT_SYNC_OFF_QUEUE];
  touch(q, "synchronize()");
  faulted(KESTREL_SIM_MEMBER_SYNCHRONIZE, "synchronize()");
  q->stats[KESTREL_SIM_STAT_LAST_SYNC] = static_cast<int64_t>(syncType);
  uint64_t wait_seq = 0;
  {
    std::lock_guard<std::recursive_mutex> lock(q->mutex);
    end_coalescing_locked(q);
    switch (syncType) {
      case SyncType::NONE:
        return;
      case SyncType::COMMIT:
      case SyncType::COMMIT_ADAPTIVE:
        commit_locked(q, option(KESTREL_SIM_COMMIT_AND_CONTINUE) != 0);
        return;
      case SyncType::COMMIT_AND_CONTINUE:
        // torch calls commitAndContinue without checking that it is on.
        commit_locked(q, /*keep=*/true);
        return;
      case SyncType::COMMIT_AND_WAIT:
        // commitAndWait releases the buffer whatever commit-and-continue says.
        wait_seq = commit_locked(q, /*keep=*/false);
        break;
    }
  }
  ++q->stats[KESTREL_SIM_STAT_WAITS];
  const bool gpu_failed = wait_for(q, wait_seq);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 10)
  TORCH_CHECK(!gpu_failed, "Command buffer execution failed (simulated GPU error)");
#else
  (void)gpu_failed;  // 2.9 does not check the last GPU error
#endif
}

MTLDevice_t MPSStream::device() const {
  if (faulted(KESTREL_SIM_MEMBER_DEVICE, "device()")) return nullptr;
  return device_object();
}

MPSStream* getDefaultMPSStream() {
  if (faulted(KESTREL_SIM_MEMBER_DEFAULT_STREAM, "getDefaultMPSStream()")) return nullptr;
  return default_or_create();
}

MPSStream* getCurrentMPSStream() {
  if (faulted(KESTREL_SIM_MEMBER_CURRENT_STREAM, "getCurrentMPSStream()")) return nullptr;
  if (option(KESTREL_SIM_STREAM_POOL) != 0 && current_stream != nullptr) return current_stream;
  return default_or_create();
}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 14)
void setCurrentMPSStream(MPSStream* stream) { current_stream = stream; }
MPSStream* getStreamFromPool() { return make_stream(next_stream_id++); }
#endif

bool is_available() {
  if (faulted(KESTREL_SIM_MEMBER_IS_AVAILABLE, "is_available()")) return false;
  return option(KESTREL_SIM_AVAILABLE) != 0;
}

}  // namespace at::mps

using namespace kestrel_sim;

extern "C" {

void* kestrel_sim_mps_default_stream(void) { return default_or_create(); }

void* kestrel_sim_mps_new_stream(void) { return make_stream(next_stream_id++); }

int kestrel_sim_mps_set_current_stream(void* stream) {
  if (option(KESTREL_SIM_STREAM_POOL) == 0) return -1;
  current_stream = stream == nullptr ? nullptr : as_stream(stream, "set_current_stream");
  return 0;
}

int kestrel_sim_mps_default_streams_created(void) { return default_streams_created.load(); }

void* kestrel_sim_mps_stream_queue(void* stream) {
  at::mps::MPSStream* s = as_stream(stream, "stream_queue");
  return s != nullptr ? static_cast<void*>(s->queue()) : nullptr;
}

void* kestrel_sim_mps_stream_command_queue(void* stream) {
  at::mps::MPSStream* s = as_stream(stream, "stream_command_queue");
  return s != nullptr ? s->commandQueue() : nullptr;
}

void* kestrel_sim_mps_stream_of(void* object) {
  CommandQueue* q = queue_of(object, "stream_of");
  return q != nullptr ? q->stream : nullptr;
}

int kestrel_sim_mps_on_queue(void* stream) {
  at::mps::MPSStream* s = as_stream(stream, "on_queue");
  return s != nullptr && on_queue(state(s)) ? 1 : 0;
}

int64_t kestrel_sim_mps_stat(void* stream, int stat) {
  at::mps::MPSStream* s = as_stream(stream, "stat");
  if (s == nullptr || stat < 0 || stat >= KESTREL_SIM_STAT_COUNT) return -1;
  return state(s)->stats[stat].load();
}

namespace {
struct TorchOp {
  at::mps::MPSStream* stream;
  int commit;
};
void torch_op_block(void* raw) {
  auto* op = static_cast<TorchOp*>(raw);
  void* pool = objc_autoreleasePoolPush();  // torch's @autoreleasepool
  try {
    void* enc = op->stream->commandEncoder();
    kestrel_sim_encoder_dispatch(enc, "torch.op", 1);
    if (op->commit != 0) op->stream->synchronize(at::mps::SyncType::COMMIT_ADAPTIVE);
  } catch (...) {
    // An injected fault; torch's dispatch_sync_with_rethrow would rethrow it
    // to the op's caller, which the model's "torch" thread ignores.
  }
  objc_autoreleasePoolPop(pool);
}
}  // namespace

void kestrel_sim_mps_torch_op(void* stream, int commit) {
  TorchOp op{as_stream(stream, "torch_op"), commit};
  if (op.stream == nullptr) return;
  dispatch_sync_f(op.stream->queue(), &op, torch_op_block);
}

void* kestrel_sim_mps_coalesced_encoder(void* stream) {
  at::mps::MPSStream* s = as_stream(stream, "coalesced_encoder");
  return s != nullptr ? static_cast<void*>(s->commandEncoder()) : nullptr;
}

void kestrel_sim_mps_reset(void) {
  reset_metal();
  current_stream = nullptr;
}

}  // extern "C"
