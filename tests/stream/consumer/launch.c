/*
 * The stream suite's test consumer: a kernel library's launch of an
 * elementwise add (out = a + b, float32, any strides) through each front
 * end, written as the README's two C examples launch: resolve, stream view,
 * onto the stream's queue, torch's coalesced encoder (or an own encoder
 * after ending coalescing), bind buffer + byte offset, dispatch, commit. It
 * finds the bridge with dlsym only, as a real consumer does. Its Metal
 * calls go through test_metal.h: Metal itself on a Mac (metal_apple.mm),
 * the simulated runtime's model on Linux (tests/sim/consumers/metal_sim.c),
 * so that one launch sequence runs under both.
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
#include "test_metal.h"

/* libobjc's autorelease pool (macOS; the stand-in on Linux). */
void* objc_autoreleasePoolPush(void);
void objc_autoreleasePoolPop(void* pool);

#define EXPORT __attribute__((visibility("default")))

enum {
  OWN_ENCODER = 1,                /* end coalescing, command buffer, an encoder of ours */
  WRONG_OFFSET_ZERO = 2,          /* binds every buffer at offset 0 */
  WRONG_NO_END_COALESCING = 4,    /* own encoder while torch's coalesced one is open */
  WRONG_STALE_BUFFER = 8,         /* the command buffer of an earlier launch */
  WRONG_ENCODER_LEFT_OPEN = 16,   /* own encoder not ended before leaving the block */
  WRONG_NO_POOL = 32              /* published path: no autorelease pool in the block */
};

#define MAX_DIMS TM_MAX_DIMS

/* What one launch binds: buffer + byte offset per operand, and the params. */
typedef struct operands {
  void* buffer[3];
  uint64_t offset[3];
  tm_add_params params;
} operands;

static void* stale_buffer = NULL; /* WRONG_STALE_BUFFER keeps the first one */

static void* pipeline; /* the add kernel's, made on the first launch's device */

/* Encodes the add on `enc`, as a kernel library binds its arguments. */
static void encode(void* enc, const operands* ops, int flags) {
  static const uint64_t zero[3] = {0, 0, 0};
  tm_encode_add(enc, pipeline, ops->buffer, (flags & WRONG_OFFSET_ZERO) ? zero : ops->offset, &ops->params);
}

/* An own encoder on `cb`: encode, end (unless told not to). */
static void encode_own(void* cb, const operands* ops, int flags) {
  void* enc;
  if ((flags & WRONG_STALE_BUFFER) != 0) {
    if (stale_buffer == NULL) stale_buffer = cb;
    cb = stale_buffer;
  }
  enc = tm_new_encoder(cb);
  if (enc == NULL) return;
  encode(enc, ops, flags);
  if ((flags & WRONG_ENCODER_LEFT_OPEN) == 0) tm_end_encoding(enc);
}

static void set_error(char* err, size_t size, const char* what, const char* why) {
  snprintf(err, size, "%s: %s", what, why != NULL ? why : "(no message)");
}

static int ensure_pipeline(void* device, char* err, size_t size) {
  const char* why = NULL;
  if (pipeline == NULL && (pipeline = tm_add_pipeline(device, &why)) == NULL) {
    set_error(err, size, "pipeline", why);
    return -1;
  }
  return 0;
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
  void* device = NULL;
  if (pipeline == NULL) {
    if (ext->device(&device) != KESTREL_MPS_OK) {
      set_error(err, size, "device", ext->last_error());
      return -1;
    }
    if (ensure_pipeline(device, err, size) != 0) return -1;
  }
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
EXPORT int launch_ext_add(void* a, void* b, void* out, int flags, int32_t sync_kind, char* err,
                       size_t size) {
  operands ops;
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
  if (ensure_pipeline(sv.device, err, size) != 0) return -1;
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
EXPORT int launch_v1_add(void* a, void* b, void* out, int flags, int commit, char* err,
                      size_t size) {
  operands ops;
    if (v1_operands(a, b, out, &ops, err, size) != 0) return -1;
  return v1_launch_ops(&ops, flags, commit, err, size);
}

/* ---- many C threads at once -------------------------------------------- */

#define MAX_SLOTS 16
static operands prepared[MAX_SLOTS];

/* Resolves slot's operands once (GIL held), through the front end that
 * thread `slot` will not use for launching half the time. */
EXPORT int launch_prepare(int slot, void* a, void* b, void* out, char* err, size_t size) {
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
EXPORT int launch_run_threads(int threads, int launches, char* err, size_t size) {
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

/* ---- command-buffer cycles (the memory test) ---------------------------- */

typedef struct cycle {
  long n;
  int32_t sync; /* extension: the KESTREL_MPS_SYNC_* after each fetch */
  int leak;     /* keep every fetched buffer alive (tm_leak) */
  void* stream; /* published: the stream view's stream */
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
      tm_leak(cb);
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
      if (c->leak) tm_leak(cb);
      c->error = v1->commit_stream(c->stream);
    }
  }
  objc_autoreleasePoolPop(pool);
}

/* n command-buffer fetches, each followed by a commit, inside one block on
 * the stream's queue: through the extension (front_end 1: run_on_stream_queue,
 * committing with `sync`) or the published entries (front_end 0: a
 * dispatch_sync_f onto sv.queue, committing with commit_stream, torch's
 * COMMIT). While commit-and-continue is on, a COMMIT keeps the same buffer
 * object; COMMIT_AND_WAIT ends it, so each fetch creates a new, autoreleased
 * one. leak: keep each fetched buffer. 0, or -1 with err. */
EXPORT int launch_cycle_command_buffers(long n, int front_end, int32_t sync, int leak, char* err,
                                        size_t size) {
  cycle c;
  KestrelMPSStreamView sv;
  const char* e;
  memset(&c, 0, sizeof c);
  c.n = n;
  c.sync = sync;
  c.leak = leak;
  if (v1_find(err, size) != 0 || (ext == NULL && (ext = kestrel_mps_find_api(&e)) == NULL)) {
    if (ext == NULL) set_error(err, size, "find_api", e);
    return -1;
  }
  if (front_end == 1) {
    if (ext->run_on_stream_queue(ext_cycle, &c) != KESTREL_MPS_OK) c.error = ext->last_error();
  } else if ((c.error = v1->current_stream_view(&sv)) == NULL) {
    c.stream = sv.stream;
    dispatch_sync_f((dispatch_queue_t)sv.queue, &c, v1_cycle);
  }
  if (c.error != NULL) {
    set_error(err, size, "cycle", c.error);
    return -1;
  }
  return 0;
}

/* test_metal.h's tm_kind, for the tests: what a handle is. */
EXPORT int launch_kind(void* object) { return tm_kind(object); }

/* A C callback for run_on_stream_queue (Python callables are refused there):
 * counts its calls in *counter. */
EXPORT void launch_count_call(void* counter) { ++*(int*)counter; }

/* ---- the benchmark (bench/sim_launch.py) ------------------------------- */
/* Over the simulation only: its baseline calls the model directly. */
#if defined(KESTREL_SIMULATED_MPS)
#include "kestrel_sim_mps.h"

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
EXPORT double launch_bench(int mode, void* a, void* b, void* out, int iterations, char* err,
                            size_t size) {
  operands ops;
  void* stream = kestrel_sim_mps_default_stream();
  double start;
  int i, rc = 0;
  if (v1_find(err, size) != 0 || ext_operands(a, b, out, &ops, err, size) != 0 ||
      ensure_pipeline(kestrel_sim_mps_device(), err, size) != 0) {
    return -1;
  }
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
#endif /* KESTREL_SIMULATED_MPS */
