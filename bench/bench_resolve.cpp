// What a kernel launch pays to describe its tensors, through both tables
// exactly as consumers call them, against every alternative, on the same
// real torch.Tensor objects in one process (Python embedded, GIL held).
//
//   floor            THPVariable_Unpack + storage pointer, offset, sizes, strides, dtype in C++
//   kestrel_v1       the published table's tensor_view_from_pyobject (getter found with dlsym)
//   kestrel          the extension table's resolve_tensor (found with dlsym, as consumers do)
//   kestrel_batch8   table->resolve_tensors over 8 tensors (time per call)
//   kestrel_aten     the extension table's resolve_aten_tensor on the tensor's
//                    AtenTensorHandle, as a stable-ABI op receives it (no GIL needed)
//   dlpack_c         torch's DLPack C exchange: dltensor_from_py_object_no_sync
//   to_dlpack        torch.utils.dlpack.to_dlpack(t) (capsule created and freed)
//   python           t.untyped_storage().data_ptr(), t.shape, t.stride(), t.storage_offset(), t.dtype
//
// The process replaces malloc/calloc/realloc with counting forwarders to
// glibc, so each benchmark also reports heap allocations per call.
#include <Python.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <ATen/dlpack.h>
#include <ATen/core/Tensor.h>
#include <benchmark/benchmark.h>
#include <torch/csrc/autograd/python_variable.h>

#include "kestrel_mps_api.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
}
static std::atomic<long> g_allocs{0};
extern "C" void* malloc(size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
extern "C" void* calloc(size_t n, size_t m) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(n, m);
}
extern "C" void* realloc(void* p, size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}

namespace {

PyObject* g_main = nullptr;
const kestrel_mps_ext_api* g_api = nullptr;
const KestrelMPSTorchExtAPI* g_v1 = nullptr;
const DLPackExchangeAPI* g_dlpack = nullptr;

PyObject* object(const char* name) {
  PyObject* o = PyDict_GetItemString(g_main, name);
  if (o == nullptr) {
    std::fprintf(stderr, "bench: no Python object %s\n", name);
    std::exit(2);
  }
  return o;
}

void run(const char* code) {
  PyObject* r = PyRun_String(code, Py_file_input, g_main, g_main);
  if (r == nullptr) {
    PyErr_Print();
    std::exit(2);
  }
  Py_DECREF(r);
}

// Reports allocations per iteration next to the time.
class AllocCounter {
 public:
  explicit AllocCounter(benchmark::State& s) : state_(s), start_(g_allocs.load()) {}
  ~AllocCounter() {
    state_.counters["allocs_per_call"] = benchmark::Counter(
        double(g_allocs.load() - start_) / double(state_.iterations()));
  }

 private:
  benchmark::State& state_;
  long start_;
};

struct FloorView {
  const void* data;
  int64_t offset;
  int64_t ndim;
  int64_t sizes[16];
  int64_t strides[16];
  c10::ScalarType dtype;
};

// One call of each row, never inlined: bench/instructions.py counts the
// instructions of these functions per call under callgrind (the same few
// instructions of call overhead in every row, the floor's included).
#define STEP extern "C" __attribute__((noinline, used))

STEP void step_floor(PyObject* obj, FloorView* v) {
  const at::Tensor& t = THPVariable_Unpack(obj);
  const c10::TensorImpl* impl = t.unsafeGetTensorImpl();
  v->data = impl->storage().data();
  v->offset = impl->storage_offset();
  const auto sizes = impl->sizes();
  const auto strides = impl->strides();
  v->ndim = int64_t(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    v->sizes[i] = sizes[i];
    v->strides[i] = strides[i];
  }
  v->dtype = impl->dtype().toScalarType();
}
STEP void step_kestrel(PyObject* obj, kestrel_mps_tensor* d) { g_api->resolve_tensor(obj, KESTREL_MPS_ACCESS_READ, d); }
STEP void step_kestrel_aten(void* handle, kestrel_mps_tensor* d) {
  g_api->resolve_aten_tensor(handle, KESTREL_MPS_ACCESS_READ, d);
}
STEP void step_kestrel_v1(PyObject* obj, KestrelMPSTensorView* v) { g_v1->tensor_view_from_pyobject(obj, v); }
STEP void step_kestrel_batch8(void* const* objs, kestrel_mps_tensor* out) {
  g_api->resolve_tensors(objs, 8, nullptr, out, nullptr);
}
STEP void step_dlpack_c(PyObject* obj, DLTensor* t) { g_dlpack->dltensor_from_py_object_no_sync(obj, t); }
STEP void step_python(PyObject* fn, PyObject* obj) { Py_DECREF(PyObject_CallOneArg(fn, obj)); }

void floor_(benchmark::State& state, const char* name) {
  PyObject* obj = object(name);
  AllocCounter count(state);
  FloorView v;
  for (auto _ : state) {
    step_floor(obj, &v);
    benchmark::DoNotOptimize(v);
  }
}

void kestrel(benchmark::State& state, const char* name) {
  PyObject* obj = object(name);
  kestrel_mps_tensor d;
  if (g_api->resolve_tensor(obj, KESTREL_MPS_ACCESS_READ, &d) != KESTREL_MPS_OK) {
    state.SkipWithError(g_api->last_error());
    return;
  }
  AllocCounter count(state);
  for (auto _ : state) {
    step_kestrel(obj, &d);
    benchmark::DoNotOptimize(d);
  }
}

void kestrel_aten(benchmark::State& state, const char* name) {
  // What a stable-ABI kernel holds: torch::stable::Tensor::get(), an at::Tensor*.
  void* handle = const_cast<at::Tensor*>(&THPVariable_Unpack(object(name)));
  kestrel_mps_tensor d;
  if (g_api->resolve_aten_tensor(handle, KESTREL_MPS_ACCESS_READ, &d) != KESTREL_MPS_OK) {
    state.SkipWithError(g_api->last_error());
    return;
  }
  AllocCounter count(state);
  for (auto _ : state) {
    step_kestrel_aten(handle, &d);
    benchmark::DoNotOptimize(d);
  }
}

void kestrel_v1(benchmark::State& state, const char* name) {
  PyObject* obj = object(name);
  KestrelMPSTensorView v;
  if (const char* err = g_v1->tensor_view_from_pyobject(obj, &v)) {
    state.SkipWithError(err);
    return;
  }
  AllocCounter count(state);
  for (auto _ : state) {
    step_kestrel_v1(obj, &v);
    benchmark::DoNotOptimize(v);
  }
}

void kestrel_batch8(benchmark::State& state) {
  PyObject* list = object("batch");
  void* objs[8];
  for (int i = 0; i < 8; ++i) objs[i] = PyList_GetItem(list, i);
  kestrel_mps_tensor out[8];
  AllocCounter count(state);
  for (auto _ : state) {
    step_kestrel_batch8(objs, out);
    benchmark::DoNotOptimize(out);
  }
  state.counters["per_tensor_ns"] = benchmark::Counter(
      double(state.iterations()) * 8, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void dlpack_c(benchmark::State& state, const char* name) {
  PyObject* obj = object(name);
  DLTensor t;
  AllocCounter count(state);
  for (auto _ : state) {
    step_dlpack_c(obj, &t);
    benchmark::DoNotOptimize(t);
  }
}

void call_python(benchmark::State& state, const char* fn_name, const char* name) {
  PyObject* fn = object(fn_name);
  PyObject* obj = object(name);
  AllocCounter count(state);
  for (auto _ : state) step_python(fn, obj);
}

}  // namespace

int main(int argc, char** argv) {
  Py_Initialize();
  g_main = PyModule_GetDict(PyImport_AddModule("__main__"));
  run(R"PY(
import os, torch, torch.utils.dlpack, kestrel_mps_torch_ext
bridge = kestrel_mps_torch_ext.load_torch_mps_bridge()
device = os.environ.get("KESTREL_BENCH_DEVICE", "cpu")
contiguous = torch.randn(8, 16, 32, 64, device=device)
strided = contiguous.transpose(1, 3)[:, ::2, 1:]
batch = [torch.randn(4, 8, 16, 32, device=device) for _ in range(4)] + [contiguous, strided, contiguous[0], strided[1]]
to_dlpack = torch.utils.dlpack.to_dlpack
def python_path(t):
    return (t.untyped_storage().data_ptr(), t.shape, t.stride(), t.storage_offset(), t.dtype)
exchange = torch.Tensor.__dlpack_c_exchange_api__
)PY");
  const char* why = nullptr;
  g_api = kestrel_mps_find_api_requiring(KESTREL_MPS_CAP_ATEN_TENSORS, &why);
  if (g_api == nullptr) {
    std::fprintf(stderr, "bench: %s\n", why);
    return 2;
  }
  const auto getter = reinterpret_cast<KestrelMPSTorchExtAPIGetter>(
      dlsym(RTLD_DEFAULT, KESTREL_MPS_TORCH_EXT_GETTER_SYMBOL));
  if (getter == nullptr) {
    std::fprintf(stderr, "bench: no %s\n", KESTREL_MPS_TORCH_EXT_GETTER_SYMBOL);
    return 2;
  }
  g_v1 = getter();
  g_dlpack = static_cast<const DLPackExchangeAPI*>(
      PyCapsule_GetPointer(object("exchange"), "dlpack_exchange_api"));
  if (g_dlpack == nullptr) {
    PyErr_Print();
    return 2;
  }

  for (const char* name : {"contiguous", "strided"}) {
    const std::string n(name);
    benchmark::RegisterBenchmark(("floor/" + n).c_str(), floor_, name);
    benchmark::RegisterBenchmark(("kestrel_v1/" + n).c_str(), kestrel_v1, name);
    benchmark::RegisterBenchmark(("kestrel/" + n).c_str(), kestrel, name);
    benchmark::RegisterBenchmark(("kestrel_aten/" + n).c_str(), kestrel_aten, name);
    benchmark::RegisterBenchmark(("dlpack_c/" + n).c_str(), dlpack_c, name);
    benchmark::RegisterBenchmark(("to_dlpack/" + n).c_str(), call_python, "to_dlpack", name);
    benchmark::RegisterBenchmark(("python/" + n).c_str(), call_python, "python_path", name);
  }
  benchmark::RegisterBenchmark("kestrel_batch8/mixed", kestrel_batch8);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;  // no Py_Finalize: torch's interpreter teardown is not measured
}
