// Randomized kill runs on a Pool: workers are SIGKILLed at random instants while apply_async (with
// small and large arguments: the large ones travel in memfds), map and imap keep the pool busy.
// Afterwards: no task ran twice, every result that came back is the right one for its input, every
// failure is a WorkerLost (no hang, no other error), and there were no more WorkerLost than kills.
//
// Bounded: ~6 s of killing by default; MPROC_SOAK=1 runs ~60 s.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <mproc/pool.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "helpers/proc_state.hpp"
#include "helpers/worker_killer.hpp"

using namespace std::chrono_literals;

namespace {

constexpr std::size_t kMaxTasks = 1 << 20;

struct Board {
  std::atomic<std::uint32_t> runs[kMaxTasks];  // how many times each task id started
};

std::chrono::milliseconds run_time() { return std::getenv("MPROC_SOAK") ? 60s : 6s; }

std::uint64_t mix(std::uint64_t x) {
  x *= 0x9E3779B97F4A7C15ull;
  return x ^ (x >> 29);
}

// A task's input: its id and `n` words derived from it (so that the worker can check them).
struct Job {
  std::uint64_t id = 0;
  std::vector<std::uint64_t> words;
  template <class A>
  void serialize(A& ar) {
    ar(id, words);
  }
};

Job make_job(std::uint64_t id, std::size_t n) {
  Job j{id, std::vector<std::uint64_t>(n)};
  for (std::size_t i = 0; i < n; ++i) j.words[i] = mix(id * 1000003 + i);
  return j;
}

Board* g_board = nullptr;  // set before the Pool exists, so the workers have it

std::int64_t run_job(const Job& j) {
  g_board->runs[j.id].fetch_add(1);
  for (std::size_t i = 0; i < j.words.size(); ++i)
    if (j.words[i] != mix(j.id * 1000003 + i)) return -1;
  if (j.id % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(j.id % 500));
  return static_cast<std::int64_t>(j.id);
}

TEST(PoolKill, NoTaskRunsTwiceAndEveryOutcomeIsRightOrWorkerLost) {
  void* mem =
      mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  g_board = ::new (mem) Board();
  mproc::Pool pool(3);
  const std::vector<int> children = mproc_test::children_of(getpid());
  ASSERT_EQ(children.size(), 1u);  // the pool's zygote
  const int zygote = children.front();

  mproc_test::WorkerKiller killer(zygote, 12345, 20000);

  std::uint64_t next_id = 0, ok = 0, lost = 0, other = 0, wrong = 0;
  // Counts what `check` finds (true: a right result, false: a wrong one, empty: the sequence
  // ended, which it returns as false).
  auto tally = [&](auto&& check) {
    try {
      const std::optional<bool> right = check();
      if (!right) return false;
      ++(*right ? ok : wrong);
    } catch (const mproc::WorkerLost&) {
      ++lost;
    } catch (...) {
      ++other;
    }
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + run_time();
  std::mt19937 rng(777);
  while (std::chrono::steady_clock::now() < deadline && next_id + 4096 < kMaxTasks) {
    // apply_async, every 8th with ~0.4-2 MiB of words (a memfd payload).
    std::vector<std::pair<mproc::AsyncResult<std::int64_t>, std::int64_t>> rs;
    for (int i = 0; i < 64; ++i) {
      const std::size_t n = (i % 8 == 7) ? 50000 + rng() % 200000 : rng() % 64;
      const std::int64_t id = static_cast<std::int64_t>(next_id);
      rs.emplace_back(pool.apply_async(run_job, make_job(next_id++, n)), id);
    }
    for (auto& entry : rs)
      tally([&] { return std::optional<bool>(entry.first.get(60s) == entry.second); });
    // imap (adaptive chunks) over jobs: each element comes back right, or its chunk is lost.
    std::vector<Job> jobs;
    for (int i = 0; i < 200; ++i) jobs.push_back(make_job(next_id++, rng() % 16));
    auto it = pool.imap_unordered(run_job, jobs);
    while (tally([&]() -> std::optional<bool> {
      auto v = it.next(60s);
      if (!v) return std::nullopt;
      return *v >= 0 && static_cast<std::uint64_t>(*v) < next_id;
    })) {
    }
  }
  const std::uint64_t kills = killer.stop();
  std::printf("tasks %llu ok %llu lost %llu kills %llu\n", static_cast<unsigned long long>(next_id),
              static_cast<unsigned long long>(ok), static_cast<unsigned long long>(lost),
              static_cast<unsigned long long>(kills));
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(other, 0u);
  EXPECT_LE(lost, kills);  // a kill loses at most the chunk its worker was running
  EXPECT_GT(ok, 0u);
  std::uint64_t twice = 0;
  for (std::uint64_t id = 0; id < next_id; ++id)
    if (g_board->runs[id].load() > 1) ++twice;
  EXPECT_EQ(twice, 0u) << "tasks that started more than once";
  // The pool still serves after the storm.
  EXPECT_EQ(pool.apply(run_job, make_job(next_id, 10)), static_cast<std::int64_t>(next_id));
}

}  // namespace
