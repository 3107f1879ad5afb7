// test_metal.h on a Mac: Metal itself, the add kernel compiled from MSL
// source at run time (no Xcode needed). Objective-C++ with ARC. Compiled here
// against the stand-in declarations (tests/objc), built and run only on a
// Mac by the stream suite's MPS backend (tests/stream/mps.py).
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <cstdio>

#include "test_metal.h"

namespace {
const char* const kSource = R"(
#include <metal_stdlib>
using namespace metal;
struct add_params { long ndim; long numel; long sizes[8]; long strides[3][8]; };
kernel void add_f32(device const float* a [[buffer(0)]], device const float* b [[buffer(1)]],
                    device float* out [[buffer(2)]], constant add_params& p [[buffer(3)]],
                    uint gid [[thread_position_in_grid]]) {
  if (long(gid) >= p.numel) return;
  long rest = gid, oa = 0, ob = 0, oo = 0;
  for (long d = p.ndim - 1; d >= 0; --d) {
    long i = rest % p.sizes[d];
    rest /= p.sizes[d];
    oa += i * p.strides[0][d]; ob += i * p.strides[1][d]; oo += i * p.strides[2][d];
  }
  out[oo] = a[oa] + b[ob];
}
)";
}  // namespace

extern "C" void* tm_add_pipeline(void* device, const char** why) {
  static id<MTLComputePipelineState> state = nil;  // kept for the process
  static char reason[256];
  if (state != nil) return (__bridge void*)state;
  @autoreleasepool {
    id<MTLDevice> dev = (__bridge id<MTLDevice>)device;
    NSError* error = nil;
    id<MTLLibrary> library = [dev newLibraryWithSource:@(kSource) options:nil error:&error];
    id<MTLFunction> fn = [library newFunctionWithName:@"add_f32"];
    if (fn != nil) state = [dev newComputePipelineStateWithFunction:fn error:&error];
    if (state == nil) {
      snprintf(reason, sizeof reason, "%s", error != nil ? error.localizedDescription.UTF8String : "no add_f32");
      *why = reason;
    }
  }
  return (__bridge void*)state;
}

extern "C" void* tm_new_encoder(void* command_buffer) {
  return (__bridge void*)[(__bridge id<MTLCommandBuffer>)command_buffer computeCommandEncoder];
}

extern "C" void tm_encode_add(void* encoder, void* pipeline, void* const buffers[3], const uint64_t offsets[3],
                              const tm_add_params* params) {
  id<MTLComputeCommandEncoder> enc = (__bridge id<MTLComputeCommandEncoder>)encoder;
  id<MTLComputePipelineState> state = (__bridge id<MTLComputePipelineState>)pipeline;
  [enc setComputePipelineState:state];
  for (NSUInteger k = 0; k < 3; ++k) {
    [enc setBuffer:(__bridge id<MTLBuffer>)buffers[k] offset:offsets[k] atIndex:k];
  }
  [enc setBytes:params length:sizeof *params atIndex:3];
  if (params->numel == 0) return;  // Metal rejects an empty grid
  const NSUInteger group = MIN(state.maxTotalThreadsPerThreadgroup, (NSUInteger)params->numel);
  [enc dispatchThreads:MTLSizeMake((NSUInteger)params->numel, 1, 1) threadsPerThreadgroup:MTLSizeMake(group, 1, 1)];
}

extern "C" void tm_end_encoding(void* encoder) { [(__bridge id<MTLComputeCommandEncoder>)encoder endEncoding]; }

extern "C" int tm_kind(void* object) {
  id obj = (__bridge id)object;
  if ([obj conformsToProtocol:@protocol(MTLCommandBuffer)]) return 1;
  if ([obj conformsToProtocol:@protocol(MTLComputeCommandEncoder)]) return 2;
  if ([obj conformsToProtocol:@protocol(MTLCommandQueue)]) return 3;
  return [obj conformsToProtocol:@protocol(MTLDevice)] ? 4 : 0;
}

extern "C" void tm_leak(void* object) { CFRetain(object); }
