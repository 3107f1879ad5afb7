// The exception barrier shared by every entry point of both front ends:
// nothing thrown below may cross the C boundary.
#pragma once

#include <exception>
#include <new>

#include <c10/util/Exception.h>

#include "message.h"
#include "stream.h"

namespace kestrel_shim {

// Runs body() and turns any exception into a status with a message.
template <class Body>
kestrel_mps_status guarded(const char* entry, Body&& body) noexcept {
  try {
    return body();
  } catch (const stream::Unavailable& e) {
    return fail(KESTREL_MPS_ERROR_MPS_UNAVAILABLE, "%s: MPS unavailable: %s", entry, e.what());
  } catch (const c10::Error& e) {
    return fail(KESTREL_MPS_ERROR_TORCH, "%s: torch error: %s", entry,
                e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    return fail(KESTREL_MPS_ERROR_INTERNAL, "%s: out of memory", entry);
  } catch (const std::exception& e) {
    return fail(KESTREL_MPS_ERROR_INTERNAL, "%s: unexpected C++ exception: %s",
                entry, e.what());
  } catch (...) {
    return fail(KESTREL_MPS_ERROR_INTERNAL, "%s: unexpected non-standard exception",
                entry);
  }
}

// guarded() for an entry that touches the stream: the body also runs inside
// an autorelease pool, since a Python thread has none and Metal objects
// autoreleased by torch would otherwise live until the thread exits.
template <class Body>
kestrel_mps_status guarded_stream(const char* entry, Body&& body) noexcept {
  return guarded(entry, [&] {
    const stream::AutoreleasePool pool;
    return body();
  });
}

}  // namespace kestrel_shim
