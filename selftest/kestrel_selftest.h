/*
 * The self-test's launch sequence (launch.c): a kernel library's launch of
 * out = a + b (float32 or float16, any strides) on torch's MPS stream,
 * through each front end of the bridge, written once against
 * kestrel_mps_api.h alone (the bridge found with dlsym, torch and Python
 * never linked). Its Metal calls go through kestrel_selftest_metal.h:
 * Metal itself on a Mac (metal_apple.mm, shipped in the macOS wheel as
 * libkestrel_mps_selftest.dylib), the simulated runtime's model on Linux
 * (tests/sim/consumers/metal_sim.c). `python -m kestrel_mps_torch_ext
 * selftest` drives it on a Mac; the stream suite (tests/stream) drives the
 * same code over both.
 *
 * Entries that take tensors (void*: a borrowed PyObject*) need the GIL
 * (ctypes.PyDLL); the others do not. Each returns 0, or -1 with a message
 * in err (always NUL-terminated).
 */
#ifndef KESTREL_SELFTEST_H
#define KESTREL_SELFTEST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KST_EXPORT __attribute__((visibility("default")))

/* front ends */
#define KST_PUBLISHED 0 /* the 0.1.x table, a dispatch_sync_f block on sv.queue */
#define KST_EXTENSION 1 /* kestrel_mps_ext_api, run_on_stream_queue */

/* launch flags: how, and the deliberate mistakes the tests show caught */
#define KST_OWN_ENCODER 1             /* end coalescing, command buffer, an encoder of ours */
#define KST_WRONG_OFFSET_ZERO 2       /* binds every buffer at offset 0 */
#define KST_WRONG_NO_END_COALESCING 4 /* own encoder while torch's coalesced one is open */
#define KST_WRONG_STALE_BUFFER 8      /* the command buffer of an earlier launch */
#define KST_WRONG_ENCODER_LEFT_OPEN 16 /* own encoder not ended before leaving the block */
#define KST_WRONG_NO_POOL 32          /* published path: no autorelease pool in the block */

#define KST_MAX_DIMS 8
#define KST_F32 0
#define KST_F16 1

/* The add kernel's parameters, bound with setBytes at index 3; strides in
 * elements, for a (0), b (1) and out (2). Same layout in C and MSL (every
 * field 8 bytes). */
typedef struct kst_add_params {
  int64_t ndim;
  int64_t numel;
  int64_t sizes[KST_MAX_DIMS];
  int64_t strides[3][KST_MAX_DIMS];
} kst_add_params;

/* What one launch binds, resolved once. */
typedef struct kst_operands {
  void* buffer[3];
  uint64_t offset[3];
  int32_t dtype; /* KST_F32 or KST_F16 */
  kst_add_params params;
} kst_operands;

/* Resolves a, b, out (same dtype, out's shape) through `front` (GIL held)
 * and makes the kernel's pipeline on the stream's device. */
KST_EXPORT int kst_resolve(int front, void* a, void* b, void* out, kst_operands* ops, char* err,
                           size_t size);
/* Launches resolved operands (no GIL needed). sync: published, non-zero
 * commits the stream at the end of the block (commit_stream); extension, a
 * KESTREL_MPS_SYNC_* value to synchronize with after the block, or 0. */
KST_EXPORT int kst_launch(int front, const kst_operands* ops, int flags, int32_t sync, char* err,
                          size_t size);
/* kst_resolve then kst_launch (GIL held). */
KST_EXPORT int kst_add(int front, void* a, void* b, void* out, int flags, int32_t sync, char* err,
                       size_t size);
/* Timing on (1) or off (0, the default; call with no launch running). */
KST_EXPORT void kst_set_timing(int on);
/* The calling thread's last kst_add, with timing on: nanoseconds spent in
 * the bridge's entries (out[0]) and in Metal's calls (out[1]). */
KST_EXPORT void kst_last_timing(double out[2]);

/* n command-buffer fetches, each followed by a commit, inside one block on
 * the stream's queue (extension: committing with `sync`; published: with
 * commit_stream). leak keeps each fetched buffer alive (the memory test's
 * deliberate leak). */
KST_EXPORT int kst_cycle_command_buffers(long n, int front, int32_t sync, int leak, char* err,
                                         size_t size);
/* A C callback for run_on_stream_queue: ++*(int*)counter. */
KST_EXPORT void kst_count_call(void* counter);
/* What a handle is: 1 a command buffer, 2 a compute encoder, 3 a command
 * queue, 4 a device, 0 none of these. */
KST_EXPORT int kst_kind(void* object);
/* The current stream's device's name. */
KST_EXPORT int kst_device_name(char* out, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* KESTREL_SELFTEST_H */
