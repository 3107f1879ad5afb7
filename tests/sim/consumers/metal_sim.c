/*
 * kestrel_selftest_metal.h over the simulated runtime's model: the
 * self-test's Metal calls become the model's encoder API
 * (kestrel_sim_mps.h), and its add kernels, MSL in selftest/metal_apple.mm,
 * are the same loop in C, run by the model's "GPU" after commit.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kestrel_selftest_metal.h"
#include "kestrel_sim_mps.h"

/* IEEE 754 binary16 <-> float, round to nearest even: what Metal's half does. */
static float half_to_float(uint16_t h) {
  const int exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  const float sign = (h & 0x8000) ? -1.0f : 1.0f;
  if (exponent == 0) return sign * ldexpf((float)mantissa, -24);
  if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
  return sign * ldexpf((float)(mantissa | 0x400), exponent - 25);
}

static uint16_t float_to_half(float f) {
  uint32_t x;
  uint32_t sign, exponent, mantissa;
  memcpy(&x, &f, sizeof x);
  sign = (x >> 16) & 0x8000;
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)(sign | 0x7e00); /* NaN */
  exponent = (x >> 23) & 0xff;
  mantissa = x & 0x7fffff;
  if (exponent > 142) return (uint16_t)(sign | 0x7c00); /* overflow: infinity */
  if (exponent < 113) {                                /* a half subnormal, or 0 */
    const uint32_t shift = 126 - exponent;
    uint32_t m = mantissa | 0x800000, half, rest;
    if (shift > 24) return (uint16_t)sign;
    half = m >> shift;
    rest = m & ((1u << shift) - 1);
    if (rest > (1u << (shift - 1)) || (rest == (1u << (shift - 1)) && (half & 1))) ++half;
    return (uint16_t)(sign | half);
  }
  {
    uint32_t h = ((exponent - 112) << 10) | (mantissa >> 13);
    const uint32_t rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h; /* may carry into the exponent: right */
    return (uint16_t)(sign | h);
  }
}

static void offsets_of(const kst_add_params* p, uint64_t gid, int64_t off[3]) {
  int64_t rest = (int64_t)gid, d;
  int k;
  off[0] = off[1] = off[2] = 0;
  for (d = p->ndim - 1; d >= 0; --d) {
    const int64_t idx = rest % p->sizes[d];
    rest /= p->sizes[d];
    for (k = 0; k < 3; ++k) off[k] += idx * p->strides[k][d];
  }
}

/* out = a + b over every thread, of float (half 0) or binary16 (half 1):
 * the exact sum of two halves fits a float, so one rounding, as in Metal. */
static void add(const kestrel_sim_kernel_args* args, int half) {
  const kst_add_params* p = (const kst_add_params*)args->bytes[3];
  uint64_t gid;
  int64_t off[3];
  for (gid = 0; gid < args->threads; ++gid) {
    offsets_of(p, gid, off);
    if (half) {
      const uint16_t* a = (const uint16_t*)args->buffers[0];
      const uint16_t* b = (const uint16_t*)args->buffers[1];
      ((uint16_t*)args->buffers[2])[off[2]] = float_to_half(half_to_float(a[off[0]]) + half_to_float(b[off[1]]));
    } else {
      ((float*)args->buffers[2])[off[2]] = ((const float*)args->buffers[0])[off[0]] + ((const float*)args->buffers[1])[off[1]];
    }
  }
}
static void add_f32(const kestrel_sim_kernel_args* args) { add(args, 0); }
static void add_f16(const kestrel_sim_kernel_args* args) { add(args, 1); }

void* kst_metal_pipeline(void* device, int32_t dtype, const char** why) {
  static const char* const names[2] = {"kst_add_f32", "kst_add_f16"};
  static const kestrel_sim_kernel kernels[2] = {add_f32, add_f16};
  if (!kestrel_sim_is_device(device)) {
    *why = "not the model's device";
    return NULL;
  }
  if (kestrel_sim_register_kernel(names[dtype], kernels[dtype]) != 0) {
    *why = "the kernel name is taken";
    return NULL;
  }
  return (void*)names[dtype]; /* the model dispatches kernels by name */
}

void* kst_metal_new_encoder(void* command_buffer) { return kestrel_sim_command_buffer_new_encoder(command_buffer); }

void kst_metal_encode_add(void* encoder, void* pipeline, void* const buffers[3], const uint64_t offsets[3],
                          const kst_add_params* params) {
  uint32_t k;
  for (k = 0; k < 3; ++k) kestrel_sim_encoder_set_buffer(encoder, buffers[k], offsets[k], k);
  kestrel_sim_encoder_set_bytes(encoder, params, sizeof *params, 3);
  if (params->numel > 0) kestrel_sim_encoder_dispatch(encoder, (const char*)pipeline, (uint64_t)params->numel);
}

void kst_metal_end_encoding(void* encoder) { kestrel_sim_encoder_end(encoder); }

int kst_metal_kind(void* object) {
  if (kestrel_sim_is_command_buffer(object)) return 1;
  if (kestrel_sim_is_encoder(object)) return 2;
  if (kestrel_sim_is_command_queue(object)) return 3;
  return kestrel_sim_is_device(object) ? 4 : 0;
}

/* The model's objects are not reference counted: a leak changes nothing
 * here, and the memory test that needs one is Mac-only. */
void kst_metal_leak(void* object) { (void)object; }

void kst_metal_device_name(void* device, char* out, size_t size) {
  snprintf(out, size, "%s", kestrel_sim_is_device(device) ? "the simulated MPS runtime's device" : "?");
}
