// The exception containment of run_on_stream_queue's trampoline, exercised
// directly: libdispatch would call run_queued() the same way.
#include <stdexcept>
#include <string>

#include "catch_compat.hpp"
#include "queued_call.h"

namespace {

void count(void* context) { ++*static_cast<int*>(context); }
void throw_std(void*) { throw std::runtime_error("kernel encoding failed"); }
void throw_other(void*) { throw 42; }

kestrel_shim::QueuedCall call_of(void (*fn)(void*), void* context) {
  return kestrel_shim::QueuedCall{fn, context, false, {0}};
}

}  // namespace

TEST_CASE("a callback runs once with its context") {
  int n = 0;
  auto call = call_of(count, &n);
  kestrel_shim::run_queued(&call);
  CHECK(n == 1);
  CHECK_FALSE(call.failed);
  CHECK(std::string(call.message).empty());
}

TEST_CASE("a std::exception from the callback is caught and its message kept") {
  auto call = call_of(throw_std, nullptr);
  kestrel_shim::run_queued(&call);  // must not throw: it is noexcept
  CHECK(call.failed);
  CHECK(std::string(call.message) == "kernel encoding failed");
}

TEST_CASE("any other thrown value is caught too") {
  auto call = call_of(throw_other, nullptr);
  kestrel_shim::run_queued(&call);
  CHECK(call.failed);
  CHECK(std::string(call.message) == "a non-standard exception");
}

int main(int argc, char** argv) { return Catch::Session().run(argc, argv); }
