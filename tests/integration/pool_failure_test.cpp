// Pool under failure: workers that die mid-task, initializers that fail, and no process left
// behind.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mproc/pool.hpp>
#include <optional>
#include <random>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "helpers/child.hpp"
#include "helpers/count_range.hpp"
#include "helpers/proc_state.hpp"
#include "helpers/shared_page.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_test::eventually;
using mproc_test::running;
using mproc_test::SharedPage;

struct Board {
  std::atomic<int> victim_pid{0};
  std::atomic<int> init_calls{0};
  std::atomic<int> runs[2048];
  std::atomic<int> pids[64];
};

// What a task submitted to a pool whose initializer fails gets: the failure may reach the pool
// before or after the submission, and either way it is BrokenPool.
std::string broken_message(mproc::Pool& pool) {
  try {
    (void)pool.apply_async([] { return 1; }).get(30s);
  } catch (const mproc::BrokenPool& e) {
    return e.what();
  }
  ADD_FAILURE() << "no BrokenPool";
  return "";
}

std::string message_of(const mproc::AsyncResult<int>& r) {
  try {
    (void)r.get(30s);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(PoolFailure, WorkerKilledMidTaskFailsExactlyThatTask) {
  SharedPage<Board> board;
  Board* b = &*board;
  mproc::Pool pool(3);
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 60; ++i)
    rs.push_back(pool.apply_async(
        [b](int x) {
          if (x == 13) {
            b->victim_pid = static_cast<int>(getpid());
            std::this_thread::sleep_for(std::chrono::seconds(60));
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          return x;
        },
        i));
  ASSERT_TRUE(eventually([&] { return b->victim_pid.load() != 0; }));
  const int victim = b->victim_pid.load();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  for (int i = 0; i < 60; ++i) {
    auto& r = rs[static_cast<std::size_t>(i)];
    if (i == 13) {
      try {
        (void)r.get(30s);
        FAIL() << "the killed task succeeded";
      } catch (const mproc::WorkerLost& e) {
        EXPECT_EQ(e.pid(), victim);
        EXPECT_EQ(e.exitcode(), -9);
        // The 14th task submitted to this pool; an apply task has a number, no input position.
        EXPECT_EQ(e.task(), std::optional<std::uint64_t>(14));
        EXPECT_FALSE(e.position().has_value());
        EXPECT_EQ(std::string(e.what()), "mproc::Pool: worker " + std::to_string(victim) +
                                             " died (killed by signal 9 (SIGKILL)) while running "
                                             "task 14");
      }
    } else {
      EXPECT_EQ(r.get(30s), i);
    }
  }
  // The pool keeps serving, with a replacement worker.
  auto out = pool.map([](int x) { return x * 2; }, mproc_test::count(0, 100), 1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(out[static_cast<std::size_t>(i)], 2 * i);
}

// Large arguments travel in memfds whose descriptors follow the task over the slot's socket. A
// worker killed with such tasks queued leaves descriptors behind in that socket; its replacement
// must skip them and still get each task's own bytes.
TEST(PoolFailure, LargeArgumentsSurviveAWorkerKilledWithThemQueued) {
  SharedPage<Board> board;
  Board* b = &*board;
  mproc::Pool pool(1);  // one slot: every task goes through the same socket
  auto sum = [b](std::vector<std::uint32_t> v, int id) {
    if (id == 0) {
      b->victim_pid = static_cast<int>(getpid());
      std::this_thread::sleep_for(std::chrono::seconds(60));
    }
    std::uint64_t s = 0;
    for (auto x : v) s += x;
    return s + static_cast<unsigned long long>(id) * 1000000000000ULL;
  };
  auto big = [](std::uint32_t seed) {  // 2 MiB, well above a mailbox message
    std::vector<std::uint32_t> v(512 * 1024);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = seed + static_cast<std::uint32_t>(i % 7);
    return v;
  };
  auto expect = [&](std::uint32_t seed, int id) {
    std::uint64_t s = 0;
    for (auto x : big(seed)) s += x;
    return s + static_cast<unsigned long long>(id) * 1000000000000ULL;
  };
  std::vector<mproc::AsyncResult<unsigned long long>> rs;
  for (int id = 0; id < 3; ++id)
    rs.push_back(pool.apply_async(sum, big(static_cast<std::uint32_t>(id)), id));
  ASSERT_TRUE(eventually([&] { return b->victim_pid.load() != 0; }));
  ASSERT_EQ(::kill(b->victim_pid.load(), SIGKILL), 0);
  EXPECT_THROW(rs[0].get(30s), mproc::WorkerLost);
  EXPECT_EQ(rs[1].get(30s), expect(1, 1));
  EXPECT_EQ(rs[2].get(30s), expect(2, 2));
  for (int id = 3; id < 6; ++id)
    EXPECT_EQ(pool.apply(sum, big(static_cast<std::uint32_t>(id)), id),
              expect(static_cast<std::uint32_t>(id), id));
}

TEST(PoolFailure, CrashingTasksFailWithWorkerLostNamingTheCause) {
  mproc::Pool pool(2);
  // Default dispositions first: a sanitizer's own handlers would otherwise turn the signal into
  // a report and an exit code.
  auto segv = pool.apply_async([] {
    ::signal(SIGSEGV, SIG_DFL);
    ::raise(SIGSEGV);
    return 0;
  });
  auto abrt = pool.apply_async([]() -> int {
    ::signal(SIGABRT, SIG_DFL);
    std::abort();
  });
  auto exit3 = pool.apply_async([]() -> int { ::_exit(3); });
  std::vector<mproc::AsyncResult<int>> fine;
  for (int i = 0; i < 30; ++i) fine.push_back(pool.apply_async([](int x) { return x + 1; }, i));
  EXPECT_NE(message_of(segv).find("killed by signal 11 (SIGSEGV)) while running task 1"),
            std::string::npos)
      << message_of(segv);
  EXPECT_NE(message_of(abrt).find("killed by signal 6 (SIGABRT)"), std::string::npos);
  EXPECT_NE(message_of(exit3).find("(exited with code 3) while running task 3"), std::string::npos);
  EXPECT_THROW((void)segv.get(), mproc::WorkerLost);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(fine[static_cast<std::size_t>(i)].get(30s), i + 1);
  EXPECT_EQ(pool.apply([] { return 5; }), 5);
}

TEST(PoolFailure, RepeatedKillsNeverLoseOrDuplicateATask) {
  SharedPage<Board> board;
  Board* b = &*board;
  constexpr int kTasks = 2000;
  mproc::Pool pool(4);
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < kTasks; ++i)
    rs.push_back(pool.apply_async(
        [b](int x) {
          b->runs[x].fetch_add(1);
          b->pids[x % 64] = static_cast<int>(getpid());
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          return x;
        },
        i));
  std::mt19937 rng(12345);
  for (int k = 0; k < 15; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10 + rng() % 20));
    int pid = b->pids[rng() % 64].load();
    if (pid > 0) ::kill(pid, SIGKILL);
  }
  int ok = 0, lost = 0;
  for (int i = 0; i < kTasks; ++i) {
    auto& r = rs[static_cast<std::size_t>(i)];
    try {
      EXPECT_EQ(r.get(60s), i);
      EXPECT_EQ(b->runs[i].load(), 1) << "task " << i;
      ++ok;
    } catch (const mproc::WorkerLost&) {
      EXPECT_LE(b->runs[i].load(), 1) << "task " << i;
      ++lost;
    }
  }
  EXPECT_EQ(ok + lost, kTasks);
  std::printf("ok %d lost %d\n", ok, lost);
  EXPECT_LE(lost, 15);
  EXPECT_EQ(pool.apply([] { return 1; }), 1);
}

TEST(PoolFailure, InitializerThatThrowsBreaksThePool) {
  SharedPage<Board> board;
  Board* b = &*board;
  mproc::Pool pool({.processes = 2, .initializer = [b] {
                      b->init_calls.fetch_add(1);
                      throw std::runtime_error("no database");
                    }});
  const std::string message = broken_message(pool);
  EXPECT_NE(message.find("failed in the initializer: std::runtime_error: no database"),
            std::string::npos)
      << message;
  EXPECT_THROW(pool.apply_async([] { return 1; }), mproc::BrokenPool);
  std::this_thread::sleep_for(100ms);
  EXPECT_LE(b->init_calls.load(), 2);  // not respawned
  pool.close();
  pool.join();
}

TEST(PoolFailure, InitializerThatCrashesBreaksThePool) {
  mproc::Pool pool({.processes = 2, .initializer = [] { std::abort(); }});
  const std::string message = broken_message(pool);
  EXPECT_NE(message.find("died before its initializer finished (killed by signal 6"),
            std::string::npos)
      << message;
}

int worker_pid() {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return static_cast<int>(getpid());
}

std::set<int> worker_pids(mproc::Pool& pool) {
  std::set<int> pids;
  for (int p : pool.map([](int) { return worker_pid(); }, mproc_test::count(0, 16), 1))
    pids.insert(p);
  return pids;
}

TEST(PoolFailure, NothingLeftAfterJoinTerminateOrDestruction) {
  ASSERT_TRUE(mproc_test::children_of(getpid()).empty());
  std::set<int> pids;
  {
    mproc::Pool pool(2);
    pids = worker_pids(pool);
    pool.close();
    pool.join();
    EXPECT_TRUE(mproc_test::children_of(getpid()).empty());
  }
  {
    mproc::Pool pool(2);
    auto more = worker_pids(pool);
    pids.insert(more.begin(), more.end());
    (void)pool.apply_async([]() -> int {
      std::this_thread::sleep_for(60s);
      return 0;
    });
    pool.terminate();
    EXPECT_TRUE(mproc_test::children_of(getpid()).empty());
  }
  {
    mproc::Pool pool(2);
    auto more = worker_pids(pool);
    pids.insert(more.begin(), more.end());
  }
  EXPECT_TRUE(mproc_test::children_of(getpid()).empty());
  ASSERT_FALSE(pids.empty());
  for (int pid : pids) EXPECT_FALSE(running(pid)) << pid;
}

TEST(PoolFailure, WorkersDieWhenTheParentIsKilled) {
  SharedPage<Board> board;
  Board* b = &*board;
  mproc_test::Child parent([b] {
    mproc::Pool pool(3);
    auto pids = worker_pids(pool);
    int i = 0;
    for (int p : pids) b->pids[i++] = p;
    b->victim_pid = static_cast<int>(pids.size());
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return b->victim_pid.load() != 0; }));
  parent.kill(SIGKILL);
  EXPECT_EQ(parent.wait(), -9);
  for (int i = 0; i < b->victim_pid.load(); ++i) {
    int pid = b->pids[i].load();
    EXPECT_TRUE(eventually([&] { return !running(pid); })) << pid;
  }
}

}  // namespace
