// kestrel_selftest_metal.h on a Mac: Metal itself, the add kernels compiled
// from MSL source at run time (no Xcode needed). Objective-C++ with ARC.
// Shipped in the macOS wheel (libkestrel_mps_selftest.dylib); compiled on
// Linux against stand-in declarations (tools/check_objc.py) only.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <cstdio>

#include "kestrel_selftest_metal.h"

namespace {
const char* const kSource = R"(
#include <metal_stdlib>
using namespace metal;
struct add_params { long ndim; long numel; long sizes[8]; long strides[3][8]; };
template <typename T>
void add(device const T* a, device const T* b, device T* out, constant add_params& p, uint gid) {
  if (long(gid) >= p.numel) return;
  long rest = gid, oa = 0, ob = 0, oo = 0;
  for (long d = p.ndim - 1; d >= 0; --d) {
    long i = rest % p.sizes[d];
    rest /= p.sizes[d];
    oa += i * p.strides[0][d]; ob += i * p.strides[1][d]; oo += i * p.strides[2][d];
  }
  out[oo] = a[oa] + b[ob];
}
kernel void add_f32(device const float* a [[buffer(0)]], device const float* b [[buffer(1)]],
                    device float* out [[buffer(2)]], constant add_params& p [[buffer(3)]],
                    uint gid [[thread_position_in_grid]]) { add(a, b, out, p, gid); }
kernel void add_f16(device const half* a [[buffer(0)]], device const half* b [[buffer(1)]],
                    device half* out [[buffer(2)]], constant add_params& p [[buffer(3)]],
                    uint gid [[thread_position_in_grid]]) { add(a, b, out, p, gid); }
)";
static_assert(sizeof(kst_add_params) == 8 * (2 + 8 + 24), "kSource's add_params has no padding");
}  // namespace

extern "C" void* kst_metal_pipeline(void* device, int32_t dtype, const char** why) {
  static id<MTLComputePipelineState> states[2];  // kept for the process
  static char reason[256];
  if (states[dtype] != nil) return (__bridge void*)states[dtype];
  // Called from Python's thread, which has no pool of its own.
  @autoreleasepool {
    id<MTLDevice> dev = (__bridge id<MTLDevice>)device;
    NSError* error = nil;
    id<MTLLibrary> library = [dev newLibraryWithSource:@(kSource) options:nil error:&error];
    id<MTLFunction> fn = [library newFunctionWithName:dtype == KST_F16 ? @"add_f16" : @"add_f32"];
    if (fn != nil) states[dtype] = [dev newComputePipelineStateWithFunction:fn error:&error];
    if (states[dtype] == nil) {
      std::snprintf(reason, sizeof reason, "%s",
                    error != nil ? error.localizedDescription.UTF8String : "no add kernel in the library");
      *why = reason;
    }
  }
  return (__bridge void*)states[dtype];
}

extern "C" void* kst_metal_new_encoder(void* command_buffer) {
  return (__bridge void*)[(__bridge id<MTLCommandBuffer>)command_buffer computeCommandEncoder];
}

extern "C" void kst_metal_encode_add(void* encoder, void* pipeline, void* const buffers[3],
                                     const uint64_t offsets[3], const kst_add_params* params) {
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

extern "C" void kst_metal_end_encoding(void* encoder) {
  [(__bridge id<MTLComputeCommandEncoder>)encoder endEncoding];
}

extern "C" int kst_metal_kind(void* object) {
  id obj = (__bridge id)object;
  if ([obj conformsToProtocol:@protocol(MTLCommandBuffer)]) return 1;
  if ([obj conformsToProtocol:@protocol(MTLComputeCommandEncoder)]) return 2;
  if ([obj conformsToProtocol:@protocol(MTLCommandQueue)]) return 3;
  return [obj conformsToProtocol:@protocol(MTLDevice)] ? 4 : 0;
}

extern "C" void kst_metal_leak(void* object) { CFRetain(object); }

extern "C" void kst_metal_device_name(void* device, char* out, size_t size) {
  @autoreleasepool {
    std::snprintf(out, size, "%s", [(__bridge id<MTLDevice>)device name].UTF8String);
  }
}
