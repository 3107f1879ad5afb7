/*
 * The few Metal calls the stream suite's test consumer (launch.c) makes,
 * behind one small interface, so that the launch sequence is written once:
 * on a Mac they are Metal's own (metal_apple.mm, MSL compiled at run time);
 * on Linux they are the simulated runtime's model (tests/sim/consumers/
 * metal_sim.c). Handles are Objective-C object pointers as void*, borrowed
 * from the bridge; nothing here retains them unless it says so.
 */
#ifndef KESTREL_TEST_METAL_H
#define KESTREL_TEST_METAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TM_MAX_DIMS 8

/* The add kernel's parameters, bound with setBytes at index 3; strides in
 * elements, for a (0), b (1) and out (2). Same layout in C and MSL (every
 * field 8 bytes). */
typedef struct tm_add_params {
  int64_t ndim;
  int64_t numel;
  int64_t sizes[TM_MAX_DIMS];
  int64_t strides[3][TM_MAX_DIMS];
} tm_add_params;

/* The pipeline of out = a + b (float32, any strides) on `device`, made once
 * and kept for the process. NULL with *why set on failure. */
void* tm_add_pipeline(void* device, const char** why);
/* [command_buffer computeCommandEncoder] (autoreleased: call in a pool). */
void* tm_new_encoder(void* command_buffer);
/* Binds a, b, out at index 0, 1, 2, each at its byte offset, the params at
 * 3, and dispatches one thread per element (none for an empty tensor). */
void tm_encode_add(void* encoder, void* pipeline, void* const buffers[3], const uint64_t offsets[3],
                   const tm_add_params* params);
/* [encoder endEncoding] */
void tm_end_encoding(void* encoder);
/* What a handle is: 1 a command buffer, 2 a compute encoder, 3 a command
 * queue, 4 a device, 0 none of these. */
int tm_kind(void* object);
/* A +1 retain that is never released: the deliberate leak of the memory
 * test. */
void tm_leak(void* object);

#ifdef __cplusplus
}
#endif

#endif /* KESTREL_TEST_METAL_H */
