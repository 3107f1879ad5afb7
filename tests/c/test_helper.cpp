// kestrel_mps_find_api() against a table this executable exports itself, the
// way the bridge library exports its own: both the RTLD_DEFAULT branch (C++)
// and the dlopen(NULL) branch (C11, find_from_c.c) must find it.
#include <cstring>
#include <string>

#include "catch_compat.hpp"
#include "kestrel_mps_api.h"

extern "C" {
const kestrel_mps_ext_api* find_from_c(const char** why);

__attribute__((visibility("default"))) extern const kestrel_mps_ext_api
    KestrelMPS_kmte_ext_v1;
const kestrel_mps_ext_api KestrelMPS_kmte_ext_v1 = {
    sizeof(kestrel_mps_ext_api), KESTREL_MPS_ABI_VERSION, sizeof(kestrel_mps_tensor),
    KESTREL_MPS_MAX_NDIM, 2, 99, 7, 0,
    nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
    nullptr, nullptr, nullptr};

// A published getter whose table says another api_version: a bridge of a
// future published ABI, which this consumer must not use.
static KestrelMPSTorchExtAPI future_table = {2, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
__attribute__((visibility("default"))) const KestrelMPSTorchExtAPI* KestrelMPSTorchExtAPI_v1(void) noexcept {
  return &future_table;
}
}

TEST_CASE("find_api finds the exported table through RTLD_DEFAULT") {
#ifndef RTLD_DEFAULT
  FAIL("C++ on glibc and macOS defines RTLD_DEFAULT");
#endif
  const char* why = nullptr;
  const kestrel_mps_ext_api* api = kestrel_mps_find_api(&why);
  REQUIRE(api == &KestrelMPS_kmte_ext_v1);
  CHECK(api->torch_version_minor == 99);
  CHECK(std::string(why).empty());
}

TEST_CASE("find_api finds it through dlopen(NULL) from strict C11") {
  const char* why = nullptr;
  CHECK(find_from_c(&why) == &KestrelMPS_kmte_ext_v1);
}

TEST_CASE("find_published_api refuses a table of another api_version, saying so") {
  const char* why = nullptr;
  CHECK(kestrel_mps_find_published_api(&why) == nullptr);
  REQUIRE(why != nullptr);
  CHECK(std::string(why).find("another api_version") != std::string::npos);
  future_table.api_version = KESTREL_MPS_TORCH_EXT_API_VERSION;  // the same getter, this version: found
  CHECK(kestrel_mps_find_published_api(&why) == &future_table);
  CHECK(std::string(why).empty());
  future_table.api_version = 2;
}

int main(int argc, char** argv) { return kestrel_catch_run(argc, argv); }
