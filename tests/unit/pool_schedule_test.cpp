// Pool: the chunking and window policy of map and imap (detail::ChunkLimit, share_chunksize,
// ImapSchedule), as decisions computed from given measurements; no pool is started.
#include <cstddef>
#include <mproc/detail/pool_core.hpp>
#include <mproc/detail/pool_schedule.hpp>
#include <optional>

#include "gtest/gtest.h"

namespace {

using mproc::detail::chunk_limit;
using mproc::detail::ChunkLimit;
using mproc::detail::ImapSchedule;
using mproc::detail::share_chunksize;

constexpr std::size_t kMailbox = 256 * 1024;  // a stand-in for PoolCore::max_task_bytes()

std::size_t chunk_bytes() { return mproc::detail::PoolCore::chunk_bytes(); }

TEST(PoolChunkLimit, EndsAtTheElementCountOrBeforeTheByteBudget) {
  const ChunkLimit l{.elements = 3, .bytes = 100};
  EXPECT_FALSE(l.full(2));
  EXPECT_TRUE(l.full(3));
  EXPECT_TRUE(l.fits(0, 0, 1000));  // a chunk's first element always fits, however large
  EXPECT_TRUE(l.fits(1, 60, 40));   // exactly the budget
  EXPECT_FALSE(l.fits(1, 60, 41));  // one byte past it: the next chunk's first
  EXPECT_EQ(l.uniform(10), 3u);     // 10 elements fit the bytes; 3 is the count
  EXPECT_EQ(l.uniform(40), 2u);     // 2 x 40 <= 100 < 3 x 40
  EXPECT_EQ(l.uniform(1000), 1u);   // larger than the budget: alone
  EXPECT_EQ(l.uniform(0), 3u);
}

TEST(PoolChunkLimit, AGivenChunksizeKeepsItsElementsUpToAMailboxMessage) {
  const ChunkLimit fixed = chunk_limit(5000, true, kMailbox);
  EXPECT_EQ(fixed.elements, 5000u);
  EXPECT_EQ(fixed.bytes, kMailbox);
  const ChunkLimit automatic = chunk_limit(5000, false, kMailbox);
  EXPECT_EQ(automatic.elements, 5000u);
  EXPECT_EQ(automatic.bytes, chunk_bytes());
  EXPECT_EQ(chunk_limit(0, false, kMailbox).elements, 1u);
}

TEST(PoolChunkLimit, ShareIsPythonsMapFormula) {
  EXPECT_EQ(share_chunksize(100, 2), 13u);  // ceil(100 / 8)
  EXPECT_EQ(share_chunksize(8, 2), 1u);
  EXPECT_EQ(share_chunksize(9, 2), 2u);
  EXPECT_EQ(share_chunksize(1, 4), 1u);
  EXPECT_EQ(share_chunksize(0, 4), 1u);
}

TEST(PoolImapSchedule, AdaptiveChunksStartAtOneAndGrowAtMostTwofold) {
  ImapSchedule s(2, 0, 0, std::nullopt, kMailbox);
  EXPECT_EQ(s.last_chunk(), 0u);
  EXPECT_EQ(s.next_chunk(std::nullopt).elements, 1u);  // nothing measured yet
  s.submitted(1, 4);
  EXPECT_EQ(s.next_chunk(10.0).elements, 2u);  // 1 ms / 10 ns wants 100000: twice the last
  s.submitted(2, 8);
  EXPECT_EQ(s.next_chunk(10.0).elements, 4u);
  for (int i = 0; i < 20; ++i) s.submitted(s.next_chunk(10.0).elements, 4 * 8192);
  EXPECT_EQ(s.next_chunk(10.0).elements, 8192u);  // the cap
  EXPECT_EQ(s.next_chunk(2e5).elements, 5u);      // 1 ms / 200 us
  EXPECT_EQ(s.next_chunk(5e6).elements, 1u);      // elements longer than 1 ms stay alone
  EXPECT_EQ(s.next_chunk(10.0).bytes, chunk_bytes());
}

TEST(PoolImapSchedule, AdaptiveChunksStayInsideTheByteBudget) {
  ImapSchedule s(2, 0, 0, std::nullopt, kMailbox);
  s.submitted(1000, 1000 * 1024);  // 1 KiB per element
  EXPECT_EQ(s.next_chunk(1.0).elements, chunk_bytes() / 1024);
}

TEST(PoolImapSchedule, AKnownSizeKeepsTheTailToAShare) {
  ImapSchedule s(2, 0, 0, std::size_t{80}, kMailbox);
  s.submitted(1, 4);
  s.submitted(2, 8);
  s.submitted(4, 16);                         // 73 left: ceil(73 / 8) = 10
  EXPECT_EQ(s.next_chunk(1.0).elements, 8u);  // twice the last is smaller
  s.submitted(8, 32);                         // 65 left: ceil(65 / 8) = 9
  EXPECT_EQ(s.next_chunk(1.0).elements, 9u);
  s.submitted(64, 256);  // 1 left
  EXPECT_EQ(s.next_chunk(1.0).elements, 1u);
}

TEST(PoolImapSchedule, AGivenChunksizeIsKept) {
  ImapSchedule s(2, 7, 0, std::size_t{3}, kMailbox);
  const ChunkLimit l = s.next_chunk(1e9);
  EXPECT_EQ(l.elements, 7u);
  EXPECT_EQ(l.bytes, kMailbox);
}

TEST(PoolImapSchedule, TheWindowOpensGraduallyUpToItsSize) {
  ImapSchedule s(2, 0, 0, std::nullopt, kMailbox);
  EXPECT_EQ(s.window(), 128u);       // 64 elements per worker, chunks of one
  EXPECT_EQ(s.window_now(0), 4u);    // 2 chunks per worker at first
  EXPECT_EQ(s.window_now(10), 24u);  // 2 more per chunk consumed
  EXPECT_EQ(s.window_now(1000), 128u);
  s.submitted(8192, 8192 * 4);
  EXPECT_EQ(s.window(), 8u);  // never fewer than 4 chunks per worker
  ImapSchedule fixed(2, 0, 3, std::nullopt, kMailbox);
  EXPECT_EQ(fixed.window(), 3u);
  EXPECT_EQ(fixed.window_now(1000), 3u);
}

}  // namespace
