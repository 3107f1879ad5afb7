/*
 * The simulated MPS runtime's stand-in for libobjc's autorelease pools:
 * objc_autoreleasePoolPush/Pop with libobjc's signatures, and what the
 * simulation counts about them. Test-only: never in a wheel.
 *
 * Pools are per thread and nest; popping a token pops every pool pushed
 * after it, as libobjc does, but the stand-in records it as an imbalance
 * (a pool popped out of order is a bug in whoever pushed the inner one).
 * An object autoreleased with no pool open on its thread is recorded and
 * never released: on a real thread without a pool it lives until the
 * thread exits.
 */
#ifndef KESTREL_SIM_OBJC_H
#define KESTREL_SIM_OBJC_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KESTREL_SIM_OBJC_EXPORT __attribute__((visibility("default")))
#else
#define KESTREL_SIM_OBJC_EXPORT
#endif

/* libobjc's C entry points behind @autoreleasepool. */
KESTREL_SIM_OBJC_EXPORT void* objc_autoreleasePoolPush(void);
KESTREL_SIM_OBJC_EXPORT void objc_autoreleasePoolPop(void* token);

/* -autorelease: `release(object)` runs when the innermost pool open on this
 * thread is popped; with none open, never (and it is counted). */
KESTREL_SIM_OBJC_EXPORT void kestrel_sim_objc_autorelease(void* object,
                                                          void (*release)(void* object));

/* Process-wide counts since the last kestrel_sim_objc_reset(). */
typedef struct kestrel_sim_objc_counts {
  uint64_t pushes;              /* objc_autoreleasePoolPush calls */
  uint64_t pops;                /* objc_autoreleasePoolPop calls */
  uint64_t out_of_order_pops;   /* a token popped while pools pushed after it were open */
  uint64_t unknown_pops;        /* a token that is not an open pool of this thread */
  uint64_t autoreleased;        /* objects autoreleased inside a pool */
  uint64_t outside_pool;        /* objects autoreleased with no pool open: leaked */
  uint64_t left_open_at_exit;   /* pools still open when their thread exited */
} kestrel_sim_objc_counts;

KESTREL_SIM_OBJC_EXPORT kestrel_sim_objc_counts kestrel_sim_objc_get_counts(void);
KESTREL_SIM_OBJC_EXPORT void kestrel_sim_objc_reset(void);
/* Pools open on the calling thread now. */
KESTREL_SIM_OBJC_EXPORT int kestrel_sim_objc_depth(void);

#ifdef __cplusplus
}
#endif

#endif /* KESTREL_SIM_OBJC_H */
