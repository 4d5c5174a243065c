// pool_headers_test.cpp — the Pool's public headers (pool.hpp and the detail headers it
// includes: pool_core.hpp, pool_schedule.hpp) include none of the standard headers that cost every
// including file most of its compile time
// (<memory>, <atomic>, <functional>, ...; docs/design.md, "Header cost").
//
// The mproc headers come first, before any other include (GoogleTest's bring <memory> and more),
// so helpers/heavy_headers_seen.hpp sees only what these headers brought (with another standard
// library, or with MPROC_STD_LIGHT=0, the test is skipped).

// clang-format off: the order is the test (the headers under test first, then what they brought)
#include <mproc/detail/pool_core.hpp>
#include <mproc/detail/pool_schedule.hpp>
#include <mproc/pool.hpp>

#include "helpers/heavy_headers_seen.hpp"
// clang-format on

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
