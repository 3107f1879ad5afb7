// The Metal launch (macOS on Apple silicon). Built only there; on Linux
// tools/check_objc.py compiles it against stand-in declarations of Metal,
// and the simulated runtime runs the same sequence through
// tests/sim/consumers/stable_op_launch.cpp.
//
// The sequence: onto the stream's serial queue (run_on_stream_queue, which
// also wraps the block in an autorelease pool), torch's coalesced compute
// encoder (command_encoder), bind each buffer at its byte offset, dispatch.
// The encoder is left open and nothing is committed: torch ends and commits
// it with its own work, so the op orders with torch's kernels like one of
// them.
#import <Metal/Metal.h>

#include <cstdint>
#include <mutex>

// This file is the header's Metal half, whoever compiles it.
#ifndef KESTREL_EXAMPLE_METAL
#define KESTREL_EXAMPLE_METAL
#endif
#include "scale_add.h"

namespace kestrel_example {
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

struct Launch {
  const kestrel_mps_ext_api* api;
  id<MTLComputePipelineState> pipeline;
  KernelParams params;
  const Operands* ops;
  std::string error;
};

// Compiled once per process, on the stream's device.
id<MTLComputePipelineState> pipeline(const kestrel_mps_ext_api& api, std::string& error) {
  static std::once_flag once;
  static id<MTLComputePipelineState> state = nil;
  static std::string why;
  std::call_once(once, [&] {
    void* raw = nullptr;
    if (api.device(&raw) != KESTREL_MPS_OK) {
      why = api.last_error();
      return;
    }
    // Called off the queue, on the caller's thread, which may have no pool:
    // the string, library and error objects are autoreleased into this one.
    @autoreleasepool {
      id<MTLDevice> device = (__bridge id<MTLDevice>)raw;
      NSError* err = nil;
      id<MTLLibrary> library = [device newLibraryWithSource:@(kSource) options:nil error:&err];
      id<MTLFunction> fn = [library newFunctionWithName:@"kestrel_scale_add_f32"];
      state = fn ? [device newComputePipelineStateWithFunction:fn error:&err] : nil;
      if (state == nil) why = err ? err.localizedDescription.UTF8String : "no kernel function";
    }
  });
  if (state == nil) error = "cannot build the Metal kernel: " + why;
  return state;
}

void on_queue(void* raw) {  // on the stream's queue, in the bridge's pool
  Launch& l = *static_cast<Launch*>(raw);
  void* encoder_raw = nullptr;
  if (l.api->command_encoder(&encoder_raw) != KESTREL_MPS_OK) {
    l.error = l.api->last_error();
    return;
  }
  id<MTLComputeCommandEncoder> encoder = (__bridge id<MTLComputeCommandEncoder>)encoder_raw;
  [encoder setComputePipelineState:l.pipeline];
  const kestrel_mps_tensor* operands[3] = {&l.ops->x, &l.ops->y, &l.ops->out};
  for (NSUInteger k = 0; k < 3; ++k) {
    [encoder setBuffer:(__bridge id<MTLBuffer>)operands[k]->buffer
                offset:operands[k]->byte_offset
               atIndex:k];
  }
  [encoder setBytes:&l.params length:sizeof l.params atIndex:3];
  const NSUInteger n = static_cast<NSUInteger>(l.params.numel);
  const NSUInteger width = MIN(l.pipeline.maxTotalThreadsPerThreadgroup, n);
  [encoder dispatchThreads:MTLSizeMake(n, 1, 1) threadsPerThreadgroup:MTLSizeMake(width, 1, 1)];
}

}  // namespace

std::string launch_metal(const kestrel_mps_ext_api& api, const Operands& ops) {
  if (ops.out.numel == 0) return "";  // Metal rejects an empty grid; nothing to do
  if (ops.out.numel > INT64_C(0xFFFFFFFF)) return "more than 2^32 elements in one launch";
  Launch l{&api, nil, kernel_params(ops), &ops, {}};
  l.pipeline = pipeline(api, l.error);
  if (l.pipeline == nil) return l.error;
  if (api.run_on_stream_queue(on_queue, &l) != KESTREL_MPS_OK) return api.last_error();
  return l.error;
}

}  // namespace kestrel_example
