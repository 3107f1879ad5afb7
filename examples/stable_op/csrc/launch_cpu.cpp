// The CPU launch: a strided walk over base + byte offset + element strides,
// exactly the addressing a Metal kernel does with the bound buffer's offset.
#include <cstddef>
#include <cstdint>

#include "scale_add.h"

namespace kestrel_example {
namespace {

template <typename T>
T* element(const kestrel_mps_tensor& t, const int64_t* index) {
  int64_t linear = 0;
  for (int32_t d = 0; d < t.ndim; ++d) linear += index[d] * t.strides[d];
  return reinterpret_cast<T*>(static_cast<char*>(t.buffer) + t.byte_offset) + linear;
}

template <typename T>
void run(const Operands& ops) {
  const kestrel_mps_tensor& shape = ops.out;
  int64_t index[KESTREL_MPS_MAX_NDIM] = {0};
  const T alpha = static_cast<T>(ops.alpha);
  for (int64_t n = 0; n < shape.numel; ++n) {
    *element<T>(ops.out, index) = *element<T>(ops.x, index) + alpha * *element<T>(ops.y, index);
    // Odometer over the shape, last dim fastest.
    for (int32_t d = shape.ndim - 1; d >= 0; --d) {
      if (++index[d] < shape.shape[d]) break;
      index[d] = 0;
    }
  }
}

}  // namespace

void launch_cpu(const Operands& ops) {
  if (ops.out.dtype.bits == 64) {
    run<double>(ops);
  } else {
    run<float>(ops);
  }
}

}  // namespace kestrel_example
