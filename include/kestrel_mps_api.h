/*
 * kestrel_mps_api.h -- the stable C ABI of kestrel-mps-torch-ext.
 *
 * A kernel library that ships its own Metal kernels includes this one file,
 * links neither torch nor this package, and finds the bridge at run time with
 * dlsym() once Python has loaded it
 * (kestrel_mps_torch_ext.load_torch_mps_bridge(), which uses RTLD_GLOBAL).
 * The per-torch-minor bridge library offers two front ends over one core:
 *
 * Part 1, the published ABI of kestrel-mps-torch-ext 0.1.x, unchanged: the
 *   getter function KestrelMPSTorchExtAPI_v1() returning a 56-byte table,
 *   seven more exported functions, errors as NULL-or-message strings. Code
 *   written against the published header kestrel_mps_torch_ext.h compiles
 *   unchanged against this one (that header name is kept as an alias).
 *
 * Part 2, the extension of this project: the data symbol
 *   KestrelMPS_kmte_ext_v1 holding a kestrel_mps_ext_api table with status
 *   codes, batch resolution, copy-on-write-safe write access, DLPack dtypes
 *   and devices, queue-checked stream calls and run_on_stream_queue.
 *
 * Both tables are constant objects with static storage duration, complete
 * when dlopen() returns (no code runs at load), and valid until the bridge
 * library is unloaded (the Python loader never unloads it).
 *
 * Handles are void*: an id<MTLBuffer>, id<MTLCommandBuffer>,
 * id<MTLComputeCommandEncoder>, id<MTLCommandQueue>, id<MTLDevice> or
 * dispatch_queue_t is a borrowed, unretained object pointer (cast it with
 * __bridge in Objective-C). The stream is an opaque at::mps::MPSStream*.
 *
 * The stream's serial queue. PyTorch encodes every MPS op from blocks on
 * the stream's serial dispatch queue; the command buffer and the coalesced
 * encoder may be touched only there. The published entries do not dispatch
 * and do not check: call them from a block on that queue
 * (dispatch_sync(view.queue, ...)). The extension's command_buffer,
 * command_encoder and end_kernel_coalescing refuse an off-queue caller
 * (KESTREL_MPS_ERROR_WRONG_QUEUE); its synchronize moves onto the queue
 * itself; its run_on_stream_queue refuses to dispatch onto the queue the
 * caller already runs on (KESTREL_MPS_ERROR_REENTRANT), where libdispatch
 * would trap.
 *
 * Rules no bridge can check, because libdispatch or torch hides the facts
 * it would need:
 *  - Once in a block on the stream's queue, call the bridge directly. From
 *    there a dispatch_sync onto a queue of your own hides the stream's queue
 *    (a queue's specifics are looked up through the running queue's target
 *    chain only), so a bridge entry that dispatches (synchronize,
 *    run_on_stream_queue) would dispatch_sync onto a queue this thread
 *    already owns: libdispatch traps ("dispatch_sync called on queue
 *    already owned by current thread") and the process dies.
 *  - In a block you dispatch yourself (dispatch_sync(view.queue, ...)),
 *    push an autorelease pool (objc_autoreleasePoolPush/Pop, or
 *    @autoreleasepool) around any Metal object you create there: the
 *    bridge's pools cover its own entries only.
 *  - Call no torch op from a block on the stream's queue (a
 *    run_on_stream_queue callback included). torch's ops, a copy, MPSGraph
 *    execution, addCompletedHandler and, from torch 2.15,
 *    torch.mps.synchronize() dispatch_sync onto that same queue: libdispatch
 *    traps. Run torch's work before or after the block.
 *  - torch 2.15's pool streams: torch::mps::get_command_buffer() and
 *    torch::mps::commit() assert that the caller runs on the queue of its
 *    thread's *current* stream. A block dispatched asynchronously onto a
 *    pool stream's queue runs on a worker thread whose current stream is
 *    the default one, and those calls crash there. Use this bridge's
 *    entries, which work on the stream whose queue the block runs on.
 *  - The default stream's first creation: torch makes it with an unlocked
 *    check-then-create, so two threads asking first at once can each get a
 *    "default" stream with queues of its own. The bridge makes it once
 *    (std::call_once) before its own callers ask, which orders only callers
 *    of the bridge: a thread that runs a torch MPS op without ever calling
 *    the bridge can still race torch's creation. Run one MPS op (or one
 *    bridge call) before starting threads.
 *  - torch 2.14.1's deviceSynchronize (torch.mps.synchronize()) commits
 *    the default stream directly, off its queue, so it can race an encoder
 *    a block on the queue is filling. Do not call it while another thread
 *    may be inside run_on_stream_queue; the bridge's synchronize entry
 *    moves onto the queue first and is safe.
 *  - Metal's offset alignment: setBuffer:offset: needs an offset aligned to
 *    the element type's size, which byte_offset always is; a float4/half4
 *    load (16 bytes) or a constant-space binding needs more. Read the
 *    descriptor's byte_offset_align before taking such a path.
 * Run no Python on the queue. torch holds the GIL while it waits for the
 * queue in some entry points, and Python code drops and retakes the GIL
 * between bytecodes: a Python callback on the queue can deadlock against
 * such a thread even when its caller held the GIL across the dispatch (seen
 * in the simulated runtime). Callbacks and blocks on the queue are C, and
 * a C callback that calls PyGILState_Ensure (or anything that takes the
 * GIL) is a Python callback: collect what Python needs and hand it over
 * after run_on_stream_queue returns. The Python package's ctypes table
 * refuses Python callables for run_on_stream_queue for this reason.
 *
 * The command buffer's lifetime: PyTorch owns it and may commit and replace
 * it between two of your blocks (its own ops commit adaptively, and
 * commit-and-continue may be off, e.g. under Metal capture). Fetch it again
 * in every block, end any encoder of your own before leaving the block, and
 * never commit, wait on or release it yourself: ask the bridge to.
 *
 * A failing entry that hands out a handle sets *out to NULL (or zero-fills
 * the view) when out is not NULL, so a stale handle never survives an
 * error.
 *
 * Every stream entry of both front ends runs inside an autorelease pool of
 * its own (objc_autoreleasePoolPush/Pop), as do run_on_stream_queue's
 * callbacks: Metal objects autoreleased there do not pile up on a Python
 * thread that has no pool.
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
#define KESTREL_MPS_NOEXCEPT noexcept
extern "C" {
#else
#define KESTREL_MPS_NOEXCEPT
#endif

/* ======================================================================== */
/* Part 1: the published ABI (kestrel-mps-torch-ext 0.1.x)                  */
/* ======================================================================== */

/* Python's object type, incomplete, as the published header declares it.
 * Python.h's own typedef is the same type; skipped when Python.h came first
 * (C89/C99 reject a repeated typedef). */
#ifndef Py_PYTHON_H
typedef struct _object PyObject;
#endif

/* Largest number of dimensions of a KestrelMPSTensorView (and of a
 * kestrel_mps_tensor, as KESTREL_MPS_MAX_NDIM): 16 are described, 17
 * refused. */
#define KESTREL_MPS_TORCH_EXT_MAX_DIMS 16
/* KestrelMPSTorchExtAPI.api_version of this ABI. */
#define KESTREL_MPS_TORCH_EXT_API_VERSION 1

/* Name of the exported getter function (a function, not data). */
#define KESTREL_MPS_TORCH_EXT_GETTER_SYMBOL "KestrelMPSTorchExtAPI_v1"

/* One tensor as tensor_view_from_pyobject describes it. 304 bytes; every
 * field 8 bytes. Written into memory the caller owns; everything is copied
 * except mtl_buffer, which is borrowed from the tensor's storage (valid while
 * the storage is alive and not resized; not retained). On failure the bridge
 * zero-fills the whole struct. */
typedef struct KestrelMPSTensorView {
  /* The storage's base: on MPS its id<MTLBuffer> (not a GPU address; bind it
   * at storage_offset_bytes). Linux builds only: a CPU or CUDA tensor's base
   * data pointer. NULL only for a storage of zero bytes. */
  void* mtl_buffer;
  /* Bytes from mtl_buffer to element 0: storage_offset * element size. */
  int64_t storage_offset_bytes;
  /* Bytes per element (torch's element_size()). */
  int64_t element_size_bytes;
  /* torch's c10::ScalarType number: Byte 0, Char 1, Short 2, Int 3, Long 4,
   * Half 5, Float 6, Double 7, ComplexHalf 8, ComplexFloat 9,
   * ComplexDouble 10, Bool 11, BFloat16 15, Float8_e5m2 23,
   * Float8_e4m3fn 24, ... as numbered by the running torch. */
  int64_t scalar_type;
  /* Number of dimensions, 0 to KESTREL_MPS_TORCH_EXT_MAX_DIMS. */
  int64_t dim;
  /* sizes[i] in elements for i < dim; 0 from dim on. */
  int64_t sizes[KESTREL_MPS_TORCH_EXT_MAX_DIMS];
  /* strides[i] in elements (not bytes) for i < dim; 0 from dim on. */
  int64_t strides[KESTREL_MPS_TORCH_EXT_MAX_DIMS];
  /* Number of elements (1 for a 0-dim tensor). */
  int64_t numel;
} KestrelMPSTensorView;

/* The current MPS stream as current_stream_view describes it. 24 bytes. */
typedef struct KestrelMPSStreamView {
  /* The at::mps::MPSStream*: pass it to the stream entries below. */
  void* stream;
  /* The id<MTLDevice> the stream runs on. */
  void* device;
  /* The stream's serial dispatch_queue_t (not its MTLCommandQueue): the
   * queue on which the command buffer and encoder may be touched. */
  void* queue;
} KestrelMPSStreamView;

/* The published table, returned by KestrelMPSTorchExtAPI_v1(). 56 bytes.
 * Every entry returns NULL on success, or on failure a message in a
 * thread-local buffer, valid until the next failing call on the same thread
 * (a success does not clear it). No entry lets an exception out. No consumer
 * may depend on a message's exact text. */
typedef struct KestrelMPSTorchExtAPI {
  /* KESTREL_MPS_TORCH_EXT_API_VERSION. */
  uint64_t api_version;
  /* KestrelMPSTorchExtTorchTag. */
  const char* (*torch_tag)(void);
  /* KestrelMPSTensorViewFromPyObject. */
  const char* (*tensor_view_from_pyobject)(PyObject* obj,
                                           KestrelMPSTensorView* out);
  /* KestrelMPSGetCurrentStreamView. */
  const char* (*current_stream_view)(KestrelMPSStreamView* out);
  /* KestrelMPSEndKernelCoalescing. */
  const char* (*end_kernel_coalescing)(void* stream);
  /* KestrelMPSCommandBuffer. */
  const char* (*command_buffer)(void* stream, void** out);
  /* KestrelMPSCommitStream. */
  const char* (*commit_stream)(void* stream);
} KestrelMPSTorchExtAPI;

/* The torch minor the library was built for, as a static string such as
 * "torch213" (never NULL, never freed). */
const char* KestrelMPSTorchExtTorchTag(void) KESTREL_MPS_NOEXCEPT;

/* Describe the torch.Tensor obj (a borrowed reference; the caller holds the
 * GIL). Refused, with *out zero-filled: NULL out or obj, a non-tensor, on
 * macOS any tensor not on MPS (Linux builds also take CPU and CUDA tensors),
 * more than 16 dims, a conjugate or negative view (its buffer holds the
 * unconjugated / unnegated values: call resolve_conj() / resolve_neg()),
 * and tensors without bindable storage (sparse, meta, nested, quantized,
 * wrapper subclasses, ...). Plain subclasses and nn.Parameter are accepted.
 * The buffer is taken with torch's read accessor: a copy-on-write storage
 * stays shared (write only through the extension's KESTREL_MPS_ACCESS_WRITE).
 * Neither contiguity nor dtype is checked: every dtype torch stores is
 * described as torch stores it, including the sub-byte placeholders
 * torch.uint1..uint7 and int1..int7, which torch keeps one element per byte
 * (element_size_bytes 1, scalar_type torch's code); the extension refuses
 * those (KESTREL_MPS_ERROR_UNSUPPORTED_DTYPE: no DLPack encoding of a
 * one-per-byte sub-byte type). Messages start "tensor_view_from_pyobject: ". */
const char* KestrelMPSTensorViewFromPyObject(
    PyObject* obj, KestrelMPSTensorView* out) KESTREL_MPS_NOEXCEPT;

/* The calling thread's current MPS stream (torch 2.14 added per-thread
 * streams), its device and its serial queue. Inside a block on a stream's
 * queue, that queue's stream instead (the only one the block may touch;
 * 0.1.x returned the thread's current stream there), once the bridge has
 * seen that stream as some thread's current stream. Fails off macOS, or on
 * a Mac without a Metal device. */
const char* KestrelMPSGetCurrentStreamView(KestrelMPSStreamView* out)
    KESTREL_MPS_NOEXCEPT;

/* stream->endKernelCoalescing(): closes PyTorch's coalesced compute encoder
 * so that you may open an encoder of your own. Call from a block on the
 * stream's queue (not checked). NULL stream refused. */
const char* KestrelMPSEndKernelCoalescing(void* stream) KESTREL_MPS_NOEXCEPT;

/* stream->commandBuffer() into *out (not retained). Does NOT end coalescing:
 * call KestrelMPSEndKernelCoalescing first if you open your own encoder.
 * Call from a block on the stream's queue (not checked). NULL stream or out
 * refused; the stream is checked first. */
const char* KestrelMPSCommandBuffer(void* stream, void** out)
    KESTREL_MPS_NOEXCEPT;

/* stream->synchronize(COMMIT): ends coalescing and commits (continuing with
 * a fresh command buffer); does not wait. Runs on the caller's thread: call
 * it from a block on the stream's queue, where PyTorch's own ops encode (a
 * commit racing them from another thread is the torch 2.14 two-thread crash,
 * pytorch #197805). The extension's synchronize moves onto the queue itself. */
const char* KestrelMPSCommitStream(void* stream) KESTREL_MPS_NOEXCEPT;

/* stream->commandEncoder() into *out (not retained): PyTorch's own coalesced
 * compute encoder, opened lazily on the stream's command buffer and shared
 * with torch's kernels, so nothing is opened or closed per launch. Do not
 * call endEncoding on it. Call from a block on the stream's queue (not
 * checked). Not in the table: found by name only. */
const char* KestrelMPSCommandEncoder(void* stream, void** out)
    KESTREL_MPS_NOEXCEPT;

/* The getter: the address of the one constant table. Never fails. */
const KestrelMPSTorchExtAPI* KestrelMPSTorchExtAPI_v1(void)
    KESTREL_MPS_NOEXCEPT;

/* The getter's type, for the result of dlsym(handle, "KestrelMPSTorchExtAPI_v1"). */
typedef const KestrelMPSTorchExtAPI* (*KestrelMPSTorchExtAPIGetter)(void);

/* ======================================================================== */
/* Part 2: the extension (kestrel_mps_ext_api)                              */
/* ======================================================================== */

/* ABI version of the extension table; its abi_version must be equal.
 * Within it the table only grows at its end, and each group of entries
 * added after the first comes with a capability bit (KESTREL_MPS_CAP_*):
 * a consumer built against a newer header checks the bits it needs with
 * kestrel_mps_require_api() before calling a newer entry, and an older
 * consumer never looks past the entries it knows. An incompatible change
 * gets a new symbol name (..._v2). */
#define KESTREL_MPS_ABI_VERSION 1u

/* sizeof(kestrel_mps_ext_api) of the first ABI 1 table (0.2.0, up to
 * command_encoder), in bytes: the smallest table kestrel_mps_check_api()
 * accepts. */
#define KESTREL_MPS_EXT_API_BASE_SIZE 128u

/* Name of the exported data symbol holding a const kestrel_mps_ext_api. The
 * lower-case "kmte" keeps it apart from any name in the published style. */
#define KESTREL_MPS_API_SYMBOL "KestrelMPS_kmte_ext_v1"

/* Largest number of dimensions a kestrel_mps_tensor describes: the
 * published limit, under the extension's name (one limit, two spellings,
 * since both headers' consumers compile against this one). */
#define KESTREL_MPS_MAX_NDIM KESTREL_MPS_TORCH_EXT_MAX_DIMS

/* ------------------------------------------------------------------------ */
/* Status codes                                                             */
/* ------------------------------------------------------------------------ */

/* Every extension entry returns one of the KESTREL_MPS_* codes below. */
typedef int32_t kestrel_mps_status;

enum {
  /* Success; out-parameters are filled. */
  KESTREL_MPS_OK = 0,
  /* A required pointer was NULL, a flag or enum value is unknown, or a count
   * is out of range. Nothing was read from Python or torch. */
  KESTREL_MPS_ERROR_INVALID_ARGUMENT = 1,
  /* The object is not a torch.Tensor (nor an instance of a subclass). */
  KESTREL_MPS_ERROR_NOT_A_TENSOR = 2,
  /* A tensor a kernel cannot bind: meta, sparse, nested, mkldnn, quantized,
   * functional or fake tensors, wrapper subclasses, conjugate or negative
   * views (resolve_conj() / resolve_neg() them first), or a device other
   * than CPU, CUDA and MPS. */
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
  KESTREL_MPS_ERROR_INTERNAL = 10,
  /* An entry that touches the command buffer or encoder was called off the
   * stream's serial queue: call it from run_on_stream_queue's callback. */
  KESTREL_MPS_ERROR_WRONG_QUEUE = 11,
  /* run_on_stream_queue was called from code already running on that queue
   * (its own callback, or any block on it): dispatch_sync would trap. The
   * caller is on the queue already and may do the work directly. */
  KESTREL_MPS_ERROR_REENTRANT = 12,
  /* KESTREL_MPS_ACCESS_WRITE on an MPS tensor whose storage is shared
   * copy-on-write (torch's lazy clones): torch would copy it with a host
   * memcpy between two Metal objects. clone() the tensor first. */
  KESTREL_MPS_ERROR_COPY_ON_WRITE = 13
};

/* ------------------------------------------------------------------------ */
/* Flags and enumerations                                                   */
/* ------------------------------------------------------------------------ */

/* access argument of resolve_tensor / resolve_tensors.
 * READ: the buffer is taken with torch's const accessor. A storage shared
 *   copy-on-write (torch's lazy clones) is left shared: do not write.
 * WRITE: the buffer is taken with torch's mutable accessor, which first gives
 *   a copy-on-write CPU or CUDA storage its own memory, so writes reach this
 *   tensor only; on MPS a copy-on-write storage is refused
 *   (KESTREL_MPS_ERROR_COPY_ON_WRITE). The result carries
 *   KESTREL_MPS_TENSOR_WRITABLE. */
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

/* synchronize() kinds: PyTorch's SyncType values. Each first ends
 * PyTorch's kernel coalescing.
 * COMMIT: commit the stream's command buffer, continue with a new one.
 * COMMIT_AND_WAIT: commit, then block until the GPU has finished it.
 * COMMIT_AND_CONTINUE: PyTorch's commitAndContinue, called as is: torch does
 *   not check that commit-and-continue is enabled and does not fall back to
 *   COMMIT, so use it only where you know it is on. */
#define KESTREL_MPS_SYNC_COMMIT 1
#define KESTREL_MPS_SYNC_COMMIT_AND_WAIT 2
#define KESTREL_MPS_SYNC_COMMIT_AND_CONTINUE 3

/* table.capabilities */
/* The library was built with the Metal stream backend (macOS). Without it
 * every stream call returns KESTREL_MPS_ERROR_MPS_UNAVAILABLE. */
#define KESTREL_MPS_CAP_MPS_STREAM 1u
/* The table has resolve_aten_tensor and resolve_aten_tensors (added in
 * 0.3.0): torch's AtenTensorHandle resolved without Python or the GIL. */
#define KESTREL_MPS_CAP_ATEN_TENSORS 2u
/* Every descriptor's byte_offset_align is filled (added in 0.4.0; before,
 * that slot was `reserved` and always 0). */
#define KESTREL_MPS_CAP_OFFSET_ALIGN 4u

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
  /* The largest power of two, at most 256, that divides byte_offset (256
   * when byte_offset is 0), in bytes. Metal needs a device buffer's offset
   * aligned to the element type's size, which storage_offset * itemsize
   * always is; a vector load (float4, half4: 16 bytes) or a constant-space
   * binding needs more, and this says whether a kernel may take that path.
   * An MTLBuffer's base is page-aligned, so on MPS this is the alignment of
   * the bound address; on CPU and CUDA combine it with the alignment of
   * `buffer`. Filled when the table has KESTREL_MPS_CAP_OFFSET_ALIGN; 0 from
   * an older bridge, where this slot was `reserved` (the descriptor cannot
   * grow: consumers allocate it, and the entries take no size). */
  uint32_t byte_offset_align;
  /* shape[0..ndim-1]: sizes in elements; entries from ndim on are 0. */
  int64_t shape[KESTREL_MPS_MAX_NDIM];
  /* strides[0..ndim-1]: in elements (not bytes), never negative, 0 for
   * expanded dims; entries from ndim on are 0. */
  int64_t strides[KESTREL_MPS_MAX_NDIM];
} kestrel_mps_tensor;

/* ------------------------------------------------------------------------ */
/* The extension table                                                      */
/* ------------------------------------------------------------------------ */

/* Rules for every entry: it returns a kestrel_mps_status (KESTREL_MPS_OK is
 * 0) and never lets a C++ exception, a Python exception or a signal escape;
 * a failure sets a message readable with last_error() on the same thread.
 * Out-pointers are written only on success, except where documented. Safe
 * to call from any thread, within the queue rules of the top of this file;
 * resolve_tensor(s), which read Python objects, also need the calling
 * thread to hold the Python GIL and refuse (KESTREL_MPS_ERROR_GIL_NOT_HELD)
 * when it does not; resolve_aten_tensor(s) touch no Python. The stream
 * entries work on the *current* stream: inside run_on_stream_queue's
 * callback (or any block on a stream's queue) the stream that queue belongs
 * to, elsewhere the calling thread's current stream. */
typedef struct kestrel_mps_ext_api {
  /* sizeof(kestrel_mps_ext_api) of the producer, in bytes. */
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

  /* The current stream (see above), as an opaque at::mps::MPSStream*. For
   * identity only. Any thread. */
  kestrel_mps_status (*current_stream)(void** out_stream);

  /* The current stream's id<MTLCommandBuffer>, after ending PyTorch's kernel
   * coalescing so that the caller may open its own encoder on it. On the
   * stream's queue only (else KESTREL_MPS_ERROR_WRONG_QUEUE). Valid until
   * the end of the block it was fetched in (see the lifetime rules above). */
  kestrel_mps_status (*command_buffer)(void** out_command_buffer);

  /* The current stream's id<MTLCommandQueue>. Valid while the process runs.
   * Any thread. */
  kestrel_mps_status (*command_queue)(void** out_command_queue);

  /* The id<MTLDevice> of the current stream. Valid while the process runs.
   * Any thread. */
  kestrel_mps_status (*device)(void** out_device);

  /* The current stream's serial dispatch_queue_t, on which PyTorch encodes.
   * Valid while the process runs. Any thread. */
  kestrel_mps_status (*dispatch_queue)(void** out_dispatch_queue);

  /* End PyTorch's coalesced compute encoder on the current stream, if one is
   * open. On the stream's queue only (else KESTREL_MPS_ERROR_WRONG_QUEUE). */
  kestrel_mps_status (*end_kernel_coalescing)(void);

  /* Synchronize the current stream with a KESTREL_MPS_SYNC_* kind. Runs on
   * the stream's queue: called off it, it dispatches there (dispatch_sync)
   * and returns when done; called on it, it runs in place. Any thread.
   * COMMIT_AND_WAIT blocks the queue until the GPU has finished. */
  kestrel_mps_status (*synchronize)(int32_t sync_kind);

  /* Run fn(context) synchronously on the current stream's serial queue and
   * return when it has run, inside an autorelease pool. Within fn, the
   * stream entries work on that stream, even where another thread's current
   * stream differs. A C++ exception thrown by fn is caught on the queue:
   * KESTREL_MPS_ERROR_CALLBACK_FAILED. Called from code already on that
   * queue it does not dispatch: KESTREL_MPS_ERROR_REENTRANT. */
  kestrel_mps_status (*run_on_stream_queue)(void (*fn)(void* context),
                                            void* context);

  /* The message of the most recent failing call on the calling thread, or ""
   * if none failed yet. Successful calls do not clear it (like errno). The
   * string is thread-local and valid until the next failing call on this
   * thread. Never NULL. Shared with the published entries' messages. */
  const char* (*last_error)(void);

  /* PyTorch's coalesced compute encoder (id<MTLComputeCommandEncoder>) on
   * the current stream's command buffer, opened lazily and shared with
   * torch's own kernels: encode on it and leave it open (no endEncoding).
   * On the stream's queue only (else KESTREL_MPS_ERROR_WRONG_QUEUE). Valid
   * until the end of the block it was fetched in. */
  kestrel_mps_status (*command_encoder)(void** out_encoder);

  /* ---- Added in 0.3.0: present iff capabilities has
   * KESTREL_MPS_CAP_ATEN_TENSORS (check with kestrel_mps_require_api). ---- */

  /* Describe the tensor behind one of torch's AtenTensorHandles (what
   * torch::stable::Tensor::get() returns to a stable-ABI op; an at::Tensor*
   * in every torch minor), as resolve_tensor does for a Python object: the
   * same descriptor, checks and refusals. Touches no Python: callable without
   * the GIL, from any thread, from many threads at once. The handle is
   * borrowed and must stay valid for the call (an op's argument does). On
   * failure *out is zero-filled (when out is not NULL). */
  kestrel_mps_status (*resolve_aten_tensor)(void* aten_tensor_handle,
                                            uint32_t access,
                                            kestrel_mps_tensor* out);

  /* resolve_aten_tensor for count handles in one call, with the conventions
   * of resolve_tensors (access may be NULL; the first failure stops it and
   * sets *failed_index; out[i..count-1] are zero-filled). No GIL. */
  kestrel_mps_status (*resolve_aten_tensors)(void* const* aten_tensor_handles,
                                             size_t count,
                                             const uint32_t* access,
                                             kestrel_mps_tensor* out,
                                             size_t* failed_index);
} kestrel_mps_ext_api;

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
/* The published layouts, byte for byte. */
KESTREL_MPS_STATIC_ASSERT(offsetof(KestrelMPSTensorView, scalar_type) == 24,
                          view_scalar_type);
KESTREL_MPS_STATIC_ASSERT(offsetof(KestrelMPSTensorView, sizes) == 40,
                          view_sizes);
KESTREL_MPS_STATIC_ASSERT(offsetof(KestrelMPSTensorView, strides) == 168,
                          view_strides);
KESTREL_MPS_STATIC_ASSERT(offsetof(KestrelMPSTensorView, numel) == 296,
                          view_numel);
KESTREL_MPS_STATIC_ASSERT(sizeof(KestrelMPSTensorView) == 304, view_size);
KESTREL_MPS_STATIC_ASSERT(offsetof(KestrelMPSStreamView, queue) == 16,
                          stream_view_queue);
KESTREL_MPS_STATIC_ASSERT(sizeof(KestrelMPSStreamView) == 24,
                          stream_view_size);
KESTREL_MPS_STATIC_ASSERT(offsetof(KestrelMPSTorchExtAPI,
                                   tensor_view_from_pyobject) == 16,
                          v1_tensor_view);
KESTREL_MPS_STATIC_ASSERT(offsetof(KestrelMPSTorchExtAPI, commit_stream) ==
                              48,
                          v1_commit_stream);
KESTREL_MPS_STATIC_ASSERT(sizeof(KestrelMPSTorchExtAPI) == 56, v1_size);

/* The extension's layouts. */
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
KESTREL_MPS_STATIC_ASSERT(offsetof(kestrel_mps_ext_api, capabilities) == 28,
                          api_capabilities);
KESTREL_MPS_STATIC_ASSERT(offsetof(kestrel_mps_ext_api, resolve_tensor) == 32,
                          api_resolve_tensor);
KESTREL_MPS_STATIC_ASSERT(offsetof(kestrel_mps_ext_api, last_error) == 112,
                          api_last_error);
KESTREL_MPS_STATIC_ASSERT(offsetof(kestrel_mps_ext_api, command_encoder) ==
                              120,
                          api_command_encoder);
KESTREL_MPS_STATIC_ASSERT(offsetof(kestrel_mps_ext_api, resolve_aten_tensor) ==
                              KESTREL_MPS_EXT_API_BASE_SIZE,
                          api_base_size);
KESTREL_MPS_STATIC_ASSERT(offsetof(kestrel_mps_ext_api, resolve_aten_tensors) ==
                              136,
                          api_resolve_aten_tensors);
KESTREL_MPS_STATIC_ASSERT(sizeof(kestrel_mps_ext_api) == 144, api_size);
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
    case KESTREL_MPS_ERROR_WRONG_QUEUE: return "KESTREL_MPS_ERROR_WRONG_QUEUE";
    case KESTREL_MPS_ERROR_REENTRANT: return "KESTREL_MPS_ERROR_REENTRANT";
    case KESTREL_MPS_ERROR_COPY_ON_WRITE:
      return "KESTREL_MPS_ERROR_COPY_ON_WRITE";
    default: return "KESTREL_MPS_ERROR_UNKNOWN";
  }
}

/* Check that `table` (the address of the KestrelMPS_kmte_ext_v1 symbol) is
 * an ABI 1 table this header can use: every entry up to command_encoder is
 * there; later ones only with their capability bit (kestrel_mps_require_api).
 * Returns table on success; NULL on failure with *error_message (if
 * error_message is not NULL) set to a static string. */
KESTREL_MPS_INLINE const kestrel_mps_ext_api* kestrel_mps_check_api(
    const void* table, const char** error_message) {
  const kestrel_mps_ext_api* api = (const kestrel_mps_ext_api*)table;
  const char* msg = NULL;
  if (api == NULL) {
    msg = "kestrel-mps-torch-ext: symbol KestrelMPS_kmte_ext_v1 not found: "
          "the bridge is not loaded; call "
          "kestrel_mps_torch_ext.load_torch_mps_bridge() in Python first";
  } else if (api->struct_size < 2 * sizeof(uint32_t)) {
    /* Nothing past struct_size is read before it says the field is there. */
    msg = "kestrel-mps-torch-ext: KestrelMPS_kmte_ext_v1 is not a table: its "
          "struct_size cannot even hold abi_version";
  } else if (api->abi_version != KESTREL_MPS_ABI_VERSION) {
    msg = "kestrel-mps-torch-ext: the loaded bridge has another ABI version "
          "than this consumer was compiled for (KESTREL_MPS_ABI_VERSION)";
  } else if (api->struct_size < KESTREL_MPS_EXT_API_BASE_SIZE) {
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

/* kestrel_mps_check_api(), then refuse a bridge that lacks any of the
 * KESTREL_MPS_CAP_* bits in `required` (or whose table is too small for
 * the entries a bit promises), naming what is missing. A consumer that
 * calls resolve_aten_tensor(s) passes KESTREL_MPS_CAP_ATEN_TENSORS; one
 * that reads byte_offset_align, KESTREL_MPS_CAP_OFFSET_ALIGN. */
KESTREL_MPS_INLINE const kestrel_mps_ext_api* kestrel_mps_require_api(
    const void* table, uint32_t required, const char** error_message) {
  const kestrel_mps_ext_api* api = kestrel_mps_check_api(table, error_message);
  const char* msg = NULL;
  if (api == NULL) return NULL;
  if ((required & KESTREL_MPS_CAP_ATEN_TENSORS) != 0 &&
      ((api->capabilities & KESTREL_MPS_CAP_ATEN_TENSORS) == 0 ||
       api->struct_size < (uint32_t)(offsetof(kestrel_mps_ext_api,
                                              resolve_aten_tensors) +
                                     sizeof api->resolve_aten_tensors))) {
    msg = "kestrel-mps-torch-ext: the loaded bridge has no "
          "resolve_aten_tensor(s) (KESTREL_MPS_CAP_ATEN_TENSORS): it is older "
          "than 0.3.0; upgrade the kestrel-mps-torch-ext package";
  } else if ((required & KESTREL_MPS_CAP_OFFSET_ALIGN) != 0 &&
             (api->capabilities & KESTREL_MPS_CAP_OFFSET_ALIGN) == 0) {
    msg = "kestrel-mps-torch-ext: the loaded bridge leaves byte_offset_align "
          "0 (no KESTREL_MPS_CAP_OFFSET_ALIGN): it is older than 0.4.0; "
          "upgrade the kestrel-mps-torch-ext package";
  } else if ((required & KESTREL_MPS_CAP_MPS_STREAM) != 0 &&
             (api->capabilities & KESTREL_MPS_CAP_MPS_STREAM) == 0) {
    msg = "kestrel-mps-torch-ext: the loaded bridge has no Metal stream "
          "backend (KESTREL_MPS_CAP_MPS_STREAM): it is a Linux build";
  } else if ((required & ~(KESTREL_MPS_CAP_MPS_STREAM |
                           KESTREL_MPS_CAP_ATEN_TENSORS |
                           KESTREL_MPS_CAP_OFFSET_ALIGN)) != 0) {
    msg = "kestrel-mps-torch-ext: a required capability bit is unknown to "
          "this header";
  }
  if (msg != NULL) {
    if (error_message != NULL) *error_message = msg;
    return NULL;
  }
  return api;
}

#if !defined(KESTREL_MPS_NO_CONSUMER_HELPER) && !defined(_WIN32)
#include <dlfcn.h>

/* dlsym over the global scope: the program and every RTLD_GLOBAL library
 * (where load_torch_mps_bridge() puts the bridge). glibc before 2.36
 * declares RTLD_DEFAULT only under _GNU_SOURCE (2.36 and later, following
 * POSIX.1-2024, and macOS always do), so where it is missing the global
 * scope is reached through dlopen(NULL), which POSIX defines as that
 * scope. */
KESTREL_MPS_INLINE void* kestrel_mps_global_symbol(const char* name) {
#ifdef RTLD_DEFAULT
  return dlsym(RTLD_DEFAULT, name);
#else
  void* self = dlopen(NULL, RTLD_LAZY);
  void* symbol = self != NULL ? dlsym(self, name) : NULL;
  if (self != NULL) dlclose(self);
  return symbol;
#endif
}

/* Find the bridge's extension table among the globally loaded libraries and
 * check it (kestrel_mps_require_api with the capability bits in `required`,
 * 0 for none). Cheap enough to call once per process; cache the result. */
KESTREL_MPS_INLINE const kestrel_mps_ext_api* kestrel_mps_find_api_requiring(
    uint32_t required, const char** error_message) {
  return kestrel_mps_require_api(kestrel_mps_global_symbol(KESTREL_MPS_API_SYMBOL), required,
                                 error_message);
}

/* A function of the global scope (kestrel_mps_global_symbol), as a generic
 * function pointer to cast to its real type, e.g.
 *   typedef const char* (*encoder_fn)(void*, void**);
 *   encoder_fn encoder = (encoder_fn)kestrel_mps_global_function("KestrelMPSCommandEncoder");
 * ISO C has no cast from dlsym's object pointer to a function pointer (one
 * function pointer type to another is fine); the union (C) and
 * reinterpret_cast (C++, conditionally supported, as POSIX requires) are
 * the portable spellings, clean under -pedantic. NULL if not found. */
typedef void (*kestrel_mps_function)(void);
KESTREL_MPS_INLINE kestrel_mps_function kestrel_mps_global_function(const char* name) {
#ifdef __cplusplus
  return reinterpret_cast<kestrel_mps_function>(kestrel_mps_global_symbol(name));
#else
  union {
    void* object;
    kestrel_mps_function function;
  } cast;
  cast.object = kestrel_mps_global_symbol(name);
  return cast.function;
#endif
}

/* The published (0.1.x) table, found as kestrel_mps_find_api finds the
 * extension's: KestrelMPSTorchExtAPI_v1 looked up in the global scope and
 * called. NULL, with a static message in *error_message (when not NULL),
 * if the getter is not loaded, returns NULL, or gives a table of another
 * api_version than KESTREL_MPS_TORCH_EXT_API_VERSION; *error_message is ""
 * on success, as with every helper here. */
KESTREL_MPS_INLINE const KestrelMPSTorchExtAPI* kestrel_mps_find_published_api(
    const char** error_message) {
  KestrelMPSTorchExtAPIGetter getter =
      (KestrelMPSTorchExtAPIGetter)kestrel_mps_global_function("KestrelMPSTorchExtAPI_v1");
  const KestrelMPSTorchExtAPI* api = getter != NULL ? getter() : NULL;
  const char* why = "";
  if (getter == NULL) {
    why = "KestrelMPSTorchExtAPI_v1 is not loaded: call "
          "kestrel_mps_torch_ext.load_torch_mps_bridge() first (it loads the bridge RTLD_GLOBAL)";
  } else if (api == NULL) {
    why = "KestrelMPSTorchExtAPI_v1() returned NULL";
  } else if (api->api_version != KESTREL_MPS_TORCH_EXT_API_VERSION) {
    why = "the published table has another api_version than this consumer was compiled "
          "for (KESTREL_MPS_TORCH_EXT_API_VERSION)";
    api = NULL;
  }
  if (error_message != NULL) *error_message = why;
  return api;
}

/* kestrel_mps_find_api_requiring(0, error_message). */
KESTREL_MPS_INLINE const kestrel_mps_ext_api* kestrel_mps_find_api(
    const char** error_message) {
  return kestrel_mps_find_api_requiring(0u, error_message);
}
#endif /* !KESTREL_MPS_NO_CONSUMER_HELPER */

#ifdef __cplusplus
} /* extern "C" */
#endif

#undef KESTREL_MPS_NOEXCEPT

#endif /* KESTREL_MPS_API_H_ */
