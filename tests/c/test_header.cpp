// Layout, versioning and the pure helpers of kestrel_mps_api.h.
#include <cstddef>
#include <cstring>
#include <string>

#include "catch_compat.hpp"
#include "kestrel_mps_api.h"

namespace {

kestrel_mps_ext_api valid_table() {
  kestrel_mps_ext_api api;
  std::memset(&api, 0, sizeof api);
  api.struct_size = sizeof api;
  api.abi_version = KESTREL_MPS_ABI_VERSION;
  api.tensor_struct_size = sizeof(kestrel_mps_tensor);
  api.max_ndim = KESTREL_MPS_MAX_NDIM;
  return api;
}

}  // namespace

// The layouts are pinned once, by the header's own static assertions, and
// proved field by field against the published header and the 0.2.0 header
// by the compiler (tests/abi, tests/python/test_published_abi.py and
// test_ext_abi.py); no third copy here.

TEST_CASE("every status has a distinct name") {
  for (int s = KESTREL_MPS_OK; s <= KESTREL_MPS_ERROR_COPY_ON_WRITE; ++s) {
    const std::string name = kestrel_mps_status_name(s);
    CHECK(name.rfind("KESTREL_MPS_", 0) == 0);
    CHECK(name != "KESTREL_MPS_ERROR_UNKNOWN");
    for (int other = KESTREL_MPS_OK; other < s; ++other) {
      CHECK(name != kestrel_mps_status_name(other));
    }
  }
  CHECK(std::string(kestrel_mps_status_name(-1)) == "KESTREL_MPS_ERROR_UNKNOWN");
  CHECK(std::string(kestrel_mps_status_name(14)) == "KESTREL_MPS_ERROR_UNKNOWN");
}

TEST_CASE("check_api accepts a current table and a newer, larger one") {
  const char* why = nullptr;
  kestrel_mps_ext_api api = valid_table();
  CHECK(kestrel_mps_check_api(&api, &why) == &api);
  CHECK(std::string(why).empty());

  // A newer producer appends fields: a larger struct_size is compatible.
  api.struct_size = sizeof api + 64;
  CHECK(kestrel_mps_check_api(&api, &why) == &api);
  CHECK(kestrel_mps_check_api(&api, nullptr) == &api);
}

TEST_CASE("check_api refuses what this consumer cannot use, with a reason") {
  const char* why = nullptr;
  kestrel_mps_ext_api api = valid_table();

  CHECK(kestrel_mps_check_api(nullptr, &why) == nullptr);
  CHECK(std::string(why).find("not loaded") != std::string::npos);
  CHECK(std::string(why).find("load_torch_mps_bridge") != std::string::npos);

  api.abi_version = 2;
  CHECK(kestrel_mps_check_api(&api, &why) == nullptr);
  CHECK(std::string(why).find("ABI version") != std::string::npos);

  api = valid_table();
  api.struct_size = KESTREL_MPS_EXT_API_BASE_SIZE - 8;  // lacks an entry of the first ABI 1 table
  CHECK(kestrel_mps_check_api(&api, &why) == nullptr);
  CHECK(std::string(why).find("older") != std::string::npos);

  api = valid_table();
  api.tensor_struct_size = sizeof(kestrel_mps_tensor) + 8;
  CHECK(kestrel_mps_check_api(&api, &why) == nullptr);
  CHECK(std::string(why).find("descriptor") != std::string::npos);

  CHECK(kestrel_mps_check_api(nullptr, nullptr) == nullptr);  // no message pointer: no crash
}

TEST_CASE("check_api reads nothing a table's struct_size does not declare (found by fuzzing)") {
  const uint32_t four_bytes = 4;  // a "table" that is only its size field
  const char* why = nullptr;
  CHECK(kestrel_mps_check_api(&four_bytes, &why) == nullptr);
  CHECK(std::string(why).find("cannot even hold abi_version") != std::string::npos);
}

TEST_CASE("an older bridge (0.2.0's table) passes check_api, and require_api names what it lacks") {
  const char* why = nullptr;
  kestrel_mps_ext_api api = valid_table();
  api.struct_size = KESTREL_MPS_EXT_API_BASE_SIZE;
  api.capabilities = KESTREL_MPS_CAP_MPS_STREAM;
  CHECK(kestrel_mps_check_api(&api, &why) == &api);  // a consumer of the old entries runs
  CHECK(kestrel_mps_require_api(&api, KESTREL_MPS_CAP_MPS_STREAM, &why) == &api);
  CHECK(kestrel_mps_require_api(&api, KESTREL_MPS_CAP_ATEN_TENSORS, &why) == nullptr);
  CHECK(std::string(why).find("resolve_aten_tensor") != std::string::npos);
  CHECK(std::string(why).find("upgrade") != std::string::npos);

  // The bit without the entries (a table too small for them) is refused too.
  api.capabilities |= KESTREL_MPS_CAP_ATEN_TENSORS;
  CHECK(kestrel_mps_require_api(&api, KESTREL_MPS_CAP_ATEN_TENSORS, &why) == nullptr);
  api.struct_size = sizeof api;
  CHECK(kestrel_mps_require_api(&api, KESTREL_MPS_CAP_ATEN_TENSORS, &why) == &api);
  CHECK(std::string(why).empty());
}

TEST_CASE("require_api: a 0.3.0 bridge leaves byte_offset_align 0, so requiring it is refused") {
  const char* why = nullptr;
  kestrel_mps_ext_api api = valid_table();
  api.capabilities = KESTREL_MPS_CAP_MPS_STREAM | KESTREL_MPS_CAP_ATEN_TENSORS;
  CHECK(kestrel_mps_require_api(&api, KESTREL_MPS_CAP_ATEN_TENSORS, &why) == &api);
  CHECK(kestrel_mps_require_api(&api, KESTREL_MPS_CAP_OFFSET_ALIGN, &why) == nullptr);
  CHECK(std::string(why).find("byte_offset_align") != std::string::npos);
  CHECK(std::string(why).find("0.4.0") != std::string::npos);
  api.capabilities |= KESTREL_MPS_CAP_OFFSET_ALIGN;
  CHECK(kestrel_mps_require_api(&api, KESTREL_MPS_CAP_OFFSET_ALIGN | KESTREL_MPS_CAP_ATEN_TENSORS, &why) == &api);
}

TEST_CASE("require_api: a Linux bridge lacks the stream, an unknown bit is refused") {
  const char* why = nullptr;
  kestrel_mps_ext_api api = valid_table();
  api.capabilities = KESTREL_MPS_CAP_ATEN_TENSORS;
  CHECK(kestrel_mps_require_api(&api, KESTREL_MPS_CAP_MPS_STREAM, &why) == nullptr);
  CHECK(std::string(why).find("Linux") != std::string::npos);
  CHECK(kestrel_mps_require_api(&api, 0x80u, &why) == nullptr);
  CHECK(std::string(why).find("unknown") != std::string::npos);
  CHECK(kestrel_mps_require_api(nullptr, 0u, &why) == nullptr);
  CHECK(std::string(why).find("not loaded") != std::string::npos);
}

TEST_CASE("published functions are noexcept in C++, as published") {
  CHECK(noexcept(KestrelMPSTorchExtAPI_v1()));
  CHECK(noexcept(KestrelMPSCommandEncoder(nullptr, nullptr)));
  CHECK(noexcept(KestrelMPSTensorViewFromPyObject(nullptr, nullptr)));
}

int main(int argc, char** argv) { return kestrel_catch_run(argc, argv); }
