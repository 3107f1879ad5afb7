// A C callback run on a queue that cannot carry exceptions (libdispatch):
// run_queued() catches whatever the callback throws and records it for the
// caller, which reports it after the queue returns. Torch-free, so the
// containment is tested on every platform (tests/c/test_queued_call.cpp)
// though only the Metal backend dispatches it.
#pragma once

#include <cstdio>
#include <exception>

namespace kestrel_shim {

struct QueuedCall {
  void (*fn)(void*);
  void* context;
  bool failed;
  char message[512];
};

inline void run_queued(void* raw) noexcept {
  auto* call = static_cast<QueuedCall*>(raw);
  try {
    call->fn(call->context);
  } catch (const std::exception& e) {
    call->failed = true;
    std::snprintf(call->message, sizeof call->message, "%s", e.what());
  } catch (...) {
    call->failed = true;
    std::snprintf(call->message, sizeof call->message, "a non-standard exception");
  }
}

}  // namespace kestrel_shim
