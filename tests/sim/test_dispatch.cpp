// The rows of the table "libdispatch, as it really behaves" (torch-mps-facts.md),
// each as a test. They run against the stand-in and, built with
// -DKESTREL_SIM_LIBDISPATCH=<prefix>, against a real libdispatch: the same
// expectations hold the stand-in to the real thing. Rows that trap run in a
// forked child; the test reads its signal and stderr.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include <dispatch/dispatch.h>

#include "catch_compat.hpp"

namespace {

char key;
char tag_value;  // S's tag

struct Queues {
  Queues()
      : s(dispatch_queue_create("S", DISPATCH_QUEUE_SERIAL)),
        q(dispatch_queue_create("Q", DISPATCH_QUEUE_SERIAL)),
        targets_s(dispatch_queue_create_with_target("T->S", DISPATCH_QUEUE_SERIAL, s)) {
    dispatch_queue_set_specific(s, &key, &tag_value, nullptr);
  }
  ~Queues() {
    dispatch_release(targets_s);
    dispatch_release(q);
    dispatch_release(s);
  }
  dispatch_queue_t s, q, targets_s;
};

template <class F>
void sync(dispatch_queue_t queue, F&& f) {
  dispatch_sync_f(queue, &f, [](void* ctx) { (*static_cast<F*>(ctx))(); });
}

struct Outcome {
  bool trapped;
  int signal;
  std::string stderr_text;
};

// Runs f in a forked child; what killed it and what it printed.
template <class F>
Outcome in_child(F&& f) {
  int pipe_fd[2];
  REQUIRE(pipe(pipe_fd) == 0);
  std::fflush(nullptr);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(pipe_fd[1], STDERR_FILENO);
    close(pipe_fd[0]);
    // Die of the trap itself, not in Catch2's handler (which would report
    // the child's test as failed on stdout).
    std::signal(SIGILL, SIG_DFL);
    std::signal(SIGTRAP, SIG_DFL);
    f();
    _exit(0);
  }
  close(pipe_fd[1]);
  std::string text;
  char chunk[256];
  ssize_t n;
  while ((n = read(pipe_fd[0], chunk, sizeof chunk)) > 0) text.append(chunk, static_cast<size_t>(n));
  close(pipe_fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return Outcome{WIFSIGNALED(status), WIFSIGNALED(status) ? WTERMSIG(status) : 0, text};
}

bool is_trap_signal(int sig) { return sig == SIGILL || sig == SIGTRAP; }

// libdispatch writes its message to the crash log that Apple's crash
// reporter shows; a Linux build of the real one writes it nowhere, so only
// the stand-in (which prints it to stderr) can be held to the text.
void check_crash_message(const Outcome& o, const char* text) {
#if KESTREL_SIM_STANDIN
  CHECK(o.stderr_text.find(text) != std::string::npos);
#else
  (void)o;
  (void)text;
#endif
}

}  // namespace

TEST_CASE("row 1: dispatch_sync_f from a thread not on S runs on the calling thread and sees S's tag") {
  Queues qs;
  std::thread::id ran_on;
  void* seen = nullptr;
  sync(qs.s, [&] {
    ran_on = std::this_thread::get_id();
    seen = dispatch_get_specific(&key);
  });
  CHECK(ran_on == std::this_thread::get_id());
  CHECK(seen == &tag_value);
  CHECK(dispatch_get_specific(&key) == nullptr);  // not on S any more
}

TEST_CASE("row 2: from a block on S, dispatch_sync_f onto S traps") {
  const Outcome o = in_child([] {
    Queues qs;
    sync(qs.s, [&] { sync(qs.s, [] {}); });
  });
  CHECK(o.trapped);
  CHECK(is_trap_signal(o.signal));
  check_crash_message(o, "dispatch_sync called on queue already owned by current thread");
}

TEST_CASE("row 3: from a block on S, dispatch_sync_f onto a queue whose target is S traps") {
  const Outcome o = in_child([] {
    Queues qs;
    sync(qs.s, [&] { sync(qs.targets_s, [] {}); });
  });
  CHECK(o.trapped);
  CHECK(is_trap_signal(o.signal));
  check_crash_message(o, "already owned by current thread");
}

TEST_CASE("row 4: from a block on S, a sync onto an unrelated queue runs without S's tag") {
  Queues qs;
  bool ran = false;
  void* seen = &key;
  sync(qs.s, [&] {
    sync(qs.q, [&] {
      ran = true;
      seen = dispatch_get_specific(&key);
    });
  });
  CHECK(ran);
  CHECK(seen == nullptr);
}

TEST_CASE("row 4: ... and a dispatch_sync_f onto S from there traps") {
  const Outcome o = in_child([] {
    Queues qs;
    sync(qs.s, [&] { sync(qs.q, [&] { sync(qs.s, [] {}); }); });
  });
  CHECK(o.trapped);
  CHECK(is_trap_signal(o.signal));
  check_crash_message(o, "already owned by current thread");
}

TEST_CASE("row 5: dispatch_async_f onto S runs on another thread and sees the tag") {
  Queues qs;
  struct Seen {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::thread::id ran_on;
    void* tag = nullptr;
  } seen;
  dispatch_async_f(qs.s, &seen, [](void* raw) {
    auto* x = static_cast<Seen*>(raw);
    std::lock_guard<std::mutex> lock(x->m);
    x->ran_on = std::this_thread::get_id();
    x->tag = dispatch_get_specific(&key);
    x->done = true;
    x->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(seen.m);
  seen.cv.wait(lock, [&] { return seen.done; });
  CHECK(seen.ran_on != std::this_thread::get_id());
  CHECK(seen.tag == &tag_value);
}

TEST_CASE("row 6: at top level, a sync onto a queue whose target is S runs and sees S's tag") {
  Queues qs;
  bool ran = false;
  void* seen = nullptr;
  sync(qs.targets_s, [&] {
    ran = true;
    seen = dispatch_get_specific(&key);
  });
  CHECK(ran);
  CHECK(seen == &tag_value);
}

TEST_CASE("dispatch_assert_queue passes on the queue and traps off it") {
  Queues qs;
  sync(qs.s, [&] { dispatch_assert_queue(qs.s); });
  const Outcome o = in_child([] {
    Queues inner;
    dispatch_assert_queue(inner.s);
  });
  CHECK(o.trapped);
  CHECK(is_trap_signal(o.signal));
  check_crash_message(o, "BUG IN CLIENT OF LIBDISPATCH");
}

TEST_CASE("dispatch_queue_get_specific reads the queue's own tag only") {
  Queues qs;
  CHECK(dispatch_queue_get_specific(qs.s, &key) == &tag_value);
  CHECK(dispatch_queue_get_specific(qs.targets_s, &key) == nullptr);
  CHECK(dispatch_queue_get_specific(qs.q, &key) == nullptr);
}

TEST_CASE("blocks from many threads on one serial queue run one at a time") {
  Queues qs;
  std::atomic<int> inside{0};
  int most = 0;
  int total = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        sync(qs.s, [&] {
          most = std::max(most, ++inside);
          ++total;
          --inside;
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(total == 4000);
  CHECK(most == 1);
}

int main(int argc, char** argv) { return kestrel_catch_run(argc, argv); }
