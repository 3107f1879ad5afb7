// The Python front end of the resolve core: a borrowed PyObject* (a
// torch.Tensor or an instance of a subclass) to the at::Tensor it wraps,
// under the GIL. Both the extension's resolve entries and the published
// tensor_view_from_pyobject come here.
#include "resolve.h"

#include <pthread.h>

#include <Python.h>

#include <torch/csrc/autograd/python_variable.h>

#include "resolve_core.h"

namespace kestrel_shim {
namespace {

// Reading a PyObject without the GIL races with the interpreter; refusing
// costs one thread-state read. From 3.12 on the attached thread state is
// thread-local and NULL while the GIL is released. Up to 3.11 it is the GIL
// holder's, process-wide: ours iff its thread is this one, a cheaper test
// than PyGILState_Check's TSS lookup (3 ns of a resolve on 3.11).
inline bool holds_gil() {
#if PY_VERSION_HEX >= 0x030D0000
  return PyThreadState_GetUnchecked() != nullptr;
#elif PY_VERSION_HEX >= 0x030C0000
  return _PyThreadState_UncheckedGet() != nullptr;
#else
  const PyThreadState* holder = _PyThreadState_UncheckedGet();
  // CPython records pthread_self() as thread_id (an integer on Linux, a
  // pointer on macOS).
  return holder != nullptr && holder->thread_id == reinterpret_cast<unsigned long>(pthread_self());
#endif
}

// THPVariable_Check throws python_error and leaves the Python error set when
// isinstance fails; this variant reports and clears it instead.
kestrel_mps_status check_is_tensor(PyObject* obj) {
  PyTypeObject* type = Py_TYPE(obj);
  if (THPVariableClass == nullptr) {
    return fail(KESTREL_MPS_ERROR_TORCH, "resolve: torch's Python module is not initialised");
  }
  if (type == reinterpret_cast<PyTypeObject*>(THPVariableClass) ||
      type == reinterpret_cast<PyTypeObject*>(ParameterClass)) {
    return KESTREL_MPS_OK;
  }
  const int is_tensor = PyObject_IsInstance(obj, THPVariableClass);
  if (is_tensor == 1) return KESTREL_MPS_OK;
  if (is_tensor < 0) {
    PyErr_Clear();
    return fail(KESTREL_MPS_ERROR_NOT_A_TENSOR,
                "resolve: isinstance(object, torch.Tensor) raised for an object of type %s",
                type->tp_name);
  }
  return fail(KESTREL_MPS_ERROR_NOT_A_TENSOR,
              "resolve: expected a torch.Tensor, got an object of type %s", type->tp_name);
}

// The object's at::Tensor, or a failure status (tensor left NULL).
[[gnu::always_inline]] inline kestrel_mps_status unpack(PyObject* obj, const at::Tensor** tensor) {
  if (obj == nullptr) return fail(KESTREL_MPS_ERROR_INVALID_ARGUMENT, "resolve: object is NULL");
  const kestrel_mps_status is_tensor = check_is_tensor(obj);
  if (is_tensor != KESTREL_MPS_OK) return is_tensor;
  *tensor = &THPVariable_Unpack(obj);
  return KESTREL_MPS_OK;
}

kestrel_mps_status write_extension(void* py_tensor, uint32_t access, kestrel_mps_tensor* out) {
  const at::Tensor* tensor = nullptr;
  const kestrel_mps_status status = unpack(static_cast<PyObject*>(py_tensor), &tensor);
  if (status != KESTREL_MPS_OK) return status;
  return core::write_extension(*tensor, access, out);
}

kestrel_mps_status gil_not_held(const char* entry) {
  return fail(KESTREL_MPS_ERROR_GIL_NOT_HELD,
              "%s: the calling thread does not hold the Python GIL (from ctypes, call "
              "through ctypes.PyDLL or a PYFUNCTYPE prototype; from C, take it with "
              "PyGILState_Ensure)",
              entry);
}

// Runs one writer under the barrier and the GIL check, zero-filling *out on
// failure.
template <class Out, class Write>
kestrel_mps_status resolve_guarded(const char* entry, Out* out, Write&& write) noexcept {
  if (!holds_gil()) return core::cleared_on_failure(gil_not_held(entry), out);
  return core::cleared_on_failure(guarded(entry, write), out);
}

}  // namespace

kestrel_mps_status resolve_tensor(void* py_tensor, uint32_t access,
                                  kestrel_mps_tensor* out) noexcept {
  return resolve_guarded("resolve_tensor", out,
                         [&] { return write_extension(py_tensor, access, out); });
}

kestrel_mps_status tensor_view(void* py_tensor, KestrelMPSTensorView* out, bool mps_only) noexcept {
  if (out == nullptr) {
    return fail(KESTREL_MPS_ERROR_INVALID_ARGUMENT, "tensor_view_from_pyobject: out is NULL");
  }
  return resolve_guarded("tensor_view_from_pyobject", out, [&] {
    const at::Tensor* tensor = nullptr;
    const kestrel_mps_status status = unpack(static_cast<PyObject*>(py_tensor), &tensor);
    if (status != KESTREL_MPS_OK) return status;
    return core::write_published(*tensor, mps_only, out);
  });
}

kestrel_mps_status resolve_tensors(void* const* py_tensors, std::size_t count,
                                   const uint32_t* access, kestrel_mps_tensor* out,
                                   std::size_t* failed_index) noexcept {
  if (!holds_gil()) return gil_not_held("resolve_tensors");
  return core::resolve_batch("resolve_tensors", count, access, out, failed_index,
                             [&](std::size_t i, uint32_t access_i, kestrel_mps_tensor* out_i) {
                               return write_extension(py_tensors[i], access_i, out_i);
                             });
}

}  // namespace kestrel_shim
