/*
 * Test-only additions to the self-test's launch sequence
 * (selftest/launch.c), for the stream suite and bench/sim_launch.py: many C
 * threads launching at once, and the simulated benchmark. Built with it into
 * the stream suite's consumer library; never in a wheel.
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* clock_gettime under -std=c11 */
#endif
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include <dispatch/dispatch.h>

#include "kestrel_mps_api.h"
#include "kestrel_selftest_metal.h"

void* objc_autoreleasePoolPush(void);
void objc_autoreleasePoolPop(void* pool);

#define MAX_SLOTS 16
static kst_operands prepared[MAX_SLOTS];

/* Resolves slot's operands once (GIL held). */
KST_EXPORT int launch_prepare(int slot, void* a, void* b, void* out, char* err, size_t size) {
  if (slot < 0 || slot >= MAX_SLOTS) return -1;
  return kst_resolve(KST_EXTENSION, a, b, out, &prepared[slot], err, size);
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
    const int flags = (i / 2) % 2 ? KST_OWN_ENCODER : 0;
    const int front = i % 2 == 0 ? KST_EXTENSION : KST_PUBLISHED;
    const int32_t sync = i % 16 == 0 ? KESTREL_MPS_SYNC_COMMIT : i % 16 == 1;
    if (kst_launch(front, &prepared[w->slot], flags, sync, w->err, sizeof w->err) != 0) ++w->failures;
  }
  return NULL;
}

/* `threads` C threads (no Python thread state), slot t each, `launches`
 * launches each. Call without the GIL (ctypes.CDLL). Returns the number of
 * failed launches; err holds the last message. */
KST_EXPORT int launch_run_threads(int threads, int launches, char* err, size_t size) {
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
#include "kestrel_sim_mps.h"

typedef struct direct_launch {
  void* stream;
  void* pipeline;
  const kst_operands* ops;
} direct_launch;

static void direct_on_queue(void* raw) { /* the same block, the model called directly */
  direct_launch* l = (direct_launch*)raw;
  void* pool = objc_autoreleasePoolPush();
  kst_metal_encode_add(kestrel_sim_mps_coalesced_encoder(l->stream), l->pipeline, l->ops->buffer,
                       l->ops->offset, &l->ops->params);
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
KST_EXPORT double launch_bench(int mode, void* a, void* b, void* out, int iterations, char* err,
                               size_t size) {
  kst_operands ops;
  direct_launch l;
  const char* why = NULL;
  void* stream = kestrel_sim_mps_default_stream();
  double start;
  int i, rc = 0;
  if (kst_resolve(KST_EXTENSION, a, b, out, &ops, err, size) != 0) return -1;
  l.stream = stream;
  l.ops = &ops;
  if ((l.pipeline = kst_metal_pipeline(kestrel_sim_mps_device(), ops.dtype, &why)) == NULL) return -1;
  start = now_ns();
  for (i = 0; i < iterations && rc == 0; ++i) {
    if (mode == 0 || mode == 1) {
      const int front = mode == 0 ? KST_EXTENSION : KST_PUBLISHED;
      rc = kst_resolve(front, a, b, out, &ops, err, size);
      if (rc == 0) rc = kst_launch(front, &ops, 0, 0, err, size);
    } else if (mode == 2) {
      rc = kst_launch(KST_EXTENSION, &ops, 0, 0, err, size);
    } else {
      dispatch_sync_f((dispatch_queue_t)kestrel_sim_mps_stream_queue(stream), &l, direct_on_queue);
    }
    if (i % 64 == 63) kestrel_sim_mps_torch_op(stream, 1);
  }
  return rc == 0 ? (now_ns() - start) / iterations : -1.0;
}
