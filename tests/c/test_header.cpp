// Layout, versioning and the pure helpers of kestrel_mps_api.h.
#include <cstddef>
#include <cstring>
#include <string>

#include "catch_compat.hpp"
#include "kestrel_mps_api.h"

namespace {

KestrelMPSTorchExtAPIv1 valid_table() {
  KestrelMPSTorchExtAPIv1 api;
  std::memset(&api, 0, sizeof api);
  api.struct_size = sizeof api;
  api.abi_version = KESTREL_MPS_ABI_VERSION;
  api.tensor_struct_size = sizeof(kestrel_mps_tensor);
  api.max_ndim = KESTREL_MPS_MAX_NDIM;
  return api;
}

}  // namespace

TEST_CASE("descriptor layout is the documented one (LP64)") {
  REQUIRE(sizeof(void*) == 8);
  CHECK(offsetof(kestrel_mps_tensor, buffer) == 0);
  CHECK(offsetof(kestrel_mps_tensor, byte_offset) == 8);
  CHECK(offsetof(kestrel_mps_tensor, nbytes) == 16);
  CHECK(offsetof(kestrel_mps_tensor, numel) == 24);
  CHECK(offsetof(kestrel_mps_tensor, device_type) == 32);
  CHECK(offsetof(kestrel_mps_tensor, device_index) == 36);
  CHECK(offsetof(kestrel_mps_tensor, dtype) == 40);
  CHECK(offsetof(kestrel_mps_tensor, ndim) == 44);
  CHECK(offsetof(kestrel_mps_tensor, flags) == 48);
  CHECK(offsetof(kestrel_mps_tensor, reserved) == 52);
  CHECK(offsetof(kestrel_mps_tensor, shape) == 56);
  CHECK(offsetof(kestrel_mps_tensor, strides) == 56 + 8 * KESTREL_MPS_MAX_NDIM);
  CHECK(sizeof(kestrel_mps_tensor) == 312);
}

TEST_CASE("table layout: version fields lead, entries follow in ABI order") {
  CHECK(offsetof(KestrelMPSTorchExtAPIv1, struct_size) == 0);
  CHECK(offsetof(KestrelMPSTorchExtAPIv1, abi_version) == 4);
  CHECK(offsetof(KestrelMPSTorchExtAPIv1, torch_version_major) == 16);
  CHECK(offsetof(KestrelMPSTorchExtAPIv1, resolve_tensor) == 32);
  CHECK(offsetof(KestrelMPSTorchExtAPIv1, resolve_tensors) == 40);
  CHECK(offsetof(KestrelMPSTorchExtAPIv1, current_stream) == 48);
  CHECK(offsetof(KestrelMPSTorchExtAPIv1, command_buffer) == 56);
  CHECK(offsetof(KestrelMPSTorchExtAPIv1, command_queue) == 64);
  CHECK(offsetof(KestrelMPSTorchExtAPIv1, device) == 72);
  CHECK(offsetof(KestrelMPSTorchExtAPIv1, dispatch_queue) == 80);
  CHECK(offsetof(KestrelMPSTorchExtAPIv1, end_kernel_coalescing) == 88);
  CHECK(offsetof(KestrelMPSTorchExtAPIv1, synchronize) == 96);
  CHECK(offsetof(KestrelMPSTorchExtAPIv1, run_on_stream_queue) == 104);
  CHECK(offsetof(KestrelMPSTorchExtAPIv1, last_error) == 112);
  CHECK(sizeof(KestrelMPSTorchExtAPIv1) == 120);
}

TEST_CASE("every status has a distinct name") {
  for (int s = KESTREL_MPS_OK; s <= KESTREL_MPS_ERROR_INTERNAL; ++s) {
    const std::string name = kestrel_mps_status_name(s);
    CHECK(name.rfind("KESTREL_MPS_", 0) == 0);
    CHECK(name != "KESTREL_MPS_ERROR_UNKNOWN");
    for (int other = KESTREL_MPS_OK; other < s; ++other) {
      CHECK(name != kestrel_mps_status_name(other));
    }
  }
  CHECK(std::string(kestrel_mps_status_name(-1)) == "KESTREL_MPS_ERROR_UNKNOWN");
  CHECK(std::string(kestrel_mps_status_name(11)) == "KESTREL_MPS_ERROR_UNKNOWN");
}

TEST_CASE("check_api accepts a current table and a newer, larger one") {
  const char* why = nullptr;
  KestrelMPSTorchExtAPIv1 api = valid_table();
  CHECK(kestrel_mps_check_api(&api, &why) == &api);
  CHECK(std::string(why).empty());

  // A newer producer appends fields: a larger struct_size is compatible.
  api.struct_size = sizeof api + 64;
  CHECK(kestrel_mps_check_api(&api, &why) == &api);
  CHECK(kestrel_mps_check_api(&api, nullptr) == &api);
}

TEST_CASE("check_api refuses what this consumer cannot use, with a reason") {
  const char* why = nullptr;
  KestrelMPSTorchExtAPIv1 api = valid_table();

  CHECK(kestrel_mps_check_api(nullptr, &why) == nullptr);
  CHECK(std::string(why).find("not loaded") != std::string::npos);
  CHECK(std::string(why).find("load_torch_mps_bridge") != std::string::npos);

  api.abi_version = 2;
  CHECK(kestrel_mps_check_api(&api, &why) == nullptr);
  CHECK(std::string(why).find("ABI version") != std::string::npos);

  api = valid_table();
  api.struct_size = sizeof api - 8;  // an older bridge lacking the last entry
  CHECK(kestrel_mps_check_api(&api, &why) == nullptr);
  CHECK(std::string(why).find("older") != std::string::npos);

  api = valid_table();
  api.tensor_struct_size = sizeof(kestrel_mps_tensor) + 8;
  CHECK(kestrel_mps_check_api(&api, &why) == nullptr);
  CHECK(std::string(why).find("descriptor") != std::string::npos);

  CHECK(kestrel_mps_check_api(nullptr, nullptr) == nullptr);  // no message pointer: no crash
}

int main(int argc, char** argv) { return Catch::Session().run(argc, argv); }
