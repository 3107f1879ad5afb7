/*
 * kestrel_mps_api.h -- the stable C ABI of kestrel-mps-torch-ext.
 *
 * A kernel library that ships its own Metal kernels includes this one file,
 * links neither torch nor this package, and finds the function table at run
 * time with dlsym() on the data symbol KestrelMPSTorchExtAPI_v1, which the
 * per-torch-minor bridge library exports once Python has loaded it
 * (kestrel_mps_torch_ext.load_torch_mps_bridge(), which uses RTLD_GLOBAL).
 *
 * Rules that hold for every entry point of the table:
 *   - It returns a kestrel_mps_status. KESTREL_MPS_OK (0) means success.
 *   - It never lets a C++ exception, a Python exception or a signal escape:
 *     failures become a status plus a message readable with last_error()
 *     on the same thread.
 *   - Out-pointers are written only on success, except where documented.
 *   - It is safe to call from any thread; the resolve entry points need the
 *     calling thread to hold the Python GIL and refuse (status
 *     KESTREL_MPS_ERROR_GIL_NOT_HELD) when it does not.
 *
 * Handles are void*: an id<MTLBuffer>, id<MTLCommandBuffer>,
 * id<MTLCommandQueue>, id<MTLDevice> or dispatch_queue_t is returned as a
 * borrowed, unretained object pointer (cast with __bridge in Objective-C).
 *
 * Versioning: ABI version 1 is the symbol name's "_v1". Within ABI 1 the
 * table only grows at its end; struct_size says how large the producer's
 * table is, so a consumer compiled against a newer header can tell which
 * entries an older bridge lacks. kestrel_mps_tensor is frozen for ABI 1.
 * An incompatible change gets a new symbol (KestrelMPSTorchExtAPI_v2).
 *
 * The header is C89-clean and also compiles as C++11 and later. Define
 * KESTREL_MPS_NO_CONSUMER_HELPER to leave out the dlsym() helper and with it
 * the only include beyond <stddef.h> and <stdint.h>.
 */
#ifndef KESTREL_MPS_API_H_
#define KESTREL_MPS_API_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI version of this header; the table's abi_version must be equal. */
#define KESTREL_MPS_ABI_VERSION 1u

/* Name of the exported data symbol holding a const KestrelMPSTorchExtAPIv1. */
#define KESTREL_MPS_API_SYMBOL "KestrelMPSTorchExtAPI_v1"

/* Largest number of dimensions a kestrel_mps_tensor describes. Metal's own
 * MPSGraph limit is 16 as well; tensors with more dims are refused with
 * KESTREL_MPS_ERROR_TOO_MANY_DIMS. */
#define KESTREL_MPS_MAX_NDIM 16

/* ------------------------------------------------------------------------ */
/* Status codes                                                             */
/* ------------------------------------------------------------------------ */

/* Every entry point returns one of the KESTREL_MPS_* codes below. */
typedef int32_t kestrel_mps_status;

enum {
  /* Success; out-parameters are filled. */
  KESTREL_MPS_OK = 0,
  /* A required pointer was NULL, a flag or enum value is unknown, or a count
   * is out of range. Nothing was read from Python or torch. */
  KESTREL_MPS_ERROR_INVALID_ARGUMENT = 1,
  /* The object is not a torch.Tensor (nor an instance of a subclass). */
  KESTREL_MPS_ERROR_NOT_A_TENSOR = 2,
  /* A tensor without plain strided storage that a kernel could bind: meta,
   * sparse, nested, mkldnn, quantized, functional or fake tensors, wrapper
   * subclasses, or a device other than CPU, CUDA and MPS. */
  KESTREL_MPS_ERROR_UNSUPPORTED_TENSOR = 3,
  /* The tensor's dtype has no DLPack encoding here (e.g. the sub-byte
   * uint1..uint7 and the opaque bits* types). */
  KESTREL_MPS_ERROR_UNSUPPORTED_DTYPE = 4,
  /* The tensor has more than KESTREL_MPS_MAX_NDIM dimensions. */
  KESTREL_MPS_ERROR_TOO_MANY_DIMS = 5,
  /* A stream call on a build or machine without the MPS backend. The
   * message says which (Linux build, or macOS without a Metal device). */
  KESTREL_MPS_ERROR_MPS_UNAVAILABLE = 6,
  /* torch raised an error (c10::Error); the message is torch's, without
   * its C++ backtrace. */
  KESTREL_MPS_ERROR_TORCH = 7,
  /* A resolve call from a thread that does not hold the Python GIL. */
  KESTREL_MPS_ERROR_GIL_NOT_HELD = 8,
  /* The callback given to run_on_stream_queue threw a C++ exception; it was
   * caught on the queue and not rethrown. */
  KESTREL_MPS_ERROR_CALLBACK_FAILED = 9,
  /* Anything else (an unexpected exception, out of memory). */
  KESTREL_MPS_ERROR_INTERNAL = 10
};

/* ------------------------------------------------------------------------ */
/* Flags and enumerations                                                   */
/* ------------------------------------------------------------------------ */

/* access argument of resolve_tensor / resolve_tensors.
 * READ: the buffer is taken with torch's const accessor. A storage shared
 *   copy-on-write (torch's lazy clones) is left shared: do not write.
 * WRITE: the buffer is taken with torch's mutable accessor, which first gives
 *   a copy-on-write storage its own memory, so writes reach this tensor only.
 *   The result carries KESTREL_MPS_TENSOR_WRITABLE. */
#define KESTREL_MPS_ACCESS_READ 0u
#define KESTREL_MPS_ACCESS_WRITE 1u

/* kestrel_mps_tensor.flags */
/* The view is C-contiguous (torch's is_contiguous()). */
#define KESTREL_MPS_TENSOR_CONTIGUOUS 1u
/* The buffer was resolved with KESTREL_MPS_ACCESS_WRITE. */
#define KESTREL_MPS_TENSOR_WRITABLE 2u

/* kestrel_mps_tensor.device_type: DLPack's DLDeviceType codes. */
#define KESTREL_MPS_DEVICE_CPU 1
#define KESTREL_MPS_DEVICE_CUDA 2
#define KESTREL_MPS_DEVICE_METAL 8

/* kestrel_mps_dtype.code: DLPack's DLDataTypeCode values (DLPack 1.1). */
#define KESTREL_MPS_DTYPE_INT 0
#define KESTREL_MPS_DTYPE_UINT 1
#define KESTREL_MPS_DTYPE_FLOAT 2
#define KESTREL_MPS_DTYPE_BFLOAT 4
#define KESTREL_MPS_DTYPE_COMPLEX 5
#define KESTREL_MPS_DTYPE_BOOL 6
#define KESTREL_MPS_DTYPE_FLOAT8_E4M3FN 10
#define KESTREL_MPS_DTYPE_FLOAT8_E4M3FNUZ 11
#define KESTREL_MPS_DTYPE_FLOAT8_E5M2 12
#define KESTREL_MPS_DTYPE_FLOAT8_E5M2FNUZ 13
#define KESTREL_MPS_DTYPE_FLOAT8_E8M0FNU 14
#define KESTREL_MPS_DTYPE_FLOAT4_E2M1FN 17

/* synchronize() kinds. Each first ends PyTorch's kernel coalescing.
 * COMMIT: commit the stream's command buffer and continue with a new one.
 * COMMIT_AND_WAIT: commit, then block until the GPU has finished it.
 * COMMIT_AND_CONTINUE: commit and keep encoding into a continuation buffer
 *   (PyTorch's commitAndContinue; falls back to COMMIT when disabled). */
#define KESTREL_MPS_SYNC_COMMIT 1
#define KESTREL_MPS_SYNC_COMMIT_AND_WAIT 2
#define KESTREL_MPS_SYNC_COMMIT_AND_CONTINUE 3

/* table.capabilities */
/* The library was built with the Metal stream backend (macOS). Without it
 * every stream call returns KESTREL_MPS_ERROR_MPS_UNAVAILABLE. */
#define KESTREL_MPS_CAP_MPS_STREAM 1u

/* ------------------------------------------------------------------------ */
/* Tensor descriptor                                                        */
/* ------------------------------------------------------------------------ */

/* Element type in DLPack's encoding: an element is bits * lanes bits wide
 * (float4_e2m1fn_x2 is code 17, bits 4, lanes 2: two values in one byte). */
typedef struct kestrel_mps_dtype {
  uint8_t code;   /* a KESTREL_MPS_DTYPE_* code */
  uint8_t bits;   /* bits per lane */
  uint16_t lanes; /* lanes per element, 1 except packed sub-byte types */
} kestrel_mps_dtype;

/* One tensor, as a kernel binds it. Written by resolve_tensor(s) into memory
 * the caller owns. Everything is copied into the struct except `buffer`, which
 * is borrowed: it stays valid while the tensor's storage is alive and not
 * resized, and is not retained for the caller. Shape and strides are copies,
 * so a later resize or as_strided_ on the tensor cannot invalidate them. */
typedef struct kestrel_mps_tensor {
  /* MPS: the storage's id<MTLBuffer> (not a GPU address; bind it with
   * `offset` = byte_offset). CPU and CUDA: the storage's base data pointer.
   * NULL only for a storage of zero bytes. Borrowed. */
  void* buffer;
  /* Bytes from the start of `buffer` to element 0 of this view:
   * storage_offset * element size. */
  uint64_t byte_offset;
  /* Bytes the view spans from byte_offset: the highest byte address it can
   * touch plus one, minus byte_offset. 0 when numel is 0. Elements of an
   * expanded or overlapping view are counted once. */
  uint64_t nbytes;
  /* Number of elements: the product of shape (1 for a 0-dim tensor). */
  int64_t numel;
  /* KESTREL_MPS_DEVICE_* (DLPack code). */
  int32_t device_type;
  /* Device ordinal: the CUDA device; 0 for CPU and MPS. */
  int32_t device_index;
  /* Element type. */
  kestrel_mps_dtype dtype;
  /* Number of dimensions, 0 to KESTREL_MPS_MAX_NDIM. */
  int32_t ndim;
  /* KESTREL_MPS_TENSOR_* bits. */
  uint32_t flags;
  /* Always 0 in ABI 1. */
  uint32_t reserved;
  /* shape[0..ndim-1]: sizes in elements; entries from ndim on are 0. */
  int64_t shape[KESTREL_MPS_MAX_NDIM];
  /* strides[0..ndim-1]: in elements (not bytes), never negative, 0 for
   * expanded dims; entries from ndim on are 0. */
  int64_t strides[KESTREL_MPS_MAX_NDIM];
} kestrel_mps_tensor;

/* ------------------------------------------------------------------------ */
/* The v1 function table                                                    */
/* ------------------------------------------------------------------------ */

/* The data symbol KestrelMPSTorchExtAPI_v1 has this type. It is a constant
 * object with static storage duration: valid until the bridge library is
 * unloaded (the Python loader never unloads it). */
typedef struct KestrelMPSTorchExtAPIv1 {
  /* sizeof(KestrelMPSTorchExtAPIv1) of the producer, in bytes. */
  uint32_t struct_size;
  /* KESTREL_MPS_ABI_VERSION of the producer. */
  uint32_t abi_version;
  /* sizeof(kestrel_mps_tensor) of the producer, in bytes. */
  uint32_t tensor_struct_size;
  /* KESTREL_MPS_MAX_NDIM of the producer. */
  uint32_t max_ndim;
  /* The torch release the library was compiled against (e.g. 2, 13, 0).
   * The Python loader refuses a library whose major.minor differs from the
   * running torch's. */
  uint32_t torch_version_major;
  uint32_t torch_version_minor;
  uint32_t torch_version_patch;
  /* KESTREL_MPS_CAP_* bits. */
  uint32_t capabilities;

  /* Describe one tensor. py_tensor is a borrowed PyObject* (a torch.Tensor
   * or an instance of a subclass); the caller holds the GIL. access is
   * KESTREL_MPS_ACCESS_READ or _WRITE. On success *out is filled; on
   * failure *out is zero-filled (when out is not NULL). */
  kestrel_mps_status (*resolve_tensor)(void* py_tensor, uint32_t access,
                                       kestrel_mps_tensor* out);

  /* Describe count tensors in one call (the caller holds the GIL).
   * access may be NULL (all READ) or point to count access values.
   * On failure it stops at the first bad tensor: out[0..i-1] are filled,
   * out[i..count-1] are zero-filled and *failed_index (if not NULL) is set to
   * i. On success *failed_index is set to count. count 0 is OK. A failure
   * found before any tensor is read (a NULL array, the GIL not held) leaves
   * out untouched and sets *failed_index to 0. */
  kestrel_mps_status (*resolve_tensors)(void* const* py_tensors, size_t count,
                                        const uint32_t* access,
                                        kestrel_mps_tensor* out,
                                        size_t* failed_index);

  /* The calling thread's *current* MPS stream (not necessarily the default
   * stream), as an opaque at::mps::MPSStream*. For identity only. */
  kestrel_mps_status (*current_stream)(void** out_stream);

  /* The current stream's id<MTLCommandBuffer>, after ending PyTorch's kernel
   * coalescing so that the caller may open its own encoder on it. Call on
   * the stream's serial queue (run_on_stream_queue). Valid until the next
   * commit of the stream. */
  kestrel_mps_status (*command_buffer)(void** out_command_buffer);

  /* The current stream's id<MTLCommandQueue>. Valid while the process runs. */
  kestrel_mps_status (*command_queue)(void** out_command_queue);

  /* The id<MTLDevice> PyTorch uses. Valid while the process runs. */
  kestrel_mps_status (*device)(void** out_device);

  /* The current stream's serial dispatch_queue_t, on which PyTorch encodes.
   * Valid while the process runs. */
  kestrel_mps_status (*dispatch_queue)(void** out_dispatch_queue);

  /* End PyTorch's coalesced compute encoder on the current stream, if one is
   * open. Call on the stream's serial queue. */
  kestrel_mps_status (*end_kernel_coalescing)(void);

  /* Synchronize the current stream with a KESTREL_MPS_SYNC_* kind. Must not
   * be called from inside run_on_stream_queue's callback when waiting. */
  kestrel_mps_status (*synchronize)(int32_t sync_kind);

  /* Run fn(context) synchronously on the current stream's serial queue
   * (dispatch_sync_f) and return when it has run. A C++ exception thrown by
   * fn is caught on the queue: KESTREL_MPS_ERROR_CALLBACK_FAILED. Must not
   * be called from code already running on that queue (it would deadlock,
   * as dispatch_sync does). */
  kestrel_mps_status (*run_on_stream_queue)(void (*fn)(void* context),
                                            void* context);

  /* The message of the most recent failing call on the calling thread, or ""
   * if none failed yet. Successful calls do not clear it (like errno). The
   * string is thread-local and valid until the next failing call on this
   * thread. Never NULL. */
  const char* (*last_error)(void);
} KestrelMPSTorchExtAPIv1;

/* ------------------------------------------------------------------------ */
/* Layout pins                                                              */
/* ------------------------------------------------------------------------ */

#if defined(__cplusplus) && __cplusplus >= 201103L
#define KESTREL_MPS_STATIC_ASSERT(cond, name) static_assert(cond, #name)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define KESTREL_MPS_STATIC_ASSERT(cond, name) _Static_assert(cond, #name)
#else
/* C89/C99: a negative array size fails to compile. */
#define KESTREL_MPS_STATIC_ASSERT(cond, name) \
  typedef char kestrel_mps_static_assert_##name[(cond) ? 1 : -1]
#endif

KESTREL_MPS_STATIC_ASSERT(sizeof(kestrel_mps_dtype) == 4, dtype_size);
KESTREL_MPS_STATIC_ASSERT(sizeof(kestrel_mps_status) == 4, status_size);

#if defined(__LP64__) || defined(_WIN64)
KESTREL_MPS_STATIC_ASSERT(offsetof(kestrel_mps_tensor, byte_offset) == 8,
                          tensor_byte_offset);
KESTREL_MPS_STATIC_ASSERT(offsetof(kestrel_mps_tensor, numel) == 24,
                          tensor_numel);
KESTREL_MPS_STATIC_ASSERT(offsetof(kestrel_mps_tensor, dtype) == 40,
                          tensor_dtype);
KESTREL_MPS_STATIC_ASSERT(offsetof(kestrel_mps_tensor, flags) == 48,
                          tensor_flags);
KESTREL_MPS_STATIC_ASSERT(offsetof(kestrel_mps_tensor, shape) == 56,
                          tensor_shape);
KESTREL_MPS_STATIC_ASSERT(offsetof(kestrel_mps_tensor, strides) == 184,
                          tensor_strides);
KESTREL_MPS_STATIC_ASSERT(sizeof(kestrel_mps_tensor) == 312, tensor_size);
KESTREL_MPS_STATIC_ASSERT(offsetof(KestrelMPSTorchExtAPIv1, capabilities) ==
                              28,
                          api_capabilities);
KESTREL_MPS_STATIC_ASSERT(offsetof(KestrelMPSTorchExtAPIv1, resolve_tensor) ==
                              32,
                          api_resolve_tensor);
KESTREL_MPS_STATIC_ASSERT(offsetof(KestrelMPSTorchExtAPIv1, last_error) == 112,
                          api_last_error);
KESTREL_MPS_STATIC_ASSERT(sizeof(KestrelMPSTorchExtAPIv1) == 120, api_size);
#endif

/* ------------------------------------------------------------------------ */
/* Inline helpers for consumers                                             */
/* ------------------------------------------------------------------------ */

#if defined(__cplusplus) || \
    (defined(__STDC_VERSION__) && __STDC_VERSION__ >= 199901L)
#define KESTREL_MPS_INLINE static inline
#elif defined(__GNUC__)
#define KESTREL_MPS_INLINE static __inline__
#else
#define KESTREL_MPS_INLINE static
#endif

/* A short constant name for a status code ("KESTREL_MPS_OK", ...). */
KESTREL_MPS_INLINE const char* kestrel_mps_status_name(kestrel_mps_status s) {
  switch (s) {
    case KESTREL_MPS_OK: return "KESTREL_MPS_OK";
    case KESTREL_MPS_ERROR_INVALID_ARGUMENT:
      return "KESTREL_MPS_ERROR_INVALID_ARGUMENT";
    case KESTREL_MPS_ERROR_NOT_A_TENSOR: return "KESTREL_MPS_ERROR_NOT_A_TENSOR";
    case KESTREL_MPS_ERROR_UNSUPPORTED_TENSOR:
      return "KESTREL_MPS_ERROR_UNSUPPORTED_TENSOR";
    case KESTREL_MPS_ERROR_UNSUPPORTED_DTYPE:
      return "KESTREL_MPS_ERROR_UNSUPPORTED_DTYPE";
    case KESTREL_MPS_ERROR_TOO_MANY_DIMS: return "KESTREL_MPS_ERROR_TOO_MANY_DIMS";
    case KESTREL_MPS_ERROR_MPS_UNAVAILABLE:
      return "KESTREL_MPS_ERROR_MPS_UNAVAILABLE";
    case KESTREL_MPS_ERROR_TORCH: return "KESTREL_MPS_ERROR_TORCH";
    case KESTREL_MPS_ERROR_GIL_NOT_HELD: return "KESTREL_MPS_ERROR_GIL_NOT_HELD";
    case KESTREL_MPS_ERROR_CALLBACK_FAILED:
      return "KESTREL_MPS_ERROR_CALLBACK_FAILED";
    case KESTREL_MPS_ERROR_INTERNAL: return "KESTREL_MPS_ERROR_INTERNAL";
    default: return "KESTREL_MPS_ERROR_UNKNOWN";
  }
}

/* Check that `table` (the address of a KestrelMPSTorchExtAPI_v1 symbol) is
 * one this header can use. Returns table on success; NULL on failure with
 * *error_message (if error_message is not NULL) set to a static string. */
KESTREL_MPS_INLINE const KestrelMPSTorchExtAPIv1* kestrel_mps_check_api(
    const void* table, const char** error_message) {
  const KestrelMPSTorchExtAPIv1* api = (const KestrelMPSTorchExtAPIv1*)table;
  const char* msg = NULL;
  if (api == NULL) {
    msg = "kestrel-mps-torch-ext: symbol KestrelMPSTorchExtAPI_v1 not found: "
          "the bridge is not loaded; call "
          "kestrel_mps_torch_ext.load_torch_mps_bridge() in Python first";
  } else if (api->abi_version != KESTREL_MPS_ABI_VERSION) {
    msg = "kestrel-mps-torch-ext: the loaded bridge has another ABI version "
          "than this consumer was compiled for (KESTREL_MPS_ABI_VERSION)";
  } else if (api->struct_size < (uint32_t)sizeof(KestrelMPSTorchExtAPIv1)) {
    msg = "kestrel-mps-torch-ext: the loaded bridge is older than the header "
          "this consumer was compiled with (its table is smaller); upgrade "
          "the kestrel-mps-torch-ext package";
  } else if (api->tensor_struct_size != (uint32_t)sizeof(kestrel_mps_tensor)) {
    msg = "kestrel-mps-torch-ext: the loaded bridge's tensor descriptor has "
          "another size than this header's";
  }
  if (msg != NULL) {
    if (error_message != NULL) *error_message = msg;
    return NULL;
  }
  if (error_message != NULL) *error_message = "";
  return api;
}

#if !defined(KESTREL_MPS_NO_CONSUMER_HELPER) && !defined(_WIN32)
#include <dlfcn.h>

/* Find the bridge's table among the globally loaded libraries and check it
 * (kestrel_mps_check_api). Cheap enough to call once per process; cache the
 * result. glibc declares RTLD_DEFAULT only under _GNU_SOURCE, so where it is
 * missing the global scope is reached through dlopen(NULL), which POSIX
 * defines as the program plus every RTLD_GLOBAL library. */
KESTREL_MPS_INLINE const KestrelMPSTorchExtAPIv1* kestrel_mps_find_api(
    const char** error_message) {
  void* symbol;
#ifdef RTLD_DEFAULT
  symbol = dlsym(RTLD_DEFAULT, KESTREL_MPS_API_SYMBOL);
#else
  void* self = dlopen(NULL, RTLD_LAZY);
  symbol = self != NULL ? dlsym(self, KESTREL_MPS_API_SYMBOL) : NULL;
  if (self != NULL) dlclose(self);
#endif
  return kestrel_mps_check_api(symbol, error_message);
}
#endif /* !KESTREL_MPS_NO_CONSUMER_HELPER */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* KESTREL_MPS_API_H_ */
