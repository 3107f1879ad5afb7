// The queue rules of shim/queue_discipline.h over a stand-in serial queue
// (a worker thread per stream), so that every status path of the Metal
// backend's queue handling runs on Linux: re-entry refused instead of
// trapped, off-queue access refused, the stream remembered inside a
// callback, synchronize moved onto the queue, exceptions contained, one
// autorelease pool per dispatched block.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <queue>
#include <stdexcept>
#include <string>
#include <thread>

#include "catch_compat.hpp"
#include "queue_discipline.h"

namespace {

// A serial queue as libdispatch has one per MPSStream: blocks run one at a
// time on a worker thread; dispatch_sync waits for its block.
class SerialQueue {
 public:
  SerialQueue() : worker_([this] { loop(); }) {}
  ~SerialQueue() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }
  void sync(std::function<void()> block) {
    std::mutex done_mutex;
    std::condition_variable done_cv;
    bool done = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks_.push([&] {
        block();
        std::lock_guard<std::mutex> l(done_mutex);
        done = true;
        done_cv.notify_all();
      });
    }
    wake_.notify_all();
    std::unique_lock<std::mutex> l(done_mutex);
    done_cv.wait(l, [&] { return done; });
  }
  bool runs_this_thread() const { return std::this_thread::get_id() == worker_.get_id(); }

 private:
  void loop() {
    for (;;) {
      std::function<void()> block;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !blocks_.empty(); });
        if (blocks_.empty()) return;
        block = std::move(blocks_.front());
        blocks_.pop();
      }
      block();
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  std::queue<std::function<void()>> blocks_;
  bool stopping_ = false;
  std::thread worker_;
};

// Two streams, as torch 2.14's pool has several, each with its own queue.
struct FakeStream {
  SerialQueue queue;
  std::atomic<bool> tagged{false};
};
FakeStream* streams[2];
thread_local FakeStream* tls_current = nullptr;  // the calling thread's current stream
std::atomic<int> traps{0};                        // dispatch_sync onto the queue we are on
std::atomic<int> pools_open{0};
std::atomic<int> pools_pushed{0};

struct FakeQueues {
  struct Pool {
    Pool() {
      ++pools_open;
      ++pools_pushed;
    }
    ~Pool() { --pools_open; }
  };
  static void* current() { return tls_current != nullptr ? tls_current : streams[0]; }
  static void tag(void* s) { static_cast<FakeStream*>(s)->tagged = true; }
  static void* tagged_here() noexcept {
    for (FakeStream* s : streams) {
      if (s->tagged && s->queue.runs_this_thread()) return s;
    }
    return nullptr;
  }
  static void dispatch_sync(void* s, void* context, void (*fn)(void*)) {
    auto* stream = static_cast<FakeStream*>(s);
    if (stream->queue.runs_this_thread()) {  // libdispatch would trap here
      ++traps;
      return;
    }
    stream->queue.sync([=] { fn(context); });
  }
};

using Discipline = kestrel_shim::QueueDiscipline<FakeQueues>;

struct Fixture {
  Fixture() {
    for (auto*& s : streams) s = new FakeStream;
    traps = 0;
    pools_pushed = 0;
    tls_current = nullptr;
  }
  ~Fixture() {
    for (auto*& s : streams) delete s;
  }
};

template <class F>
kestrel_mps_status run(F&& f) {
  return Discipline::run("run_on_stream_queue", [](void* ctx) { (*static_cast<F*>(ctx))(); }, &f);
}

}  // namespace

TEST_CASE("a callback runs on the current stream's queue, in a pool of its own") {
  Fixture fx;
  bool on_queue = false;
  int pools_inside = 0;
  REQUIRE(run([&] {
            on_queue = streams[0]->queue.runs_this_thread();
            pools_inside = pools_open;
          }) == KESTREL_MPS_OK);
  CHECK(on_queue);
  CHECK(pools_inside == 1);
  CHECK(pools_open == 0);
  CHECK(pools_pushed == 1);
}

TEST_CASE("run_on_stream_queue from inside its callback is refused, not trapped") {
  Fixture fx;
  kestrel_mps_status inner = -1;
  std::string message;
  REQUIRE(run([&] {
            inner = run([] {});
            message = kestrel_shim::last_error();
          }) == KESTREL_MPS_OK);
  CHECK(inner == KESTREL_MPS_ERROR_REENTRANT);
  CHECK(message.find("already runs on the stream's serial queue") != std::string::npos);
  CHECK(traps == 0);
}

TEST_CASE("a block on the queue that was not ours is recognised once the queue is tagged") {
  Fixture fx;
  Discipline::current();  // tags stream 0's queue, as any entry does
  kestrel_mps_status inner = -1;
  void* here = nullptr;
  streams[0]->queue.sync([&] {  // someone else's dispatch_sync (torch's, the consumer's)
    here = Discipline::stream_here();
    inner = run([] {});
  });
  CHECK(here == streams[0]);
  CHECK(inner == KESTREL_MPS_ERROR_REENTRANT);
  CHECK(traps == 0);
}

TEST_CASE("queue-only entries refuse an off-queue caller and accept one on the queue") {
  Fixture fx;
  void* stream = nullptr;
  CHECK(Discipline::require_on_queue("command_buffer", &stream) == KESTREL_MPS_ERROR_WRONG_QUEUE);
  CHECK(stream == nullptr);
  CHECK(std::string(kestrel_shim::last_error()).find("command_buffer: called off") == 0);
  kestrel_mps_status inside = -1;
  REQUIRE(run([&] { inside = Discipline::require_on_queue("command_buffer", &stream); }) ==
          KESTREL_MPS_OK);
  CHECK(inside == KESTREL_MPS_OK);
  CHECK(stream == streams[0]);
}

TEST_CASE("inside a callback the stream is the one it was dispatched for") {
  Fixture fx;
  tls_current = streams[1];  // this thread's current stream is stream 1
  void* seen = nullptr;
  void* seen_by_require = nullptr;
  REQUIRE(run([&] {
            // The worker thread's own current stream would be stream 0.
            seen = Discipline::current();
            Discipline::require_on_queue("command_encoder", &seen_by_require);
          }) == KESTREL_MPS_OK);
  CHECK(seen == streams[1]);
  CHECK(seen_by_require == streams[1]);
  CHECK(streams[1]->tagged);
}

TEST_CASE("on_queue_of moves work onto the queue from off it, and runs in place on it") {
  Fixture fx;
  void* s = Discipline::current();
  bool ran_on_queue = false;
  auto body = [&]() noexcept -> kestrel_mps_status {
    ran_on_queue = streams[0]->queue.runs_this_thread();
    return KESTREL_MPS_OK;
  };
  CHECK(Discipline::on_queue_of("synchronize", s, body) == KESTREL_MPS_OK);
  CHECK(ran_on_queue);
  kestrel_mps_status nested = -1;
  REQUIRE(run([&] { nested = Discipline::on_queue_of("synchronize", s, body); }) == KESTREL_MPS_OK);
  CHECK(nested == KESTREL_MPS_OK);
  CHECK(ran_on_queue);
  CHECK(traps == 0);
}

TEST_CASE("a failure on the queue reaches the caller's thread with its status and message") {
  Fixture fx;
  void* s = Discipline::current();
  auto failing = []() noexcept {
    return kestrel_shim::fail(KESTREL_MPS_ERROR_TORCH, "torch error: GPU fault");
  };
  CHECK(Discipline::on_queue_of("synchronize", s, failing) == KESTREL_MPS_ERROR_TORCH);
  CHECK(std::string(kestrel_shim::last_error()) == "synchronize: torch error: GPU fault");
}

TEST_CASE("exceptions thrown by a callback are contained on the queue") {
  Fixture fx;
  CHECK(run([] { throw std::runtime_error("kernel encoding failed"); }) ==
        KESTREL_MPS_ERROR_CALLBACK_FAILED);
  CHECK(std::string(kestrel_shim::last_error()) ==
        "run_on_stream_queue: the callback threw: kernel encoding failed");
  CHECK(run([] { throw 42; }) == KESTREL_MPS_ERROR_CALLBACK_FAILED);
  CHECK(std::string(kestrel_shim::last_error()).find("non-standard") != std::string::npos);
  CHECK(pools_open == 0);  // popped on the way out, exception or not
}

TEST_CASE("callbacks from many threads run one at a time") {
  Fixture fx;
  int inside = 0;
  int most = 0;
  int total = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        run([&] {
          most = std::max(most, ++inside);
          ++total;
          --inside;
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(total == 800);
  CHECK(most == 1);
  CHECK(pools_pushed == 800);
}

int main(int argc, char** argv) { return Catch::Session().run(argc, argv); }
