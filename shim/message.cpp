#include "message.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace kestrel_shim {
namespace {
// A fixed array, not std::string: setting an error never allocates and the
// buffer needs no thread-exit destructor.
thread_local char tls_message[1024];
}  // namespace

kestrel_mps_status fail(kestrel_mps_status status, const char* format, ...) noexcept {
  va_list args;
  va_start(args, format);
  std::vsnprintf(tls_message, sizeof tls_message, format, args);
  va_end(args);
  return status;
}

const char* last_error() noexcept { return tls_message; }

void retitle(const char* from, const char* to) noexcept {
  const std::size_t n = std::strlen(from);
  if (std::strncmp(tls_message, from, n) != 0) return;
  char rest[sizeof tls_message];
  std::snprintf(rest, sizeof rest, "%s", tls_message + n);
  std::snprintf(tls_message, sizeof tls_message, "%s%s", to, rest);
}

}  // namespace kestrel_shim
