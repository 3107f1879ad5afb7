/* Compiled by ctest with gcc and clang as C89..C17 and C++11..C++20 under
 * -Wall -Wextra -pedantic -Werror: the header must stay clean in all. */
#include "kestrel_mps_api.h"

#if defined(KESTREL_MPS_NO_CONSUMER_HELPER) && defined(RTLD_LAZY)
#error "KESTREL_MPS_NO_CONSUMER_HELPER must keep <dlfcn.h> out"
#endif

int header_compiles_probe(void);
int header_compiles_probe(void) {
  const char* why = 0;
  kestrel_mps_tensor t;
  t.ndim = 0;
#ifndef KESTREL_MPS_NO_CONSUMER_HELPER
  if (kestrel_mps_find_api(&why) != 0) return 1;
#else
  if (kestrel_mps_check_api(0, &why) != 0) return 1;
#endif
  return t.ndim + (kestrel_mps_status_name(KESTREL_MPS_OK)[0] == 'K' ? 0 : 1) + (why != 0 ? 0 : 1);
}
