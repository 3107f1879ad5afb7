// libdispatch stand-in (tests/sim/include/dispatch/dispatch.h says what it
// reproduces). The rules it models, and why they matter to the bridge:
//  - "owning" a queue is libdispatch's drain lock: dispatch_sync_f takes it
//    for the queue and every queue up its target chain, on the caller's own
//    thread, and the thread keeps it for the whole block, however deep it
//    then nests; that is why a second dispatch_sync_f onto any of them traps;
//  - the "current queue" that dispatch_get_specific reads is only the
//    innermost block's queue: a block that syncs onto an unrelated queue has
//    left its tag behind although it still owns the outer queue.
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <dispatch/dispatch.h>

namespace {

struct Queue : dispatch_queue_s {
  explicit Queue(const char* name) : label(name != nullptr ? name : "") {}

  const unsigned magic = 0x51554555u;
  std::string label;
  Queue* target = nullptr;

  std::mutex mutex;  // guards everything below
  std::condition_variable released;
  bool owned = false;
  std::deque<std::pair<void*, dispatch_function_t>> pending;  // async work
  bool drain_scheduled = false;
  std::map<const void*, std::pair<void*, dispatch_function_t>> specifics;
  int references = 1;
};

[[noreturn]] void trap(const std::string& what) {
  std::fprintf(stderr, "BUG IN CLIENT OF LIBDISPATCH: %s\n", what.c_str());
  std::fflush(stderr);
  __builtin_trap();
}

Queue* as_queue(dispatch_queue_t q, const char* entry) {
  auto* queue = static_cast<Queue*>(q);
  if (queue == nullptr || queue->magic != 0x51554555u) {
    trap(std::string(entry) + " called with an object that is not a queue");
  }
  return queue;
}

// The queues this thread owns (innermost last) and the queues of the blocks
// it is running (innermost last): two stacks, because they answer different
// questions (traps versus specifics).
thread_local std::vector<Queue*> owned_here;
thread_local std::vector<Queue*> running_here;

bool owns(const Queue* q) {
  for (const Queue* o : owned_here) {
    if (o == q) return true;
  }
  return false;
}

std::vector<Queue*> chain_of(Queue* q) {
  std::vector<Queue*> chain;
  for (Queue* hop = q; hop != nullptr; hop = hop->target) chain.push_back(hop);
  return chain;
}

void acquire(const std::vector<Queue*>& chain) {
  for (Queue* q : chain) {
    std::unique_lock<std::mutex> lock(q->mutex);
    q->released.wait(lock, [q] { return !q->owned; });
    q->owned = true;
    owned_here.push_back(q);
  }
}

void release(const std::vector<Queue*>& chain) {
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    Queue* q = *it;
    owned_here.pop_back();
    {
      std::lock_guard<std::mutex> lock(q->mutex);
      q->owned = false;
    }
    q->released.notify_all();
  }
}

void run_block(Queue* q, void* context, dispatch_function_t work) {
  running_here.push_back(q);
  work(context);
  running_here.pop_back();
}

// Worker threads for async work, as libdispatch's root queues have. Never
// destroyed: workers may still wait on it while the process exits.
class Workers {
 public:
  static Workers& get() {
    static Workers* workers = new Workers;
    return *workers;
  }
  void drain_later(Queue* q) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.push_back(q);
      if (idle_ == 0) std::thread([this] { loop(); }).detach();
    }
    wake_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      Queue* q;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ++idle_;
        wake_.wait(lock, [this] { return !ready_.empty(); });
        --idle_;
        q = ready_.front();
        ready_.pop_front();
      }
      drain(q);
    }
  }
  static void drain(Queue* q) {
    const std::vector<Queue*> chain = chain_of(q);
    acquire(chain);
    for (;;) {
      std::pair<void*, dispatch_function_t> item;
      {
        std::lock_guard<std::mutex> lock(q->mutex);
        if (q->pending.empty()) {
          q->drain_scheduled = false;
          break;
        }
        item = q->pending.front();
        q->pending.pop_front();
      }
      run_block(q, item.first, item.second);
    }
    release(chain);
    dispatch_release(q);
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Queue*> ready_;
  int idle_ = 0;
};

}  // namespace

extern "C" {

dispatch_queue_t dispatch_queue_create(const char* label, dispatch_queue_attr_t attr) {
  if (attr != DISPATCH_QUEUE_SERIAL) trap("the stand-in has serial queues only");
  return new Queue(label);
}

dispatch_queue_t dispatch_queue_create_with_target(const char* label, dispatch_queue_attr_t attr,
                                                   dispatch_queue_t target) {
  dispatch_queue_t q = dispatch_queue_create(label, attr);
  if (target != nullptr) dispatch_set_target_queue(q, target);
  return q;
}

void dispatch_set_target_queue(dispatch_object_t object, dispatch_queue_t target) {
  Queue* q = as_queue(static_cast<dispatch_queue_t>(object), "dispatch_set_target_queue");
  Queue* t = target != nullptr ? as_queue(target, "dispatch_set_target_queue") : nullptr;
  for (Queue* hop = t; hop != nullptr; hop = hop->target) {
    if (hop == q) trap("dispatch_set_target_queue would make a cycle of targets");
  }
  std::lock_guard<std::mutex> lock(q->mutex);
  q->target = t;
}

const char* dispatch_queue_get_label(dispatch_queue_t queue) {
  return as_queue(queue, "dispatch_queue_get_label")->label.c_str();
}

void dispatch_sync_f(dispatch_queue_t queue, void* context, dispatch_function_t work) {
  Queue* q = as_queue(queue, "dispatch_sync_f");
  const std::vector<Queue*> chain = chain_of(q);
  for (const Queue* hop : chain) {
    if (owns(hop)) trap("dispatch_sync called on queue already owned by current thread");
  }
  acquire(chain);
  run_block(q, context, work);
  release(chain);
}

void dispatch_async_f(dispatch_queue_t queue, void* context, dispatch_function_t work) {
  Queue* q = as_queue(queue, "dispatch_async_f");
  bool schedule;
  {
    std::lock_guard<std::mutex> lock(q->mutex);
    q->pending.emplace_back(context, work);
    schedule = !q->drain_scheduled;
    q->drain_scheduled = true;
    // A scheduled drain keeps the queue alive, as libdispatch's does: the
    // caller may release it while the worker still runs (found by TSan).
    if (schedule) ++q->references;
  }
  if (schedule) Workers::get().drain_later(q);
}

void dispatch_queue_set_specific(dispatch_queue_t queue, const void* key, void* context,
                                 dispatch_function_t destructor) {
  Queue* q = as_queue(queue, "dispatch_queue_set_specific");
  std::pair<void*, dispatch_function_t> old{nullptr, nullptr};
  {
    std::lock_guard<std::mutex> lock(q->mutex);
    auto it = q->specifics.find(key);
    if (it != q->specifics.end()) {
      old = it->second;
      q->specifics.erase(it);
    }
    if (context != nullptr) q->specifics[key] = {context, destructor};
  }
  if (old.first != nullptr && old.second != nullptr) old.second(old.first);
}

void* dispatch_queue_get_specific(dispatch_queue_t queue, const void* key) {
  Queue* q = as_queue(queue, "dispatch_queue_get_specific");
  std::lock_guard<std::mutex> lock(q->mutex);
  auto it = q->specifics.find(key);
  return it != q->specifics.end() ? it->second.first : nullptr;
}

void* dispatch_get_specific(const void* key) {
  if (running_here.empty()) return nullptr;
  for (Queue* hop = running_here.back(); hop != nullptr; hop = hop->target) {
    std::lock_guard<std::mutex> lock(hop->mutex);
    auto it = hop->specifics.find(key);
    if (it != hop->specifics.end()) return it->second.first;
  }
  return nullptr;
}

void dispatch_assert_queue(dispatch_queue_t queue) {
  Queue* q = as_queue(queue, "dispatch_assert_queue");
  if (!owns(q)) {
    trap("Assertion failed: Block was expected to execute on queue [" + q->label + "]");
  }
}

void dispatch_assert_queue_not(dispatch_queue_t queue) {
  Queue* q = as_queue(queue, "dispatch_assert_queue_not");
  if (owns(q)) {
    trap("Assertion failed: Block was expected not to execute on queue [" + q->label + "]");
  }
}

void dispatch_retain(dispatch_object_t object) {
  Queue* q = as_queue(static_cast<dispatch_queue_t>(object), "dispatch_retain");
  std::lock_guard<std::mutex> lock(q->mutex);
  ++q->references;
}

void dispatch_release(dispatch_object_t object) {
  Queue* q = as_queue(static_cast<dispatch_queue_t>(object), "dispatch_release");
  bool last;
  {
    std::lock_guard<std::mutex> lock(q->mutex);
    if (q->references <= 0) trap("over-release of a queue");
    last = --q->references == 0 && !q->owned && q->pending.empty();
  }
  if (last) delete q;
}

}  // extern "C"
