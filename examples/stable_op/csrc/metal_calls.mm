// The example's Metal calls on macOS (launch_metal.cpp is the sequence that
// makes them): the kernel compiled from MSL at run time, and its encoding on
// torch's coalesced encoder. Built on macOS only; on Linux
// tools/check_objc.py compiles it against stand-in declarations of Metal,
// and the simulated runtime stands in for it
// (tests/sim/consumers/stable_op_metal.cpp).
#import <Metal/Metal.h>

#include <cstdint>
#include <mutex>

// This file is the header's Metal half, whoever compiles it.
#ifndef KESTREL_EXAMPLE_METAL
#define KESTREL_EXAMPLE_METAL
#endif
#include "scale_add.h"

namespace kestrel_example::metal {
namespace {

const char* const kSource = R"(
#include <metal_stdlib>
using namespace metal;
struct Params { int ndim; float alpha; long numel; long sizes[16]; long strides[3][16]; };
kernel void kestrel_scale_add_f32(device const float* x [[buffer(0)]],
                                  device const float* y [[buffer(1)]],
                                  device float* out [[buffer(2)]],
                                  constant Params& p [[buffer(3)]],
                                  uint gid [[thread_position_in_grid]]) {
  if (long(gid) >= p.numel) return;
  long rest = gid, ox = 0, oy = 0, oo = 0;
  for (int d = p.ndim - 1; d >= 0; --d) {
    long i = rest % p.sizes[d];
    rest /= p.sizes[d];
    ox += i * p.strides[0][d];
    oy += i * p.strides[1][d];
    oo += i * p.strides[2][d];
  }
  out[oo] = x[ox] + p.alpha * y[oy];
}
)";
static_assert(KESTREL_MPS_MAX_NDIM == 16, "kSource spells the dimension limit");
static_assert(sizeof(KernelParams) == 8 + 8 + 8 * 16 * 4, "kSource's Params has no padding");

}  // namespace

void* pipeline(void* device, std::string& error) {
  static std::once_flag once;
  static id<MTLComputePipelineState> state = nil;
  static std::string why;
  std::call_once(once, [device] {
    // Called off the queue, on the caller's thread, which may have no pool:
    // the string, library and error objects are autoreleased into this one.
    @autoreleasepool {
      id<MTLDevice> dev = (__bridge id<MTLDevice>)device;
      NSError* err = nil;
      id<MTLLibrary> library = [dev newLibraryWithSource:@(kSource) options:nil error:&err];
      id<MTLFunction> fn = [library newFunctionWithName:@"kestrel_scale_add_f32"];
      state = fn ? [dev newComputePipelineStateWithFunction:fn error:&err] : nil;
      if (state == nil) why = err ? err.localizedDescription.UTF8String : "no kernel function";
    }
  });
  if (state == nil) error = "cannot build the Metal kernel: " + why;
  return (__bridge void*)state;
}

void encode(void* encoder_handle, void* pipeline_handle, const Operands& ops, const KernelParams& params) {
  id<MTLComputeCommandEncoder> encoder = (__bridge id<MTLComputeCommandEncoder>)encoder_handle;
  id<MTLComputePipelineState> state = (__bridge id<MTLComputePipelineState>)pipeline_handle;
  [encoder setComputePipelineState:state];
  const kestrel_mps_tensor* operands[3] = {&ops.x, &ops.y, &ops.out};
  for (NSUInteger k = 0; k < 3; ++k) {
    [encoder setBuffer:(__bridge id<MTLBuffer>)operands[k]->buffer offset:operands[k]->byte_offset atIndex:k];
  }
  [encoder setBytes:&params length:sizeof params atIndex:3];
  const NSUInteger n = static_cast<NSUInteger>(params.numel);
  const NSUInteger width = MIN(state.maxTotalThreadsPerThreadgroup, n);
  [encoder dispatchThreads:MTLSizeMake(n, 1, 1) threadsPerThreadgroup:MTLSizeMake(width, 1, 1)];
}

}  // namespace kestrel_example::metal
