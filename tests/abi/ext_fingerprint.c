/*
 * Prints every fact of the extension ABI that an older consumer relies on:
 * the descriptor's and the table's field offsets, sizes and (as C++) types,
 * for every entry of the first ABI 1 table (up to command_encoder), and the
 * status, flag and capability values. tests/python/test_ext_abi.py compiles
 * it against the previous release's header (tests/abi/header_0.2.0) and
 * against the current one and requires identical output: the table may only
 * grow at its end.
 */
#include <stddef.h>
#include <stdio.h>

#include "kestrel_mps_api.h"

#ifdef __cplusplus
#include <typeinfo>
#define TYPE_NAME(expr) typeid(decltype(expr)).name()
#else
#define TYPE_NAME(expr) "(C)"
#endif

#define FIELD(T, f)                                                             \
  printf("%s.%s: offset %zu size %zu type %s\n", #T, #f, offsetof(T, f),        \
         sizeof(((T*)0)->f), TYPE_NAME(((T*)0)->f))
/* f under the name an older header gave it. */
#define FIELD_AS(T, f, old)                                                     \
  printf("%s.%s: offset %zu size %zu type %s\n", #T, #old, offsetof(T, f),     \
         sizeof(((T*)0)->f), TYPE_NAME(((T*)0)->f))
#define VALUE(m) printf("%s = %ld\n", #m, (long)(m))

int main(void) {
  printf("sizeof(kestrel_mps_tensor) = %zu\n", sizeof(kestrel_mps_tensor));
  FIELD(kestrel_mps_tensor, buffer);
  FIELD(kestrel_mps_tensor, byte_offset);
  FIELD(kestrel_mps_tensor, nbytes);
  FIELD(kestrel_mps_tensor, numel);
  FIELD(kestrel_mps_tensor, device_type);
  FIELD(kestrel_mps_tensor, device_index);
  FIELD(kestrel_mps_tensor, dtype);
  FIELD(kestrel_mps_tensor, ndim);
  FIELD(kestrel_mps_tensor, flags);
  /* The same slot, renamed when it was given a meaning (0.4.0). */
#ifdef KESTREL_MPS_CAP_OFFSET_ALIGN
  FIELD_AS(kestrel_mps_tensor, byte_offset_align, reserved);
#else
  FIELD(kestrel_mps_tensor, reserved);
#endif
  FIELD(kestrel_mps_tensor, shape);
  FIELD(kestrel_mps_tensor, strides);
  FIELD(kestrel_mps_ext_api, struct_size);
  FIELD(kestrel_mps_ext_api, abi_version);
  FIELD(kestrel_mps_ext_api, tensor_struct_size);
  FIELD(kestrel_mps_ext_api, max_ndim);
  FIELD(kestrel_mps_ext_api, torch_version_major);
  FIELD(kestrel_mps_ext_api, torch_version_minor);
  FIELD(kestrel_mps_ext_api, torch_version_patch);
  FIELD(kestrel_mps_ext_api, capabilities);
  FIELD(kestrel_mps_ext_api, resolve_tensor);
  FIELD(kestrel_mps_ext_api, resolve_tensors);
  FIELD(kestrel_mps_ext_api, current_stream);
  FIELD(kestrel_mps_ext_api, command_buffer);
  FIELD(kestrel_mps_ext_api, command_queue);
  FIELD(kestrel_mps_ext_api, device);
  FIELD(kestrel_mps_ext_api, dispatch_queue);
  FIELD(kestrel_mps_ext_api, end_kernel_coalescing);
  FIELD(kestrel_mps_ext_api, synchronize);
  FIELD(kestrel_mps_ext_api, run_on_stream_queue);
  FIELD(kestrel_mps_ext_api, last_error);
  FIELD(kestrel_mps_ext_api, command_encoder);
  VALUE(KESTREL_MPS_ABI_VERSION);
  VALUE(KESTREL_MPS_MAX_NDIM);
  VALUE(KESTREL_MPS_ERROR_COPY_ON_WRITE);
  VALUE(KESTREL_MPS_ACCESS_WRITE);
  VALUE(KESTREL_MPS_TENSOR_WRITABLE);
  VALUE(KESTREL_MPS_CAP_MPS_STREAM);
  VALUE(KESTREL_MPS_SYNC_COMMIT_AND_CONTINUE);
  return 0;
}
