/*
 * A kernel library's launch of an elementwise add (out = a + b, float32, any
 * strides) over the simulated MPS runtime, through each front end, written
 * as the README's two C examples launch: resolve, stream view, onto the
 * stream's queue, torch's coalesced encoder (or an own encoder after ending
 * coalescing), bind buffer + byte offset, dispatch, commit. The Metal calls
 * are the model's encoder API (kestrel_sim_mps.h). It finds the bridge with
 * dlsym only, as a real consumer does.
 *
 * The WRONG_* flags make it a deliberately wrong consumer, one mistake each,
 * so that the tests can show the simulation catches every one.
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* RTLD_DEFAULT */
#endif
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <dispatch/dispatch.h>

#include "kestrel_mps_api.h"
#include "kestrel_sim_mps.h"
#include "kestrel_sim_objc.h"

#define EXPORT __attribute__((visibility("default")))

enum {
  OWN_ENCODER = 1,                /* end coalescing, command buffer, an encoder of ours */
  WRONG_OFFSET_ZERO = 2,          /* binds every buffer at offset 0 */
  WRONG_NO_END_COALESCING = 4,    /* own encoder while torch's coalesced one is open */
  WRONG_STALE_BUFFER = 8,         /* the command buffer of an earlier launch */
  WRONG_ENCODER_LEFT_OPEN = 16,   /* own encoder not ended before leaving the block */
  WRONG_NO_POOL = 32              /* published path: no autorelease pool in the block */
};

#define MAX_DIMS 8
typedef struct add_params {
  int64_t ndim;
  int64_t numel;
  int64_t sizes[MAX_DIMS];
  int64_t strides[3][MAX_DIMS]; /* a, b, out; in elements */
} add_params;

/* The "Metal kernel": one call runs every thread. */
static void add_kernel(const kestrel_sim_kernel_args* args) {
  const add_params* p = (const add_params*)args->bytes[3];
  const float* a = (const float*)args->buffers[0];
  const float* b = (const float*)args->buffers[1];
  float* out = (float*)args->buffers[2];
  int64_t i;
  for (i = 0; i < p->numel; ++i) {
    int64_t rest = i, off[3] = {0, 0, 0};
    int64_t d;
    int k;
    for (d = p->ndim - 1; d >= 0; --d) {
      const int64_t idx = rest % p->sizes[d];
      rest /= p->sizes[d];
      for (k = 0; k < 3; ++k) off[k] += idx * p->strides[k][d];
    }
    out[off[2]] = a[off[0]] + b[off[1]];
  }
}

static int registered = 0;
static void register_once(void) {
  if (!registered) registered = kestrel_sim_register_kernel("add_f32", add_kernel) == 0;
}

/* What one launch binds: buffer + byte offset per operand, and the params. */
typedef struct operands {
  void* buffer[3];
  uint64_t offset[3];
  add_params params;
} operands;

static void* stale_buffer = NULL; /* WRONG_STALE_BUFFER keeps the first one */

/* Encodes the add on `enc`, as a kernel library binds its arguments. */
static void encode(void* enc, const operands* ops, int flags) {
  uint32_t k;
  for (k = 0; k < 3; ++k) {
    kestrel_sim_encoder_set_buffer(enc, ops->buffer[k],
                                   (flags & WRONG_OFFSET_ZERO) ? 0 : ops->offset[k], k);
  }
  kestrel_sim_encoder_set_bytes(enc, &ops->params, sizeof ops->params, 3);
  kestrel_sim_encoder_dispatch(enc, "add_f32", (uint64_t)ops->params.numel);
}

/* An own encoder on `cb`: encode, end (unless told not to). */
static void encode_own(void* cb, const operands* ops, int flags) {
  void* enc;
  if ((flags & WRONG_STALE_BUFFER) != 0) {
    if (stale_buffer == NULL) stale_buffer = cb;
    cb = stale_buffer;
  }
  enc = kestrel_sim_command_buffer_new_encoder(cb);
  if (enc == NULL) return;
  encode(enc, ops, flags);
  if ((flags & WRONG_ENCODER_LEFT_OPEN) == 0) kestrel_sim_encoder_end(enc);
}

static void set_error(char* err, size_t size, const char* what, const char* why) {
  snprintf(err, size, "%s: %s", what, why != NULL ? why : "(no message)");
}

/* ---- the extension front end (README: "The extension") ---------------- */

static const kestrel_mps_ext_api* ext;

typedef struct ext_launch {
  operands ops;
  int flags;
  const char* error;
} ext_launch;

static void ext_on_queue(void* raw) { /* in the bridge's pool, on the queue */
  ext_launch* l = (ext_launch*)raw;
  void* handle = NULL;
  if ((l->flags & (OWN_ENCODER | WRONG_NO_END_COALESCING)) == 0) {
    if (ext->command_encoder(&handle) != KESTREL_MPS_OK) {
      l->error = ext->last_error();
      return;
    }
    encode(handle, &l->ops, l->flags);
    return;
  }
  if ((l->flags & WRONG_NO_END_COALESCING) != 0) {
    /* torch's encoder is open; the published command buffer leaves it so */
    typedef const char* (*cb_fn)(void*, void**);
    cb_fn published_cb;
    void* stream = NULL;
    const char* e;
    if (ext->command_encoder(&handle) != KESTREL_MPS_OK || ext->current_stream(&stream) != KESTREL_MPS_OK) {
      l->error = ext->last_error();
      return;
    }
    *(void**)&published_cb = dlsym(RTLD_DEFAULT, "KestrelMPSCommandBuffer");
    if ((e = published_cb(stream, &handle)) != NULL) {
      l->error = e;
      return;
    }
    encode_own(handle, &l->ops, l->flags);
    return;
  }
  if (ext->command_buffer(&handle) != KESTREL_MPS_OK) { /* ends coalescing first */
    l->error = ext->last_error();
    return;
  }
  encode_own(handle, &l->ops, l->flags);
}

static int ext_operands(void* a, void* b, void* out, operands* ops, char* err, size_t size) {
  kestrel_mps_tensor t[3];
  void* objs[3];
  uint32_t access[3] = {KESTREL_MPS_ACCESS_READ, KESTREL_MPS_ACCESS_READ, KESTREL_MPS_ACCESS_WRITE};
  const char* why = NULL;
  int k, d;
  objs[0] = a;
  objs[1] = b;
  objs[2] = out;
  if (ext == NULL && (ext = kestrel_mps_find_api(&why)) == NULL) {
    set_error(err, size, "find_api", why);
    return -1;
  }
  if (ext->resolve_tensors(objs, 3, access, t, NULL) != KESTREL_MPS_OK) {
    set_error(err, size, "resolve_tensors", ext->last_error());
    return -1;
  }
  memset(ops, 0, sizeof *ops);
  ops->params.ndim = t[2].ndim;
  ops->params.numel = t[2].numel;
  for (k = 0; k < 3; ++k) {
    ops->buffer[k] = t[k].buffer;
    ops->offset[k] = t[k].byte_offset;
    for (d = 0; d < t[2].ndim && d < MAX_DIMS; ++d) ops->params.strides[k][d] = t[k].strides[d];
  }
  for (d = 0; d < t[2].ndim && d < MAX_DIMS; ++d) ops->params.sizes[d] = t[2].shape[d];
  return 0;
}

static int ext_launch_ops(const operands* ops, int flags, int32_t sync_kind, char* err, size_t size) {
  ext_launch l;
  l.ops = *ops;
  l.flags = flags;
  l.error = NULL;
  if (ext->run_on_stream_queue(ext_on_queue, &l) != KESTREL_MPS_OK) {
    set_error(err, size, "run_on_stream_queue", ext->last_error());
    return -1;
  }
  if (l.error != NULL) {
    set_error(err, size, "on the queue", l.error);
    return -1;
  }
  if (sync_kind != 0 && ext->synchronize(sync_kind) != KESTREL_MPS_OK) {
    set_error(err, size, "synchronize", ext->last_error());
    return -1;
  }
  return 0;
}

/* out = a + b through the extension (GIL held: call through ctypes.PyDLL).
 * sync_kind: 0 (no synchronize) or a KESTREL_MPS_SYNC_* value. */
EXPORT int sim_ext_add(void* a, void* b, void* out, int flags, int32_t sync_kind, char* err,
                       size_t size) {
  operands ops;
  register_once();
  if (ext_operands(a, b, out, &ops, err, size) != 0) return -1;
  return ext_launch_ops(&ops, flags, sync_kind, err, size);
}

/* ---- the published front end (README: "The C API, as the published package's
 * consumers use it") ----------------------------------------------------- */

typedef const KestrelMPSTorchExtAPI* (*getter_fn)(void);
typedef const char* (*encoder_fn)(void*, void**);
static const KestrelMPSTorchExtAPI* v1;
static encoder_fn v1_encoder;

typedef struct v1_launch {
  operands ops;
  void* stream;
  int flags;
  int commit;
  const char* error;
} v1_launch;

static void v1_on_queue(void* raw) { /* a plain dispatch_sync_f block */
  v1_launch* l = (v1_launch*)raw;
  void* pool = (l->flags & WRONG_NO_POOL) ? NULL : objc_autoreleasePoolPush();
  void* handle = NULL;
  if ((l->flags & (OWN_ENCODER | WRONG_NO_END_COALESCING)) == 0) {
    if ((l->error = v1_encoder(l->stream, &handle)) == NULL) encode(handle, &l->ops, l->flags);
  } else {
    if ((l->flags & WRONG_NO_END_COALESCING) != 0) {
      l->error = v1_encoder(l->stream, &handle); /* torch's encoder, left open */
    } else {
      l->error = v1->end_kernel_coalescing(l->stream);
    }
    if (l->error == NULL && (l->error = v1->command_buffer(l->stream, &handle)) == NULL) {
      encode_own(handle, &l->ops, l->flags);
    }
  }
  if (l->error == NULL && l->commit) l->error = v1->commit_stream(l->stream);
  if (pool != NULL) objc_autoreleasePoolPop(pool);
}

static int v1_find(char* err, size_t size) {
  getter_fn get;
  if (v1 != NULL) return 0;
  *(void**)&get = dlsym(RTLD_DEFAULT, "KestrelMPSTorchExtAPI_v1");
  *(void**)&v1_encoder = dlsym(RTLD_DEFAULT, "KestrelMPSCommandEncoder");
  if (get == NULL || v1_encoder == NULL || get()->api_version != KESTREL_MPS_TORCH_EXT_API_VERSION) {
    set_error(err, size, "dlsym", "the published API is not loaded");
    return -1;
  }
  v1 = get();
  return 0;
}

static int v1_operands(void* a, void* b, void* out, operands* ops, char* err, size_t size) {
  KestrelMPSTensorView v[3];
  void* objs[3];
  const char* e;
  int k, d;
  objs[0] = a;
  objs[1] = b;
  objs[2] = out;
  if (v1_find(err, size) != 0) return -1;
  memset(ops, 0, sizeof *ops);
  for (k = 0; k < 3; ++k) {
    if ((e = v1->tensor_view_from_pyobject((PyObject*)objs[k], &v[k])) != NULL) {
      set_error(err, size, "tensor_view_from_pyobject", e);
      return -1;
    }
    ops->buffer[k] = v[k].mtl_buffer;
    ops->offset[k] = (uint64_t)v[k].storage_offset_bytes;
  }
  ops->params.ndim = v[2].dim;
  ops->params.numel = v[2].numel;
  for (d = 0; d < v[2].dim && d < MAX_DIMS; ++d) {
    ops->params.sizes[d] = v[2].sizes[d];
    for (k = 0; k < 3; ++k) ops->params.strides[k][d] = v[k].strides[d];
  }
  return 0;
}

static int v1_launch_ops(const operands* ops, int flags, int commit, char* err, size_t size) {
  KestrelMPSStreamView sv;
  v1_launch l;
  const char* e;
  if ((e = v1->current_stream_view(&sv)) != NULL) {
    set_error(err, size, "current_stream_view", e);
    return -1;
  }
  l.ops = *ops;
  l.stream = sv.stream;
  l.flags = flags;
  l.commit = commit;
  l.error = NULL;
  dispatch_sync_f((dispatch_queue_t)sv.queue, &l, v1_on_queue);
  if (l.error != NULL) {
    set_error(err, size, "on the queue", l.error);
    return -1;
  }
  return 0;
}

/* out = a + b through the published ABI (GIL held: ctypes.PyDLL); commit:
 * commit_stream at the end of the block. */
EXPORT int sim_v1_add(void* a, void* b, void* out, int flags, int commit, char* err,
                      size_t size) {
  operands ops;
  register_once();
  if (v1_operands(a, b, out, &ops, err, size) != 0) return -1;
  return v1_launch_ops(&ops, flags, commit, err, size);
}

/* ---- many C threads at once -------------------------------------------- */

#define MAX_SLOTS 16
static operands prepared[MAX_SLOTS];

/* Resolves slot's operands once (GIL held), through the front end that
 * thread `slot` will not use for launching half the time. */
EXPORT int sim_prepare(int slot, void* a, void* b, void* out, char* err, size_t size) {
  register_once();
  if (slot < 0 || slot >= MAX_SLOTS) return -1;
  if (v1_find(err, size) != 0) return -1;
  return ext_operands(a, b, out, &prepared[slot], err, size);
}

typedef struct worker {
  int slot;
  int launches;
  int failures;
  char err[256];
} worker;

static void* work(void* raw) {
  worker* w = (worker*)raw;
  int i;
  for (i = 0; i < w->launches; ++i) {
    /* Alternate the front ends and the encoders; commit every 16th launch. */
    const int flags = (i / 2) % 2 ? OWN_ENCODER : 0;
    int rc;
    if (i % 2 == 0) {
      rc = ext_launch_ops(&prepared[w->slot], flags, i % 16 == 0 ? KESTREL_MPS_SYNC_COMMIT : 0,
                          w->err, sizeof w->err);
    } else {
      rc = v1_launch_ops(&prepared[w->slot], flags, i % 16 == 1, w->err, sizeof w->err);
    }
    if (rc != 0) ++w->failures;
  }
  return NULL;
}

/* `threads` C threads (no Python thread state), slot t each, `launches`
 * launches each. Call without the GIL (ctypes.CDLL). Returns the number of
 * failed launches; err holds the last message. */
EXPORT int sim_run_threads(int threads, int launches, char* err, size_t size) {
  pthread_t ids[MAX_SLOTS];
  worker workers[MAX_SLOTS];
  int t, failures = 0;
  if (threads < 1 || threads > MAX_SLOTS) return -1;
  for (t = 0; t < threads; ++t) {
    workers[t].slot = t;
    workers[t].launches = launches;
    workers[t].failures = 0;
    workers[t].err[0] = '\0';
    pthread_create(&ids[t], NULL, work, &workers[t]);
  }
  for (t = 0; t < threads; ++t) {
    pthread_join(ids[t], NULL);
    failures += workers[t].failures;
    if (workers[t].failures) snprintf(err, size, "%s", workers[t].err);
  }
  return failures;
}

/* ---- the benchmark (bench/sim_launch.py) ------------------------------- */

typedef struct direct_launch {
  void* stream;
  const operands* ops;
} direct_launch;

static void direct_on_queue(void* raw) { /* the same block, the model called directly */
  direct_launch* l = (direct_launch*)raw;
  void* pool = objc_autoreleasePoolPush();
  encode(kestrel_sim_mps_coalesced_encoder(l->stream), l->ops, 0);
  objc_autoreleasePoolPop(pool);
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Mean ns per launch of out = a + b over `iterations` launches (GIL held:
 * ctypes.PyDLL), on the coalesced encoder, committing every 64th launch
 * through the model's "torch" in every mode alike:
 *   0 extension: resolve_tensors (3), run_on_stream_queue, command_encoder
 *   1 published: tensor_view_from_pyobject (3), current_stream_view,
 *     dispatch_sync_f + pool, KestrelMPSCommandEncoder
 *   2 extension, operands resolved once: run_on_stream_queue, command_encoder
 *   3 the model directly, operands resolved once: dispatch_sync_f onto the
 *     stream's queue + pool, stream->commandEncoder()
 * Returns a negative number on a failed launch (err says why). */
EXPORT double sim_bench(int mode, void* a, void* b, void* out, int iterations, char* err,
                        size_t size) {
  operands ops;
  void* stream = kestrel_sim_mps_default_stream();
  double start;
  int i, rc = 0;
  register_once();
  if (v1_find(err, size) != 0 || ext_operands(a, b, out, &ops, err, size) != 0) return -1;
  start = now_ns();
  for (i = 0; i < iterations && rc == 0; ++i) {
    if (mode == 0) {
      rc = ext_operands(a, b, out, &ops, err, size);
      if (rc == 0) rc = ext_launch_ops(&ops, 0, 0, err, size);
    } else if (mode == 1) {
      rc = v1_operands(a, b, out, &ops, err, size);
      if (rc == 0) rc = v1_launch_ops(&ops, 0, 0, err, size);
    } else if (mode == 2) {
      rc = ext_launch_ops(&ops, 0, 0, err, size);
    } else {
      direct_launch l;
      l.stream = stream;
      l.ops = &ops;
      dispatch_sync_f((dispatch_queue_t)kestrel_sim_mps_stream_queue(stream), &l, direct_on_queue);
    }
    if (i % 64 == 63) kestrel_sim_mps_torch_op(stream, 1);
  }
  return rc == 0 ? (now_ns() - start) / iterations : -1.0;
}
