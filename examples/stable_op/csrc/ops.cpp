// kestrel_example::scale_add and scale_add.out, registered through torch's
// stable ABI only: this file includes no ATen header, and the binary built
// from it against one torch (TORCH_TARGET_VERSION 2.10) loads in every later
// minor. The bridge gives it what the stable ABI lacks: each tensor's buffer,
// byte offset and strides (resolve_aten_tensors, no GIL, no Python) and, on
// macOS, the stream's queue and torch's coalesced encoder.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/util/Exception.h>

#include <atomic>
#include <cstring>
#include <string>

#include "kestrel_mps_api.h"
#include "scale_add.h"

using torch::stable::Tensor;

namespace kestrel_example {
namespace {

// Found on first use, not at load: the bridge is there only once the
// package's __init__ has called load_torch_mps_bridge(). A failed look-up is
// not cached, so loading the bridge later still works.
const kestrel_mps_ext_api& bridge() {
  static std::atomic<const kestrel_mps_ext_api*> found{nullptr};
  const kestrel_mps_ext_api* api = found.load(std::memory_order_acquire);
  if (api == nullptr) {
    const char* why = nullptr;
    api = kestrel_mps_find_api_requiring(KESTREL_MPS_CAP_ATEN_TENSORS, &why);
    STD_TORCH_CHECK(api != nullptr, "kestrel_example: ", why,
                    " (import kestrel_stable_op, which loads the bridge, before calling its ops)");
    found.store(api, std::memory_order_release);
  }
  return *api;
}

bool same_view(const kestrel_mps_tensor& a, const kestrel_mps_tensor& b) {
  return a.buffer == b.buffer && a.byte_offset == b.byte_offset && a.ndim == b.ndim &&
         std::memcmp(a.shape, b.shape, sizeof a.shape) == 0 &&
         std::memcmp(a.strides, b.strides, sizeof a.strides) == 0;
}

bool overlaps(const kestrel_mps_tensor& a, const kestrel_mps_tensor& b) {
  return a.buffer == b.buffer && a.nbytes != 0 && b.nbytes != 0 &&
         a.byte_offset < b.byte_offset + b.nbytes && b.byte_offset < a.byte_offset + a.nbytes;
}

void check_operands(const char* op, const Operands& ops) {
  const kestrel_mps_tensor& x = ops.x;
  const kestrel_mps_tensor* others[2] = {&ops.y, &ops.out};
  const char* names[2] = {"y", "out"};
  STD_TORCH_CHECK(x.dtype.code == KESTREL_MPS_DTYPE_FLOAT && x.dtype.lanes == 1 &&
                      (x.dtype.bits == 32 || x.dtype.bits == 64),
                  op, ": x must be float32 or float64 (got DLPack code ", int(x.dtype.code), ", ",
                  int(x.dtype.bits), " bits)");
  for (int k = 0; k < 2; ++k) {
    const kestrel_mps_tensor& t = *others[k];
    STD_TORCH_CHECK(std::memcmp(&t.dtype, &x.dtype, sizeof x.dtype) == 0, op, ": ", names[k],
                    " must have x's dtype");
    STD_TORCH_CHECK(t.device_type == x.device_type && t.device_index == x.device_index, op,
                    ": ", names[k], " must be on x's device");
    STD_TORCH_CHECK(t.ndim == x.ndim && std::memcmp(t.shape, x.shape, sizeof x.shape) == 0, op,
                    ": ", names[k], " must have x's shape (no broadcasting)");
  }
  // An out that partly overlaps an input would read values it has already
  // written: refuse it rather than return wrong numbers. Exactly x's or y's
  // view is fine for an elementwise op.
  for (const kestrel_mps_tensor* in : {&ops.x, &ops.y}) {
    STD_TORCH_CHECK(!overlaps(ops.out, *in) || same_view(ops.out, *in), op,
                    ": out overlaps an input without being the same view");
  }
}

void scale_add_into(const char* op, const Tensor& x, const Tensor& y, double alpha,
                    const Tensor& out) {
  const kestrel_mps_ext_api& api = bridge();
  void* const handles[3] = {x.get(), y.get(), out.get()};
  const uint32_t access[3] = {KESTREL_MPS_ACCESS_READ, KESTREL_MPS_ACCESS_READ,
                              KESTREL_MPS_ACCESS_WRITE};
  kestrel_mps_tensor resolved[3];
  size_t failed = 0;
  if (api.resolve_aten_tensors(handles, 3, access, resolved, &failed) != KESTREL_MPS_OK) {
    static const char* const names[3] = {"x", "y", "out"};
    STD_TORCH_CHECK(false, op, ": ", failed < 3 ? names[failed] : "an argument", ": ",
                    api.last_error());
  }
  const Operands ops{resolved[0], resolved[1], resolved[2], alpha};
  check_operands(op, ops);
  if (ops.out.numel == 0) return;
#ifdef KESTREL_EXAMPLE_METAL
  if (ops.x.device_type == KESTREL_EXAMPLE_METAL_DEVICE) {
    STD_TORCH_CHECK(ops.x.dtype.bits == 32, op, ": Metal has no float64; use float32 on MPS");
    const std::string error = launch_metal(api, ops);
    STD_TORCH_CHECK(error.empty(), op, ": ", error);
    return;
  }
#endif
  STD_TORCH_CHECK(ops.x.device_type == KESTREL_MPS_DEVICE_CPU, op,
                  ": no kernel in this build for device type ", ops.x.device_type,
                  " (DLPack code)");
  launch_cpu(ops);
}

Tensor scale_add(Tensor x, Tensor y, double alpha) {
  Tensor out = torch::stable::new_empty(x, x.sizes());
  scale_add_into("kestrel_example::scale_add", x, y, alpha, out);
  return out;
}

void scale_add_out(Tensor x, Tensor y, double alpha, Tensor out) {
  scale_add_into("kestrel_example::scale_add.out", x, y, alpha, out);
}

}  // namespace
}  // namespace kestrel_example

STABLE_TORCH_LIBRARY(kestrel_example, m) {
  m.def("scale_add(Tensor x, Tensor y, float alpha) -> Tensor");
  // The out= variant returns nothing: torch.compile functionalizes a custom
  // op that mutates an argument, but not one that also returns an alias.
  m.def("scale_add.out(Tensor x, Tensor y, float alpha, *, Tensor(a!) out) -> ()");
}

// CompositeExplicitAutograd: every backend (sparse ones too) reaches the
// kernel, so the bridge's own refusal names the reason; Meta comes from the
// Python package's register_fake.
STABLE_TORCH_LIBRARY_IMPL(kestrel_example, CompositeExplicitAutograd, m) {
  m.impl("scale_add", TORCH_BOX(&kestrel_example::scale_add));
  m.impl("scale_add.out", TORCH_BOX(&kestrel_example::scale_add_out));
}

// torch's Conjugate and Negative fallbacks materialize such views for the
// out-of-place op (right answers), but fail with "Expected Tensor but got
// None" on an out= op that returns nothing. The kernel itself on those keys
// lets the bridge refuse the view and name the reason instead.
STABLE_TORCH_LIBRARY_IMPL(kestrel_example, Conjugate, m) {
  m.impl("scale_add.out", TORCH_BOX(&kestrel_example::scale_add_out));
}
STABLE_TORCH_LIBRARY_IMPL(kestrel_example, Negative, m) {
  m.impl("scale_add.out", TORCH_BOX(&kestrel_example::scale_add_out));
}
