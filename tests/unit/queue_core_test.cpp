// The untyped queue core: framing, padding, streaming of messages larger than the ring, timeouts,
// item limits and recovery from killed producers and consumers — with raw byte messages, so that
// these tests do not depend on the codec.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mproc/detail/queue_core.hpp>
#include <mproc/queue.hpp>  // QueueOptions
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "helpers/child.hpp"
#include "helpers/queue_access.hpp"
#include "helpers/shared_page.hpp"
#include "queue_shared.hpp"

using namespace std::chrono_literals;
using mproc::QueueOptions;
using mproc::detail::Clock;
using mproc::detail::EncodeJob;
using mproc::detail::Expiry;
using mproc::detail::QueueCore;
using mproc_test::Child;
using mproc_test::eventually;
using mproc_test::SharedPage;

namespace {

using Bytes = std::vector<unsigned char>;

void encode_bytes(mproc::Writer& w, const void* obj) {
  const auto& b = *static_cast<const Bytes*>(obj);
  w.write(b.data(), b.size());
}

void decode_bytes(mproc::Reader& r, void* out) {
  auto& b = *static_cast<Bytes*>(out);
  b.resize(r.remaining());
  r.read(b.data(), b.size());
}

void decode_append(mproc::Reader& r, void* out) {
  auto& v = *static_cast<std::vector<Bytes>*>(out);
  v.emplace_back();
  decode_bytes(r, &v.back());
}

// A message whose content is determined by (tag, size): checkable byte for byte.
Bytes pattern(std::uint32_t tag, std::size_t size) {
  Bytes b(size);
  std::uint32_t x = tag * 2654435761u + 1;
  for (std::size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b[i] = static_cast<unsigned char>(x);
  }
  if (size >= 4) std::memcpy(b.data(), &tag, 4);
  return b;
}

bool put(QueueCore& q, const Bytes& b, const Expiry& d = Expiry()) {
  return q.put(EncodeJob{b.size(), &encode_bytes, &b}, d);
}

std::optional<Bytes> get(QueueCore& q, const Expiry& d = Expiry()) {
  Bytes b;
  if (!q.get(&decode_bytes, &b, d)) return std::nullopt;
  return b;
}

Expiry in(std::chrono::milliseconds ms) { return Clock::now() + ms; }

TEST(QueueCore, FifoWithinOneProcessAcrossPadding) {
  QueueCore q(0, QueueOptions{.capacity = 4096}, false);
  EXPECT_EQ(q.capacity(), 4096u);
  for (int round = 0; round < 50; ++round) {
    for (std::uint32_t i = 0; i < 7; ++i) ASSERT_TRUE(put(q, pattern(i, 37 + i * 13)));
    EXPECT_EQ(q.qsize(), 7u);
    for (std::uint32_t i = 0; i < 7; ++i) {
      auto b = get(q, in(1s));
      ASSERT_TRUE(b);
      EXPECT_EQ(*b, pattern(i, 37 + i * 13));
    }
    EXPECT_TRUE(q.empty());
  }
}

TEST(QueueCore, EmptyGetTimesOutAndNowaitFailsAtOnce) {
  QueueCore q(0, {}, false);
  EXPECT_FALSE(get(q, in(20ms)));
  EXPECT_FALSE(get(q, Clock::now()));
  EXPECT_FALSE(get(q, Clock::now() - 1h));
}

TEST(QueueCore, MaxsizeBlocksPutUntilTimeout) {
  QueueCore q(2, {}, false);
  EXPECT_TRUE(put(q, pattern(1, 8), Clock::now()));
  EXPECT_TRUE(put(q, pattern(2, 8), Clock::now()));
  EXPECT_TRUE(q.full());
  EXPECT_FALSE(put(q, pattern(3, 8), Clock::now()));
  EXPECT_FALSE(put(q, pattern(3, 8), in(20ms)));
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_EQ(*get(q), pattern(1, 8));
  EXPECT_TRUE(put(q, pattern(3, 8), Clock::now()));
  EXPECT_EQ(*get(q), pattern(2, 8));
  EXPECT_EQ(*get(q), pattern(3, 8));
}

TEST(QueueCore, FullRingBlocksPutUntilTimeout) {
  QueueCore q(0, QueueOptions{.capacity = 4096}, false);
  int n = 0;
  while (put(q, pattern(n, 500), Clock::now())) ++n;
  EXPECT_GE(n, 6);
  EXPECT_FALSE(put(q, pattern(99, 500), in(20ms)));
  for (int i = 0; i < n; ++i) EXPECT_EQ(*get(q, in(1s)), pattern(i, 500));
}

TEST(QueueCore, SizesAroundTheRingAndFarBeyondCrossFork) {
  const std::size_t cap = 64 * 1024;
  QueueCore q(0, QueueOptions{.capacity = cap}, false);
  const std::vector<std::size_t> sizes = {
      0, 1, 7, 8, 9, cap / 4, cap - 1, cap, cap + 1, 3 * cap + 5, 100, 64 << 20, 0, cap / 8 - 9};
  Child producer([&] {
    for (std::size_t i = 0; i < sizes.size(); ++i)
      if (!put(q, pattern(static_cast<std::uint32_t>(i), sizes[i]), in(60s))) return 1;
    return 0;
  });
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    auto b = get(q, in(60s));
    ASSERT_TRUE(b) << "message " << i;
    ASSERT_EQ(b->size(), sizes[i]) << "message " << i;
    EXPECT_TRUE(*b == pattern(static_cast<std::uint32_t>(i), sizes[i])) << "message " << i;
  }
  EXPECT_EQ(producer.wait(60s), 0);
  EXPECT_TRUE(q.empty());
}

TEST(QueueCore, BatchPutAndGet) {
  QueueCore q(0, QueueOptions{.capacity = 8192}, false);
  std::vector<Bytes> msgs;
  for (std::uint32_t i = 0; i < 1000; ++i) msgs.push_back(pattern(i, i % 50));
  std::vector<EncodeJob> jobs;
  for (auto& m : msgs) jobs.push_back(EncodeJob{m.size(), &encode_bytes, &m});
  Child producer(
      [&] { return q.put_batch(jobs.data(), jobs.size(), in(30s)) == jobs.size() ? 0 : 1; });
  std::vector<Bytes> got;
  while (got.size() < msgs.size()) {
    std::size_t n = q.get_batch(&decode_append, &got, 100, in(30s));
    ASSERT_GT(n, 0u);
    ASSERT_LE(n, 100u);
  }
  EXPECT_EQ(got, msgs);
  EXPECT_EQ(producer.wait(), 0);
}

TEST(QueueCore, CloseMakesThisHandleThrowClosed) {
  QueueCore q(0, {}, false);
  QueueCore copy = q;
  q.close();
  EXPECT_TRUE(q.closed());
  try {
    put(q, pattern(1, 1));
    FAIL() << "put after close did not throw";
  } catch (const mproc::Closed& e) {
    EXPECT_STREQ(e.what(), "mproc::Queue: the queue handle is closed");
  }
  EXPECT_THROW(get(q, Clock::now()), mproc::Closed);
  EXPECT_TRUE(put(copy, pattern(1, 1)));
  EXPECT_EQ(*get(copy), pattern(1, 1));
}

TEST(QueueCore, EncoderThrowingRollsTheMessageBack) {
  QueueCore q(0, {}, false);
  auto bad = [](mproc::Writer& w, const void*) {
    w.write("abc", 3);
    throw std::runtime_error("encoder failed");
  };
  int dummy = 0;
  EXPECT_THROW(q.put(EncodeJob{8, +bad, &dummy}, Expiry()), std::runtime_error);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(get(q, Clock::now()));
  EXPECT_TRUE(put(q, pattern(5, 10)));
  EXPECT_EQ(*get(q), pattern(5, 10));
}

TEST(QueueCore, JoinableCountsTasks) {
  QueueCore q(0, {}, true);
  EXPECT_TRUE(q.join(Clock::now()));
  ASSERT_TRUE(put(q, pattern(1, 4)));
  ASSERT_TRUE(put(q, pattern(2, 4)));
  EXPECT_FALSE(q.join(in(10ms)));
  Child worker([&] {
    for (int i = 0; i < 2; ++i) {
      if (!get(q, in(30s))) return 1;
      q.task_done();
    }
    return 0;
  });
  EXPECT_TRUE(q.join(in(30s)));
  EXPECT_EQ(worker.wait(), 0);
  try {
    q.task_done();
    FAIL() << "extra task_done accepted";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(), "mproc::JoinableQueue: task_done() called too many times");
  }
}

struct KillBoard {
  std::atomic<int> started{0};
  std::atomic<int> stop{0};
};

KillBoard* g_board = nullptr;

// Writes 2 rings' worth of a streamed message, says so, then hangs mid-message until killed.
void encode_then_hang(mproc::Writer& w, const void* obj) {
  const std::size_t cap = *static_cast<const std::size_t*>(obj);
  Bytes piece(cap / 2, 0xAB);
  for (int i = 0; i < 4; ++i) w.write(piece.data(), piece.size());
  g_board->started = 1;
  for (;;) pause();
}

TEST(QueueCore, ProducerKilledMidStreamIsDroppedAndOthersGoOn) {
  const std::size_t cap = 16 * 1024;
  QueueCore q(0, QueueOptions{.capacity = cap}, false);
  SharedPage<KillBoard> board;
  g_board = &*board;
  Child doomed([&] {
    q.put(EncodeJob{10 * cap, &encode_then_hang, &cap}, Expiry());
    return 0;
  });
  // The consumer starts receiving the stream (the producer can only write 2 rings' worth because
  // we drain it), then the producer is killed mid-message; a second producer sends a whole one.
  std::thread killer([&] {
    ASSERT_TRUE(eventually([&] { return board->started.load() == 1; }));
    doomed.kill();
    EXPECT_EQ(doomed.wait(), -SIGKILL);
    ASSERT_TRUE(put(q, pattern(8, 100), in(30s)));
  });
  auto b = get(q, in(60s));
  killer.join();
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, pattern(8, 100)) << "the torn message must never be delivered";
  EXPECT_TRUE(q.empty());
}

TEST(QueueCore, ConsumerReceivingAStreamNoticesItsProducerDied) {
  const std::size_t cap = 16 * 1024;
  QueueCore q(0, QueueOptions{.capacity = cap}, false);
  SharedPage<KillBoard> board;
  g_board = &*board;
  Child doomed([&] {
    q.put(EncodeJob{10 * cap, &encode_then_hang, &cap}, Expiry());
    return 0;
  });
  std::thread killer([&] {
    ASSERT_TRUE(eventually([&] { return board->started.load() == 1; }));
    doomed.kill();
  });
  // No other producer comes: the consumer, mid-message, must find out by itself, drop the torn
  // message and then honour its deadline.
  auto b = get(q, in(2s));
  killer.join();
  EXPECT_FALSE(b);
  EXPECT_EQ(doomed.wait(), -SIGKILL);
  ASSERT_TRUE(put(q, pattern(4, 40), in(10s)));
  auto c = get(q, in(10s));
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, pattern(4, 40));
}

TEST(QueueCore, ProducerKilledMidStreamWithNoConsumerIsAbortedByTheNextProducer) {
  const std::size_t cap = 16 * 1024;
  QueueCore q(0, QueueOptions{.capacity = 1 << 20}, false);
  SharedPage<KillBoard> board;
  g_board = &*board;
  Child doomed([&] {
    q.put(EncodeJob{10 * cap, &encode_then_hang, &cap}, Expiry());
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return board->started.load() == 1; }));
  doomed.kill();
  EXPECT_EQ(doomed.wait(), -SIGKILL);
  (void)cap;
  ASSERT_TRUE(put(q, pattern(9, 50), in(10s)));
  auto b = get(q, in(10s));
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, pattern(9, 50));
}

TEST(QueueCore, ConsumerKilledWhileHoldingTheLockDoesNotBlockTheNext) {
  QueueCore q(0, {}, false);
  SharedPage<KillBoard> board;
  Child doomed([&] {
    board->started = 1;
    (void)get(q);  // sleeps holding the consumer lock
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return board->started.load() == 1; }));
  std::this_thread::sleep_for(20ms);
  doomed.kill();
  EXPECT_EQ(doomed.wait(), -SIGKILL);
  ASSERT_TRUE(put(q, pattern(3, 30)));
  auto b = get(q, in(10s));
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, pattern(3, 30));
}

// --- a message that does not decode is consumed by the call that throws -----------------------

// Reads the first 16 bytes of a message and returns, leaving the rest unread (a codec that reads
// fewer bytes than it wrote).
void decode_prefix(mproc::Reader& r, void* out) {
  auto& b = *static_cast<Bytes*>(out);
  b.resize(16);
  r.read(b.data(), b.size());
}

// Reads 100 bytes, then fails (as an allocation failure while decoding would).
void decode_then_throw(mproc::Reader& r, void*) {
  unsigned char piece[100];
  r.read(piece, sizeof piece);
  throw std::runtime_error("decoder failed");
}

template <class E>
std::string get_error(QueueCore& q, mproc::detail::DecodeFn fn) {
  Bytes b;
  try {
    (void)q.get(fn, &b, in(10s));
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception: ") + e.what();
  }
  return "no exception";
}

TEST(QueueCore, SmallMessageWithUnreadBytesThrowsDecodeErrorAndIsConsumed) {
  QueueCore q(0, {}, false);
  ASSERT_TRUE(put(q, pattern(1, 100)));
  ASSERT_TRUE(put(q, pattern(2, 100)));
  EXPECT_EQ(get_error<mproc::DecodeError>(q, &decode_prefix),
            "mproc::Queue: a message decoded short of its length (84 of 100 bytes unread)");
  EXPECT_EQ(q.qsize(), 1u);
  auto b = get(q, in(1s));
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, pattern(2, 100));
  EXPECT_TRUE(q.empty());
}

TEST(QueueCore, StreamedMessageThatDecodesShortIsConsumedAndItsProducerGoesOn) {
  const std::size_t cap = 16 * 1024;
  QueueCore q(0, QueueOptions{.capacity = cap}, false);
  // 10 rings' worth: the producer can only finish once the consumer has drained the message.
  Child producer([&] {
    if (!put(q, pattern(1, 10 * cap), in(30s))) return 1;
    if (!put(q, pattern(2, 100), in(30s))) return 2;
    return 0;
  });
  EXPECT_EQ(get_error<mproc::DecodeError>(q, &decode_prefix),
            "mproc::Queue: a message decoded short of its length (163824 of 163840 bytes unread)");
  auto b = get(q, in(10s));
  ASSERT_TRUE(b) << "the message after the one that did not decode never came";
  EXPECT_EQ(*b, pattern(2, 100));
  EXPECT_EQ(producer.wait(10s), 0) << "the producer stayed blocked";
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.qsize(), 0u);
}

TEST(QueueCore, StreamedMessageWhoseDecoderThrowsIsConsumedWhole) {
  const std::size_t cap = 16 * 1024;
  QueueCore q(0, QueueOptions{.capacity = cap}, false);
  Child producer([&] {
    for (std::uint32_t i = 0; i < 3; ++i)
      if (!put(q, pattern(i, 10 * cap), in(30s))) return 1;
    if (!put(q, pattern(9, 100), in(30s))) return 2;
    return 0;
  });
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(get_error<std::runtime_error>(q, &decode_then_throw), "decoder failed");
  auto b = get(q, in(10s));
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, pattern(9, 100));
  EXPECT_EQ(producer.wait(10s), 0) << "the producer stayed blocked";
  EXPECT_EQ(q.qsize(), 0u);
}

// --- counts stay exact after a lost message ------------------------------------------------------

TEST(QueueCore, DecodeErrorInTheFirstChunkLeavesTheCountExact) {
  // A 1 MiB ring streams messages larger than 256 KiB; two of them cannot both be in a maxsize-1
  // queue.
  QueueCore q(1, QueueOptions{.capacity = 1 << 20}, false);
  const std::size_t big = 300 * 1024;
  ASSERT_TRUE(put(q, pattern(1, big), Clock::now()));
  EXPECT_FALSE(put(q, pattern(2, big), Clock::now()));
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_TRUE(q.full());
  EXPECT_EQ(get_error<std::runtime_error>(q, &decode_then_throw), "decoder failed");
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  EXPECT_TRUE(put(q, pattern(3, big), Clock::now())) << "a maxsize-1 queue stays full";
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(get_error<mproc::DecodeError>(q, &decode_prefix),
            "mproc::Queue: a message decoded short of its length (307184 of 307200 bytes unread)");
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_TRUE(put(q, pattern(4, 10), Clock::now()));
  EXPECT_EQ(*get(q, in(1s)), pattern(4, 10));
  EXPECT_TRUE(q.empty());
}

// Reads the first 8000 bytes of a message (past its first chunks, which are then released: the
// message can no longer be redelivered), says so, then hangs until killed.
void decode_then_hang(mproc::Reader& r, void*) {
  unsigned char piece[8000];
  r.read(piece, sizeof piece);
  g_board->started = 1;
  for (;;) pause();
}

TEST(QueueCore, ConsumerKilledWhileReceivingAStreamLeavesTheCountExact) {
  const std::size_t cap = 16 * 1024;
  QueueCore q(1, QueueOptions{.capacity = cap}, false);
  SharedPage<KillBoard> board;
  g_board = &*board;
  Child producer([&] { return put(q, pattern(1, 10 * cap), in(30s)) ? 0 : 1; });
  Child doomed([&] {
    Bytes b;
    (void)q.get(&decode_then_hang, &b, in(30s));
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return board->started.load() == 1; }));
  doomed.kill();
  EXPECT_EQ(doomed.wait(), -SIGKILL);
  // The message went with its consumer. Its producer, blocked on a ring full of chunks nobody
  // will read, finishes; the queue is then empty and a maxsize-1 queue takes the next message.
  EXPECT_EQ(producer.wait(10s), 0) << "the producer stayed blocked";
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  EXPECT_TRUE(put(q, pattern(2, 10), Clock::now())) << "a maxsize-1 queue stays full";
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_TRUE(q.full());
  EXPECT_EQ(*get(q, in(1s)), pattern(2, 10));
  EXPECT_EQ(q.qsize(), 0u);
}

TEST(QueueCore, ProducerKilledMidStreamLeavesTheCountExact) {
  const std::size_t cap = 16 * 1024;
  QueueCore q(1, QueueOptions{.capacity = 1 << 20}, false);
  SharedPage<KillBoard> board;
  g_board = &*board;
  Child doomed([&] {
    q.put(EncodeJob{10 * cap, &encode_then_hang, &cap}, Expiry());
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return board->started.load() == 1; }));
  doomed.kill();
  EXPECT_EQ(doomed.wait(), -SIGKILL);
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(put(q, pattern(2, 10), Clock::now()));
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(*get(q, in(1s)), pattern(2, 10));
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_FALSE(get(q, Clock::now()));
}

// A consumer that cannot decode a stream drains it; when the stream's producer dies before its
// last chunk, the stream ends with an ABORT and never was a message: the get() finds no message
// (it does not throw for it), and a JoinableQueue's count has nothing to mark done.
void expect_undecodable_stream_of_a_dead_producer_is_no_message(mproc::detail::DecodeFn fn) {
  const std::size_t cap = 16 * 1024;
  QueueCore q(0, QueueOptions{.capacity = cap}, true);
  SharedPage<KillBoard> board;
  g_board = &*board;
  Child doomed([&] {
    q.put(EncodeJob{10 * cap, &encode_then_hang, &cap}, Expiry());
    return 0;
  });
  std::thread killer([&] {
    ASSERT_TRUE(eventually([&] { return board->started.load() == 1; }));
    doomed.kill();
  });
  Bytes b;
  std::string thrown = "nothing";
  bool got = true;
  try {
    got = q.get(fn, &b, in(3s));
  } catch (const std::exception& e) {
    thrown = e.what();
  }
  killer.join();
  EXPECT_EQ(doomed.wait(), -SIGKILL);
  EXPECT_EQ(thrown, "nothing");
  EXPECT_FALSE(got);
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_TRUE(q.join(Clock::now())) << "join() waits for a message that never was";
  EXPECT_THROW(q.task_done(), mproc::ValueError);
  ASSERT_TRUE(put(q, pattern(5, 60), in(10s)));
  auto c = get(q, in(10s));
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, pattern(5, 60));
  q.task_done();
  EXPECT_TRUE(q.join(Clock::now()));
}

TEST(QueueCore, ShortDecodedStreamWhoseProducerDiesIsNoMessage) {
  expect_undecodable_stream_of_a_dead_producer_is_no_message(&decode_prefix);
}

TEST(QueueCore, ThrowingDecodeOfAStreamWhoseProducerDiesIsNoMessage) {
  expect_undecodable_stream_of_a_dead_producer_is_no_message(&decode_then_throw);
}

// --- sizes that cannot be carried ----------------------------------------------------------------

std::atomic<int> g_encoder_calls{0};
void count_encode(mproc::Writer&, const void*) { g_encoder_calls++; }

TEST(QueueCore, MessageSizeThatCannotBeCarriedIsRefusedBeforeAnythingIsWritten) {
  // In a child: the old arithmetic wrapped and wrote out of bounds.
  int rc = mproc_test::run_in_child([] {
    QueueCore q(0, QueueOptions{.capacity = 4096}, false);
    int dummy = 0;
    for (std::size_t size :
         {SIZE_MAX, SIZE_MAX - 7, SIZE_MAX - 8, std::size_t{1} << 63, (std::size_t{1} << 62) + 1}) {
      try {
        (void)q.put(EncodeJob{size, &count_encode, &dummy}, Clock::now());
        return 10;
      } catch (const mproc::ValueError& e) {
        if (std::string(e.what()).find("larger than the largest message") == std::string::npos)
          return 11;
      }
    }
    if (g_encoder_calls.load() != 0) return 12;
    if (!q.empty()) return 13;
    if (!put(q, pattern(1, 3000))) return 14;  // streamed: the queue still works
    auto b = get(q, in(1s));
    return b && *b == pattern(1, 3000) ? 0 : 15;
  });
  EXPECT_EQ(rc, 0);
}

TEST(QueueCore, EveryCapacityGivesAWorkingQueueOrAnError) {
  for (std::size_t cap :
       {std::size_t{0}, std::size_t{1}, std::size_t{4097}, std::size_t{1} << 36,
        std::size_t{1} << 63, (std::size_t{1} << 63) + 1, SIZE_MAX - 4095, SIZE_MAX}) {
    int rc = mproc_test::run_in_child([cap] {
      std::optional<QueueCore> q;
      try {
        q.emplace(0, QueueOptions{.capacity = cap}, false);
      } catch (const mproc::ValueError&) {
        return cap > (std::size_t{1} << 63) ? 0 : 20;
      } catch (const std::system_error&) {
        return cap > (std::size_t{1} << 30) ? 0 : 21;  // more memory than a test may count on
      }
      if (q->capacity() < 4096 || q->capacity() < cap) return 22;
      const Bytes big = pattern(7, 100 * 1024);
      Child producer([&] { return put(*q, big, in(30s)) ? 0 : 1; });
      auto b = get(*q, in(30s));
      if (!b || *b != big) return 23;
      return producer.wait() == 0 ? 0 : 24;
    });
    EXPECT_EQ(rc, 0) << "capacity " << cap;
  }
}

// Every record's length fits its 32-bit field, whatever the ring: larger messages are streamed.
TEST(QueueCore, RecordLimitsStayBelow4GiBForEveryCapacity) {
  using mproc::detail::kHeader;
  using mproc::detail::record_size;
  using mproc::detail::ring_geometry;
  for (unsigned bits = 12; bits <= 63; ++bits) {
    const auto g = ring_geometry(std::uint64_t{1} << bits);
    EXPECT_LE(record_size(g.max_record - kHeader), g.max_record) << bits;
    EXPECT_LT(g.max_record, std::uint64_t{1} << 32) << bits;
    EXPECT_LE(g.max_record, g.capacity / 4) << bits;
    // Chunks: a first one holds the 8-byte total, and a stream is at least two of them.
    EXPECT_GE(g.chunk, 2 * kHeader) << bits;
    EXPECT_LE(record_size(g.chunk), g.max_record / 2) << bits;
    EXPECT_GT(g.max_record - kHeader + 8, 2 * g.chunk) << bits;
  }
  EXPECT_EQ(ring_geometry(std::uint64_t{1} << 20).max_record, 256u * 1024);
  EXPECT_EQ(ring_geometry(std::uint64_t{1} << 35).max_record, std::uint64_t{1} << 31);
}

// A producer killed between publishing a count and its index (two stores): the next one to take
// the producer lock, or qsize() itself, makes them agree again from the publish journal.
// The child does by hand what a publish does, and dies holding the lock at the chosen point.
TEST(QueueCore, KillBetweenACountAndItsIndexLeavesThemAgreeing) {
  using mproc::detail::QueueCoreTestAccess;
  for (bool index_stored : {false, true}) {
    QueueCore q(1, QueueOptions{.capacity = 4096}, false);
    ASSERT_TRUE(put(q, pattern(1, 10)));
    ASSERT_EQ(*get(q, in(1s)), pattern(1, 10));
    int rc = mproc_test::run_in_child([&] {
      auto* s = QueueCoreTestAccess::shared(q);
      std::byte* ring = QueueCoreTestAccess::ring(q);
      if (pthread_mutex_lock(&s->put_lock.mutex) != 0) return 1;
      const std::uint64_t t = s->tail.load(), c = s->items_put.load();
      const Bytes m = pattern(2, 100);
      auto* h = reinterpret_cast<mproc::detail::RecordHeader*>(ring + (t & 4095));
      std::memcpy(h + 1, m.data(), m.size());
      h->len = 100;
      h->kind = mproc::detail::kFull;
      s->put_journal.new_index.store(t + mproc::detail::record_size(100));
      s->put_journal.old_count.store(c);
      s->put_journal.new_count.store(c + 1);
      s->put_journal.old_index.store(t);
      if (index_stored)
        s->tail.store(t + mproc::detail::record_size(100));  // as if the count store were lost
      else
        s->items_put.store(c + 1);  // the count is out, the index is not
      _exit(0);                     // dies holding the producer lock
    });
    ASSERT_EQ(rc, 0);
    EXPECT_EQ(q.qsize(), index_stored ? 1u : 0u) << "index stored: " << index_stored;
    EXPECT_EQ(q.empty(), !index_stored);
    EXPECT_EQ(q.full(), index_stored);  // maxsize 1
    if (index_stored) {
      EXPECT_FALSE(put(q, pattern(3, 10), Clock::now()));
      EXPECT_EQ(*get(q, in(1s)), pattern(2, 100));
    }
    EXPECT_TRUE(put(q, pattern(3, 10), Clock::now()));
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_EQ(*get(q, in(1s)), pattern(3, 10));
    EXPECT_TRUE(q.empty());
  }
}
}  // namespace
