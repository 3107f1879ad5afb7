// Catch2 v2 (Debian's package) and v3 both: each test file brings its own
// main() through Catch::Session, which both versions provide.
#pragma once

#if defined(__has_include)
#if __has_include(<catch2/catch_test_macros.hpp>)
#define KESTREL_CATCH_V3 1
#endif
#endif

#ifdef KESTREL_CATCH_V3
#include <catch2/catch_session.hpp>
#include <catch2/catch_test_macros.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif
