/*
 * A kernel library's side of the bridge, reduced to its core: it includes
 * only kestrel_mps_api.h, links neither torch nor the bridge, and finds the
 * table with dlsym() once Python has called load_torch_mps_bridge().
 *
 * A real kernel library would bind d.buffer at d.byte_offset to its compute
 * encoder on the command buffer it gets from the table; here the descriptor
 * is written out as text so that run.py can check it against torch.
 */
#include <stdio.h>

#include "kestrel_mps_api.h"

#if defined(__GNUC__)
#define CONSUMER_EXPORT __attribute__((visibility("default")))
#else
#define CONSUMER_EXPORT
#endif

/* Describes the tensor `tensor` (a borrowed PyObject*; the caller holds the
 * GIL) into text. Returns a kestrel_mps_status, or -1 if the bridge's table
 * cannot be found; text then holds the reason. */
CONSUMER_EXPORT int consumer_describe(void* tensor, char* text, size_t size) {
  const char* why = NULL;
  const kestrel_mps_ext_api* api = kestrel_mps_find_api(&why);
  kestrel_mps_tensor d;
  kestrel_mps_status status;
  int used;
  int i;

  if (api == NULL) {
    snprintf(text, size, "%s", why);
    return -1;
  }
  status = api->resolve_tensor(tensor, KESTREL_MPS_ACCESS_READ, &d);
  if (status != KESTREL_MPS_OK) {
    snprintf(text, size, "%s: %s", kestrel_mps_status_name(status), api->last_error());
    return status;
  }
  used = snprintf(text, size,
                  "buffer=%p byte_offset=%llu nbytes=%llu numel=%lld device=%d:%d "
                  "dtype=%u/%u/%u flags=%u shape=",
                  d.buffer, (unsigned long long)d.byte_offset, (unsigned long long)d.nbytes,
                  (long long)d.numel, (int)d.device_type, (int)d.device_index,
                  (unsigned)d.dtype.code, (unsigned)d.dtype.bits, (unsigned)d.dtype.lanes,
                  (unsigned)d.flags);
  for (i = 0; i < d.ndim && used > 0 && (size_t)used < size; ++i) {
    used += snprintf(text + used, size - (size_t)used, "%s%lld", i ? "," : "",
                     (long long)d.shape[i]);
  }
  if (used > 0 && (size_t)used < size) used += snprintf(text + used, size - (size_t)used, " strides=");
  for (i = 0; i < d.ndim && used > 0 && (size_t)used < size; ++i) {
    used += snprintf(text + used, size - (size_t)used, "%s%lld", i ? "," : "",
                     (long long)d.strides[i]);
  }
  return KESTREL_MPS_OK;
}
