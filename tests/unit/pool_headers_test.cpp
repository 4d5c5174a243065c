// pool_headers_test.cpp — the Pool's public headers (pool.hpp and the detail headers it
// includes: pool_core.hpp, pool_schedule.hpp) include none of the standard headers that cost every
// including file most of its compile time
// (<memory>, <atomic>, <functional>, ...; docs/design.md, "Header cost").
//
// The mproc headers come first, before any other include (GoogleTest's bring <memory> and more),
// so the constants below see only what these headers brought. libstdc++ names each header's
// include guard after the header (_GLIBCXX_MEMORY for <memory>); with another standard library,
// or with MPROC_STD_LIGHT=0 (the standard headers instead of the shim), the test is skipped.
#include <mproc/detail/pool_core.hpp>
#include <mproc/detail/pool_schedule.hpp>
#include <mproc/pool.hpp>

namespace {

struct Seen {
  const char* header;
  bool included;
};

// What the headers above brought, recorded before anything else is included.
constexpr Seen kSeen[] = {
#ifdef _GLIBCXX_MEMORY
    {"<memory>", true},
#else
    {"<memory>", false},
#endif
#ifdef _GLIBCXX_ATOMIC
    {"<atomic>", true},
#else
    {"<atomic>", false},
#endif
#ifdef _GLIBCXX_FUNCTIONAL
    {"<functional>", true},
#else
    {"<functional>", false},
#endif
#ifdef _GLIBCXX_CONDITION_VARIABLE
    {"<condition_variable>", true},
#else
    {"<condition_variable>", false},
#endif
#ifdef _GLIBCXX_MUTEX
    {"<mutex>", true},
#else
    {"<mutex>", false},
#endif
#ifdef _GLIBCXX_THREAD
    {"<thread>", true},
#else
    {"<thread>", false},
#endif
#ifdef _GLIBCXX_MAP
    {"<map>", true},
#else
    {"<map>", false},
#endif
#ifdef _GLIBCXX_DEQUE
    {"<deque>", true},
#else
    {"<deque>", false},
#endif
#ifdef _GLIBCXX_VARIANT
    {"<variant>", true},
#else
    {"<variant>", false},
#endif
#ifdef _GLIBCXX_OSTREAM
    {"<ostream>", true},
#else
    {"<ostream>", false},
#endif
#ifdef _GLIBCXX_SSTREAM
    {"<sstream>", true},
#else
    {"<sstream>", false},
#endif
#ifdef _GLIBCXX_IOSTREAM
    {"<iostream>", true},
#else
    {"<iostream>", false},
#endif
#ifdef _GLIBCXX_ALGORITHM
    {"<algorithm>", true},
#else
    {"<algorithm>", false},
#endif
#ifdef _GLIBCXX_CHRONO
    {"<chrono>", true},
#else
    {"<chrono>", false},
#endif
#ifdef _GLIBCXX_RANGES
    {"<ranges>", true},
#else
    {"<ranges>", false},
#endif
#ifdef _GLIBCXX_ITERATOR
    {"<iterator>", true},
#else
    {"<iterator>", false},
#endif
};

#if defined(__GLIBCXX__) && MPROC_STD_LIGHT
constexpr bool kCheckable = true;
#else
constexpr bool kCheckable = false;
#endif

}  // namespace

#include <gtest/gtest.h>

TEST(PoolHeaders, IncludeNoHeavyStandardHeader) {
  if (!kCheckable) GTEST_SKIP() << "only libstdc++ with the std shim (MPROC_STD_LIGHT) is checked";
  for (const Seen& s : kSeen) {
    EXPECT_FALSE(s.included) << s.header
                             << " came with pool.hpp, detail/pool_core.hpp or "
                                "detail/pool_schedule.hpp";
  }
}

// The check itself works: a header that is included is seen (<string> and <vector> come with
// the Pool's headers, and libstdc++ guards them as _GLIBCXX_STRING and _GLIBCXX_VECTOR).
TEST(PoolHeaders, IncludeGuardsNameTheHeaders) {
  if (!kCheckable) GTEST_SKIP() << "only libstdc++ with the std shim (MPROC_STD_LIGHT) is checked";
#if !defined(_GLIBCXX_STRING) || !defined(_GLIBCXX_VECTOR)
  ADD_FAILURE() << "libstdc++'s include guards are not named after the headers: the check above "
                   "proves nothing";
#endif
}
