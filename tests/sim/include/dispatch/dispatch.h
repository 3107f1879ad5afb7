/*
 * The simulated MPS runtime's stand-in for libdispatch: the subset of its C
 * API that the bridge's Metal backend, torch's MPSStream header and test
 * consumers use, with libdispatch's own signatures, so that the same sources
 * compile against this header or a real libdispatch
 * (-DKESTREL_SIM_LIBDISPATCH=<prefix>). Test-only: never installed, never in
 * a wheel.
 *
 * Behaviour (tests/sim/src/dispatch_standin.cpp reproduces every row of the
 * table "libdispatch, as it really behaves" in torch-mps-facts.md):
 *  - serial queues only; dispatch_sync_f runs the function on the calling
 *    thread once it owns the queue and every queue up its target chain;
 *  - dispatch_async_f runs it on a worker thread;
 *  - dispatch_get_specific looks at the queue of the innermost running block
 *    and its target chain, nothing further up the thread's stack;
 *  - dispatch_sync_f onto a queue the thread already owns anywhere up its
 *    stack (directly or through a target) traps with libdispatch's message,
 *    as does dispatch_assert_queue off the queue.
 */
#ifndef KESTREL_SIM_DISPATCH_H
#define KESTREL_SIM_DISPATCH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KESTREL_SIM_DISPATCH_EXPORT __attribute__((visibility("default")))
#else
#define KESTREL_SIM_DISPATCH_EXPORT
#endif

/* As in libdispatch without Objective-C: in C++ the queue derives from the
 * object, in C dispatch_object_t is a transparent union of object pointers. */
#ifdef __cplusplus
struct dispatch_object_s {
 protected:
  dispatch_object_s() {}
  ~dispatch_object_s() {}
};
struct dispatch_queue_s : dispatch_object_s {
 protected:
  dispatch_queue_s() {}
  ~dispatch_queue_s() {}
};
struct dispatch_queue_attr_s;
typedef dispatch_object_s* dispatch_object_t;
#else
struct dispatch_object_s;
struct dispatch_queue_s;
struct dispatch_queue_attr_s;
typedef union {
  struct dispatch_object_s* _do;
  struct dispatch_queue_s* _dq;
} dispatch_object_t __attribute__((__transparent_union__));
#endif

typedef struct dispatch_queue_s* dispatch_queue_t;
typedef struct dispatch_queue_attr_s* dispatch_queue_attr_t;
typedef void (*dispatch_function_t)(void* context);

/* Serial queues are the only kind the stand-in has. */
#define DISPATCH_QUEUE_SERIAL NULL

/* A serial queue with no target; retained once (dispatch_release frees). */
KESTREL_SIM_DISPATCH_EXPORT dispatch_queue_t dispatch_queue_create(const char* label,
                                                                   dispatch_queue_attr_t attr);
/* A serial queue whose blocks also hold `target` (NULL: none). */
KESTREL_SIM_DISPATCH_EXPORT dispatch_queue_t dispatch_queue_create_with_target(
    const char* label, dispatch_queue_attr_t attr, dispatch_queue_t target);
KESTREL_SIM_DISPATCH_EXPORT void dispatch_set_target_queue(dispatch_object_t object,
                                                           dispatch_queue_t queue);
KESTREL_SIM_DISPATCH_EXPORT const char* dispatch_queue_get_label(dispatch_queue_t queue);

KESTREL_SIM_DISPATCH_EXPORT void dispatch_sync_f(dispatch_queue_t queue, void* context,
                                                 dispatch_function_t work);
KESTREL_SIM_DISPATCH_EXPORT void dispatch_async_f(dispatch_queue_t queue, void* context,
                                                  dispatch_function_t work);

KESTREL_SIM_DISPATCH_EXPORT void dispatch_queue_set_specific(dispatch_queue_t queue,
                                                             const void* key, void* context,
                                                             dispatch_function_t destructor);
KESTREL_SIM_DISPATCH_EXPORT void* dispatch_queue_get_specific(dispatch_queue_t queue,
                                                              const void* key);
KESTREL_SIM_DISPATCH_EXPORT void* dispatch_get_specific(const void* key);

KESTREL_SIM_DISPATCH_EXPORT void dispatch_assert_queue(dispatch_queue_t queue);
KESTREL_SIM_DISPATCH_EXPORT void dispatch_assert_queue_not(dispatch_queue_t queue);

KESTREL_SIM_DISPATCH_EXPORT void dispatch_retain(dispatch_object_t object);
KESTREL_SIM_DISPATCH_EXPORT void dispatch_release(dispatch_object_t object);

#ifdef __cplusplus
}
#endif

#endif /* KESTREL_SIM_DISPATCH_H */
