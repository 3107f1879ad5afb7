// The one translation unit holding Catch2's implementation (v2 is a single
// header that compiles all of it wherever CATCH_CONFIG_RUNNER is defined:
// under ASan+UBSan each of six copies cost about 150 s of CPU).
#define CATCH_CONFIG_RUNNER
#include "catch_compat.hpp"

#ifdef KESTREL_CATCH_V3
#include <catch2/catch_session.hpp>
#endif

int kestrel_catch_run(int argc, char** argv) { return Catch::Session().run(argc, argv); }
