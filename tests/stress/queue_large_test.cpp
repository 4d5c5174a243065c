// Messages larger than 4 GiB through a queue: every size that is accepted arrives intact (a
// record's 32-bit length field never has to hold more than it can). The bytes are generated and
// checked in pieces, so the test itself holds only the ring.
//
//   * 4 GiB + 64 bytes streamed through a 64 MiB ring (two processes): always runs.
//   * 4 GiB + 64 bytes through a 32 GiB ring, where a quarter of the ring is above 4 GiB (the
//     size at which one record used to be written with its length truncated): touches 4 GiB of
//     shared memory, so it runs only with MPROC_TEST_LARGE=1, and is skipped when the ring cannot
//     be created (its memory is reserved at creation).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <mproc/detail/queue_core.hpp>
#include <mproc/queue.hpp>  // QueueOptions
#include <optional>
#include <system_error>
#include <vector>

#include "helpers/child.hpp"

using namespace std::chrono_literals;
using mproc::QueueOptions;
using mproc::detail::Clock;
using mproc::detail::EncodeJob;
using mproc::detail::Expiry;
using mproc::detail::QueueCore;
using mproc_test::Child;

namespace {

constexpr std::uint64_t kSize = (std::uint64_t{1} << 32) + 64;

std::uint64_t word_at(std::uint64_t i) {
  std::uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull;
  return x ^ (x >> 31);
}

// A message of `size` bytes (a multiple of 8): word i is word_at(i).
void encode_words(mproc::Writer& w, const void* obj) {
  const std::uint64_t size = *static_cast<const std::uint64_t*>(obj);
  std::vector<std::uint64_t> piece(1 << 16);
  for (std::uint64_t i = 0; i < size / 8;) {
    const std::uint64_t n = std::min<std::uint64_t>(piece.size(), size / 8 - i);
    for (std::uint64_t k = 0; k < n; ++k) piece[k] = word_at(i + k);
    w.write(piece.data(), n * 8);
    i += n;
  }
}

struct Checked {
  std::uint64_t size = 0;
  std::uint64_t first_bad_word = ~std::uint64_t{0};
};

void decode_words(mproc::Reader& r, void* out) {
  auto& c = *static_cast<Checked*>(out);
  c.size = r.remaining();
  std::vector<std::uint64_t> piece(1 << 16);
  for (std::uint64_t i = 0; r.remaining() >= 8;) {
    const std::uint64_t n = std::min<std::uint64_t>(piece.size(), r.remaining() / 8);
    r.read(piece.data(), n * 8);
    for (std::uint64_t k = 0; k < n; ++k)
      if (piece[k] != word_at(i + k) && c.first_bad_word == ~std::uint64_t{0})
        c.first_bad_word = i + k;
    i += n;
  }
  r.skip(r.remaining());
}

TEST(QueueLarge, MessageOver4GiBStreamsIntactThroughAModestRing) {
  QueueCore q(0, QueueOptions{.capacity = 64 << 20}, false);
  const std::uint64_t size = kSize;
  Child producer([&] {
    if (!q.put(EncodeJob{size, &encode_words, &size}, Clock::now() + 240s)) return 1;
    const std::uint64_t small = 64;
    return q.put(EncodeJob{small, &encode_words, &small}, Clock::now() + 10s) ? 0 : 2;
  });
  Checked c;
  ASSERT_TRUE(q.get(&decode_words, &c, Clock::now() + 240s));
  EXPECT_EQ(c.size, kSize);
  EXPECT_EQ(c.first_bad_word, ~std::uint64_t{0});
  Checked d;
  ASSERT_TRUE(q.get(&decode_words, &d, Clock::now() + 10s));
  EXPECT_EQ(d.size, 64u);
  EXPECT_EQ(d.first_bad_word, ~std::uint64_t{0});
  EXPECT_EQ(producer.wait(30s), 0);
  EXPECT_TRUE(q.empty());
}

TEST(QueueLarge, MessageOver4GiBArrivesIntactThroughARingWhoseQuarterIsAbove4GiB) {
  if (!std::getenv("MPROC_TEST_LARGE")) GTEST_SKIP() << "set MPROC_TEST_LARGE=1 (touches 4 GiB)";
  std::optional<QueueCore> q;
  try {
    q.emplace(0, QueueOptions{.capacity = std::size_t{32} << 30}, false);
  } catch (const std::system_error& e) {
    GTEST_SKIP() << "a 32 GiB ring cannot be created here: " << e.what();
  }
  // The ring holds the whole message: one process puts it, then gets it.
  const std::uint64_t size = kSize;
  ASSERT_TRUE(q->put(EncodeJob{size, &encode_words, &size}, Clock::now() + 240s));
  const std::uint64_t small = 64;
  ASSERT_TRUE(q->put(EncodeJob{small, &encode_words, &small}, Clock::now() + 10s));
  EXPECT_EQ(q->qsize(), 2u);
  Checked c;
  ASSERT_TRUE(q->get(&decode_words, &c, Clock::now() + 240s));
  EXPECT_EQ(c.size, kSize);
  EXPECT_EQ(c.first_bad_word, ~std::uint64_t{0});
  Checked d;
  ASSERT_TRUE(q->get(&decode_words, &d, Clock::now() + 10s));
  EXPECT_EQ(d.size, 64u);
  EXPECT_EQ(d.first_bad_word, ~std::uint64_t{0});
  EXPECT_TRUE(q->empty());
}

}  // namespace
