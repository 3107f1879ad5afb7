// The exception barrier and the thread-local error message shared by every
// entry point of the table: nothing thrown below may cross the C boundary.
#pragma once

#include <exception>
#include <new>

#include <c10/util/Exception.h>

#include "kestrel_mps_api.h"

namespace kestrel_shim {

// Records a printf-style message as this thread's last error and returns
// `status`. Never allocates: the message lives in a fixed thread-local buffer
// and is truncated to it.
kestrel_mps_status fail(kestrel_mps_status status, const char* format, ...) noexcept
    __attribute__((format(printf, 2, 3)));

// This thread's last error message ("" before the first failure).
const char* last_error() noexcept;

// Runs body() and turns any exception into a status with a message.
template <class Body>
kestrel_mps_status guarded(const char* entry, Body&& body) noexcept {
  try {
    return body();
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

}  // namespace kestrel_shim
