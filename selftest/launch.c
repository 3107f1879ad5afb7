/*
 * The self-test's launch sequence (kestrel_selftest.h says what each entry
 * does). Written as the README's two C examples launch: resolve, stream
 * view, onto the stream's queue, torch's coalesced encoder (or an encoder
 * of our own after ending coalescing), bind buffer + byte offset, dispatch,
 * commit or leave torch to. The KST_WRONG_* flags make it a deliberately
 * wrong consumer, one mistake each, so that the tests can show every one
 * caught: by the self-test's numbers, or by the simulation's detectors.
 */
#if !defined(_GNU_SOURCE) && !defined(__APPLE__)
#define _GNU_SOURCE /* RTLD_DEFAULT */
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <dispatch/dispatch.h>

#include "kestrel_mps_api.h"
#include "kestrel_selftest_metal.h"

/* libobjc's autorelease pool (macOS; the stand-in on Linux). */
void* objc_autoreleasePoolPush(void);
void objc_autoreleasePoolPop(void* pool);

static void* pipelines[2]; /* per dtype, made on the stream's device at first resolve */
static void* stale_buffer; /* KST_WRONG_STALE_BUFFER keeps the first one */

/* Where the calling thread's launch spent its time (kst_last_timing),
 * measured only when asked for (kst_set_timing): the clock reads cost
 * more than some of the calls they time. */
static _Thread_local double t_bridge, t_metal;
static int timing;

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}
/* Adds the time `stmt` takes to `acc`: TIMED(t_bridge, s = api->entry(...)); */
#define TIMED(acc, stmt)                     \
  do {                                       \
    const double t0_ = timing ? now_ns() : 0; \
    stmt;                                    \
    if (timing) acc += now_ns() - t0_;       \
  } while (0)

static int fail(char* err, size_t size, const char* what, const char* why) {
  snprintf(err, size, "%s: %s", what, why != NULL ? why : "(no message)");
  return -1;
}

/* ---- Metal ------------------------------------------------------------- */

static void encode(void* enc, const kst_operands* ops, int flags) {
  static const uint64_t zero[3] = {0, 0, 0};
  TIMED(t_metal, kst_metal_encode_add(enc, pipelines[ops->dtype], ops->buffer,
                                      (flags & KST_WRONG_OFFSET_ZERO) ? zero : ops->offset,
                                      &ops->params));
}

/* An encoder of our own on `cb`: encode, end (unless told not to). */
static void encode_own(void* cb, const kst_operands* ops, int flags) {
  void* enc;
  if ((flags & KST_WRONG_STALE_BUFFER) != 0) {
    if (stale_buffer == NULL) stale_buffer = cb;
    cb = stale_buffer;
  }
  TIMED(t_metal, enc = kst_metal_new_encoder(cb));
  if (enc == NULL) return;
  encode(enc, ops, flags);
  if ((flags & KST_WRONG_ENCODER_LEFT_OPEN) == 0) TIMED(t_metal, kst_metal_end_encoding(enc));
}

static int ensure_pipeline(void* device, int32_t dtype, char* err, size_t size) {
  const char* why = NULL;
  if (pipelines[dtype] == NULL && (pipelines[dtype] = kst_metal_pipeline(device, dtype, &why)) == NULL) {
    return fail(err, size, "pipeline", why);
  }
  return 0;
}

/* The kernel's dtype for a (code, bits) pair, or -1. */
static int32_t kernel_dtype(int code_is_float, int bits) {
  if (!code_is_float) return -1;
  return bits == 32 ? KST_F32 : bits == 16 ? KST_F16 : -1;
}

/* ---- finding the bridge (dlsym only, as any consumer) ------------------ */

typedef const KestrelMPSTorchExtAPI* (*getter_fn)(void);
typedef const char* (*encoder_fn)(void*, void**);
typedef const char* (*buffer_fn)(void*, void**);
static const kestrel_mps_ext_api* ext;
static const KestrelMPSTorchExtAPI* v1;
static encoder_fn v1_encoder;

static int find_bridge(char* err, size_t size) {
  const char* why = NULL;
  getter_fn get;
  if (ext != NULL && v1 != NULL) return 0;
  if ((ext = kestrel_mps_find_api(&why)) == NULL) return fail(err, size, "kestrel_mps_find_api", why);
  *(void**)&get = dlsym(RTLD_DEFAULT, "KestrelMPSTorchExtAPI_v1");
  *(void**)&v1_encoder = dlsym(RTLD_DEFAULT, "KestrelMPSCommandEncoder");
  if (get == NULL || v1_encoder == NULL || get()->api_version != KESTREL_MPS_TORCH_EXT_API_VERSION) {
    return fail(err, size, "dlsym", "the published API is not loaded");
  }
  v1 = get();
  return 0;
}

/* ---- the extension front end (README: "The extension") ---------------- */

typedef struct ext_launch {
  const kst_operands* ops;
  int flags;
  const char* error;
  double inside; /* ns in the callback: its entries and Metal calls are counted there */
} ext_launch;

static void ext_on_queue(void* raw) { /* in the bridge's pool, on the queue */
  ext_launch* l = (ext_launch*)raw;
  const double start = timing ? now_ns() : 0;
  void* handle = NULL;
  kestrel_mps_status status;
  if ((l->flags & (KST_OWN_ENCODER | KST_WRONG_NO_END_COALESCING)) == 0) {
    TIMED(t_bridge, status = ext->command_encoder(&handle));
    if (status != KESTREL_MPS_OK) {
      l->error = ext->last_error();
    } else {
      encode(handle, l->ops, l->flags);
    }
  } else if ((l->flags & KST_WRONG_NO_END_COALESCING) != 0) {
    /* torch's encoder open; the published command buffer leaves it so */
    buffer_fn published_cb;
    void* stream = NULL;
    *(void**)&published_cb = dlsym(RTLD_DEFAULT, "KestrelMPSCommandBuffer");
    if (ext->command_encoder(&handle) != KESTREL_MPS_OK || ext->current_stream(&stream) != KESTREL_MPS_OK) {
      l->error = ext->last_error();
    } else if ((l->error = published_cb(stream, &handle)) == NULL) {
      encode_own(handle, l->ops, l->flags);
    }
  } else {
    TIMED(t_bridge, status = ext->command_buffer(&handle)); /* ends coalescing first */
    if (status != KESTREL_MPS_OK) {
      l->error = ext->last_error();
    } else {
      encode_own(handle, l->ops, l->flags);
    }
  }
  if (timing) l->inside = now_ns() - start;
}

static int ext_resolve(void* a, void* b, void* out, kst_operands* ops, char* err, size_t size) {
  kestrel_mps_tensor t[3];
  void* objs[3];
  uint32_t access[3] = {KESTREL_MPS_ACCESS_READ, KESTREL_MPS_ACCESS_READ, KESTREL_MPS_ACCESS_WRITE};
  void* device = NULL;
  kestrel_mps_status status;
  int k, d;
  objs[0] = a;
  objs[1] = b;
  objs[2] = out;
  TIMED(t_bridge, status = ext->resolve_tensors(objs, 3, access, t, NULL));
  if (status != KESTREL_MPS_OK) return fail(err, size, "resolve_tensors", ext->last_error());
  memset(ops, 0, sizeof *ops);
  ops->dtype = kernel_dtype(t[2].dtype.code == KESTREL_MPS_DTYPE_FLOAT, t[2].dtype.bits);
  for (k = 0; k < 3; ++k) {
    if (kernel_dtype(t[k].dtype.code == KESTREL_MPS_DTYPE_FLOAT, t[k].dtype.bits) != ops->dtype || ops->dtype < 0) {
      return fail(err, size, "resolve", "the kernel takes three float32 or three float16 tensors");
    }
    if (t[k].ndim != t[2].ndim || memcmp(t[k].shape, t[2].shape, sizeof t[k].shape) != 0) {
      return fail(err, size, "resolve", "a, b and out differ in shape");
    }
    ops->buffer[k] = t[k].buffer;
    ops->offset[k] = t[k].byte_offset;
    for (d = 0; d < t[2].ndim && d < KST_MAX_DIMS; ++d) ops->params.strides[k][d] = t[k].strides[d];
  }
  if (t[2].ndim > KST_MAX_DIMS) return fail(err, size, "resolve", "more dims than the kernel takes");
  ops->params.ndim = t[2].ndim;
  ops->params.numel = t[2].numel;
  for (d = 0; d < t[2].ndim; ++d) ops->params.sizes[d] = t[2].shape[d];
  if (pipelines[ops->dtype] != NULL) return 0;
  if (ext->device(&device) != KESTREL_MPS_OK) return fail(err, size, "device", ext->last_error());
  return ensure_pipeline(device, ops->dtype, err, size);
}

static int ext_launch_ops(const kst_operands* ops, int flags, int32_t sync, char* err, size_t size) {
  ext_launch l;
  kestrel_mps_status status;
  double start;
  l.ops = ops;
  l.flags = flags;
  l.error = NULL;
  l.inside = 0;
  start = timing ? now_ns() : 0;
  status = ext->run_on_stream_queue(ext_on_queue, &l);
  if (timing) t_bridge += now_ns() - start - l.inside; /* the dispatch onto the queue and back */
  if (status != KESTREL_MPS_OK) return fail(err, size, "run_on_stream_queue", ext->last_error());
  if (l.error != NULL) return fail(err, size, "on the queue", l.error);
  if (sync != 0 && ext->synchronize(sync) != KESTREL_MPS_OK) return fail(err, size, "synchronize", ext->last_error());
  return 0;
}

/* ---- the published front end (README: "The C API, as the published
 * package's consumers use it") ------------------------------------------- */

typedef struct v1_launch {
  const kst_operands* ops;
  void* stream;
  int flags;
  int commit;
  const char* error;
} v1_launch;

static void v1_on_queue(void* raw) { /* a plain dispatch_sync_f block of ours */
  v1_launch* l = (v1_launch*)raw;
  void* pool = (l->flags & KST_WRONG_NO_POOL) ? NULL : objc_autoreleasePoolPush();
  void* handle = NULL;
  if ((l->flags & (KST_OWN_ENCODER | KST_WRONG_NO_END_COALESCING)) == 0) {
    TIMED(t_bridge, l->error = v1_encoder(l->stream, &handle));
    if (l->error == NULL) encode(handle, l->ops, l->flags);
  } else {
    if ((l->flags & KST_WRONG_NO_END_COALESCING) != 0) {
      l->error = v1_encoder(l->stream, &handle); /* torch's encoder, left open */
    } else {
      TIMED(t_bridge, l->error = v1->end_kernel_coalescing(l->stream));
    }
    if (l->error == NULL) TIMED(t_bridge, l->error = v1->command_buffer(l->stream, &handle));
    if (l->error == NULL) encode_own(handle, l->ops, l->flags);
  }
  if (l->error == NULL && l->commit) l->error = v1->commit_stream(l->stream);
  if (pool != NULL) objc_autoreleasePoolPop(pool);
}

static int v1_resolve(void* a, void* b, void* out, kst_operands* ops, char* err, size_t size) {
  KestrelMPSTensorView v[3];
  KestrelMPSStreamView sv;
  void* objs[3];
  const char* e = NULL;
  int k, d;
  objs[0] = a;
  objs[1] = b;
  objs[2] = out;
  memset(ops, 0, sizeof *ops);
  for (k = 0; k < 3; ++k) {
    TIMED(t_bridge, e = v1->tensor_view_from_pyobject((PyObject*)objs[k], &v[k]));
    if (e != NULL) return fail(err, size, "tensor_view_from_pyobject", e);
  }
  for (k = 0; k < 3; ++k) {
    /* torch's ScalarType codes: Float 6, Half 5 */
    if (v[k].scalar_type != v[2].scalar_type || (v[k].scalar_type != 6 && v[k].scalar_type != 5)) {
      return fail(err, size, "resolve", "the kernel takes three float32 or three float16 tensors");
    }
    if (v[k].dim != v[2].dim || memcmp(v[k].sizes, v[2].sizes, sizeof v[k].sizes) != 0) {
      return fail(err, size, "resolve", "a, b and out differ in shape");
    }
    ops->buffer[k] = v[k].mtl_buffer;
    ops->offset[k] = (uint64_t)v[k].storage_offset_bytes;
  }
  if (v[2].dim > KST_MAX_DIMS) return fail(err, size, "resolve", "more dims than the kernel takes");
  ops->dtype = v[2].scalar_type == 6 ? KST_F32 : KST_F16;
  ops->params.ndim = v[2].dim;
  ops->params.numel = v[2].numel;
  for (d = 0; d < v[2].dim; ++d) {
    ops->params.sizes[d] = v[2].sizes[d];
    for (k = 0; k < 3; ++k) ops->params.strides[k][d] = v[k].strides[d];
  }
  if (pipelines[ops->dtype] != NULL) return 0;
  if ((e = v1->current_stream_view(&sv)) != NULL) return fail(err, size, "current_stream_view", e);
  return ensure_pipeline(sv.device, ops->dtype, err, size);
}

static int v1_launch_ops(const kst_operands* ops, int flags, int commit, char* err, size_t size) {
  KestrelMPSStreamView sv;
  v1_launch l;
  const char* e;
  TIMED(t_bridge, e = v1->current_stream_view(&sv));
  if (e != NULL) return fail(err, size, "current_stream_view", e);
  l.ops = ops;
  l.stream = sv.stream;
  l.flags = flags;
  l.commit = commit;
  l.error = NULL;
  dispatch_sync_f((dispatch_queue_t)sv.queue, &l, v1_on_queue);
  if (l.error != NULL) return fail(err, size, "on the queue", l.error);
  return 0;
}

/* ---- entries ----------------------------------------------------------- */

int kst_resolve(int front, void* a, void* b, void* out, kst_operands* ops, char* err, size_t size) {
  if (find_bridge(err, size) != 0) return -1;
  return front == KST_PUBLISHED ? v1_resolve(a, b, out, ops, err, size) : ext_resolve(a, b, out, ops, err, size);
}

int kst_launch(int front, const kst_operands* ops, int flags, int32_t sync, char* err, size_t size) {
  if (find_bridge(err, size) != 0) return -1;
  return front == KST_PUBLISHED ? v1_launch_ops(ops, flags, sync != 0, err, size)
                                : ext_launch_ops(ops, flags, sync, err, size);
}

int kst_add(int front, void* a, void* b, void* out, int flags, int32_t sync, char* err, size_t size) {
  kst_operands ops;
  t_bridge = t_metal = 0;
  if (kst_resolve(front, a, b, out, &ops, err, size) != 0) return -1;
  return kst_launch(front, &ops, flags, sync, err, size);
}

void kst_set_timing(int on) { timing = on; }

void kst_last_timing(double out[2]) {
  out[0] = t_bridge;
  out[1] = t_metal;
}

/* ---- command-buffer cycles (the memory test) ---------------------------- */

typedef struct cycle {
  long n;
  int32_t sync;
  int leak;
  void* stream;
  const char* error;
} cycle;

static void ext_cycle(void* raw) { /* in run_on_stream_queue */
  cycle* c = (cycle*)raw;
  long i;
  void* cb = NULL;
  for (i = 0; i < c->n && c->error == NULL; ++i) {
    if (ext->command_buffer(&cb) != KESTREL_MPS_OK || ext->synchronize(c->sync) != KESTREL_MPS_OK) {
      c->error = ext->last_error();
    } else if (c->leak) {
      kst_metal_leak(cb);
    }
  }
}

/* The published entries neither dispatch nor check the queue: the consumer
 * runs them in a block on sv.queue, in a pool of its own. */
static void v1_cycle(void* raw) {
  cycle* c = (cycle*)raw;
  void* pool = objc_autoreleasePoolPush();
  long i;
  void* cb = NULL;
  for (i = 0; i < c->n && c->error == NULL; ++i) {
    if ((c->error = v1->command_buffer(c->stream, &cb)) == NULL) {
      if (c->leak) kst_metal_leak(cb);
      c->error = v1->commit_stream(c->stream);
    }
  }
  objc_autoreleasePoolPop(pool);
}

int kst_cycle_command_buffers(long n, int front, int32_t sync, int leak, char* err, size_t size) {
  cycle c;
  KestrelMPSStreamView sv;
  if (find_bridge(err, size) != 0) return -1;
  memset(&c, 0, sizeof c);
  c.n = n;
  c.sync = sync;
  c.leak = leak;
  if (front == KST_EXTENSION) {
    if (ext->run_on_stream_queue(ext_cycle, &c) != KESTREL_MPS_OK) c.error = ext->last_error();
  } else if ((c.error = v1->current_stream_view(&sv)) == NULL) {
    c.stream = sv.stream;
    dispatch_sync_f((dispatch_queue_t)sv.queue, &c, v1_cycle);
  }
  return c.error != NULL ? fail(err, size, "cycle", c.error) : 0;
}

void kst_count_call(void* counter) { ++*(int*)counter; }

int kst_kind(void* object) { return kst_metal_kind(object); }

int kst_device_name(char* out, size_t size) {
  void* device = NULL;
  char err[256];
  if (find_bridge(err, sizeof err) != 0 || ext->device(&device) != KESTREL_MPS_OK) return -1;
  kst_metal_device_name(device, out, size);
  return 0;
}
