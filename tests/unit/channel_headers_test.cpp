// channel_headers_test.cpp — the public headers of connections, queues, the codec and partial
// include none of the standard headers that cost every including file most of its compile time
// (<memory>, <atomic>, <functional>, ...; docs/design.md, "Header cost").
//
// The mproc headers come first, before any other include (GoogleTest's bring <memory> and more),
// so helpers/heavy_headers_seen.hpp sees only what these headers brought (with another standard
// library, or with MPROC_STD_LIGHT=0, the test is skipped).

// clang-format off: the order is the test (the headers under test first, then what they brought)
#include <mproc/byte_stream.hpp>
#include <mproc/codec.hpp>
#include <mproc/errors.hpp>
#include <mproc/partial.hpp>
#include <mproc/pipe.hpp>
#include <mproc/queue.hpp>
#include <mproc/timeout.hpp>

#include "helpers/heavy_headers_seen.hpp"
// clang-format on

#include <gtest/gtest.h>

TEST(ChannelHeaders, IncludeNoHeavyStandardHeader) {
  if (!kCheckable) GTEST_SKIP() << "only libstdc++ with the std shim (MPROC_STD_LIGHT) is checked";
  for (const Seen& s : kSeen) {
    EXPECT_FALSE(s.included) << s.header
                             << " came with pipe.hpp, queue.hpp, codec.hpp, partial.hpp, "
                                "errors.hpp, byte_stream.hpp or timeout.hpp";
  }
}

// The check itself works: a header that is included is seen (<string> and <vector> come with
// the codec, and libstdc++ guards them as _GLIBCXX_STRING and _GLIBCXX_VECTOR).
TEST(ChannelHeaders, IncludeGuardsNameTheHeaders) {
  if (!kCheckable) GTEST_SKIP() << "only libstdc++ with the std shim (MPROC_STD_LIGHT) is checked";
#if !defined(_GLIBCXX_STRING) || !defined(_GLIBCXX_VECTOR)
  ADD_FAILURE() << "libstdc++'s include guards are not named after the headers: the check above "
                   "proves nothing";
#endif
}
