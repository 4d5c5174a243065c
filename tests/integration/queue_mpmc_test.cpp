// Producers x consumers exchanging 10^6 messages through one Queue: every message arrives exactly
// once (a per-message tally in shared memory), intact (each carries a checksum of itself), and in
// order per producer (each consumer sees every producer's sequence numbers increase).
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mproc/process.hpp>
#include <mproc/queue.hpp>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct Msg {
  std::uint32_t producer;
  std::uint32_t seq;  // UINT32_MAX: "stop" for a consumer
  std::uint64_t check;
};

std::uint64_t checksum(std::uint32_t p, std::uint32_t s) {
  std::uint64_t x = (std::uint64_t{p} << 32 | s) * 0x9E3779B97F4A7C15ull;
  return x ^ (x >> 29);
}

struct Tally {
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> bad{0};           // wrong checksum
  std::atomic<std::uint64_t> out_of_order{0};  // a producer's seq went backwards for a consumer
};

void exchange(int producers, int consumers, std::uint32_t total, bool batched) {
  mproc::Queue<Msg> q(0, mproc::QueueOptions{.capacity = 256 * 1024});
  const std::size_t bytes = sizeof(Tally) + total;
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* t = ::new (mem) Tally();
  // One counter per message, right after the tally.
  auto* seen =
      reinterpret_cast<std::atomic<std::uint8_t>*>(static_cast<char*>(mem) + sizeof(Tally));
  const std::uint32_t per = total / static_cast<std::uint32_t>(producers);

  std::vector<std::unique_ptr<mproc::Process>> procs;
  for (int c = 0; c < consumers; ++c) {
    procs.push_back(std::make_unique<mproc::Process>([&, batched] {
      std::vector<std::int64_t> last(static_cast<std::size_t>(producers), -1);
      auto handle = [&](const Msg& m) {
        if (m.check != checksum(m.producer, m.seq)) t->bad++;
        if (static_cast<std::int64_t>(m.seq) <= last[m.producer]) t->out_of_order++;
        last[m.producer] = m.seq;
        seen[std::size_t{m.producer} * per + m.seq].fetch_add(1);
        t->received++;
      };
      for (;;) {
        if (batched) {
          auto batch = q.get_many(64, 120s);
          for (std::size_t i = 0; i < batch.size(); ++i) {
            if (batch[i].seq == UINT32_MAX) {
              // Only stops follow the first stop; give back the ones meant for other consumers.
              for (std::size_t k = i + 1; k < batch.size(); ++k) q.put(batch[k]);
              return 0;
            }
            handle(batch[i]);
          }
        } else {
          Msg m = q.get(120s);
          if (m.seq == UINT32_MAX) return 0;
          handle(m);
        }
      }
    }));
  }
  for (int p = 0; p < producers; ++p) {
    procs.push_back(std::make_unique<mproc::Process>([&, p, batched] {
      const auto id = static_cast<std::uint32_t>(p);
      if (batched) {
        std::vector<Msg> batch;
        for (std::uint32_t s = 0; s < per; ++s) {
          batch.push_back(Msg{id, s, checksum(id, s)});
          if (batch.size() == 256 || s + 1 == per) {
            q.put_many(batch);
            batch.clear();
          }
        }
      } else {
        for (std::uint32_t s = 0; s < per; ++s) q.put(Msg{id, s, checksum(id, s)});
      }
      return 0;
    }));
  }
  for (auto& p : procs) p->start();
  // Producers first (they were started last), then tell each consumer to stop.
  for (int i = consumers; i < consumers + producers; ++i) {
    ASSERT_TRUE(procs[static_cast<std::size_t>(i)]->join(300s));
    EXPECT_EQ(procs[static_cast<std::size_t>(i)]->exitcode(), 0);
  }
  for (int c = 0; c < consumers; ++c) q.put(Msg{0, UINT32_MAX, 0});
  for (int c = 0; c < consumers; ++c) {
    ASSERT_TRUE(procs[static_cast<std::size_t>(c)]->join(300s));
    EXPECT_EQ(procs[static_cast<std::size_t>(c)]->exitcode(), 0);
  }

  const std::uint64_t expected = std::uint64_t{per} * static_cast<std::uint64_t>(producers);
  EXPECT_EQ(t->received.load(), expected);
  EXPECT_EQ(t->bad.load(), 0u);
  EXPECT_EQ(t->out_of_order.load(), 0u);
  std::uint64_t missing = 0, duplicated = 0;
  for (std::uint64_t i = 0; i < expected; ++i) {
    auto n = seen[i].load();
    missing += n == 0;
    duplicated += n > 1;
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(duplicated, 0u);
  EXPECT_TRUE(q.empty());
  munmap(mem, bytes);
}

TEST(QueueMpmc, OneByOneMillion) { exchange(1, 1, 1000000, false); }
TEST(QueueMpmc, FourByFourMillion) { exchange(4, 4, 1000000, false); }
TEST(QueueMpmc, SixteenBySixteenMillion) { exchange(16, 16, 1000000, false); }
TEST(QueueMpmc, FourByFourMillionBatched) { exchange(4, 4, 1000000, true); }

}  // namespace
