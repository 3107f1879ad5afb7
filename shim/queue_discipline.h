// The rules for touching a stream from outside torch, over any serial-queue
// implementation Q (stream::Queues on macOS; a stand-in queue in
// tests/c/test_queue_discipline.cpp, so every rule is tested on Linux):
//  - the stream a block runs for is remembered (thread-locally for our own
//    callbacks, by a queue tag for anyone's blocks), never re-evaluated on
//    whatever thread runs the block;
//  - dispatching onto the queue the caller already runs on is refused, not
//    trapped in libdispatch;
//  - a call that needs the queue from off it is refused, or moved onto it;
//  - a dispatched block runs in an autorelease pool, and nothing it throws
//    crosses libdispatch.
// Q provides: current() (the calling thread's current stream), tag(s),
// tagged_here(), dispatch_sync(s, context, fn) and a Pool RAII type.
#pragma once

#include <cstdio>
#include <exception>

#include "message.h"

namespace kestrel_shim {

template <class Q>
class QueueDiscipline {
 public:
  // The stream whose queue the calling thread is running a block of, or null.
  static void* stream_here() noexcept {
    return tls_callback_stream != nullptr ? tls_callback_stream : Q::tagged_here();
  }

  // The stream an entry works on: the one whose queue we are on, else the
  // calling thread's current stream (whose queue gets tagged, so that a
  // block already running on it is recognised from now on).
  static void* current() {
    if (void* here = stream_here()) return here;
    void* stream = Q::current();
    Q::tag(stream);
    return stream;
  }

  // For entries that touch the command buffer or encoder: the stream whose
  // queue the caller is on, or KESTREL_MPS_ERROR_WRONG_QUEUE.
  static kestrel_mps_status require_on_queue(const char* entry, void** stream) {
    void* s = current();
    if (stream_here() != s) {
      return fail(KESTREL_MPS_ERROR_WRONG_QUEUE,
                  "%s: called off the stream's serial queue, where torch encodes from another "
                  "thread; call it from run_on_stream_queue's callback (or a block dispatched "
                  "onto the queue that dispatch_queue returns)",
                  entry);
    }
    *stream = s;
    return KESTREL_MPS_OK;
  }

  // Runs body() (noexcept, returns a status and sets the whole message,
  // entry name included) for `stream` on its queue: in place when the caller
  // is already there. Either way the caller gets the same status and message.
  template <class Body>
  static kestrel_mps_status on_queue_of(void* stream, Body&& body) {
    if (stream_here() == stream) return body();
    return dispatch(stream, body);
  }

  // run_on_stream_queue: fn(context) on the current stream's queue.
  static kestrel_mps_status run(const char* entry, void (*fn)(void*), void* context) {
    void* s = current();
    if (stream_here() == s) {
      return fail(KESTREL_MPS_ERROR_REENTRANT,
                  "%s: the caller already runs on the stream's serial queue (inside a "
                  "callback or a block on it); dispatching onto it again would trap in "
                  "libdispatch: do the work directly",
                  entry);
    }
    auto body = [entry, fn, context]() noexcept -> kestrel_mps_status {
      try {
        fn(context);
        return KESTREL_MPS_OK;
      } catch (const std::exception& e) {
        return fail(KESTREL_MPS_ERROR_CALLBACK_FAILED, "%s: the callback threw: %s", entry,
                    e.what());
      } catch (...) {
        return fail(KESTREL_MPS_ERROR_CALLBACK_FAILED,
                    "%s: the callback threw a non-standard exception", entry);
      }
    };
    return dispatch(s, body);
  }

 private:
  struct Dispatched {
    kestrel_mps_status (*invoke)(void* body) noexcept;
    void* body;
    void* stream;
    kestrel_mps_status status;
    char message[512];  // the queue thread's message, for the caller's thread
  };

  template <class Body>
  static kestrel_mps_status invoke(void* body) noexcept {
    return (*static_cast<Body*>(body))();
  }

  static void trampoline(void* raw) noexcept {
    auto* call = static_cast<Dispatched*>(raw);
    const typename Q::Pool pool;
    void* const outer = tls_callback_stream;
    tls_callback_stream = call->stream;
    call->status = call->invoke(call->body);
    if (call->status != KESTREL_MPS_OK) {
      std::snprintf(call->message, sizeof call->message, "%s", last_error());
    }
    tls_callback_stream = outer;
  }

  template <class Body>
  static kestrel_mps_status dispatch(void* stream, Body& body) {
    Dispatched call{&invoke<Body>, &body, stream, KESTREL_MPS_OK, {0}};
    Q::dispatch_sync(stream, &call, &trampoline);
    if (call.status != KESTREL_MPS_OK) return fail(call.status, "%s", call.message);
    return KESTREL_MPS_OK;
  }

  static thread_local void* tls_callback_stream;
};

template <class Q>
thread_local void* QueueDiscipline<Q>::tls_callback_stream = nullptr;

}  // namespace kestrel_shim
