// A consumer that knows only kestrel_mps_api.h: linked to neither torch nor
// the bridge (ctest's consumer_links_no_torch checks its NEEDED entries). It
// embeds Python to obtain real torch.Tensor objects, lets Python load the
// bridge, then finds the table with dlsym() and resolves the tensors.
// Built twice: against the current header, and against the previous
// release's (tests/abi/header_0.2.0), as an older consumer that must keep
// working with this bridge; the handle tests need the current one.
#include <Python.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "catch_compat.hpp"
#include "kestrel_mps_api.h"

namespace {

PyObject* g_main = nullptr;  // __main__'s dict

void run(const char* code) {
  PyObject* r = PyRun_String(code, Py_file_input, g_main, g_main);
  if (r == nullptr) PyErr_Print();
  REQUIRE(r != nullptr);
  Py_DECREF(r);
}

PyObject* object(const char* name) {
  PyObject* o = PyDict_GetItemString(g_main, name);  // borrowed
  REQUIRE(o != nullptr);
  return o;
}

int64_t eval_int(const char* expr) {
  PyObject* r = PyRun_String(expr, Py_eval_input, g_main, g_main);
  if (r == nullptr) PyErr_Print();
  REQUIRE(r != nullptr);
  const long long v = PyLong_AsLongLong(r);
  Py_DECREF(r);
  return v;
}

const kestrel_mps_ext_api* api() {
  const char* why = nullptr;
  const kestrel_mps_ext_api* a = kestrel_mps_find_api(&why);
  INFO(why);
  REQUIRE(a != nullptr);
  return a;
}

}  // namespace

// Declared first, so it runs first: nothing has loaded the bridge yet.
TEST_CASE("the helper reports a bridge that is not loaded yet") {
  run("import torch");
  const char* why = nullptr;
  CHECK(kestrel_mps_find_api(&why) == nullptr);
  CHECK(std::string(why).find("load_torch_mps_bridge") != std::string::npos);
#ifdef KESTREL_MPS_CAP_ATEN_TENSORS  // a 0.3.0 header (the 0.2.0 build has no published finder)
  why = nullptr;
  CHECK(kestrel_mps_find_published_api(&why) == nullptr);
  CHECK(std::string(why).find("load_torch_mps_bridge") != std::string::npos);
#endif
}

TEST_CASE("after Python loads the bridge, dlsym finds a table for this torch") {
  run("import kestrel_mps_torch_ext\nbridge = kestrel_mps_torch_ext.load_torch_mps_bridge()");
  const kestrel_mps_ext_api* a = api();
  CHECK(a->abi_version == KESTREL_MPS_ABI_VERSION);
  CHECK(a->struct_size >= sizeof(kestrel_mps_ext_api));  // an older header knows fewer entries
  CHECK(int64_t(a->torch_version_major) == eval_int("int(torch.__version__.split('.')[0])"));
  CHECK(int64_t(a->torch_version_minor) == eval_int("int(torch.__version__.split('.')[1])"));
  CHECK(reinterpret_cast<std::uintptr_t>(a) == uint64_t(eval_int("bridge.table_address")));
#ifdef KESTREL_MPS_CAP_ATEN_TENSORS  // a 0.3.0 header
  const char* why = "not cleared";
  const KestrelMPSTorchExtAPI* published = kestrel_mps_find_published_api(&why);
  REQUIRE(why != nullptr);
  CHECK(std::string(why).empty());  // "" on success, as every helper's
  REQUIRE(published != nullptr);
  CHECK(published->api_version == KESTREL_MPS_TORCH_EXT_API_VERSION);
  CHECK(reinterpret_cast<std::uintptr_t>(published) == uint64_t(eval_int("kestrel_mps_torch_ext.get_api_pointer()")));
  CHECK(kestrel_mps_global_function("KestrelMPSCommandEncoder") != nullptr);
  CHECK(kestrel_mps_global_function("KestrelMPSNoSuchFunction") == nullptr);
#endif
}

TEST_CASE("resolves a strided view of a real tensor") {
  run("base = torch.arange(120, dtype=torch.float64).reshape(4, 5, 6)\n"
      "v = base.transpose(0, 2)[1:, ::2]");
  kestrel_mps_tensor d;
  REQUIRE(api()->resolve_tensor(object("v"), KESTREL_MPS_ACCESS_READ, &d) == KESTREL_MPS_OK);
  CHECK(reinterpret_cast<std::uintptr_t>(d.buffer) ==
        uint64_t(eval_int("v.untyped_storage().data_ptr()")));
  CHECK(int64_t(d.byte_offset) == eval_int("v.storage_offset() * v.element_size()"));
  CHECK(d.ndim == 3);
  CHECK(d.shape[0] == eval_int("v.shape[0]"));
  CHECK(d.shape[1] == eval_int("v.shape[1]"));
  CHECK(d.shape[2] == eval_int("v.shape[2]"));
  CHECK(d.strides[0] == eval_int("v.stride(0)"));
  CHECK(d.strides[1] == eval_int("v.stride(1)"));
  CHECK(d.strides[2] == eval_int("v.stride(2)"));
  CHECK(d.shape[3] == 0);
  CHECK(d.numel == eval_int("v.numel()"));
  CHECK(d.dtype.code == KESTREL_MPS_DTYPE_FLOAT);
  CHECK(d.dtype.bits == 64);
  CHECK(d.dtype.lanes == 1);
  CHECK(d.device_type == KESTREL_MPS_DEVICE_CPU);
  CHECK((d.flags & KESTREL_MPS_TENSOR_CONTIGUOUS) == 0);
  // The element at v[i][j][k] lies at buffer + byte_offset + 8 * sum(idx * stride).
  const double* first = reinterpret_cast<const double*>(
      static_cast<const char*>(d.buffer) + d.byte_offset);
  CHECK(first[2 * d.strides[0] + 1 * d.strides[1] + 3 * d.strides[2]] ==
        double(eval_int("int(v[2, 1, 3])")));
}

TEST_CASE("batch resolution stops at the bad element and says which") {
  run("batch = [base, 42, v]");
  PyObject* items[3] = {PyList_GetItem(object("batch"), 0), PyList_GetItem(object("batch"), 1),
                        PyList_GetItem(object("batch"), 2)};
  void* objs[3] = {items[0], items[1], items[2]};
  kestrel_mps_tensor out[3];
  size_t failed = 99;
  CHECK(api()->resolve_tensors(objs, 3, nullptr, out, &failed) == KESTREL_MPS_ERROR_NOT_A_TENSOR);
  CHECK(failed == 1);
  CHECK(out[0].numel == 120);
  CHECK(out[1].buffer == nullptr);
  CHECK(out[2].ndim == 0);
  CHECK(std::string(api()->last_error()).find("tensor 1 of 3") != std::string::npos);
}

TEST_CASE("resolve refuses a caller without the GIL instead of racing") {
  PyObject* v = object("v");
  kestrel_mps_tensor d;
  PyThreadState* saved = PyEval_SaveThread();
  const kestrel_mps_status s = api()->resolve_tensor(v, KESTREL_MPS_ACCESS_READ, &d);
  PyEval_RestoreThread(saved);
  CHECK(s == KESTREL_MPS_ERROR_GIL_NOT_HELD);
  CHECK(std::string(api()->last_error()).find("GIL") != std::string::npos);
}

#ifdef KESTREL_MPS_CAP_ATEN_TENSORS
namespace {

// torch's own AtenTensorHandle for the tensor `name` (a new at::Tensor, as
// AOTInductor and the stable ABI hold one), as an address; freed by free_handle.
void* aten_handle(const char* name) {
  run((std::string("import ctypes\n"
                   "_get = ctypes.pythonapi.PyCapsule_GetPointer\n"
                   "_get.restype = ctypes.c_void_p\n"
                   "_get.argtypes = [ctypes.py_object, ctypes.c_char_p]\n"
                   "cap_") + name + " = torch._C._aoti.unsafe_alloc_void_ptr_from_tensor(" + name + ")")
          .c_str());
  return reinterpret_cast<void*>(
      eval_int((std::string("_get(cap_") + name + ", None)").c_str()));
}

void free_handle(const char* name) {
  run((std::string("torch._C._aoti.alloc_tensor_by_stealing_from_void_ptr(cap_") + name + ")").c_str());
}

}  // namespace

TEST_CASE("the handle entries are there, behind their capability bit") {
  const char* why = nullptr;
  CHECK(kestrel_mps_find_api_requiring(KESTREL_MPS_CAP_ATEN_TENSORS, &why) == api());
  CHECK(std::string(why).empty());
}

TEST_CASE("a handle resolves like its Python object, without the GIL") {
  void* handle = aten_handle("v");
  kestrel_mps_tensor by_object;
  REQUIRE(api()->resolve_tensor(object("v"), KESTREL_MPS_ACCESS_READ, &by_object) == KESTREL_MPS_OK);
  kestrel_mps_tensor by_handle;
  PyThreadState* saved = PyEval_SaveThread();
  const kestrel_mps_status s = api()->resolve_aten_tensor(handle, KESTREL_MPS_ACCESS_READ, &by_handle);
  PyEval_RestoreThread(saved);
  free_handle("v");
  REQUIRE(s == KESTREL_MPS_OK);
  CHECK(std::memcmp(&by_object, &by_handle, sizeof by_handle) == 0);
}

TEST_CASE("8 threads that never ran Python resolve handles at once") {
  run("views = [base[i % 4].transpose(0, 1)[i % 3:] for i in range(8)]");
  std::vector<void*> handles;
  std::vector<kestrel_mps_tensor> expected(8);
  for (int i = 0; i < 8; ++i) {
    const std::string name = "w" + std::to_string(i);
    run((name + " = views[" + std::to_string(i) + "]").c_str());
    handles.push_back(aten_handle(name.c_str()));
    REQUIRE(api()->resolve_tensor(object(name.c_str()), KESTREL_MPS_ACCESS_READ, &expected[i]) ==
            KESTREL_MPS_OK);
  }
  const kestrel_mps_ext_api* a = api();
  std::atomic<int> mismatches{0};
  std::atomic<int> go{0};
  PyThreadState* saved = PyEval_SaveThread();  // no thread below holds or knows the GIL
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      while (go.load() == 0) {
      }
      for (int round = 0; round < 2000; ++round) {
        const int i = (t + round) % 8;
        kestrel_mps_tensor d;
        if (a->resolve_aten_tensor(handles[i], KESTREL_MPS_ACCESS_READ, &d) != KESTREL_MPS_OK ||
            std::memcmp(&d, &expected[i], sizeof d) != 0) {
          ++mismatches;
        }
        kestrel_mps_tensor many[8];
        size_t failed = 0;
        if (a->resolve_aten_tensors(handles.data(), 8, nullptr, many, &failed) != KESTREL_MPS_OK ||
            failed != 8 || std::memcmp(&many[i], &expected[i], sizeof d) != 0) {
          ++mismatches;
        }
      }
    });
  }
  go = 1;
  for (std::thread& th : threads) th.join();
  PyEval_RestoreThread(saved);
  for (int i = 0; i < 8; ++i) free_handle(("w" + std::to_string(i)).c_str());
  CHECK(mismatches.load() == 0);
}

TEST_CASE("a NULL handle and a conjugate view are refused with a reason") {
  kestrel_mps_tensor d;
  d.ndim = 3;
  CHECK(api()->resolve_aten_tensor(nullptr, KESTREL_MPS_ACCESS_READ, &d) ==
        KESTREL_MPS_ERROR_INVALID_ARGUMENT);
  CHECK(d.ndim == 0);
  run("c = torch.randn(3, dtype=torch.complex64).conj()");
  void* handle = aten_handle("c");
  const kestrel_mps_status s = api()->resolve_aten_tensor(handle, KESTREL_MPS_ACCESS_READ, &d);
  const std::string why = api()->last_error();
  free_handle("c");
  CHECK(s == KESTREL_MPS_ERROR_UNSUPPORTED_TENSOR);
  CHECK(why.find("conjugate view") != std::string::npos);
}
#endif  // KESTREL_MPS_CAP_ATEN_TENSORS

int main(int argc, char** argv) {
  // As the interpreter CMake found, which may be a virtualenv's: an embedded
  // Python finds a venv's site-packages (torch, this package) only through
  // pyvenv.cfg beside its program name, never from the test's own path.
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, KESTREL_TEST_PYTHON);
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) Py_ExitStatusException(status);
  g_main = PyModule_GetDict(PyImport_AddModule("__main__"));
  const int rc = kestrel_catch_run(argc, argv);
  // No Py_Finalize: torch's teardown order at interpreter exit is not ours
  // to test, and the process ends here anyway.
  return rc;
}
