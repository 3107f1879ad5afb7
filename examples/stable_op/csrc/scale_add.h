// The example's launch interface: out = x + alpha * y over three tensors the
// bridge resolved (same shape and dtype, float32 or float64, any strides).
// ops.cpp checks the operands and picks the launch by the device the bridge
// reported; each launch reads only the descriptors, never torch.
#pragma once

#include <cstdint>
#include <string>

#include "kestrel_mps_api.h"

namespace kestrel_example {

struct Operands {
  kestrel_mps_tensor x, y, out;  // in that order, as resolved
  double alpha;
};

// CPU (launch_cpu.cpp): every field of the descriptors feeds the arithmetic,
// so a wrong base, offset or stride shows up as a wrong number.
void launch_cpu(const Operands& ops);

#ifdef KESTREL_EXAMPLE_METAL
// What the Metal kernel reads at buffer index 3 (x, y, out at 0, 1, 2, each
// bound at its byte offset). The kernel's source spells the same struct.
struct KernelParams {
  int32_t ndim;
  float alpha;
  int64_t numel;
  int64_t sizes[KESTREL_MPS_MAX_NDIM];
  int64_t strides[3][KESTREL_MPS_MAX_NDIM];  // x, y, out; in elements
};

// The launch's params from the resolved operands.
inline KernelParams kernel_params(const Operands& ops) {
  KernelParams p{};
  p.ndim = ops.out.ndim;
  p.alpha = static_cast<float>(ops.alpha);
  p.numel = ops.out.numel;
  const kestrel_mps_tensor* operands[3] = {&ops.x, &ops.y, &ops.out};
  for (int32_t d = 0; d < ops.out.ndim; ++d) {
    p.sizes[d] = ops.out.shape[d];
    for (int k = 0; k < 3; ++k) p.strides[k][d] = operands[k]->strides[d];
  }
  return p;
}

// The device type whose tensors take the Metal launch: MPS, except in the
// simulated runtime's build, where CPU tensors stand in for MPS ones.
#ifndef KESTREL_EXAMPLE_METAL_DEVICE
#define KESTREL_EXAMPLE_METAL_DEVICE KESTREL_MPS_DEVICE_METAL
#endif

// Metal (launch_metal.cpp): encodes the kernel on torch's coalesced encoder
// on the stream's queue. Returns "" or the reason it could not launch.
std::string launch_metal(const kestrel_mps_ext_api& api, const Operands& ops);

// The Metal calls launch_metal makes (metal_calls.mm on macOS; over the
// simulated runtime, tests/sim/consumers/stable_op_metal.cpp), so that the
// launch sequence is written once.
namespace metal {
// The kernel's pipeline on `device` (an id<MTLDevice>), made once; nullptr
// with `error` set on failure.
void* pipeline(void* device, std::string& error);
// On `encoder` (torch's coalesced id<MTLComputeCommandEncoder>): the
// pipeline, x, y, out at indices 0, 1, 2 (each at its byte offset), the
// params at 3, one thread per element.
void encode(void* encoder, void* pipeline, const Operands& ops, const KernelParams& params);
}  // namespace metal
#endif

}  // namespace kestrel_example
