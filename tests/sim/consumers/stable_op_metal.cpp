// The stable-ABI example's Metal calls (examples/stable_op/csrc/
// metal_calls.mm) over the simulated runtime: the model's encoder API
// (kestrel_sim_mps.h) where the .mm calls Metal, and the MSL kernel's loop
// in C++. The launch sequence itself is the example's own launch_metal.cpp.
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

}  // namespace

namespace metal {

void* pipeline(void* device, std::string& error) {
  static std::once_flag once;
  std::call_once(once, [] { kestrel_sim_register_kernel(kKernel, scale_add_kernel); });
  if (!kestrel_sim_is_device(device)) error = "not the model's device";
  return kestrel_sim_is_device(device) ? const_cast<char*>(kKernel) : nullptr;
}

void encode(void* encoder, void* pipeline, const Operands& ops, const KernelParams& params) {
  const kestrel_mps_tensor* operands[3] = {&ops.x, &ops.y, &ops.out};
  for (uint32_t k = 0; k < 3; ++k) {
    kestrel_sim_encoder_set_buffer(encoder, operands[k]->buffer, operands[k]->byte_offset, k);
  }
  kestrel_sim_encoder_set_bytes(encoder, &params, sizeof params, 3);
  kestrel_sim_encoder_dispatch(encoder, static_cast<const char*>(pipeline), uint64_t(params.numel));
}

}  // namespace metal
}  // namespace kestrel_example
