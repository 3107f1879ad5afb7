/*
 * The self-test's few Metal calls, behind one small interface so that its
 * launch sequence (launch.c) is written once: Metal on a Mac
 * (metal_apple.mm), the simulated runtime's model on Linux
 * (tests/sim/consumers/metal_sim.c). Handles are Objective-C object
 * pointers as void*, borrowed from the bridge; nothing here retains one
 * unless it says so.
 */
#ifndef KESTREL_SELFTEST_METAL_H
#define KESTREL_SELFTEST_METAL_H

#include "kestrel_selftest.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The pipeline of out = a + b for KST_F32 or KST_F16 on `device`, made
 * once per dtype and kept for the process. NULL with *why on failure. */
void* kst_metal_pipeline(void* device, int32_t dtype, const char** why);
/* [command_buffer computeCommandEncoder] (autoreleased: call in a pool). */
void* kst_metal_new_encoder(void* command_buffer);
/* Binds a, b, out at index 0, 1, 2, each at its byte offset, the params at
 * 3, and dispatches one thread per element (none for an empty tensor). */
void kst_metal_encode_add(void* encoder, void* pipeline, void* const buffers[3],
                          const uint64_t offsets[3], const kst_add_params* params);
/* [encoder endEncoding] */
void kst_metal_end_encoding(void* encoder);
/* What a handle is (kst_kind's codes). */
int kst_metal_kind(void* object);
/* A +1 retain that is never released. */
void kst_metal_leak(void* object);
/* The device's name into out (NUL-terminated). */
void kst_metal_device_name(void* device, char* out, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* KESTREL_SELFTEST_METAL_H */
