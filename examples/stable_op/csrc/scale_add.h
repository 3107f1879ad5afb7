// The example's launch interface: out = x + alpha * y over three tensors the
// bridge resolved (same shape and dtype, float32 or float64, any strides).
// ops.cpp checks the operands and picks the launch by the device the bridge
// reported; each launch reads only the descriptors, never torch.
#pragma once

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
// Metal (launch_metal.mm, macOS only; the simulated runtime's twin is
// tests/sim/consumers/stable_op_launch.cpp): encodes the kernel on torch's
// coalesced encoder on the stream's queue. Returns "" or the reason it could
// not launch.
std::string launch_metal(const kestrel_mps_ext_api& api, const Operands& ops);
#endif

}  // namespace kestrel_example
