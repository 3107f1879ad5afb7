// Catch2 v2 (Debian's package) and v3 both. Catch's implementation is
// compiled once, in catch_session.cpp (the kestrel_catch library), and each
// test file's main() runs it through kestrel_catch_run.
#pragma once

#if defined(__has_include)
#if __has_include(<catch2/catch_test_macros.hpp>)
#define KESTREL_CATCH_V3 1
#endif
#endif

#ifdef KESTREL_CATCH_V3
#include <catch2/catch_test_macros.hpp>
#else
#include <catch2/catch.hpp>
#endif

// Catch::Session().run(argc, argv).
int kestrel_catch_run(int argc, char** argv);
