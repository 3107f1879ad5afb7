/*
 * The model of torch's MPS runtime and of Metal that the simulated MPS
 * runtime puts under the bridge's real Metal backend (shim/stream_mps.cpp).
 * Test-only: never installed, never in a wheel. docs/simulated_mps.md says
 * what it models, from which facts, and what it cannot show.
 *
 * The model defines, against the installed torch's own ATen/mps/MPSStream.h,
 * the out-of-line MPSStream members and at::mps free functions the backend
 * calls. The objects it hands out (command queue, command buffer, encoder,
 * device) are its own; the dispatch queue is a real dispatch_queue_t of
 * whichever libdispatch the build uses. "GPU" work runs on a thread of the
 * model, after its command buffer was committed and a latency has passed.
 *
 * Metal's and torch's rules are detectors: a breach is recorded (counted and
 * described) and the call carries on as far as it safely can, so that a test
 * sees every breach of a run, never a silently tolerated one.
 *
 * Every function here may be called from any thread. Handles are the
 * model's objects as void*; passing anything else is recorded as
 * KESTREL_SIM_DETECT_NOT_AN_OBJECT.
 */
#ifndef KESTREL_SIM_MPS_H
#define KESTREL_SIM_MPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KESTREL_SIM_EXPORT __attribute__((visibility("default")))
#else
#define KESTREL_SIM_EXPORT
#endif

/* ---- switches ---------------------------------------------------------- */
typedef enum kestrel_sim_option {
  /* 1 (torch's default): COMMIT continues on the same command buffer
   * object. 0 (Metal capture, signposts): COMMIT releases it; the next
   * commandBuffer() is a new object and the old one is committed. */
  KESTREL_SIM_COMMIT_AND_CONTINUE = 0,
  /* 1: torch 2.14's pool: getCurrentMPSStream() reads a per-thread current
   * stream (kestrel_sim_mps_set_current_stream). 0: always the default
   * stream, as up to 2.13. Default: 1 when built against torch 2.14+. */
  KESTREL_SIM_STREAM_POOL = 1,
  /* 1: pytorch #198039 (open; expected in a coming minor): commandEncoder()
   * off its stream's queue throws c10::Error. 0: torch 2.9 to 2.15, where it
   * runs (and races the queue). Default 1. */
  KESTREL_SIM_ENCODER_NEEDS_QUEUE = 2,
  /* 1: every command-buffer and encoder member asserts its queue with
   * dispatch_assert_queue, which traps off it: the on-queue rule of torch
   * 2.15's hooks (#197836) applied to all of them. Default 0. */
  KESTREL_SIM_ASSERT_QUEUE = 3,
  /* Microseconds between a commit and the moment its work runs. Default 5000. */
  KESTREL_SIM_GPU_LATENCY_US = 4,
  /* Microseconds spent inside the default stream's unlocked
   * check-then-create, as a slow first Metal call widens it. Default 0. */
  KESTREL_SIM_CREATION_DELAY_US = 5,
  /* What at::mps::is_available() answers. Default 1. */
  KESTREL_SIM_AVAILABLE = 6,
  /* Microseconds each command-buffer and encoder member spends inside its
   * stream, as a slow member widens the window in which a second thread
   * can enter (KESTREL_SIM_DETECT_CONCURRENT). Default 0. */
  KESTREL_SIM_MEMBER_DELAY_US = 7,
  KESTREL_SIM_OPTION_COUNT = 8
} kestrel_sim_option;

KESTREL_SIM_EXPORT void kestrel_sim_mps_set_option(int option, int64_t value);
KESTREL_SIM_EXPORT int64_t kestrel_sim_mps_get_option(int option);

/* ---- fault injection --------------------------------------------------- */
typedef enum kestrel_sim_member {
  KESTREL_SIM_MEMBER_CONSTRUCTOR = 0,  /* MPSStream::MPSStream */
  KESTREL_SIM_MEMBER_COMMAND_BUFFER = 1,
  KESTREL_SIM_MEMBER_COMMAND_ENCODER = 2,
  KESTREL_SIM_MEMBER_END_KERNEL_COALESCING = 3,
  KESTREL_SIM_MEMBER_SYNCHRONIZE = 4,
  KESTREL_SIM_MEMBER_DEVICE = 5,
  KESTREL_SIM_MEMBER_CURRENT_STREAM = 6, /* getCurrentMPSStream */
  KESTREL_SIM_MEMBER_DEFAULT_STREAM = 7, /* getDefaultMPSStream */
  KESTREL_SIM_MEMBER_IS_AVAILABLE = 8,
  KESTREL_SIM_MEMBER_COUNT = 9
} kestrel_sim_member;

typedef enum kestrel_sim_fault {
  KESTREL_SIM_FAULT_NONE = 0,
  KESTREL_SIM_FAULT_C10_ERROR = 1,     /* throw c10::Error */
  KESTREL_SIM_FAULT_STD_EXCEPTION = 2, /* throw std::runtime_error */
  KESTREL_SIM_FAULT_RETURN_NULL = 3    /* return NULL (members returning a pointer) */
} kestrel_sim_fault;

/* The next `times` calls of `member` fail with `fault` (-1: every call). */
KESTREL_SIM_EXPORT void kestrel_sim_mps_inject(int member, int fault, int times);
/* The GPU work of the next command buffer committed fails; the
 * COMMIT_AND_WAIT that waits for it throws c10::Error (torch 2.10+). */
KESTREL_SIM_EXPORT void kestrel_sim_mps_inject_gpu_error(void);

/* ---- streams ----------------------------------------------------------- */
KESTREL_SIM_EXPORT void* kestrel_sim_mps_default_stream(void);
/* A further stream (torch 2.14's pool). */
KESTREL_SIM_EXPORT void* kestrel_sim_mps_new_stream(void);
/* The calling thread's current stream (NULL: the default). Returns -1 and
 * changes nothing while KESTREL_SIM_STREAM_POOL is 0. */
KESTREL_SIM_EXPORT int kestrel_sim_mps_set_current_stream(void* stream);
/* Default streams constructed so far (1 once, unless first use raced). */
KESTREL_SIM_EXPORT int kestrel_sim_mps_default_streams_created(void);
KESTREL_SIM_EXPORT void* kestrel_sim_mps_stream_queue(void* stream);
KESTREL_SIM_EXPORT void* kestrel_sim_mps_stream_command_queue(void* stream);
KESTREL_SIM_EXPORT void* kestrel_sim_mps_device(void);
/* The stream a command queue, command buffer or encoder belongs to. */
KESTREL_SIM_EXPORT void* kestrel_sim_mps_stream_of(void* object);
/* 1 if the calling thread runs a block on the stream's queue. */
KESTREL_SIM_EXPORT int kestrel_sim_mps_on_queue(void* stream);

typedef enum kestrel_sim_stat {
  KESTREL_SIM_STAT_COMMITS = 0,          /* command buffers committed */
  KESTREL_SIM_STAT_WAITS = 1,            /* COMMIT_AND_WAIT */
  KESTREL_SIM_STAT_LAST_SYNC = 2,        /* SyncType of the last synchronize (-1: none) */
  KESTREL_SIM_STAT_SYNC_ON_QUEUE = 3,    /* synchronize calls made on the queue */
  KESTREL_SIM_STAT_SYNC_OFF_QUEUE = 4,   /* ... and off it */
  KESTREL_SIM_STAT_COALESCED_OPENED = 5, /* coalesced encoders created */
  KESTREL_SIM_STAT_COALESCED_ENDED = 6,  /* ... and ended */
  KESTREL_SIM_STAT_BUFFERS_CREATED = 7,  /* command buffer objects created */
  KESTREL_SIM_STAT_KERNELS_RUN = 8,      /* dispatches the GPU ran */
  KESTREL_SIM_STAT_KERNELS_LOST = 9,     /* dispatches onto a committed buffer, never run */
  KESTREL_SIM_STAT_COUNT = 10
} kestrel_sim_stat;
KESTREL_SIM_EXPORT int64_t kestrel_sim_mps_stat(void* stream, int stat);

/* Blocks until every command buffer committed so far on any stream ran. */
KESTREL_SIM_EXPORT void kestrel_sim_mps_gpu_wait_all(void);

/* One op of the model's "torch", as torch runs its own: a block on the
 * stream's queue (in a pool) that takes the coalesced encoder and dispatches
 * a kernel of its own ("torch.op"), committing (COMMIT_ADAPTIVE) when
 * `commit` is non-zero. */
KESTREL_SIM_EXPORT void kestrel_sim_mps_torch_op(void* stream, int commit);
/* stream->commandEncoder(), called directly (no bridge): for the benchmark's
 * baseline, from a block on the stream's queue. */
KESTREL_SIM_EXPORT void* kestrel_sim_mps_coalesced_encoder(void* stream);

/* ---- objects ----------------------------------------------------------- */
KESTREL_SIM_EXPORT int kestrel_sim_is_command_buffer(void* object);
KESTREL_SIM_EXPORT int kestrel_sim_is_encoder(void* object);
KESTREL_SIM_EXPORT int kestrel_sim_is_command_queue(void* object);
KESTREL_SIM_EXPORT int kestrel_sim_is_device(void* object);
/* 1 while the encoder has not ended. */
KESTREL_SIM_EXPORT int kestrel_sim_encoder_is_open(void* encoder);
/* 1 once a command buffer was committed for the last time (released by its
 * stream; never with commit-and-continue). */
KESTREL_SIM_EXPORT int kestrel_sim_command_buffer_is_committed(void* command_buffer);

/* ---- encoding: what a consumer's Metal calls become -------------------- */
#define KESTREL_SIM_MAX_BINDINGS 31

/* What a kernel sees: buffer + byte offset of every index bound, and the
 * bytes set with set_bytes (copied at dispatch). */
typedef struct kestrel_sim_kernel_args {
  void* buffers[KESTREL_SIM_MAX_BINDINGS];
  const void* bytes[KESTREL_SIM_MAX_BINDINGS];
  size_t bytes_length[KESTREL_SIM_MAX_BINDINGS];
  uint64_t threads;
} kestrel_sim_kernel_args;
typedef void (*kestrel_sim_kernel)(const kestrel_sim_kernel_args* args);

/* Registers a CPU function as a "Metal kernel" under a name (0, or -1 if
 * the name is taken by another function). */
KESTREL_SIM_EXPORT int kestrel_sim_register_kernel(const char* name, kestrel_sim_kernel fn);

/* [command_buffer computeCommandEncoder]: a new encoder, autoreleased. */
KESTREL_SIM_EXPORT void* kestrel_sim_command_buffer_new_encoder(void* command_buffer);
/* [encoder setBuffer:buffer offset:offset atIndex:index] */
KESTREL_SIM_EXPORT void kestrel_sim_encoder_set_buffer(void* encoder, void* buffer,
                                                      uint64_t offset, uint32_t index);
/* [encoder setBytes:bytes length:length atIndex:index] */
KESTREL_SIM_EXPORT void kestrel_sim_encoder_set_bytes(void* encoder, const void* bytes,
                                                     size_t length, uint32_t index);
/* [encoder dispatchThreads:...] of the registered kernel `name`: recorded on
 * the encoder's command buffer, run by the GPU after its commit. */
KESTREL_SIM_EXPORT void kestrel_sim_encoder_dispatch(void* encoder, const char* name,
                                                    uint64_t threads);
/* [encoder endEncoding] */
KESTREL_SIM_EXPORT void kestrel_sim_encoder_end(void* encoder);

/* ---- detectors --------------------------------------------------------- */
typedef enum kestrel_sim_detect {
  /* a second encoder opened on a command buffer while another one encodes
   * ("A command encoder is already encoding to this command buffer") */
  KESTREL_SIM_DETECT_ALREADY_ENCODING = 0,
  /* an encoder opened or used on a committed command buffer, or used after
   * it ended */
  KESTREL_SIM_DETECT_COMMITTED_BUFFER = 1,
  /* a command buffer or encoder touched off its stream's queue */
  KESTREL_SIM_DETECT_OFF_QUEUE = 2,
  /* two threads inside one stream's members at once */
  KESTREL_SIM_DETECT_CONCURRENT = 3,
  /* a command buffer committed while an encoder on it had not ended */
  KESTREL_SIM_DETECT_COMMIT_WITH_OPEN_ENCODER = 4,
  /* a handle that is not one of the model's objects, or a kernel name
   * nobody registered */
  KESTREL_SIM_DETECT_NOT_AN_OBJECT = 5,
  KESTREL_SIM_DETECT_COUNT = 6
} kestrel_sim_detect;

/* Breaches of `kind` since the last reset. */
KESTREL_SIM_EXPORT uint64_t kestrel_sim_detections(int kind);
/* The first recorded breaches, one line each, into text (always
 * NUL-terminated); returns how many breaches were recorded in all. */
KESTREL_SIM_EXPORT uint64_t kestrel_sim_detection_report(char* text, size_t size);

/* Waits for the GPU, then clears detections, statistics, injected faults
 * and the calling thread's current stream, and restores every option's
 * default. Streams and their queues stay. */
KESTREL_SIM_EXPORT void kestrel_sim_mps_reset(void);

#ifdef __cplusplus
}
#endif

#endif /* KESTREL_SIM_MPS_H */
