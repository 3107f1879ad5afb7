// The stable-ABI example's Metal launch (examples/stable_op/csrc/
// launch_metal.mm), step for step, over the simulated runtime: onto the
// stream's queue, torch's coalesced encoder, each buffer bound at its byte
// offset, the params, a dispatch; nothing ended or committed (torch does
// that). Where the .mm makes a Metal call this makes the model's
// (kestrel_sim_mps.h), and the "kernel" is the MSL source's loop in C++.
// Test-only: built into the simulation's variant of the example.
#include <cstdint>
#include <mutex>

#include "kestrel_sim_mps.h"
#include "scale_add.h"

namespace kestrel_example {
namespace {

const char* const kKernel = "kestrel_scale_add_f32";

void scale_add_kernel(const kestrel_sim_kernel_args* args) {
  const auto& p = *static_cast<const KernelParams*>(args->bytes[3]);
  const float* x = static_cast<const float*>(args->buffers[0]);
  const float* y = static_cast<const float*>(args->buffers[1]);
  float* out = static_cast<float*>(args->buffers[2]);
  for (uint64_t gid = 0; gid < args->threads; ++gid) {
    if (int64_t(gid) >= p.numel) continue;
    int64_t rest = int64_t(gid), o[3] = {0, 0, 0};
    for (int32_t d = p.ndim - 1; d >= 0; --d) {
      const int64_t i = rest % p.sizes[d];
      rest /= p.sizes[d];
      for (int k = 0; k < 3; ++k) o[k] += i * p.strides[k][d];
    }
    out[o[2]] = x[o[0]] + p.alpha * y[o[1]];
  }
}

struct Launch {
  const kestrel_mps_ext_api* api;
  KernelParams params;
  const Operands* ops;
  std::string error;
};

void on_queue(void* raw) {
  Launch& l = *static_cast<Launch*>(raw);
  void* encoder = nullptr;
  if (l.api->command_encoder(&encoder) != KESTREL_MPS_OK) {
    l.error = l.api->last_error();
    return;
  }
  const kestrel_mps_tensor* operands[3] = {&l.ops->x, &l.ops->y, &l.ops->out};
  for (uint32_t k = 0; k < 3; ++k) {
    kestrel_sim_encoder_set_buffer(encoder, operands[k]->buffer, operands[k]->byte_offset, k);
  }
  kestrel_sim_encoder_set_bytes(encoder, &l.params, sizeof l.params, 3);
  kestrel_sim_encoder_dispatch(encoder, kKernel, uint64_t(l.params.numel));
}

}  // namespace

std::string launch_metal(const kestrel_mps_ext_api& api, const Operands& ops) {
  static std::once_flag once;
  std::call_once(once, [] { kestrel_sim_register_kernel(kKernel, scale_add_kernel); });
  Launch l{&api, kernel_params(ops), &ops, {}};
  if (api.run_on_stream_queue(on_queue, &l) != KESTREL_MPS_OK) return api.last_error();
  return l.error;
}

}  // namespace kestrel_example
