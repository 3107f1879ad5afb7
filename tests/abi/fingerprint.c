/*
 * Prints every fact of the published ABI a compiler knows: struct sizes,
 * each field's offset and size, the two macros and, compiled as C++, the
 * exact type of every field and function (typeid names, noexcept included
 * from C++17). tests/python/test_published_abi.py compiles it once against
 * the published 0.1.x header and once against ours, in C and in C++, and
 * requires identical output.
 */
#include <stddef.h>
#include <stdio.h>

#include "kestrel_mps_torch_ext.h"

#ifdef __cplusplus
#include <typeinfo>
#define TYPE_NAME(expr) typeid(decltype(expr)).name()
#else
#define TYPE_NAME(expr) "(C)"
#endif

#define SIZE(T) printf("sizeof(%s) = %zu\n", #T, sizeof(T))
#define FIELD(T, f)                                                             \
  printf("%s.%s: offset %zu size %zu type %s\n", #T, #f, offsetof(T, f),        \
         sizeof(((T*)0)->f), TYPE_NAME(((T*)0)->f))
#define FUNCTION(f) printf("%s: type %s\n", #f, TYPE_NAME(f))

int main(void) {
  SIZE(KestrelMPSTensorView);
  FIELD(KestrelMPSTensorView, mtl_buffer);
  FIELD(KestrelMPSTensorView, storage_offset_bytes);
  FIELD(KestrelMPSTensorView, element_size_bytes);
  FIELD(KestrelMPSTensorView, scalar_type);
  FIELD(KestrelMPSTensorView, dim);
  FIELD(KestrelMPSTensorView, sizes);
  FIELD(KestrelMPSTensorView, strides);
  FIELD(KestrelMPSTensorView, numel);

  SIZE(KestrelMPSStreamView);
  FIELD(KestrelMPSStreamView, stream);
  FIELD(KestrelMPSStreamView, device);
  FIELD(KestrelMPSStreamView, queue);

  SIZE(KestrelMPSTorchExtAPI);
  FIELD(KestrelMPSTorchExtAPI, api_version);
  FIELD(KestrelMPSTorchExtAPI, torch_tag);
  FIELD(KestrelMPSTorchExtAPI, tensor_view_from_pyobject);
  FIELD(KestrelMPSTorchExtAPI, current_stream_view);
  FIELD(KestrelMPSTorchExtAPI, end_kernel_coalescing);
  FIELD(KestrelMPSTorchExtAPI, command_buffer);
  FIELD(KestrelMPSTorchExtAPI, commit_stream);

  printf("KESTREL_MPS_TORCH_EXT_MAX_DIMS = %d\n", (int)KESTREL_MPS_TORCH_EXT_MAX_DIMS);
  printf("KESTREL_MPS_TORCH_EXT_API_VERSION = %d\n", (int)KESTREL_MPS_TORCH_EXT_API_VERSION);

  FUNCTION(KestrelMPSTorchExtAPI_v1);
  FUNCTION(KestrelMPSTorchExtTorchTag);
  FUNCTION(KestrelMPSTensorViewFromPyObject);
  FUNCTION(KestrelMPSGetCurrentStreamView);
  FUNCTION(KestrelMPSEndKernelCoalescing);
  FUNCTION(KestrelMPSCommandBuffer);
  FUNCTION(KestrelMPSCommitStream);
  FUNCTION(KestrelMPSCommandEncoder);
  return 0;
}
