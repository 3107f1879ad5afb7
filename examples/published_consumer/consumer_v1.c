/*
 * A consumer of the published kestrel-mps-torch-ext 0.1.x ABI, written the
 * way a kernel package written for 0.1.x calls it: it includes only
 * kestrel_mps_torch_ext.h (the published header, or this project's header of
 * that name: both compile it), links neither torch nor the bridge, and finds
 * the getter KestrelMPSTorchExtAPI_v1 with dlsym() once Python has called
 * kestrel_mps_torch_ext.load_torch_mps_bridge().
 *
 * Each function writes what it saw as text for the caller (run.py and the
 * pytest suite check it against torch):
 *   v1_describe(tensor)    tensor_view_from_pyobject on one tensor
 *   v1_launch(tensor)      the stream sequence of one kernel launch
 *   v1_stream_entry(...)   one stream entry with a given stream pointer
 */
#if !defined(_GNU_SOURCE) && !defined(__APPLE__)
#define _GNU_SOURCE /* RTLD_DEFAULT on glibc */
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "kestrel_mps_torch_ext.h"

/* KESTREL_SIMULATED_MPS: the tests build the macOS path over the simulated
 * MPS runtime (tests/sim), whose dispatch/dispatch.h stands in for Apple's. */
#if defined(__APPLE__) || defined(KESTREL_SIMULATED_MPS)
#define CONSUMER_HAS_QUEUE 1
#include <dispatch/dispatch.h>
#endif

#if defined(__GNUC__)
#define CONSUMER_EXPORT __attribute__((visibility("default")))
#else
#define CONSUMER_EXPORT
#endif

typedef const KestrelMPSTorchExtAPI* (*getter_fn)(void);
typedef const char* (*encoder_fn)(void* stream, void** out);

/* The published table, found once. NULL (and *why set) if the bridge is not
 * loaded or speaks another API version. */
static const KestrelMPSTorchExtAPI* find_api(const char** why) {
  static const KestrelMPSTorchExtAPI* api = NULL;
  getter_fn getter;
  if (api != NULL) return api;
  *(void**)&getter = dlsym(RTLD_DEFAULT, "KestrelMPSTorchExtAPI_v1");
  if (getter == NULL) {
    *why = "KestrelMPSTorchExtAPI_v1 not found: call load_torch_mps_bridge() first";
    return NULL;
  }
  if (getter()->api_version != KESTREL_MPS_TORCH_EXT_API_VERSION) {
    *why = "the bridge speaks another api_version";
    return NULL;
  }
  api = getter();
  return api;
}

/* Outside the table: found by name only. */
static encoder_fn find_encoder(void) {
  encoder_fn fn;
  *(void**)&fn = dlsym(RTLD_DEFAULT, "KestrelMPSCommandEncoder");
  return fn;
}

static int append_dims(char* text, size_t size, int used, const char* name,
                       const int64_t* values) {
  int64_t i;
  if (used < 0 || (size_t)used >= size) return used;
  used += snprintf(text + used, size - (size_t)used, " %s=", name);
  for (i = 0; i < KESTREL_MPS_TORCH_EXT_MAX_DIMS && used > 0 && (size_t)used < size; ++i) {
    /* All 16 entries: the ones past dim must read 0. */
    used += snprintf(text + used, size - (size_t)used, "%s%lld", i ? "," : "",
                     (long long)values[i]);
  }
  return used;
}

/* Returns 0 and the view as text, 1 and the bridge's message, or -1. */
CONSUMER_EXPORT int v1_describe(PyObject* tensor, char* text, size_t size) {
  const char* why = "";
  const KestrelMPSTorchExtAPI* api = find_api(&why);
  KestrelMPSTensorView v;
  const char* err;
  int used;
  if (api == NULL) {
    snprintf(text, size, "%s", why);
    return -1;
  }
  memset(&v, 0xAB, sizeof v); /* a failure must not leave this garbage behind */
  err = api->tensor_view_from_pyobject(tensor, &v);
  if (err != NULL) {
    unsigned char zero = 1;
    size_t i;
    for (i = 0; i < sizeof v; ++i) zero &= ((unsigned char*)&v)[i] == 0;
    snprintf(text, size, "%s (out %s)", err, zero ? "zeroed" : "NOT ZEROED");
    return 1;
  }
  used = snprintf(text, size,
                  "mtl_buffer=%p storage_offset_bytes=%lld element_size_bytes=%lld "
                  "scalar_type=%lld dim=%lld numel=%lld",
                  v.mtl_buffer, (long long)v.storage_offset_bytes,
                  (long long)v.element_size_bytes, (long long)v.scalar_type, (long long)v.dim,
                  (long long)v.numel);
  used = append_dims(text, size, used, "sizes", v.sizes);
  append_dims(text, size, used, "strides", v.strides);
  return 0;
}

/* One stream entry by name, with `stream` as given and, where the entry has
 * an out-pointer, out NULL when null_out. Returns the entry's result ("OK"
 * for NULL) in text. */
CONSUMER_EXPORT int v1_stream_entry(const char* name, void* stream, int null_out, char* text,
                                    size_t size) {
  const char* why = "";
  const KestrelMPSTorchExtAPI* api = find_api(&why);
  void* handle = NULL;
  void** out = null_out ? NULL : &handle;
  const char* err;
  if (api == NULL) {
    snprintf(text, size, "%s", why);
    return -1;
  }
  if (strcmp(name, "end_kernel_coalescing") == 0) {
    err = api->end_kernel_coalescing(stream);
  } else if (strcmp(name, "command_buffer") == 0) {
    err = api->command_buffer(stream, out);
  } else if (strcmp(name, "commit_stream") == 0) {
    err = api->commit_stream(stream);
  } else if (strcmp(name, "command_encoder") == 0) {
    err = find_encoder()(stream, out);
  } else if (strcmp(name, "current_stream_view") == 0) {
    KestrelMPSStreamView view;
    err = api->current_stream_view(null_out ? NULL : &view);
  } else if (strcmp(name, "torch_tag") == 0) {
    snprintf(text, size, "%s", api->torch_tag());
    return 0;
  } else {
    snprintf(text, size, "unknown entry %s", name);
    return -1;
  }
  snprintf(text, size, "%s", err == NULL ? "OK" : err);
  return err == NULL ? 0 : 1;
}

#ifdef CONSUMER_HAS_QUEUE
struct launch {
  const KestrelMPSTorchExtAPI* api;
  KestrelMPSStreamView view;
  const char* err;
  void* command_buffer;
  void* encoder;
};

/* On the stream's serial queue, as the published ABI expects its callers. */
static void launch_on_queue(void* raw) {
  struct launch* l = (struct launch*)raw;
  if ((l->err = find_encoder()(l->view.stream, &l->encoder)) != NULL) return;
  /* A kernel would bind buffers and dispatch on l->encoder here. To open an
   * encoder of its own it would end coalescing and take the buffer: */
  if ((l->err = l->api->end_kernel_coalescing(l->view.stream)) != NULL) return;
  if ((l->err = l->api->command_buffer(l->view.stream, &l->command_buffer)) != NULL) return;
  l->err = l->api->commit_stream(l->view.stream);
}
#endif

/* The stream half of a launch: current stream view, then (macOS) on its
 * queue: the coalesced encoder, end coalescing, command buffer, commit.
 * Returns 0 and what it saw, or 1 and the first message. */
CONSUMER_EXPORT int v1_launch(char* text, size_t size) {
  const char* why = "";
  const KestrelMPSTorchExtAPI* api = find_api(&why);
  KestrelMPSStreamView view;
  const char* err;
  if (api == NULL) {
    snprintf(text, size, "%s", why);
    return -1;
  }
  err = api->current_stream_view(&view);
  if (err != NULL) {
    snprintf(text, size, "%s", err);
    return 1;
  }
#ifdef CONSUMER_HAS_QUEUE
  {
    struct launch l;
    memset(&l, 0, sizeof l);
    l.api = api;
    l.view = view;
    dispatch_sync_f((dispatch_queue_t)view.queue, &l, launch_on_queue);
    if (l.err != NULL) {
      snprintf(text, size, "on the queue: %s", l.err);
      return 1;
    }
    snprintf(text, size, "stream=%p device=%p queue=%p encoder=%p command_buffer=%p",
             view.stream, view.device, view.queue, l.encoder, l.command_buffer);
  }
#else
  snprintf(text, size, "stream=%p device=%p queue=%p", view.stream, view.device, view.queue);
#endif
  return 0;
}
