/*
 * test_metal.h over the simulated runtime's model: the test consumer's
 * Metal calls become the model's encoder API (kestrel_sim_mps.h), and the
 * add kernel, MSL in metal_apple.mm, is the same loop in C run by the
 * model's "GPU" after commit.
 */
#include <stdint.h>

#include "kestrel_sim_mps.h"
#include "test_metal.h"

static void add_kernel(const kestrel_sim_kernel_args* args) {
  const tm_add_params* p = (const tm_add_params*)args->bytes[3];
  const float* a = (const float*)args->buffers[0];
  const float* b = (const float*)args->buffers[1];
  float* out = (float*)args->buffers[2];
  uint64_t gid;
  for (gid = 0; gid < args->threads; ++gid) {
    int64_t rest = (int64_t)gid, off[3] = {0, 0, 0};
    int64_t d;
    int k;
    for (d = p->ndim - 1; d >= 0; --d) {
      const int64_t idx = rest % p->sizes[d];
      rest /= p->sizes[d];
      for (k = 0; k < 3; ++k) off[k] += idx * p->strides[k][d];
    }
    out[off[2]] = a[off[0]] + b[off[1]];
  }
}

void* tm_add_pipeline(void* device, const char** why) {
  static const char* const name = "add_f32";
  if (!kestrel_sim_is_device(device)) {
    *why = "not the model's device";
    return NULL;
  }
  if (kestrel_sim_register_kernel(name, add_kernel) != 0) {
    *why = "the kernel name is taken";
    return NULL;
  }
  return (void*)name; /* the model dispatches kernels by name */
}

void* tm_new_encoder(void* command_buffer) { return kestrel_sim_command_buffer_new_encoder(command_buffer); }

void tm_encode_add(void* encoder, void* pipeline, void* const buffers[3], const uint64_t offsets[3],
                   const tm_add_params* params) {
  uint32_t k;
  for (k = 0; k < 3; ++k) kestrel_sim_encoder_set_buffer(encoder, buffers[k], offsets[k], k);
  kestrel_sim_encoder_set_bytes(encoder, params, sizeof *params, 3);
  if (params->numel > 0) kestrel_sim_encoder_dispatch(encoder, (const char*)pipeline, (uint64_t)params->numel);
}

void tm_end_encoding(void* encoder) { kestrel_sim_encoder_end(encoder); }

int tm_kind(void* object) {
  if (kestrel_sim_is_command_buffer(object)) return 1;
  if (kestrel_sim_is_encoder(object)) return 2;
  if (kestrel_sim_is_command_queue(object)) return 3;
  return kestrel_sim_is_device(object) ? 4 : 0;
}

/* The model's objects are not reference counted: a leak changes nothing
 * here, and the memory test that needs one is Mac-only. */
void tm_leak(void* object) { (void)object; }
