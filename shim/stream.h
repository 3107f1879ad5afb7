// The stream half of the table. Two implementations share this interface:
// stream_mps.cpp (macOS: at::mps::getCurrentMPSStream()) and
// stream_unavailable.cpp (every other build). Arguments are already checked
// by api_table.cpp; these may throw, and api_table.cpp runs them under
// guarded().
#pragma once

#include <cstdint>

#include "kestrel_mps_api.h"

namespace kestrel_shim::stream {

kestrel_mps_status current_stream(void** out);
kestrel_mps_status command_buffer(void** out);
kestrel_mps_status command_queue(void** out);
kestrel_mps_status device(void** out);
kestrel_mps_status dispatch_queue(void** out);
kestrel_mps_status end_kernel_coalescing();
kestrel_mps_status synchronize(int32_t sync_kind);
kestrel_mps_status run_on_stream_queue(void (*fn)(void*), void* context);

}  // namespace kestrel_shim::stream
