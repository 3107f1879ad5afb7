// The resolve core: an at::Tensor to a descriptor. The checks, the buffer
// and the dims, written once for every front end (a Python object in
// resolve_python.cpp, torch's AtenTensorHandle in resolve_handle.cpp) and
// for both descriptors (the extension's kestrel_mps_tensor, the published
// KestrelMPSTensorView). Device-agnostic: the storage-pointer-plus-byte-
// offset rule gives an MPS tensor's MTLBuffer and a CPU or CUDA tensor's base
// pointer. Free of Python, so the handle front end runs without the GIL.
// Inline: the writers are a resolve's hot path, and a call per tensor into
// another file cost more than the checks themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include <ATen/core/Tensor.h>
#include <c10/core/impl/COW.h>

#include "barrier.h"
#include "kestrel_mps_api.h"

namespace kestrel_shim {
namespace core {

inline bool dlpack_dtype(c10::ScalarType type, kestrel_mps_dtype* out) {
  using c10::ScalarType;
  uint8_t code;
  uint8_t bits;
  uint16_t lanes = 1;
  switch (type) {
    case ScalarType::Bool: code = KESTREL_MPS_DTYPE_BOOL; bits = 8; break;
    case ScalarType::Byte: code = KESTREL_MPS_DTYPE_UINT; bits = 8; break;
    case ScalarType::UInt16: code = KESTREL_MPS_DTYPE_UINT; bits = 16; break;
    case ScalarType::UInt32: code = KESTREL_MPS_DTYPE_UINT; bits = 32; break;
    case ScalarType::UInt64: code = KESTREL_MPS_DTYPE_UINT; bits = 64; break;
    case ScalarType::Char: code = KESTREL_MPS_DTYPE_INT; bits = 8; break;
    case ScalarType::Short: code = KESTREL_MPS_DTYPE_INT; bits = 16; break;
    case ScalarType::Int: code = KESTREL_MPS_DTYPE_INT; bits = 32; break;
    case ScalarType::Long: code = KESTREL_MPS_DTYPE_INT; bits = 64; break;
    case ScalarType::Half: code = KESTREL_MPS_DTYPE_FLOAT; bits = 16; break;
    case ScalarType::Float: code = KESTREL_MPS_DTYPE_FLOAT; bits = 32; break;
    case ScalarType::Double: code = KESTREL_MPS_DTYPE_FLOAT; bits = 64; break;
    case ScalarType::BFloat16: code = KESTREL_MPS_DTYPE_BFLOAT; bits = 16; break;
    case ScalarType::ComplexHalf: code = KESTREL_MPS_DTYPE_COMPLEX; bits = 32; break;
    case ScalarType::ComplexFloat: code = KESTREL_MPS_DTYPE_COMPLEX; bits = 64; break;
    case ScalarType::ComplexDouble: code = KESTREL_MPS_DTYPE_COMPLEX; bits = 128; break;
    case ScalarType::Float8_e5m2: code = KESTREL_MPS_DTYPE_FLOAT8_E5M2; bits = 8; break;
    case ScalarType::Float8_e4m3fn: code = KESTREL_MPS_DTYPE_FLOAT8_E4M3FN; bits = 8; break;
    case ScalarType::Float8_e5m2fnuz: code = KESTREL_MPS_DTYPE_FLOAT8_E5M2FNUZ; bits = 8; break;
    case ScalarType::Float8_e4m3fnuz: code = KESTREL_MPS_DTYPE_FLOAT8_E4M3FNUZ; bits = 8; break;
    case ScalarType::Float8_e8m0fnu: code = KESTREL_MPS_DTYPE_FLOAT8_E8M0FNU; bits = 8; break;
    case ScalarType::Float4_e2m1fn_x2:
      code = KESTREL_MPS_DTYPE_FLOAT4_E2M1FN; bits = 4; lanes = 2; break;
    default:
      return false;
  }
  out->code = code;
  out->bits = bits;
  out->lanes = lanes;
  return true;
}

inline int32_t dlpack_device(c10::DeviceType type) {
  switch (type) {
    case c10::DeviceType::CPU: return KESTREL_MPS_DEVICE_CPU;
    case c10::DeviceType::CUDA: return KESTREL_MPS_DEVICE_CUDA;
    case c10::DeviceType::MPS: return KESTREL_MPS_DEVICE_METAL;
    default: return 0;
  }
}

// Tensors whose storage is not their data, or does not hold their values:
// sparse, sparse compressed, mkldnn, nested, quantized, __torch_dispatch__
// subclasses (wrapper subclasses, FakeTensor), functional tensors, and
// conjugate and negative views, whose buffer holds the values before the
// lazy conjugation or negation. Tested as one mask on the hot path;
// unbindable_reason() names the culprit only on failure.
constexpr c10::DispatchKeySet kUnbindableKeys = c10::DispatchKeySet({
    c10::DispatchKey::Sparse,
    c10::DispatchKey::SparseCsr,
    c10::DispatchKey::MkldnnCPU,
    c10::DispatchKey::NestedTensor,
    c10::DispatchKey::Quantized,
    c10::DispatchKey::Python,
    c10::DispatchKey::Functionalize,
    c10::DispatchKey::Conjugate,
    c10::DispatchKey::Negative,
});

// What byte_offset_align reports: the offset's lowest set bit, capped at 256
// (Metal's strictest offset rule for a binding), and 256 for offset 0.
inline uint32_t offset_align(uint64_t byte_offset) {
  const uint64_t lowest = byte_offset & (~byte_offset + 1);
  return lowest == 0 || lowest > 256 ? 256u : static_cast<uint32_t>(lowest);
}

inline const char* unbindable_reason(const c10::TensorImpl& impl) {
  if (impl.layout() != c10::kStrided) return "its layout is not strided (sparse or mkldnn)";
  if (impl.is_nested()) return "it is a nested tensor";
  const c10::DispatchKeySet keys = impl.key_set();
  if (keys.has(c10::DispatchKey::Conjugate)) {
    return "it is a conjugate view (its buffer holds the unconjugated values); pass "
           "t.resolve_conj()";
  }
  if (keys.has(c10::DispatchKey::Negative)) {
    return "it is a negative view (its buffer holds the unnegated values); pass "
           "t.resolve_neg()";
  }
  if (keys.has(c10::DispatchKey::Python)) {
    return "it is a __torch_dispatch__ subclass (a wrapper subclass or FakeTensor) "
           "whose storage is not its data";
  }
  if (keys.has(c10::DispatchKey::Functionalize)) return "it is a functional tensor";
  if (impl.is_quantized()) return "it is quantized";
  return "its dispatch keys mark it as having no bindable storage";
}

// What the core hands a writer: a tensor that passed every shared check.
struct Checked {
  const c10::TensorImpl* impl;
  const void* data;  // the storage's base (an MTLBuffer on MPS)
  c10::ScalarType type;
  std::size_t ndim;
};

// The checks every front end shares once it has the at::Tensor, in the
// published order where it has one (device, dims, storage).
[[gnu::always_inline]] inline kestrel_mps_status check_tensor(const at::Tensor& tensor,
                                                              uint32_t access, bool mps_only,
                                                              Checked* out) {
  if (!tensor.defined()) {
    return fail(KESTREL_MPS_ERROR_UNSUPPORTED_TENSOR, "resolve: the tensor is undefined");
  }
  const c10::TensorImpl& impl = *tensor.unsafeGetTensorImpl();
  const c10::Device device = impl.device();
  if (mps_only && device.type() != c10::DeviceType::MPS) {
    return fail(KESTREL_MPS_ERROR_UNSUPPORTED_TENSOR, "resolve: expected an MPS tensor, got a %s tensor",
                c10::DeviceTypeName(device.type(), /*lower_case=*/true).c_str());
  }
  if (impl.key_set().has_any(kUnbindableKeys)) {
    return fail(KESTREL_MPS_ERROR_UNSUPPORTED_TENSOR, "resolve: unsupported tensor: %s",
                unbindable_reason(impl));
  }
  if (dlpack_device(device.type()) == 0) {
    return fail(KESTREL_MPS_ERROR_UNSUPPORTED_TENSOR,
                "resolve: unsupported tensor: device '%s' has no bindable storage "
                "(only cpu, cuda and mps are supported)",
                c10::DeviceTypeName(device.type(), /*lower_case=*/true).c_str());
  }
  const std::size_t ndim = impl.dim();
  if (ndim > KESTREL_MPS_MAX_NDIM) {
    return fail(KESTREL_MPS_ERROR_TOO_MANY_DIMS,
                "resolve: the tensor has %zu dimensions, more than the %d a descriptor holds",
                ndim, KESTREL_MPS_MAX_NDIM);
  }

  // storage() throws for the impls that have none to give (opaque ones);
  // the rest may hold an empty one. Either way: no storage. (Cheaper than
  // asking has_storage() first: both are virtual calls.)
  const c10::Storage* storage_or_null;
  try {
    storage_or_null = &impl.storage();
  } catch (const c10::Error&) {
    storage_or_null = nullptr;
  }
  if (storage_or_null == nullptr || !*storage_or_null) {
    return fail(KESTREL_MPS_ERROR_UNSUPPORTED_TENSOR,
                "resolve: unsupported tensor: it has no storage");
  }
  const c10::Storage& storage = *storage_or_null;
  const void* data;
  if (access == KESTREL_MPS_ACCESS_WRITE) {
    // torch materialises a copy-on-write storage with its allocator's
    // copy_data, a host memcpy: on MPS that would copy between two
    // Objective-C object pointers.
    if (device.type() == c10::DeviceType::MPS &&
        c10::impl::cow::is_cow_data_ptr(storage.data_ptr())) {
      return fail(KESTREL_MPS_ERROR_COPY_ON_WRITE,
                  "resolve: write access to an MPS tensor whose storage is shared "
                  "copy-on-write (a lazy clone); pass t.clone() or read it only");
    }
    // The mutable accessor gives a copy-on-write storage its own memory
    // first, so a kernel's writes cannot reach the tensor's lazy-clone twins.
    data = storage.mutable_data();
  } else {
    data = storage.data();
  }
  if (data == nullptr && impl.numel() != 0) {
    return fail(KESTREL_MPS_ERROR_UNSUPPORTED_TENSOR,
                "resolve: unsupported tensor: its storage holds no memory");
  }
  *out = Checked{&impl, data, impl.dtype().toScalarType(), ndim};
  return KESTREL_MPS_OK;
}

// Copies the dims into both 16-entry arrays, zeroing the unused ones in the
// same pass (a memset compiles to `rep stos`, whose start-up cost was half
// of a resolve). Returns the element offset of the view's last element.
// Inlined, with the arrays known not to overlap each other or torch's: an
// out-of-line copy through plain pointers reloaded every entry and cost a
// third of a resolve.
[[gnu::always_inline]] inline uint64_t copy_dims(const Checked& t, int64_t* __restrict shape,
                                                 int64_t* __restrict strides) {
  const int64_t* __restrict sizes = t.impl->sizes().data();
  const int64_t* __restrict steps = t.impl->strides().data();
  uint64_t last = 0;
  for (std::size_t d = 0; d < KESTREL_MPS_MAX_NDIM; ++d) {
    int64_t size = 0;
    int64_t stride = 0;
    if (d < t.ndim) {
      size = sizes[d];
      stride = steps[d];
      last += static_cast<uint64_t>(size - 1) * static_cast<uint64_t>(stride);
    }
    shape[d] = size;
    strides[d] = stride;
  }
  return last;
}

[[gnu::always_inline]] inline kestrel_mps_status write_extension(const at::Tensor& tensor,
                                                                 uint32_t access,
                                                                 kestrel_mps_tensor* out) {
  if (access != KESTREL_MPS_ACCESS_READ && access != KESTREL_MPS_ACCESS_WRITE) {
    return fail(KESTREL_MPS_ERROR_INVALID_ARGUMENT, "resolve: unknown access value %u", access);
  }
  Checked t{};
  const kestrel_mps_status status = check_tensor(tensor, access, /*mps_only=*/false, &t);
  if (status != KESTREL_MPS_OK) return status;
  kestrel_mps_dtype dtype;
  if (!dlpack_dtype(t.type, &dtype)) {
    return fail(KESTREL_MPS_ERROR_UNSUPPORTED_DTYPE, "resolve: dtype %s has no DLPack encoding",
                c10::toString(t.type));
  }
  const uint64_t last = copy_dims(t, out->shape, out->strides);
  // From the DLPack encoding: TypeMeta::itemsize() is an out-of-line lookup.
  const uint64_t itemsize = (uint64_t(dtype.bits) * dtype.lanes) / 8;
  const int64_t numel = t.impl->numel();
  const c10::Device device = t.impl->device();
  out->buffer = const_cast<void*>(t.data);
  out->byte_offset = static_cast<uint64_t>(t.impl->storage_offset()) * itemsize;
  out->nbytes = numel == 0 ? 0 : (last + 1) * itemsize;
  out->numel = numel;
  out->device_type = dlpack_device(device.type());
  out->device_index = device.has_index() ? device.index() : 0;
  out->dtype = dtype;
  out->ndim = static_cast<int32_t>(t.ndim);
  out->flags = (t.impl->is_contiguous() ? KESTREL_MPS_TENSOR_CONTIGUOUS : 0u) |
               (access == KESTREL_MPS_ACCESS_WRITE ? KESTREL_MPS_TENSOR_WRITABLE : 0u);
  out->byte_offset_align = offset_align(out->byte_offset);
  return KESTREL_MPS_OK;
}

inline kestrel_mps_status write_published(const at::Tensor& tensor, bool mps_only,
                                          KestrelMPSTensorView* out) {
  Checked t{};
  const kestrel_mps_status status = check_tensor(tensor, KESTREL_MPS_ACCESS_READ, mps_only, &t);
  if (status != KESTREL_MPS_OK) return status;
  copy_dims(t, out->sizes, out->strides);
  const int64_t itemsize = static_cast<int64_t>(c10::elementSize(t.type));
  out->mtl_buffer = const_cast<void*>(t.data);
  out->storage_offset_bytes = t.impl->storage_offset() * itemsize;
  out->element_size_bytes = itemsize;
  out->scalar_type = static_cast<int64_t>(t.type);
  out->dim = static_cast<int64_t>(t.ndim);
  out->numel = t.impl->numel();
  return KESTREL_MPS_OK;
}

// The batch entries of every front end: resolve(i, access_i, out + i) for
// each tensor, stopping at the first failure, whose message gains the index.
// count > 0; the arrays are not NULL.
template <class ResolveOne>
kestrel_mps_status resolve_batch(const char* entry, std::size_t count, const uint32_t* access,
                                 kestrel_mps_tensor* out, std::size_t* failed_index,
                                 ResolveOne&& resolve) noexcept {
  std::size_t i = 0;
  kestrel_mps_status status = KESTREL_MPS_OK;
  for (; i < count; ++i) {
    status = guarded(entry, [&] {
      return resolve(i, access != nullptr ? access[i] : KESTREL_MPS_ACCESS_READ, out + i);
    });
    if (status != KESTREL_MPS_OK) {
      std::memset(out + i, 0, (count - i) * sizeof *out);
      char reason[512];
      std::snprintf(reason, sizeof reason, "%s", last_error());
      fail(status, "%s: tensor %zu of %zu: %s", entry, i, count, reason);
      break;
    }
  }
  if (failed_index != nullptr) *failed_index = i;
  return status;
}

// Zero-fills *out when status is a failure, so no half-written descriptor
// survives an error.
template <class Out>
kestrel_mps_status cleared_on_failure(kestrel_mps_status status, Out* out) noexcept {
  if (status != KESTREL_MPS_OK) std::memset(out, 0, sizeof *out);
  return status;
}

}  // namespace core
}  // namespace kestrel_shim
