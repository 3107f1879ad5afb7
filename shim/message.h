// The thread-local error message every entry of both front ends reports
// through. Torch-free, so the queue discipline's tests link it on any
// platform.
#pragma once

#include "kestrel_mps_api.h"

namespace kestrel_shim {

// Records a printf-style message as this thread's last error and returns
// `status`. Never allocates: the message lives in a fixed thread-local buffer
// and is truncated to it.
kestrel_mps_status fail(kestrel_mps_status status, const char* format, ...) noexcept
    __attribute__((format(printf, 2, 3)));

// This thread's last error message ("" before the first failure).
const char* last_error() noexcept;

// Replaces a leading `from` of this thread's message with `to`: the shared
// resolve core says "resolve:", and an entry whose messages name the entry
// (the published ones) retitles them.
void retitle(const char* from, const char* to) noexcept;

// The published convention: NULL on success, else this thread's message.
inline const char* published_result(kestrel_mps_status status) noexcept {
  return status == KESTREL_MPS_OK ? nullptr : last_error();
}

}  // namespace kestrel_shim
