// A kernel library in miniature, for the MPS tests (tests/python/
// test_mps_kernels.py): a Metal kernel of its own, compiled at run time from
// MSL source, launched on tensors through either front end of the bridge,
// found with dlsym like any consumer (this helper links neither torch nor the
// bridge). Objective-C++ with ARC; macOS only. Written on Linux, where it
// cannot be compiled (no Metal SDK): it is built by the pytest fixture on the
// first Mac run.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>
#include <dispatch/dispatch.h>
#include <dlfcn.h>
#include <stdio.h>

#include "kestrel_mps_api.h"

namespace {

const char* kSource = R"(
#include <metal_stdlib>
using namespace metal;
kernel void add_scalar(device float* x [[buffer(0)]], constant float& s [[buffer(1)]],
                       constant uint& n [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  if (i < n) x[i] += s;
}
)";

const KestrelMPSTorchExtAPI* published() {
  auto getter = reinterpret_cast<KestrelMPSTorchExtAPIGetter>(dlsym(RTLD_DEFAULT, "KestrelMPSTorchExtAPI_v1"));
  return getter != nullptr ? getter() : nullptr;
}

const kestrel_mps_ext_api* extension() { return kestrel_mps_find_api(nullptr); }

using EncoderFn = const char* (*)(void*, void**);
EncoderFn published_encoder() {
  return reinterpret_cast<EncoderFn>(dlsym(RTLD_DEFAULT, "KestrelMPSCommandEncoder"));
}

id<MTLComputePipelineState> pipeline(id<MTLDevice> device, char* err, size_t size) {
  static id<MTLComputePipelineState> state = nil;
  if (state != nil) return state;
  NSError* error = nil;
  id<MTLLibrary> library = [device newLibraryWithSource:@(kSource) options:nil error:&error];
  if (library == nil) {
    snprintf(err, size, "newLibraryWithSource: %s", error.localizedDescription.UTF8String);
    return nil;
  }
  id<MTLFunction> fn = [library newFunctionWithName:@"add_scalar"];
  state = [device newComputePipelineStateWithFunction:fn error:&error];
  if (state == nil) snprintf(err, size, "pipeline: %s", error.localizedDescription.UTF8String);
  return state;
}

void encode(id<MTLComputeCommandEncoder> enc, id<MTLComputePipelineState> state, id<MTLBuffer> buffer,
            uint64_t offset, float s, uint32_t n) {
  [enc setComputePipelineState:state];
  [enc setBuffer:buffer offset:offset atIndex:0];  // the view's byte offset, never 0 by habit
  [enc setBytes:&s length:sizeof s atIndex:1];
  [enc setBytes:&n length:sizeof n atIndex:2];
  [enc dispatchThreads:MTLSizeMake(n, 1, 1) threadsPerThreadgroup:MTLSizeMake(64, 1, 1)];
}

struct ExtLaunch {
  const kestrel_mps_ext_api* api;
  id<MTLComputePipelineState> state;
  kestrel_mps_tensor t;
  float s;
  bool own_encoder;
  kestrel_mps_status status;
};

void ext_launch_on_queue(void* raw) {
  auto* l = static_cast<ExtLaunch*>(raw);
  @autoreleasepool {
    void* handle = nullptr;
    id<MTLComputeCommandEncoder> enc;
    if (l->own_encoder) {
      if ((l->status = l->api->command_buffer(&handle)) != KESTREL_MPS_OK) return;  // coalescing ended
      enc = [(__bridge id<MTLCommandBuffer>)handle computeCommandEncoder];
    } else {
      if ((l->status = l->api->command_encoder(&handle)) != KESTREL_MPS_OK) return;
      enc = (__bridge id<MTLComputeCommandEncoder>)handle;
    }
    encode(enc, l->state, (__bridge id<MTLBuffer>)l->t.buffer, l->t.byte_offset, l->s,
           static_cast<uint32_t>(l->t.numel));
    if (l->own_encoder) [enc endEncoding];  // ours: closed before leaving the block
  }
}

}  // namespace

// x += s on a contiguous float32 MPS tensor (any storage offset). front_end 0:
// the published ABI; 1: the extension. own_encoder 0: PyTorch's coalesced
// encoder; 1: an encoder of our own on the command buffer. Returns 0, or -1
// with the reason in err.
extern "C" __attribute__((visibility("default"))) int kh_add(PyObject* tensor, float s, int front_end,
                                                            int own_encoder, char* err, size_t size) {
  if (front_end == 0) {
    const KestrelMPSTorchExtAPI* api = published();
    KestrelMPSTensorView v;
    KestrelMPSStreamView sv;
    const char* m;
    if (api == nullptr) return snprintf(err, size, "no KestrelMPSTorchExtAPI_v1"), -1;
    if ((m = api->tensor_view_from_pyobject(tensor, &v)) || (m = api->current_stream_view(&sv))) {
      return snprintf(err, size, "%s", m), -1;
    }
    id<MTLComputePipelineState> state = pipeline((__bridge id<MTLDevice>)sv.device, err, size);
    if (state == nil) return -1;
    EncoderFn coalesced = published_encoder();
    __block const char* failure = nullptr;
    dispatch_sync((__bridge dispatch_queue_t)sv.queue, ^{
      @autoreleasepool {
        void* handle = nullptr;
        id<MTLComputeCommandEncoder> enc;
        if (own_encoder) {
          if ((failure = api->end_kernel_coalescing(sv.stream)) ||
              (failure = api->command_buffer(sv.stream, &handle))) return;
          enc = [(__bridge id<MTLCommandBuffer>)handle computeCommandEncoder];
        } else {
          if ((failure = coalesced(sv.stream, &handle))) return;
          enc = (__bridge id<MTLComputeCommandEncoder>)handle;
        }
        encode(enc, state, (__bridge id<MTLBuffer>)v.mtl_buffer, v.storage_offset_bytes, s,
               static_cast<uint32_t>(v.numel));
        if (own_encoder) [enc endEncoding];
      }
    });
    if (failure != nullptr) return snprintf(err, size, "%s", failure), -1;
    return 0;
  }
  const kestrel_mps_ext_api* api = extension();
  if (api == nullptr) return snprintf(err, size, "no extension table"), -1;
  ExtLaunch l{api, nil, {}, s, own_encoder != 0, KESTREL_MPS_OK};
  void* device = nullptr;
  if (api->resolve_tensor(tensor, KESTREL_MPS_ACCESS_WRITE, &l.t) != KESTREL_MPS_OK ||
      api->device(&device) != KESTREL_MPS_OK) {
    return snprintf(err, size, "%s", api->last_error()), -1;
  }
  if ((l.state = pipeline((__bridge id<MTLDevice>)device, err, size)) == nil) return -1;
  kestrel_mps_status status = api->run_on_stream_queue(ext_launch_on_queue, &l);
  if (status == KESTREL_MPS_OK) status = l.status;
  if (status != KESTREL_MPS_OK) return snprintf(err, size, "%s", api->last_error()), -1;
  return 0;
}

namespace {
void noop(void*) {}
void nested_run(void* status) {
  *static_cast<kestrel_mps_status*>(status) = extension()->run_on_stream_queue(noop, nullptr);
}
struct Cycle {
  long n;
  int32_t sync;  // KESTREL_MPS_SYNC_*: the commit after each fetch
  bool leak;     // keep every buffer (+1): the deliberate leak the memory test must catch
  kestrel_mps_status status;
};
void fetch_and_commit(void* raw) {
  auto* c = static_cast<Cycle*>(raw);
  void* cb = nullptr;
  for (long i = 0; i < c->n && c->status == KESTREL_MPS_OK; ++i) {
    c->status = extension()->command_buffer(&cb);
    if (c->status == KESTREL_MPS_OK && c->leak) CFRetain(cb);
    if (c->status == KESTREL_MPS_OK) c->status = extension()->synchronize(c->sync);
  }
}
struct PublishedCycle {
  const KestrelMPSTorchExtAPI* api;
  KestrelMPSStreamView sv;
  long n;
  bool leak;
  int rc;
};
// The published entries neither dispatch nor check the queue: the consumer
// runs them in a block on sv.queue, in a pool of its own (the rules).
void published_fetch_and_commit(void* raw) {
  auto* c = static_cast<PublishedCycle*>(raw);
  @autoreleasepool {
    void* cb = nullptr;
    for (long i = 0; i < c->n && c->rc == 0; ++i) {
      if (c->api->command_buffer(c->sv.stream, &cb) != nullptr) c->rc = -1;
      if (c->rc == 0 && c->leak) CFRetain(cb);
      if (c->rc == 0 && c->api->commit_stream(c->sv.stream) != nullptr) c->rc = -1;
    }
  }
}
}  // namespace

// run_on_stream_queue from inside its own callback: the inner status.
extern "C" __attribute__((visibility("default"))) int kh_reentry(void) {
  kestrel_mps_status inner = -1;
  const kestrel_mps_status outer = extension()->run_on_stream_queue(nested_run, &inner);
  return outer != KESTREL_MPS_OK ? -100 - outer : inner;
}

// n command-buffer fetches, each followed by a commit, inside one block on
// the stream's queue: through the extension (front_end 1; its
// run_on_stream_queue, committing with `sync`) or the published entries
// (front_end 0; a dispatch_sync_f of our own onto sv.queue, committing with
// commit_stream, torch's COMMIT). While torch's commit-and-continue is on
// (the default), a COMMIT keeps the same buffer object and fetching returns
// it again; COMMIT_AND_WAIT ends the buffer, so every fetch creates a new,
// autoreleased one. leak: retain each fetched buffer. Returns 0 or the first
// failure's status (-1 published).
extern "C" __attribute__((visibility("default"))) int kh_cycle_command_buffers(long n, int front_end, int sync,
                                                                                int leak) {
  if (front_end == 1) {
    Cycle c{n, sync, leak != 0, KESTREL_MPS_OK};
    const kestrel_mps_status s = extension()->run_on_stream_queue(fetch_and_commit, &c);
    return s != KESTREL_MPS_OK ? s : c.status;
  }
  PublishedCycle c{published(), {}, n, leak != 0, 0};
  if (c.api->current_stream_view(&c.sv) != nullptr) return -1;
  // ARC: dispatch queues are Objective-C objects; the stream owns this one.
  dispatch_sync_f((__bridge dispatch_queue_t)c.sv.queue, &c, published_fetch_and_commit);
  return c.rc;
}

// A C callback for run_on_stream_queue (Python callables are refused there):
// counts its calls in *counter.
extern "C" __attribute__((visibility("default"))) void kh_count_call(void* counter) {
  ++*static_cast<int*>(counter);
}
