// Internals shared by the two halves of the model: metal_model.cpp (Metal's
// objects, the GPU, detectors; torch-free) and mps_model.cpp (torch's
// MPSStream over them).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include <dispatch/dispatch.h>

#include "kestrel_sim_mps.h"

namespace kestrel_sim {

// Records a breach of `kind` (kestrel_sim_detect) with a description.
void detect(int kind, const char* format, ...) __attribute__((format(printf, 2, 3)));

int64_t option(int which);
// The fault to apply to this call of `member` (kestrel_sim_fault), used up.
int take_fault(int member);

struct CommandBuffer;
struct Encoder;

// MTLCommandQueue, and the model's state of the stream that owns it (an
// MPSStream's own fields are torch's layout, which the model must not grow).
struct CommandQueue {
  void* stream = nullptr;  // at::mps::MPSStream*
  dispatch_queue_t queue = nullptr;
  std::recursive_mutex mutex;  // guards buffer, coalesced and what they point to
  CommandBuffer* buffer = nullptr;
  Encoder* coalesced = nullptr;
  std::atomic<uint64_t> inside{0};  // thread token of the thread in a member, 0: none
  std::atomic<int64_t> stats[KESTREL_SIM_STAT_COUNT] = {};
  // GPU progress, guarded by the GPU's lock.
  uint64_t committed_seq = 0;
  uint64_t completed_seq = 0;
  bool gpu_error = false;
};

// Registers a new command queue (and so a stream) with a dispatch queue of
// its own, tagged with the model's key.
CommandQueue* new_command_queue(void* stream);
// The command queue behind a handle of any kind (a stream included), or
// null (and a detection).
CommandQueue* queue_of(void* object, const char* entry);

// True when the calling thread runs a block on q's dispatch queue.
bool on_queue(const CommandQueue* q);
// A member of q's stream touches its command buffer or encoder: detected
// off the queue, trapped there when KESTREL_SIM_ASSERT_QUEUE is on.
void touch(const CommandQueue* q, const char* what);

// Marks the calling thread as inside q's members for its lifetime and
// detects another thread already inside.
class Inside {
 public:
  Inside(CommandQueue* q, const char* what);
  ~Inside();
  Inside(const Inside&) = delete;
  Inside& operator=(const Inside&) = delete;

 private:
  CommandQueue* q_;
  bool owner_ = false;
};

// With q->mutex held: the stream's command buffer, created lazily
// (autoreleased, then retained, as torch does).
CommandBuffer* buffer_locked(CommandQueue* q);
// With q->mutex held: torch's coalesced encoder, created lazily.
Encoder* coalesced_locked(CommandQueue* q);
// With q->mutex held: ends the coalesced encoder, if any.
void end_coalescing_locked(CommandQueue* q);
// With q->mutex held: commits the command buffer, if any; `keep` continues
// on the same object (commit-and-continue). Returns the commit's sequence
// number to wait for.
uint64_t commit_locked(CommandQueue* q, bool keep);
// Blocks until the GPU ran q's work up to seq; returns (and clears) whether
// a GPU error was reported since the last wait.
bool wait_for(CommandQueue* q, uint64_t seq);

void* device_object();

// Waits for the GPU, then clears detections, faults, statistics; restores
// the options' defaults.
void reset_metal();

}  // namespace kestrel_sim
