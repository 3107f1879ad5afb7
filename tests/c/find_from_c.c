/* The helper as a strict C11 consumer compiles it on a libc that hides
 * RTLD_DEFAULT (glibc before 2.34 without _GNU_SOURCE). Recent glibc defines
 * it anyway, so it is removed here by hand to exercise the dlopen(NULL)
 * branch; <dlfcn.h>'s include guard keeps it removed inside the header. */
#include <dlfcn.h>
#undef RTLD_DEFAULT
#include "kestrel_mps_api.h"

const kestrel_mps_ext_api* find_from_c(const char** why);
const kestrel_mps_ext_api* find_from_c(const char** why) { return kestrel_mps_find_api(why); }
