// The queue rules of shim/queue_discipline.h over the libdispatch stand-in
// of the simulated MPS runtime (tests/sim), whose dispatch_sync_f runs the
// block on the caller's own thread as libdispatch does, so that every
// status path of the Metal backend's queue handling runs on Linux: re-entry
// refused instead of trapped, off-queue access refused, the stream
// remembered inside a callback (and forgotten after it), synchronize moved
// onto the queue, exceptions contained, one autorelease pool per
// dispatched block. A trap of the stand-in would end the test process.
#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <dispatch/dispatch.h>

#include "catch_compat.hpp"
#include "queue_discipline.h"

namespace {

// Two streams, as torch 2.14's pool has several, each with its own queue.
struct FakeStream {
  FakeStream() : queue(dispatch_queue_create("fake stream", DISPATCH_QUEUE_SERIAL)) {
    dispatch_queue_set_specific(queue, &test_key, this, nullptr);
  }
  ~FakeStream() { dispatch_release(queue); }
  // True on a thread running a block on this stream's queue (the test's
  // own tag, independent of the discipline's).
  bool here() const { return dispatch_get_specific(&test_key) == this; }
  void sync(void (*fn)(void*), void* ctx) const { dispatch_sync_f(queue, ctx, fn); }
  dispatch_queue_t queue;
  static char test_key;
};
char FakeStream::test_key;
FakeStream* streams[2];
thread_local FakeStream* tls_current = nullptr;  // the calling thread's current stream
std::atomic<int> pools_open{0};
std::atomic<int> pools_pushed{0};
char discipline_key;

struct FakeQueues {
  struct Pool {
    Pool() {
      ++pools_open;
      ++pools_pushed;
    }
    ~Pool() { --pools_open; }
  };
  static void* current() { return tls_current != nullptr ? tls_current : streams[0]; }
  static void tag(void* s) {
    dispatch_queue_set_specific(static_cast<FakeStream*>(s)->queue, &discipline_key, s, nullptr);
  }
  static void* tagged_here() noexcept { return dispatch_get_specific(&discipline_key); }
  static void dispatch_sync(void* s, void* context, void (*fn)(void*)) {
    dispatch_sync_f(static_cast<FakeStream*>(s)->queue, context, fn);
  }
};

using Discipline = kestrel_shim::QueueDiscipline<FakeQueues>;

struct Fixture {
  Fixture() {
    for (auto*& s : streams) s = new FakeStream;
    pools_pushed = 0;
    tls_current = nullptr;
  }
  ~Fixture() {
    for (auto*& s : streams) delete s;
  }
};

// f() in a block on the stream's queue, dispatched by someone other than
// the discipline (torch, or the consumer).
template <class F>
void foreign_sync(FakeStream* s, F&& f) {
  s->sync([](void* ctx) { (*static_cast<F*>(ctx))(); }, &f);
}

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
            on_queue = streams[0]->here();
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
}

TEST_CASE("after a callback the calling thread is no longer taken to be on the queue") {
  Fixture fx;
  REQUIRE(run([] {}) == KESTREL_MPS_OK);
  // dispatch_sync_f ran the callback on this very thread: what it recorded
  // about the stream must be gone now.
  CHECK(Discipline::stream_here() == nullptr);
  void* stream = nullptr;
  CHECK(Discipline::require_on_queue("command_buffer", &stream) == KESTREL_MPS_ERROR_WRONG_QUEUE);
  CHECK(run([] {}) == KESTREL_MPS_OK);
}

TEST_CASE("a block on the queue that was not ours is recognised once the queue is tagged") {
  Fixture fx;
  Discipline::current();  // tags stream 0's queue, as any entry does
  kestrel_mps_status inner = -1;
  void* here = nullptr;
  foreign_sync(streams[0], [&] {  // someone else's dispatch_sync (torch's, the consumer's)
    here = Discipline::stream_here();
    inner = run([] {});
  });
  CHECK(here == streams[0]);
  CHECK(inner == KESTREL_MPS_ERROR_REENTRANT);
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
            // Asking the thread again would give stream 1 too here; a block
            // run by a worker (async) would see stream 0.
            seen = Discipline::current();
            Discipline::require_on_queue("command_encoder", &seen_by_require);
          }) == KESTREL_MPS_OK);
  CHECK(seen == streams[1]);
  CHECK(seen_by_require == streams[1]);
  CHECK(dispatch_queue_get_specific(streams[1]->queue, &discipline_key) == streams[1]);
}

TEST_CASE("on_queue_of moves work onto the queue from off it, and runs in place on it") {
  Fixture fx;
  void* s = Discipline::current();
  bool ran_on_queue = false;
  auto body = [&]() noexcept -> kestrel_mps_status {
    ran_on_queue = streams[0]->here();
    return KESTREL_MPS_OK;
  };
  CHECK(Discipline::on_queue_of(s, body) == KESTREL_MPS_OK);
  CHECK(ran_on_queue);
  ran_on_queue = false;
  kestrel_mps_status nested = -1;
  // From a block on the queue: in place (a dispatch_sync_f would trap).
  REQUIRE(run([&] { nested = Discipline::on_queue_of(s, body); }) == KESTREL_MPS_OK);
  CHECK(nested == KESTREL_MPS_OK);
  CHECK(ran_on_queue);
}

TEST_CASE("a failure on the queue reaches the caller with the same message either way") {
  Fixture fx;
  void* s = Discipline::current();
  auto failing = []() noexcept {
    return kestrel_shim::fail(KESTREL_MPS_ERROR_TORCH, "synchronize: torch error: GPU fault");
  };
  CHECK(Discipline::on_queue_of(s, failing) == KESTREL_MPS_ERROR_TORCH);
  CHECK(std::string(kestrel_shim::last_error()) == "synchronize: torch error: GPU fault");
  kestrel_mps_status in_place = -1;
  std::string in_place_message;
  REQUIRE(run([&] {
            in_place = Discipline::on_queue_of(s, failing);
            in_place_message = kestrel_shim::last_error();
          }) == KESTREL_MPS_OK);
  CHECK(in_place == KESTREL_MPS_ERROR_TORCH);
  CHECK(in_place_message == "synchronize: torch error: GPU fault");
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

TEST_CASE("a dispatched callback runs on the calling thread, as dispatch_sync_f does") {
  Fixture fx;
  std::thread::id ran_on;
  REQUIRE(run([&] { ran_on = std::this_thread::get_id(); }) == KESTREL_MPS_OK);
  CHECK(ran_on == std::this_thread::get_id());
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

int main(int argc, char** argv) { return kestrel_catch_run(argc, argv); }
