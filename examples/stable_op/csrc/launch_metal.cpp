// The Metal launch sequence, written once against the bridge's header: onto
// the stream's serial queue (run_on_stream_queue, which also wraps the block
// in an autorelease pool), torch's coalesced compute encoder
// (command_encoder), then the Metal calls of metal_calls.mm. The encoder is
// left open and nothing is committed: torch ends and commits it with its own
// work, so the op orders with torch's kernels like one of them.
#include <cstdint>

#include "scale_add.h"

namespace kestrel_example {
namespace {

struct Launch {
  const kestrel_mps_ext_api* api;
  void* pipeline;
  KernelParams params;
  const Operands* ops;
  std::string error;
};

void on_queue(void* raw) {  // on the stream's queue, in the bridge's pool
  Launch& l = *static_cast<Launch*>(raw);
  void* encoder = nullptr;
  if (l.api->command_encoder(&encoder) != KESTREL_MPS_OK) {
    l.error = l.api->last_error();
    return;
  }
  metal::encode(encoder, l.pipeline, *l.ops, l.params);
}

}  // namespace

std::string launch_metal(const kestrel_mps_ext_api& api, const Operands& ops) {
  if (ops.out.numel == 0) return "";  // Metal rejects an empty grid; nothing to do
  if (ops.out.numel > INT64_C(0xFFFFFFFF)) return "more than 2^32 elements in one launch";
  void* device = nullptr;
  if (api.device(&device) != KESTREL_MPS_OK) return api.last_error();
  Launch l{&api, nullptr, kernel_params(ops), &ops, {}};
  if ((l.pipeline = metal::pipeline(device, l.error)) == nullptr) return l.error;
  if (api.run_on_stream_queue(on_queue, &l) != KESTREL_MPS_OK) return api.last_error();
  return l.error;
}

}  // namespace kestrel_example
