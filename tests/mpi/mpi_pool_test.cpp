// mproc::mpi::Pool over 3 ranks (run under mpirun by ctest, with the shared-memory transport and
// with TCP): the Pool's calls, where tasks run, errors naming rank and host, a killed worker, time
// limits, cancel, large messages in pieces, and what cannot travel.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <mproc/futures.hpp>
#include <mproc/mpi.hpp>
#include <mproc/queue.hpp>
#include <numeric>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace {

using namespace std::chrono_literals;
using mproc::AsyncResult;

int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
int rank_of_worker(int) { return mproc::mpi::rank(); }
std::string host_of_worker(int) { return mproc::mpi::host(); }

int throw_with_rank(int x) {
  throw std::invalid_argument("task " + std::to_string(x) + " on rank " +
                              std::to_string(mproc::mpi::rank()));
}

int throw_on_seven(int x) {
  if (x == 7) throw std::out_of_range("seven");
  return x;
}

// Kills its own worker on 3; returns the rank otherwise.
int die_on_three(int x) {
  if (x == 3) raise(SIGKILL);
  return mproc::mpi::rank();
}

int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

// The size, a checksum and the rank, of a large argument.
std::tuple<std::uint64_t, std::uint64_t, int> digest(const std::vector<std::uint8_t>& v) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < v.size(); i += 4093) sum = sum * 31 + v[i];
  return {v.size(), sum + v.back(), mproc::mpi::rank()};
}

std::uint64_t digest_of(const std::vector<std::uint8_t>& v) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < v.size(); i += 4093) sum = sum * 31 + v[i];
  return sum + v.back();
}

std::vector<std::uint8_t> pattern(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 7 + (i >> 12));
  return v;
}

// A large result made on a worker, with the rank that made it.
std::pair<std::vector<std::uint8_t>, int> make_large(std::size_t n) {
  return {pattern(n), mproc::mpi::rank()};
}

int g_initialised = 0;
void initialise() { g_initialised = 4242; }
int initialised(int) { return g_initialised; }

int uses_queue(mproc::Queue<int> q) { return static_cast<int>(q.qsize()); }

template <class F>
bool eventually(F f, std::chrono::seconds limit = 30s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return f();
}

std::size_t available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::size_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return 0;
}

TEST(MpiPool, ThreeRanksEachWithWorkers) {
  ASSERT_TRUE(mproc::mpi::launched()) << "run under mpirun -np 3";
  EXPECT_EQ(mproc::mpi::rank(), 0);
  EXPECT_EQ(mproc::mpi::size(), 3);
  EXPECT_FALSE(mproc::mpi::host().empty());
  mproc::mpi::Pool pool;
  ASSERT_EQ(pool.workers_per_rank().size(), 3u);
  int total = 0;
  for (int n : pool.workers_per_rank()) {
    EXPECT_GE(n, 1);
    total += n;
  }
  EXPECT_EQ(pool.processes(), total);
  EXPECT_EQ(pool.start_method(), mproc::StartMethod::spawn) << "tasks travel as under spawn";
}

TEST(MpiPool, MapRunsOnEveryRankAndKeepsTheOrder) {
  mproc::mpi::Pool pool;
  const auto xs = std::views::iota(0, 3000);
  const std::vector<int> squares = pool.map(square, xs);
  ASSERT_EQ(squares.size(), 3000u);
  for (int i = 0; i < 3000; ++i) ASSERT_EQ(squares[static_cast<std::size_t>(i)], i * i);
  const std::vector<int> ranks =
      pool.map(rank_of_worker, std::views::iota(0, 300), {.chunksize = 1});
  EXPECT_EQ(std::set<int>(ranks.begin(), ranks.end()), (std::set<int>{0, 1, 2}));
  const std::vector<std::string> hosts = pool.map(host_of_worker, std::views::iota(0, 30));
  for (const std::string& h : hosts) EXPECT_EQ(h, mproc::mpi::host());
  pool.close();
  pool.join();
  EXPECT_EQ(pool.unfinished(), 0u);
}

TEST(MpiPool, ApplySubmitStarmapAndMapAsync) {
  mproc::mpi::Pool pool;
  EXPECT_EQ(pool.apply(square, 12), 144);
  EXPECT_EQ(pool.apply_async(add, 40, 2).get(30s), 42);
  EXPECT_EQ(pool.submit(add, 1, 2).result(30s), 3);
  std::vector<std::tuple<int, int>> pairs;
  for (int i = 0; i < 100; ++i) pairs.emplace_back(i, 2 * i);
  const std::vector<int> sums = pool.starmap(add, pairs);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sums[static_cast<std::size_t>(i)], 3 * i);
  std::atomic<int> called{0};
  auto r = pool.map_async(square, std::vector<int>{1, 2, 3}, {},
                          [&](const std::vector<int>& v) { called += v[2]; });
  EXPECT_EQ(r.get(30s), (std::vector<int>{1, 4, 9}));
  pool.close();
  pool.join();
  EXPECT_EQ(called.load(), 9) << "the callback ran before join() returned";
}

TEST(MpiPool, ImapInOrderImapUnorderedAllWithAdaptiveChunks) {
  mproc::mpi::Pool pool;
  int expect = 0;
  for (int v : pool.imap(square, std::views::iota(0, 2000))) {
    ASSERT_EQ(v, expect * expect);
    ++expect;
  }
  EXPECT_EQ(expect, 2000);
  std::vector<int> got;
  for (int v : pool.imap_unordered(square, std::views::iota(0, 2000))) got.push_back(v);
  std::sort(got.begin(), got.end());
  ASSERT_EQ(got.size(), 2000u);
  for (int i = 0; i < 2000; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i * i);
}

TEST(MpiPool, CallbacksAndProgressRunInRankZero) {
  mproc::mpi::Pool pool;
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::vector<AsyncResult<int>> rs;
  for (int i = 0; i < 50; ++i)
    rs.push_back(pool.apply_async(
        throw_on_seven, std::tuple{i}, [&](int) { ++ok; }, [&](std::exception_ptr) { ++failed; }));
  std::size_t last_done = 0;
  std::optional<std::size_t> total;
  (void)pool.map(square, std::views::iota(0, 500),
                 {.progress = [&](std::size_t done, std::optional<std::size_t> t) {
                   last_done = done;
                   total = t;
                 }});
  pool.close();
  pool.join();
  EXPECT_EQ(ok.load(), 49);
  EXPECT_EQ(failed.load(), 1);
  EXPECT_EQ(last_done, 500u);
  EXPECT_EQ(total, std::optional<std::size_t>(500));
}

TEST(MpiPool, RemoteErrorNamesRankAndHost) {
  mproc::mpi::Pool pool;
  std::vector<AsyncResult<int>> rs;
  for (int i = 0; i < 60; ++i) rs.push_back(pool.apply_async(throw_with_rank, i));
  std::set<int> ranks;
  for (int i = 0; i < 60; ++i) {
    try {
      (void)rs[static_cast<std::size_t>(i)].get(30s);
      ADD_FAILURE() << "task " << i << " did not throw";
    } catch (const mproc::RemoteError& e) {
      ASSERT_TRUE(e.rank().has_value());
      const int r = *e.rank();
      ranks.insert(r);
      EXPECT_EQ(e.host(), mproc::mpi::host());
      EXPECT_EQ(e.type_name(), "std::invalid_argument");
      EXPECT_EQ(e.remote_what(), "task " + std::to_string(i) + " on rank " + std::to_string(r));
      EXPECT_NE(std::string(e.what()).find("on rank " + std::to_string(r) + ", host " +
                                           mproc::mpi::host() + ", task "),
                std::string::npos)
          << e.what();
      EXPECT_TRUE(e.task().has_value());
    }
  }
  EXPECT_GE(ranks.size(), 2u) << "errors came from one rank only";
  // An element of a map: its position, and the rank.
  try {
    (void)pool.map(throw_on_seven, std::views::iota(0, 40), {.chunksize = 3});
    ADD_FAILURE() << "map did not throw";
  } catch (const mproc::RemoteError& e) {
    EXPECT_EQ(e.position(), std::optional<std::size_t>(7));
    EXPECT_TRUE(e.rank().has_value());
    EXPECT_NE(std::string(e.what()).find("input element 7"), std::string::npos) << e.what();
  }
}

TEST(MpiPool, KilledWorkerFailsOnlyItsTaskAndIsReplaced) {
  mproc::mpi::Pool pool({}, {.rank0_works = false});  // every task on ranks 1 and 2
  EXPECT_EQ(pool.workers_per_rank()[0], 0);
  std::vector<AsyncResult<int>> rs;
  for (int i = 0; i < 12; ++i) rs.push_back(pool.apply_async(die_on_three, i));
  for (int i = 0; i < 12; ++i) {
    if (i == 3) {
      try {
        (void)rs[3].get(30s);
        ADD_FAILURE() << "the killed task succeeded";
      } catch (const mproc::WorkerLost& e) {
        EXPECT_EQ(e.exitcode(), -SIGKILL);
        EXPECT_EQ(e.task(), std::optional<std::uint64_t>(4)) << "rank 0's number of the task";
        EXPECT_NE(std::string(e.what()).find("while running task 4 (on rank "), std::string::npos)
            << e.what();
      }
    } else {
      const int r = rs[static_cast<std::size_t>(i)].get(30s);
      EXPECT_TRUE(r == 1 || r == 2) << r;
    }
  }
  EXPECT_EQ(pool.map(square, std::vector<int>{5, 6}), (std::vector<int>{25, 36}))
      << "the pool runs on after the loss";
}

TEST(MpiPool, TaskTimeoutKillsTheWorkerOnItsRank) {
  mproc::mpi::Pool pool({}, {.rank0_works = false});
  auto slow = pool.submit(mproc::SubmitOptions{.timeout = 0.3s}, sleep_ms, 20000);
  auto quick = pool.submit(sleep_ms, 10);
  try {
    (void)slow.result(60s);
    ADD_FAILURE() << "the slow task was not stopped";
  } catch (const mproc::TaskTimeout& e) {
    EXPECT_DOUBLE_EQ(e.limit(), 0.3);
    EXPECT_EQ(e.task(), std::optional<std::uint64_t>(1));
    EXPECT_NE(std::string(e.what()).find("task 1 ran past"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("ran past its limit"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(on rank "), std::string::npos) << e.what();
  }
  EXPECT_EQ(quick.result(30s), 10);
  EXPECT_EQ(pool.apply(square, 3), 9);
}

TEST(MpiPool, CancelWithdrawsQueuedTasksAndKillsRunningOnRequest) {
  mproc::mpi::Pool pool({}, {.window = 1});
  std::vector<AsyncResult<int>> rs;
  for (int i = 0; i < 30; ++i) rs.push_back(pool.submit(sleep_ms, 100));
  int cancelled = 0;
  for (int i = 20; i < 30; ++i) cancelled += rs[static_cast<std::size_t>(i)].cancel() ? 1 : 0;
  EXPECT_EQ(cancelled, 10) << "tasks still in rank 0 are withdrawn";
  for (int i = 20; i < 30; ++i) {
    EXPECT_TRUE(rs[static_cast<std::size_t>(i)].cancelled());
    EXPECT_THROW((void)rs[static_cast<std::size_t>(i)].result(1s), mproc::CancelledError);
  }
  std::size_t done = 0;
  for (const auto& f : mproc::as_completed(std::span(rs.data(), 20), 60s)) {
    EXPECT_EQ(f.result(), 100);
    ++done;
  }
  EXPECT_EQ(done, 20u);
  // A task running on a rank: cancel() says no, kill_running kills its worker there.
  auto forever = pool.submit(sleep_ms, 600000);
  ASSERT_TRUE(eventually([&] { return forever.running(); }));
  EXPECT_FALSE(forever.cancel());
  EXPECT_TRUE(forever.cancel(mproc::CancelMode::kill_running));
  EXPECT_TRUE(forever.cancelled());
  EXPECT_THROW((void)forever.result(30s), mproc::CancelledError);
  EXPECT_EQ(pool.apply(square, 4), 16);
  pool.close();
  pool.join();
}

TEST(MpiPool, WaitFirstCompleted) {
  mproc::mpi::Pool pool;
  std::vector<AsyncResult<int>> rs{pool.submit(sleep_ms, 5000), pool.submit(sleep_ms, 1)};
  auto [done, not_done] = mproc::wait(rs, 30s, mproc::FIRST_COMPLETED);
  ASSERT_GE(done.size(), 1u);
  EXPECT_EQ(done.front().result(), 1);
  pool.terminate();
}

TEST(MpiPool, LargeArgumentsAndResultsTravelInPieces) {
  // Pieces of 1 MiB: every message here is several.
  mproc::mpi::Pool pool({}, {.rank0_works = false, .piece_bytes = std::size_t{1} << 20});
  const std::vector<std::uint8_t> big = pattern((std::size_t{5} << 20) + 3);
  std::vector<AsyncResult<std::tuple<std::uint64_t, std::uint64_t, int>>> rs;
  for (int i = 0; i < 4; ++i) rs.push_back(pool.apply_async(digest, big));
  for (auto& r : rs) {
    const auto [size, sum, rank] = r.get(60s);
    EXPECT_EQ(size, big.size());
    EXPECT_EQ(sum, digest_of(big));
    EXPECT_TRUE(rank == 1 || rank == 2) << rank;
  }
  const auto [bytes, rank] = pool.apply(make_large, (std::size_t{6} << 20) + 11);
  EXPECT_TRUE(rank == 1 || rank == 2) << rank;
  EXPECT_EQ(bytes, pattern((std::size_t{6} << 20) + 11));
  pool.close();
  pool.join();
}

TEST(MpiPool, ArgumentAboveTwoGiBReachesAnotherRank) {
  const std::size_t n = (std::size_t{1} << 31) + 17;
  if (available_memory() < (std::size_t{20} << 30))
    GTEST_SKIP() << "needs 20 GiB available (the message is copied on both ranks and into the "
                    "worker); the pieces are tested with a lowered limit above";
  mproc::mpi::Pool pool({.processes = 1}, {.rank0_works = false});
  std::vector<std::uint8_t> big(n, 1);
  big[n - 1] = 9;
  const auto [size, sum, rank] = pool.apply(digest, big);
  EXPECT_EQ(size, n);
  EXPECT_EQ(sum, digest_of(big));
  EXPECT_TRUE(rank == 1 || rank == 2) << rank;
}

TEST(MpiPool, InitializerRunsInEveryWorkerOfEveryRank) {
  mproc::mpi::Pool pool({.initializer = initialise});
  const std::vector<int> v = pool.map(initialised, std::views::iota(0, 60), {.chunksize = 1});
  for (int x : v) EXPECT_EQ(x, 4242);
}

TEST(MpiPool, WhatCannotTravelIsAValueError) {
  mproc::mpi::Pool pool;
  mproc::Queue<int> q;
  EXPECT_THROW((void)pool.apply(uses_queue, q), mproc::ValueError);
  const int k = 3;
  EXPECT_THROW((void)pool.apply([k](int x) { return x + k; }, 1), mproc::ValueError);
  EXPECT_THROW(mproc::mpi::Pool({}, {.window = -1}), mproc::ValueError);
  EXPECT_THROW(mproc::mpi::Pool({.start_method = mproc::StartMethod::spawn}), mproc::ValueError);
  EXPECT_EQ(pool.apply(square, 2), 4) << "the pool is unharmed";
}

TEST(MpiPool, OnePoolAtATimeThenTheNext) {
  {
    mproc::mpi::Pool pool;
    EXPECT_THROW(mproc::mpi::Pool second, mproc::ProcessError);
    EXPECT_EQ(pool.apply(square, 5), 25);
  }
  for (int round = 0; round < 3; ++round) {
    mproc::mpi::Pool pool({.processes = 1});
    EXPECT_EQ(pool.workers_per_rank(), (std::vector<int>{1, 1, 1}));
    EXPECT_EQ(pool.map(square, std::vector<int>{round}), (std::vector<int>{round * round}));
  }
}

TEST(MpiPool, TerminateFailsWhatIsUnfinished) {
  mproc::mpi::Pool pool;
  std::vector<AsyncResult<int>> rs;
  for (int i = 0; i < 20; ++i) rs.push_back(pool.submit(sleep_ms, 60000));
  ASSERT_TRUE(eventually([&] { return rs[0].running(); }));
  pool.terminate();
  for (auto& r : rs) EXPECT_THROW((void)r.result(10s), mproc::BrokenPool);
  EXPECT_THROW((void)pool.apply(square, 1), mproc::ValueError);
}

int half_slow(int x) {
  if (x % 8 >= 4) std::this_thread::sleep_for(60s);
  return x;
}

TEST(MpiPool, TerminateDuringChunksGivesEachElementOneOutcome) {
  mproc::mpi::Pool pool;
  std::vector<int> got;
  bool broken = false;
  auto it = pool.imap(half_slow, std::views::iota(0, 48), {.chunksize = 8});
  std::thread stopper([&] {
    std::this_thread::sleep_for(500ms);
    pool.terminate();
  });
  try {
    for (int v : it) got.push_back(v);
  } catch (const mproc::BrokenPool&) {
    broken = true;
  }
  stopper.join();
  EXPECT_TRUE(broken);
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], static_cast<int>(i));
  EXPECT_LT(got.size(), 48u);
}

}  // namespace
