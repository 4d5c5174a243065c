// Randomized kill runs over imap and imap_unordered with adaptive chunks: a thread SIGKILLs a
// random worker every 0-20 ms while imaps over 20000 inputs of varied cost (0-200 us of busy work
// each) run one after the other, alternating ordered and unordered. Every input must be
// accounted for: exactly one outcome each (its value, right for its input, or a WorkerLost at its
// own position), no other error, no hang, and no more WorkerLost than kills.
//
// Bounded: ~5 s of killing by default; MPROC_SOAK=1 (make soak STRESS=1) runs ~60 s. Each next()
// waits at most 60 s, and a watchdog ends the binary (exit 2) if the test runs 200 s over that.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mproc/pool.hpp>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "helpers/proc_state.hpp"
#include "helpers/watchdog.hpp"
#include "helpers/worker_killer.hpp"

using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t kInputs = 20000;  // per imap

std::chrono::milliseconds run_time() { return std::getenv("MPROC_SOAK") ? 60s : 5s; }

std::uint64_t mix(std::uint64_t x) {
  x *= 0x9E3779B97F4A7C15ull;
  return x ^ (x >> 29);
}

// An input's value: identifies the input (unordered results are matched by it) and is checked.
// Inputs stay below 2^32: the low half is the input, the high half a hash of it.
std::uint64_t value_of(std::uint64_t x) { return mix(x) << 32 | (x & 0xFFFFFFFF); }

// 0-200 us of busy work, depending on the input, then its value.
std::uint64_t work(std::uint64_t x) {
  const auto cost = std::chrono::microseconds(mix(x ^ 0x5555) % 201);
  const auto end = std::chrono::steady_clock::now() + cost;
  while (std::chrono::steady_clock::now() < end) {
  }
  return value_of(x);
}

using mproc_test::Watchdog;

// What one imap gave, input by input.
struct Tally {
  std::uint64_t values = 0, lost = 0;
  std::uint64_t wrong = 0;    // a value that is not its input's (ordered) or no input's
  std::uint64_t other = 0;    // an error other than WorkerLost
  std::uint64_t unnamed = 0;  // a WorkerLost without a position in this imap
  std::uint64_t missing = 0, doubled = 0;
  bool timed_out = false, ended = false;
  std::string first_problem;

  void problem(const std::string& s) {
    if (first_problem.empty()) first_problem = s;
  }
};

// Runs one imap (ordered) or imap_unordered over inputs [base, base + kInputs) and accounts for
// every input.
template <bool Ordered>
Tally run_one(mproc::Pool& pool, std::uint64_t base) {
  std::vector<std::uint64_t> xs(kInputs);
  for (std::uint64_t i = 0; i < kInputs; ++i) xs[i] = base + i;
  std::vector<std::uint8_t> seen(kInputs, 0);
  Tally t;
  auto results = [&] {
    if constexpr (Ordered) {
      return pool.imap(work, xs);
    } else {
      return pool.imap_unordered(work, xs);
    }
  }();
  std::uint64_t k = 0;  // outcomes so far
  // A few outcomes more than inputs are taken, so that doubles show.
  for (; k < kInputs + 64; ++k) {
    try {
      const std::optional<std::uint64_t> v = results.next(60s);
      if (!v) {
        t.ended = true;
        break;
      }
      ++t.values;
      const std::uint64_t i = Ordered ? k : (*v & 0xFFFFFFFF) - base;
      if (i >= kInputs || *v != value_of(base + i)) {
        ++t.wrong;
        t.problem("outcome " + std::to_string(k) + ": a value that is not input " +
                  std::to_string(i) + "'s");
        continue;
      }
      ++seen[i];
    } catch (const mproc::TimeoutError&) {
      t.timed_out = true;
      t.problem("outcome " + std::to_string(k) + ": next() waited 60 s");
      break;
    } catch (const mproc::WorkerLost& e) {
      ++t.lost;
      const std::optional<std::size_t> pos = e.position();
      if (!pos || *pos >= kInputs || (Ordered && *pos != k)) {
        ++t.unnamed;
        t.problem("outcome " + std::to_string(k) + ": WorkerLost at position " +
                  (pos ? std::to_string(*pos) : std::string("<none>")) + ": " + e.what());
        continue;
      }
      ++seen[*pos];
    } catch (const std::exception& e) {
      ++t.other;
      t.problem("outcome " + std::to_string(k) + ": " + e.what());
    }
  }
  for (std::uint64_t i = 0; i < kInputs; ++i) {
    if (seen[i] == 0) {
      if (t.missing++ == 0) t.problem("input " + std::to_string(i) + ": no outcome");
    } else if (seen[i] > 1) {
      if (t.doubled++ == 0) t.problem("input " + std::to_string(i) + ": several outcomes");
    }
  }
  return t;
}

TEST(PoolImapKill, EveryInputHasExactlyOneOutcomeUnderRandomKills) {
  Watchdog dog(std::chrono::duration_cast<std::chrono::seconds>(run_time()) + 200s);
  mproc::Pool pool(3);
  const std::vector<int> children = mproc_test::children_of(getpid());
  ASSERT_EQ(children.size(), 1u);  // the pool's zygote
  const int zygote = children.front();

  mproc_test::WorkerKiller killer(zygote, 4242, 20000);

  const auto deadline = std::chrono::steady_clock::now() + run_time();
  std::uint64_t rounds = 0, values = 0, lost = 0, wrong = 0, other = 0, unnamed = 0, missing = 0,
                doubled = 0, unended = 0;
  std::string first_problem;
  // At least one imap and one imap_unordered, then more while the time lasts.
  for (bool ordered = true; rounds < 2 || std::chrono::steady_clock::now() < deadline;
       ordered = !ordered) {
    const std::uint64_t base = rounds * kInputs;
    const Tally t = ordered ? run_one<true>(pool, base) : run_one<false>(pool, base);
    ++rounds;
    values += t.values;
    lost += t.lost;
    wrong += t.wrong;
    other += t.other;
    unnamed += t.unnamed;
    missing += t.missing;
    doubled += t.doubled;
    if (!t.ended) ++unended;
    if (first_problem.empty() && !t.first_problem.empty())
      first_problem = std::string(ordered ? "imap" : "imap_unordered") + " round " +
                      std::to_string(rounds) + ": " + t.first_problem;
    if (t.timed_out) break;
  }
  const std::uint64_t kills = killer.stop();
  std::printf(
      "imaps %llu inputs %llu values %llu lost %llu kills %llu wrong %llu other %llu unnamed %llu "
      "missing %llu doubled %llu\n",
      static_cast<unsigned long long>(rounds), static_cast<unsigned long long>(rounds * kInputs),
      static_cast<unsigned long long>(values), static_cast<unsigned long long>(lost),
      static_cast<unsigned long long>(kills), static_cast<unsigned long long>(wrong),
      static_cast<unsigned long long>(other), static_cast<unsigned long long>(unnamed),
      static_cast<unsigned long long>(missing), static_cast<unsigned long long>(doubled));
  EXPECT_EQ(wrong, 0u) << first_problem;
  EXPECT_EQ(other, 0u) << first_problem;
  EXPECT_EQ(unnamed, 0u) << first_problem;
  EXPECT_EQ(missing, 0u) << first_problem;
  EXPECT_EQ(doubled, 0u) << first_problem;
  EXPECT_EQ(unended, 0u) << "imaps that gave no end within their outcomes; " << first_problem;
  EXPECT_EQ(values + lost, rounds * kInputs) << first_problem;
  EXPECT_LE(lost, kills);  // a kill fails at most the element its worker was running
  EXPECT_GT(values, 0u);
  // The pool still serves after the storm.
  EXPECT_EQ(pool.apply(work, std::uint64_t{7}), value_of(7));
}

}  // namespace
