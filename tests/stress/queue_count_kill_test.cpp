// Randomized kill runs on a queue's item count: producers and consumers of small and streamed
// messages (some consumers failing to decode on purpose, in the first chunk or by leaving bytes
// unread) are SIGKILLed at random instants, one or two at a time; then every participant is
// killed at once, mid-whatever. Afterwards qsize(), empty() and full() must be exact: qsize()
// equals the number of messages a consumer can still get, a maxsize queue takes exactly maxsize
// new messages, and none of it depends on another put or get coming first.
//
// Bounded: ~6 s by default; MPROC_SOAK=1 runs ~60 s.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mproc/detail/queue_core.hpp>
#include <mproc/errors.hpp>
#include <mproc/queue.hpp>  // QueueOptions
#include <random>
#include <stdexcept>
#include <thread>
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

constexpr std::size_t kCap = 16 * 1024;  // messages above 4 KiB are streamed
constexpr std::size_t kMaxsize = 6;

// A message is (tag, size) and bytes derived from them, written and checked without keeping it
// whole in memory.
struct Spec {
  std::uint64_t tag;
  std::size_t size;  // >= 16
};

std::uint64_t byte_at(std::uint64_t tag, std::size_t i) {
  std::uint64_t x = (tag + i / 8) * 0x9E3779B97F4A7C15ull;
  return (x ^ (x >> 29)) >> (8 * (i % 8));
}

void encode_spec(mproc::Writer& w, const void* obj) {
  const auto& s = *static_cast<const Spec*>(obj);
  w.write_value(s.tag);
  w.write_value(static_cast<std::uint64_t>(s.size));
  unsigned char piece[1024];
  for (std::size_t i = 16; i < s.size;) {
    std::size_t n = std::min(sizeof piece, s.size - i);
    for (std::size_t k = 0; k < n; ++k)
      piece[k] = static_cast<unsigned char>(byte_at(s.tag, i + k));
    w.write(piece, n);
    i += n;
  }
}

// Decodes and checks a message; *out becomes 1 if intact, 2 if torn.
void decode_check(mproc::Reader& r, void* out) {
  auto tag = r.read_value<std::uint64_t>();
  auto size = r.read_value<std::uint64_t>();
  bool ok = size == r.remaining() + 16;
  unsigned char piece[1024];
  for (std::size_t i = 16; i < size && r.remaining() > 0;) {
    std::size_t n = std::min<std::size_t>(sizeof piece, r.remaining());
    r.read(piece, n);
    for (std::size_t k = 0; k < n; ++k)
      ok = ok && piece[k] == static_cast<unsigned char>(byte_at(tag, i + k));
    i += n;
  }
  *static_cast<int*>(out) = ok ? 1 : 2;
}

void decode_fail_early(mproc::Reader& r, void*) {
  (void)r.read_value<std::uint64_t>();
  throw std::runtime_error("refused");
}

void decode_prefix(mproc::Reader& r, void* out) {
  (void)r.read_value<std::uint64_t>();
  *static_cast<int*>(out) = 1;
}

std::size_t random_size(std::mt19937& rng) {
  switch (rng() % 4) {
    case 0:
      return 16 + rng() % 200;
    case 1:
      return 16 + rng() % 4000;
    case 2:
      return 5000 + rng() % 20000;  // streamed, up to ~1.5 rings
    default:
      return 40000 + rng() % 60000;  // streamed, several rings
  }
}

int producer(QueueCore& q, unsigned seed) {
  std::mt19937 rng(seed);
  for (std::uint64_t n = 0;; ++n) {
    Spec s{(std::uint64_t{seed} << 32) | n, random_size(rng)};
    (void)q.put(EncodeJob{s.size, &encode_spec, &s}, Clock::now() + 5ms);
  }
}

int consumer(QueueCore& q, unsigned seed) {
  std::mt19937 rng(seed);
  for (;;) {
    int result = 0;
    const unsigned mode = rng() % 8;
    auto fn = mode == 0 ? &decode_fail_early : mode == 1 ? &decode_prefix : &decode_check;
    try {
      (void)q.get(fn, &result, Clock::now() + 5ms);
    } catch (const std::exception&) {
    }
    // Slower than the producers, so that the queue is often full when everyone is killed.
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 1500));
  }
}

std::chrono::milliseconds run_time() { return std::getenv("MPROC_SOAK") ? 60s : 6s; }

TEST(QueueCountKill, CountsAreExactAfterRandomKills) {
  std::mt19937 rng(777);
  unsigned next_seed = 1;
  int rounds = 0, kills = 0, double_kills = 0;
  long drained_total = 0, nonempty_rounds = 0;
  const auto end = std::chrono::steady_clock::now() + run_time();
  while (std::chrono::steady_clock::now() < end || rounds < 3) {
    ++rounds;
    QueueCore q(kMaxsize, QueueOptions{.capacity = kCap, .spin = 200}, false);
    auto start = [&](bool produce) {
      unsigned seed = next_seed++;
      return std::make_unique<Child>(std::function<int()>(
          [&q, seed, produce] { return produce ? producer(q, seed) : consumer(q, seed); }));
    };
    std::vector<std::unique_ptr<Child>> procs;
    for (int i = 0; i < 4; ++i) procs.push_back(start(i % 2 == 0));
    // Random kills and replacements, one or two at a time, for ~400 ms.
    const auto round_end = std::chrono::steady_clock::now() + 400ms;
    while (std::chrono::steady_clock::now() < round_end) {
      std::this_thread::sleep_for(std::chrono::microseconds(1000 + rng() % 8000));
      const int victims = rng() % 4 == 0 ? 2 : 1;
      double_kills += victims == 2;
      for (int v = 0; v < victims; ++v) {
        const std::size_t i = rng() % procs.size();
        procs[i]->kill(SIGKILL);
        ASSERT_EQ(procs[i]->wait(30s), -SIGKILL);
        ++kills;
        procs[i] = start(i % 2 == 0);
      }
    }
    // Everyone dies at once, wherever they are.
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    for (auto& p : procs) p->kill(SIGKILL);
    for (auto& p : procs) ASSERT_EQ(p->wait(30s), -SIGKILL);

    // Exact with nobody else touching the queue.
    const std::size_t n = q.qsize();
    EXPECT_LE(n, kMaxsize) << "round " << rounds;
    EXPECT_EQ(q.empty(), n == 0) << "round " << rounds;
    EXPECT_EQ(q.full(), n >= kMaxsize) << "round " << rounds;
    EXPECT_EQ(q.qsize(), n) << "round " << rounds;
    std::size_t drained = 0;
    for (;;) {
      int result = 0;
      // A stream whose producer died ends within a probe (50 ms); keep the deadline above that.
      if (!q.get(&decode_check, &result, Clock::now() + 300ms)) break;
      EXPECT_EQ(result, 1) << "a torn message was delivered, round " << rounds;
      ++drained;
      EXPECT_EQ(q.qsize(), n - std::min(n, drained)) << "round " << rounds;
    }
    drained_total += static_cast<long>(drained);
    nonempty_rounds += n != 0;
    ASSERT_EQ(drained, n) << "qsize() said " << n << " but " << drained << " could be taken, round "
                          << rounds;
    EXPECT_TRUE(q.empty());
    EXPECT_FALSE(q.full());
    // A maxsize queue takes exactly maxsize new messages: no slot is held by a lost message.
    for (std::size_t i = 0; i < kMaxsize; ++i) {
      Spec s{i, 16 + i};
      ASSERT_TRUE(q.put(EncodeJob{s.size, &encode_spec, &s}, Clock::now()))
          << "Full after " << i << " puts, round " << rounds;
    }
    Spec extra{99, 20};
    EXPECT_FALSE(q.put(EncodeJob{extra.size, &encode_spec, &extra}, Clock::now()));
    EXPECT_EQ(q.qsize(), kMaxsize);
    EXPECT_TRUE(q.full());
    if (::testing::Test::HasFailure()) break;
  }
  std::printf("rounds=%d kills=%d double kills=%d drained=%ld rounds left non-empty=%ld\n", rounds,
              kills, double_kills, drained_total, nonempty_rounds);
  EXPECT_GT(kills, 20);
  EXPECT_GT(nonempty_rounds, 0);
}

}  // namespace
