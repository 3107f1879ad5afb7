/*
 * STAND-IN for the macOS SDK's <dispatch/dispatch.h>, used ONLY by the
 * compile-and-symbol audit on Linux (tools/audit_macos.py), where no SDK
 * exists. It declares the two names the shim and torch's MPSStream.h use, with
 * the SDK's C signatures as plain C++ sees them. Never part of a real build.
 */
#pragma once
#ifdef __APPLE__
#error "the dispatch stand-in must not be used on Apple platforms"
#endif

extern "C" {
typedef struct dispatch_queue_s* dispatch_queue_t;
typedef void (*dispatch_function_t)(void*);
void dispatch_sync_f(dispatch_queue_t queue, void* context, dispatch_function_t work);
}
