// The Metal half of the model: command queues, command buffers, encoders,
// a GPU that runs committed work after a latency, the detectors, options
// and faults. Torch-free; mps_model.cpp puts torch's MPSStream on top.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <unordered_set>

#include "kestrel_sim_objc.h"
#include "model.h"

namespace kestrel_sim {

struct Command {
  kestrel_sim_kernel fn;
  void* buffers[KESTREL_SIM_MAX_BINDINGS];
  std::vector<uint8_t> bytes[KESTREL_SIM_MAX_BINDINGS];
  bool has_bytes[KESTREL_SIM_MAX_BINDINGS];
  uint64_t threads;
  const Encoder* encoder = nullptr;  // that recorded it
};

struct CommandBuffer {
  CommandQueue* owner = nullptr;
  std::atomic<int> references{1};
  bool committed = false;
  bool released = false;
  Encoder* active = nullptr;  // the encoder encoding into it, if any
  std::vector<Command> commands;  // recorded since the last commit
};

struct Encoder {
  CommandBuffer* buffer = nullptr;
  bool coalesced = false;
  bool open = true;
  void* bound[KESTREL_SIM_MAX_BINDINGS] = {};
  uint64_t offsets[KESTREL_SIM_MAX_BINDINGS] = {};
  std::vector<uint8_t> bytes[KESTREL_SIM_MAX_BINDINGS];
  bool has_bytes[KESTREL_SIM_MAX_BINDINGS] = {};
};

namespace {

// ---- options and faults ----
int64_t default_option(int which) {
  switch (which) {
    case KESTREL_SIM_COMMIT_AND_CONTINUE: return 1;
    case KESTREL_SIM_STREAM_POOL: return KESTREL_SIM_POOL_DEFAULT;
    case KESTREL_SIM_GPU_LATENCY_US: return 5000;
    case KESTREL_SIM_AVAILABLE: return 1;
    // pytorch #198039 as the default, ahead of its release: the stricter
    // torch is the one every stream test must pass under.
    case KESTREL_SIM_ENCODER_NEEDS_QUEUE: return 1;
    default: return 0;
  }
}

struct Options {
  std::atomic<int64_t> values[KESTREL_SIM_OPTION_COUNT];
  Options() { restore(); }
  void restore() {
    for (int i = 0; i < KESTREL_SIM_OPTION_COUNT; ++i) values[i] = default_option(i);
  }
};
Options& options() {
  static Options* o = new Options;
  return *o;
}

std::mutex fault_mutex;
int fault_kind[KESTREL_SIM_MEMBER_COUNT];
int fault_times[KESTREL_SIM_MEMBER_COUNT];
std::atomic<bool> any_fault{false};
std::atomic<bool> gpu_error_next{false};

// ---- detections ----
std::atomic<uint64_t> detected[KESTREL_SIM_DETECT_COUNT];
std::mutex report_mutex;
std::vector<std::string> report;  // the first breaches, for messages

const char* detect_name(int kind) {
  static const char* const names[KESTREL_SIM_DETECT_COUNT] = {
      "ALREADY_ENCODING", "COMMITTED_BUFFER", "OFF_QUEUE", "CONCURRENT",
      "COMMIT_WITH_OPEN_ENCODER", "NOT_AN_OBJECT"};
  return kind >= 0 && kind < KESTREL_SIM_DETECT_COUNT ? names[kind] : "?";
}

// ---- the registry of live objects: a handle is checked before use ----
// Streams are registered too (with their command queue), so that a stream
// handle is checked without reading through it.
enum class Kind { Stream, CommandQueue, CommandBuffer, Encoder, Device };
struct Entry {
  Kind kind;
  CommandQueue* queue;
};
std::mutex registry_mutex;
std::map<const void*, Entry>& registry() {
  static auto* r = new std::map<const void*, Entry>;
  return *r;
}
void register_object(const void* p, Kind k, CommandQueue* q = nullptr) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  registry()[p] = Entry{k, q};
}
bool is_kind(const void* p, Kind k) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto it = registry().find(p);
  return it != registry().end() && it->second.kind == k;
}
CommandQueue* stream_queue(const void* p) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto it = registry().find(p);
  return it != registry().end() && it->second.kind == Kind::Stream ? it->second.queue : nullptr;
}
std::vector<CommandQueue*> all_queues() {
  std::vector<CommandQueue*> out;
  std::lock_guard<std::mutex> lock(registry_mutex);
  for (auto& [p, e] : registry()) {
    if (e.kind == Kind::CommandQueue) out.push_back(static_cast<CommandQueue*>(const_cast<void*>(p)));
  }
  return out;
}

struct Device {
  int unused;
};
Device the_device;
const bool device_registered = (register_object(&the_device, Kind::Device), true);

char queue_key;  // the model's own tag on each stream's queue (torch's #198039 uses one too)

uint64_t thread_token() {
  static std::atomic<uint64_t> next{1};
  thread_local uint64_t token = next.fetch_add(1);
  return token;
}

// ---- kernels ----
std::mutex kernel_mutex;
std::map<std::string, kestrel_sim_kernel>& kernels() {
  static auto* k = new std::map<std::string, kestrel_sim_kernel>;
  return *k;
}

// ---- the GPU ----
class Gpu {
 public:
  static Gpu& get() {
    static Gpu* gpu = new Gpu;  // never destroyed: its thread outlives exit
    return *gpu;
  }
  void submit(CommandQueue* q, uint64_t seq, std::vector<Command> commands, bool fail) {
    const auto latency = std::chrono::microseconds(option(KESTREL_SIM_GPU_LATENCY_US));
    {
      std::lock_guard<std::mutex> lock(mutex);
      batches_.push_back(
          Batch{q, seq, std::move(commands), fail, std::chrono::steady_clock::now() + latency});
      if (!started_) {
        started_ = true;
        std::thread([this] { loop(); }).detach();
      }
    }
    changed.notify_all();
  }
  void wait_all() {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [this] { return batches_.empty() && !running_; });
  }
  std::mutex mutex;
  std::condition_variable changed;

 private:
  struct Batch {
    CommandQueue* q;
    uint64_t seq;
    std::vector<Command> commands;
    bool fail;
    std::chrono::steady_clock::time_point ready;
  };
  void loop() {
    for (;;) {
      Batch batch;
      {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [this] { return !batches_.empty(); });
        batch = std::move(batches_.front());
        batches_.pop_front();
        running_ = true;
      }
      std::this_thread::sleep_until(batch.ready);
      if (!batch.fail) {
        for (const Command& c : batch.commands) run(c);
      }
      batch.q->stats[KESTREL_SIM_STAT_KERNELS_RUN] +=
          batch.fail ? 0 : static_cast<int64_t>(batch.commands.size());
      {
        std::lock_guard<std::mutex> lock(mutex);
        batch.q->completed_seq = batch.seq;
        if (batch.fail) batch.q->gpu_error = true;
        running_ = false;
      }
      changed.notify_all();
    }
  }
  static void run(const Command& c) {
    kestrel_sim_kernel_args args;
    std::memset(&args, 0, sizeof args);
    for (int i = 0; i < KESTREL_SIM_MAX_BINDINGS; ++i) {
      args.buffers[i] = c.buffers[i];
      if (c.has_bytes[i]) {
        args.bytes[i] = c.bytes[i].data();
        args.bytes_length[i] = c.bytes[i].size();
      }
    }
    args.threads = c.threads;
    c.fn(&args);
  }
  std::deque<Batch> batches_;
  bool running_ = false;
  bool started_ = false;
};

void release_buffer(void* object) {
  auto* cb = static_cast<CommandBuffer*>(object);
  // Freed objects stay in memory (and in the registry, marked released) so
  // that a stale handle is detected instead of corrupting the heap.
  if (--cb->references == 0) cb->released = true;
}

void no_release(void*) {}

Encoder* new_encoder_locked(CommandBuffer* cb, bool coalesced) {
  if (cb->committed) {
    detect(KESTREL_SIM_DETECT_COMMITTED_BUFFER,
           "an encoder was opened on command buffer %p after its final commit", (void*)cb);
  }
  if (cb->active != nullptr && cb->active->open) {
    detect(KESTREL_SIM_DETECT_ALREADY_ENCODING,
           "A command encoder is already encoding to this command buffer (%p: %s encoder %p "
           "still open)",
           (void*)cb, cb->active->coalesced ? "torch's coalesced" : "an own", (void*)cb->active);
  }
  auto* enc = new Encoder;
  enc->buffer = cb;
  enc->coalesced = coalesced;
  register_object(enc, Kind::Encoder);
  cb->active = enc;
  return enc;
}

void end_locked(Encoder* enc) {
  enc->open = false;
  if (enc->buffer->active == enc) enc->buffer->active = nullptr;
}

// The encoder behind a consumer's handle, checked: live, on its queue.
Encoder* checked_encoder(void* handle, const char* entry) {
  if (!is_kind(handle, Kind::Encoder)) {
    detect(KESTREL_SIM_DETECT_NOT_AN_OBJECT, "%s: %p is not an encoder of the model", entry,
           handle);
    return nullptr;
  }
  auto* enc = static_cast<Encoder*>(handle);
  touch(enc->buffer->owner, entry);
  return enc;
}

bool usable_locked(Encoder* enc, const char* entry) {
  if (!enc->open || enc->buffer->committed || enc->buffer->released) {
    detect(KESTREL_SIM_DETECT_COMMITTED_BUFFER, "%s: encoder %p %s", entry, (void*)enc,
           !enc->open ? "used after endEncoding" : "on a committed command buffer");
    return false;
  }
  return true;
}

void torch_op_kernel(const kestrel_sim_kernel_args*) {}
const bool torch_op_registered =
    (kestrel_sim_register_kernel("torch.op", torch_op_kernel) == 0);

}  // namespace

// ---- internal API (model.h) ----

void detect(int kind, const char* format, ...) {
  if (kind < 0 || kind >= KESTREL_SIM_DETECT_COUNT) return;
  ++detected[kind];
  char text[400];
  va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof text, format, args);
  va_end(args);
  std::lock_guard<std::mutex> lock(report_mutex);
  if (report.size() < 32) report.push_back(std::string(detect_name(kind)) + ": " + text);
}

int64_t option(int which) {
  return which >= 0 && which < KESTREL_SIM_OPTION_COUNT ? options().values[which].load() : 0;
}

int take_fault(int member) {
  if (!any_fault.load(std::memory_order_relaxed)) return KESTREL_SIM_FAULT_NONE;
  std::lock_guard<std::mutex> lock(fault_mutex);
  if (fault_times[member] == 0) return KESTREL_SIM_FAULT_NONE;
  if (fault_times[member] > 0) --fault_times[member];
  return fault_kind[member];
}

CommandQueue* new_command_queue(void* stream) {
  auto* q = new CommandQueue;
  q->stream = stream;
  q->queue = dispatch_queue_create("metal gpu stream (simulated)", DISPATCH_QUEUE_SERIAL);
  dispatch_queue_set_specific(q->queue, &queue_key, q, nullptr);
  q->stats[KESTREL_SIM_STAT_LAST_SYNC] = -1;
  register_object(q, Kind::CommandQueue);
  register_object(stream, Kind::Stream, q);
  return q;
}

CommandQueue* queue_of(void* object, const char* entry) {
  if (CommandQueue* q = stream_queue(object)) return q;
  if (is_kind(object, Kind::CommandQueue)) return static_cast<CommandQueue*>(object);
  if (is_kind(object, Kind::CommandBuffer)) return static_cast<CommandBuffer*>(object)->owner;
  if (is_kind(object, Kind::Encoder)) return static_cast<Encoder*>(object)->buffer->owner;
  detect(KESTREL_SIM_DETECT_NOT_AN_OBJECT, "%s: %p is not an object of the model", entry, object);
  return nullptr;
}

bool on_queue(const CommandQueue* q) { return dispatch_get_specific(&queue_key) == q; }

void touch(const CommandQueue* q, const char* what) {
  if (option(KESTREL_SIM_ASSERT_QUEUE) != 0) dispatch_assert_queue(q->queue);
  if (!on_queue(q)) {
    detect(KESTREL_SIM_DETECT_OFF_QUEUE, "%s off its stream's serial queue (stream %p)", what,
           q->stream);
  }
}

Inside::Inside(CommandQueue* q, const char* what) : q_(q) {
  const uint64_t me = thread_token();
  uint64_t expected = 0;
  if (q->inside.compare_exchange_strong(expected, me)) {
    owner_ = true;
    if (const int64_t delay = option(KESTREL_SIM_MEMBER_DELAY_US); delay > 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(delay));
    }
  } else if (expected != me) {
    detect(KESTREL_SIM_DETECT_CONCURRENT,
           "%s: a second thread entered stream %p while another was inside it", what, q->stream);
  }
}

Inside::~Inside() {
  if (owner_) q_->inside.store(0);
}

CommandBuffer* buffer_locked(CommandQueue* q) {
  if (q->buffer == nullptr) {
    auto* cb = new CommandBuffer;
    cb->owner = q;
    register_object(cb, Kind::CommandBuffer);
    // [MPSCommandBuffer commandBufferFromCommandQueue:] autoreleases; torch retains.
    kestrel_sim_objc_autorelease(cb, release_buffer);
    ++cb->references;
    q->buffer = cb;
    ++q->stats[KESTREL_SIM_STAT_BUFFERS_CREATED];
  }
  return q->buffer;
}

Encoder* coalesced_locked(CommandQueue* q) {
  if (q->coalesced == nullptr) {
    q->coalesced = new_encoder_locked(buffer_locked(q), /*coalesced=*/true);
    ++q->stats[KESTREL_SIM_STAT_COALESCED_OPENED];
  }
  return q->coalesced;
}

void end_coalescing_locked(CommandQueue* q) {
  if (q->coalesced != nullptr) {
    end_locked(q->coalesced);
    q->coalesced = nullptr;
    ++q->stats[KESTREL_SIM_STAT_COALESCED_ENDED];
  }
}

uint64_t commit_locked(CommandQueue* q, bool keep) {
  Gpu& gpu = Gpu::get();
  CommandBuffer* cb = q->buffer;
  if (cb == nullptr) {
    std::lock_guard<std::mutex> lock(gpu.mutex);
    return q->committed_seq;
  }
  if (cb->active != nullptr && cb->active->open) {
    detect(KESTREL_SIM_DETECT_COMMIT_WITH_OPEN_ENCODER,
           "command buffer %p committed while encoder %p had not ended", (void*)cb,
           (void*)cb->active);
    // Metal refuses such a commit (an assertion on a Mac); the model drops
    // the open encoder's work, so that the mistake shows in the numbers too.
    const Encoder* open = cb->active;
    const auto lost = std::remove_if(cb->commands.begin(), cb->commands.end(),
                                     [open](const Command& c) { return c.encoder == open; });
    q->stats[KESTREL_SIM_STAT_KERNELS_LOST] += cb->commands.end() - lost;
    cb->commands.erase(lost, cb->commands.end());
  }
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(gpu.mutex);
    seq = ++q->committed_seq;
  }
  gpu.submit(q, seq, std::move(cb->commands), gpu_error_next.exchange(false));
  cb->commands.clear();
  ++q->stats[KESTREL_SIM_STAT_COMMITS];
  if (!keep) {
    cb->committed = true;
    q->buffer = nullptr;
    release_buffer(cb);
  }
  return seq;
}

bool wait_for(CommandQueue* q, uint64_t seq) {
  Gpu& gpu = Gpu::get();
  std::unique_lock<std::mutex> lock(gpu.mutex);
  gpu.changed.wait(lock, [&] { return q->completed_seq >= seq; });
  const bool failed = q->gpu_error;
  q->gpu_error = false;
  return failed;
}

void* device_object() { return &the_device; }

void reset_metal() {
  Gpu::get().wait_all();
  for (auto& d : detected) d = 0;
  {
    std::lock_guard<std::mutex> lock(report_mutex);
    report.clear();
  }
  {
    std::lock_guard<std::mutex> lock(fault_mutex);
    for (int i = 0; i < KESTREL_SIM_MEMBER_COUNT; ++i) fault_kind[i] = fault_times[i] = 0;
    any_fault = false;
  }
  gpu_error_next = false;
  options().restore();
  for (CommandQueue* q : all_queues()) {
    for (auto& s : q->stats) s = 0;
    q->stats[KESTREL_SIM_STAT_LAST_SYNC] = -1;
  }
}

}  // namespace kestrel_sim

using namespace kestrel_sim;

extern "C" {

void kestrel_sim_mps_set_option(int which, int64_t value) {
  if (which >= 0 && which < KESTREL_SIM_OPTION_COUNT) options().values[which] = value;
}
int64_t kestrel_sim_mps_get_option(int which) { return option(which); }

void kestrel_sim_mps_inject(int member, int fault, int times) {
  if (member < 0 || member >= KESTREL_SIM_MEMBER_COUNT) return;
  std::lock_guard<std::mutex> lock(fault_mutex);
  fault_kind[member] = fault;
  fault_times[member] = fault == KESTREL_SIM_FAULT_NONE ? 0 : times;
  any_fault = true;
}

void kestrel_sim_mps_inject_gpu_error(void) { gpu_error_next = true; }

void* kestrel_sim_mps_device(void) { return device_object(); }

void kestrel_sim_mps_gpu_wait_all(void) { Gpu::get().wait_all(); }

int kestrel_sim_is_command_buffer(void* o) { return is_kind(o, Kind::CommandBuffer); }
int kestrel_sim_is_encoder(void* o) { return is_kind(o, Kind::Encoder); }
int kestrel_sim_is_command_queue(void* o) { return is_kind(o, Kind::CommandQueue); }
int kestrel_sim_is_device(void* o) { return is_kind(o, Kind::Device); }

int kestrel_sim_encoder_is_open(void* encoder) {
  if (!is_kind(encoder, Kind::Encoder)) return 0;
  auto* enc = static_cast<Encoder*>(encoder);
  std::lock_guard<std::recursive_mutex> lock(enc->buffer->owner->mutex);
  return enc->open ? 1 : 0;
}

int kestrel_sim_command_buffer_is_committed(void* command_buffer) {
  if (!is_kind(command_buffer, Kind::CommandBuffer)) return 0;
  auto* cb = static_cast<CommandBuffer*>(command_buffer);
  std::lock_guard<std::recursive_mutex> lock(cb->owner->mutex);
  return cb->committed ? 1 : 0;
}

int kestrel_sim_register_kernel(const char* name, kestrel_sim_kernel fn) {
  if (name == nullptr || fn == nullptr) return -1;
  std::lock_guard<std::mutex> lock(kernel_mutex);
  auto [it, inserted] = kernels().emplace(name, fn);
  return inserted || it->second == fn ? 0 : -1;
}

void* kestrel_sim_command_buffer_new_encoder(void* command_buffer) {
  if (!is_kind(command_buffer, Kind::CommandBuffer)) {
    detect(KESTREL_SIM_DETECT_NOT_AN_OBJECT, "computeCommandEncoder: %p is not a command buffer",
           command_buffer);
    return nullptr;
  }
  auto* cb = static_cast<CommandBuffer*>(command_buffer);
  CommandQueue* q = cb->owner;
  Inside inside(q, "computeCommandEncoder");
  touch(q, "computeCommandEncoder");
  Encoder* enc;
  {
    std::lock_guard<std::recursive_mutex> lock(q->mutex);
    if (cb->released) {
      detect(KESTREL_SIM_DETECT_COMMITTED_BUFFER,
             "computeCommandEncoder on command buffer %p after it was released", (void*)cb);
    }
    enc = new_encoder_locked(cb, /*coalesced=*/false);
  }
  kestrel_sim_objc_autorelease(enc, no_release);
  return enc;
}

void kestrel_sim_encoder_set_buffer(void* encoder, void* buffer, uint64_t offset,
                                    uint32_t index) {
  Encoder* enc = checked_encoder(encoder, "setBuffer");
  if (enc == nullptr || index >= KESTREL_SIM_MAX_BINDINGS) return;
  Inside inside(enc->buffer->owner, "setBuffer");
  std::lock_guard<std::recursive_mutex> lock(enc->buffer->owner->mutex);
  if (!usable_locked(enc, "setBuffer")) return;
  enc->bound[index] = buffer;
  enc->offsets[index] = offset;
}

void kestrel_sim_encoder_set_bytes(void* encoder, const void* bytes, size_t length,
                                   uint32_t index) {
  Encoder* enc = checked_encoder(encoder, "setBytes");
  if (enc == nullptr || index >= KESTREL_SIM_MAX_BINDINGS) return;
  Inside inside(enc->buffer->owner, "setBytes");
  std::lock_guard<std::recursive_mutex> lock(enc->buffer->owner->mutex);
  if (!usable_locked(enc, "setBytes")) return;
  const auto* p = static_cast<const uint8_t*>(bytes);
  enc->bytes[index].assign(p, p + length);
  enc->has_bytes[index] = true;
}

void kestrel_sim_encoder_dispatch(void* encoder, const char* name, uint64_t threads) {
  Encoder* enc = checked_encoder(encoder, "dispatchThreads");
  if (enc == nullptr) return;
  kestrel_sim_kernel fn = nullptr;
  {
    std::lock_guard<std::mutex> lock(kernel_mutex);
    auto it = kernels().find(name != nullptr ? name : "");
    if (it != kernels().end()) fn = it->second;
  }
  if (fn == nullptr) {
    detect(KESTREL_SIM_DETECT_NOT_AN_OBJECT, "dispatchThreads: no kernel named '%s'",
           name != nullptr ? name : "(null)");
    return;
  }
  CommandQueue* q = enc->buffer->owner;
  Inside inside(q, "dispatchThreads");
  std::lock_guard<std::recursive_mutex> lock(q->mutex);
  if (!usable_locked(enc, "dispatchThreads")) {
    ++q->stats[KESTREL_SIM_STAT_KERNELS_LOST];
    return;
  }
  Command c;
  c.fn = fn;
  c.threads = threads;
  c.encoder = enc;
  for (int i = 0; i < KESTREL_SIM_MAX_BINDINGS; ++i) {
    c.buffers[i] = enc->bound[i] != nullptr ? static_cast<char*>(enc->bound[i]) + enc->offsets[i]
                                            : nullptr;
    c.has_bytes[i] = enc->has_bytes[i];
    if (enc->has_bytes[i]) c.bytes[i] = enc->bytes[i];
  }
  enc->buffer->commands.push_back(std::move(c));
}

void kestrel_sim_encoder_end(void* encoder) {
  Encoder* enc = checked_encoder(encoder, "endEncoding");
  if (enc == nullptr) return;
  Inside inside(enc->buffer->owner, "endEncoding");
  std::lock_guard<std::recursive_mutex> lock(enc->buffer->owner->mutex);
  if (!enc->open) {
    detect(KESTREL_SIM_DETECT_COMMITTED_BUFFER, "endEncoding: encoder %p had already ended",
           (void*)enc);
    return;
  }
  end_locked(enc);
}

uint64_t kestrel_sim_detections(int kind) {
  return kind >= 0 && kind < KESTREL_SIM_DETECT_COUNT ? detected[kind].load() : 0;
}

uint64_t kestrel_sim_detection_report(char* text, size_t size) {
  uint64_t total = 0;
  for (auto& d : detected) total += d.load();
  if (text == nullptr || size == 0) return total;
  std::string all;
  {
    std::lock_guard<std::mutex> lock(report_mutex);
    for (const std::string& line : report) all += line + "\n";
  }
  std::snprintf(text, size, "%s", all.c_str());
  return total;
}

}  // extern "C"
