// A Pool worker's identity and state: mproc::worker_id() (the slot, kept by a replacement; empty
// outside a worker), the exit hook PoolOptions::worker_exit and Pool::exit_results() (runs when a
// worker leaves normally, also under spawn and forkserver; not when it is killed; a throwing hook
// is a RemoteError), and PoolOptions::daemon = false (a task may start a Process or a Pool; they
// die with the pool). Every multi-process wait is bounded.
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <mproc/pool.hpp>
#include <mproc/process.hpp>
#include <mproc/shared_memory.hpp>
#include <mproc/start_method.hpp>
#include <mproc/sync.hpp>
#include <mproc/worker.hpp>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "helpers/sanitizer.hpp"
#include "helpers/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using mproc::StartMethod;
using mproc_test::Watchdog;

int slot_of(int) { return mproc::worker_id().value_or(-100); }

std::pair<int, int> slot_and_pid(int) {
  return {mproc::worker_id().value_or(-100), static_cast<int>(::getpid())};
}

// Tasks run by this worker process (each worker is a new process: it starts at 0).
int g_runs = 0;
int counted(int x) {
  ++g_runs;
  return x;
}
int runs_so_far() { return g_runs; }
int slot_times_1000_plus_runs() { return mproc::worker_id().value_or(-100) * 1000 + g_runs; }
int hook_throws() { throw std::runtime_error("exit hook failed on purpose"); }

// In a Process that a task starts: 1 when worker_id() is empty there (it is no worker).
int child_worker_id_empty() { return mproc::worker_id().has_value() ? 2 : 1; }
int child_exit_code_of_worker_id(int) {
  mproc::Process p(child_worker_id_empty);
  p.start();
  p.join();
  return p.exitcode().value_or(-1);
}

int square(int x) { return x * x; }
int nested_sum(int n) {
  mproc::Pool inner(2);
  std::vector<int> xs(static_cast<std::size_t>(n));
  std::iota(xs.begin(), xs.end(), 0);
  const std::vector<int> sq = inner.map(square, xs);
  return std::accumulate(sq.begin(), sq.end(), 0);
}

[[noreturn]] void sleep_forever() {
  for (;;) ::pause();
}
// Starts a Process that sleeps, and returns its pid (the Process is not joined).
int start_sleeper(int) {
  mproc::Process p(sleep_forever);
  p.start();
  return p.pid().value_or(-1);
}

// As start_sleeper, with the start method `method`.
int start_sleeper_by(StartMethod method) {
  mproc::Process p({.start_method = method}, sleep_forever);
  p.start();
  return p.pid().value_or(-1);
}

// A Pool inside the task whose worker publishes its pid in pids[0] then sleeps; the task blocks.
void publish_pid_and_sleep(mproc::Array<int> pids) {
  pids[0] = static_cast<int>(::getpid());
  sleep_forever();
}
int nested_pool_then_block(mproc::Array<int> pids) {
  mproc::Pool inner(1);
  auto r = inner.apply_async(publish_pid_and_sleep, pids);
  (void)r.wait();
  return 0;
}

// True once process `pid` has ended and been reaped (no /proc entry), or is a zombie.
bool gone(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}
bool gone_within(int pid, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (gone(pid)) return true;
    std::this_thread::sleep_for(2ms);
  }
  return gone(pid);
}

struct MethodName {
  std::string operator()(const ::testing::TestParamInfo<StartMethod>& p) const {
    return std::string(mproc::start_method_name(p.param));
  }
};

TEST(WorkerId, IsEmptyOutsideAWorker) { EXPECT_FALSE(mproc::worker_id().has_value()); }

TEST(WorkerId, IsTheSlotInsideTasks) {
  Watchdog dog;
  mproc::Pool pool(3);
  std::vector<int> xs(60);
  const std::vector<int> slots = pool.map(slot_of, xs, 1);
  for (int s : slots) {
    EXPECT_GE(s, 0);
    EXPECT_LT(s, 3);
  }
  EXPECT_FALSE(mproc::worker_id().has_value());
}

TEST(WorkerId, ReplacementTakesTheSlotOfTheWorkerItReplaces) {
  Watchdog dog;
  // One task per worker: every task runs in a new worker, each in slot 0 or 1.
  mproc::Pool pool({.processes = 2, .maxtasksperchild = 1});
  std::vector<int> xs(12);
  const auto got = pool.map(slot_and_pid, xs, 1);
  std::set<int> pids;
  for (const auto& [slot, pid] : got) {
    EXPECT_TRUE(slot == 0 || slot == 1) << slot;
    pids.insert(pid);
  }
  EXPECT_EQ(pids.size(), 12u);
}

TEST(WorkerId, IsEmptyInAProcessStartedByATask) {
  Watchdog dog;
  mproc::Pool pool({.processes = 1, .daemon = false});
  EXPECT_EQ(pool.apply(child_exit_code_of_worker_id, 0), 1);
}

class WorkerExitMethods : public ::testing::TestWithParam<StartMethod> {};

TEST_P(WorkerExitMethods, EachWorkerLeavingAtJoinReportsItsValue) {
  Watchdog dog;
  mproc::Pool pool(
      {.processes = 2, .start_method = GetParam(), .worker_exit = slot_times_1000_plus_runs});
  std::vector<int> xs(40);
  std::iota(xs.begin(), xs.end(), 0);
  EXPECT_EQ(pool.map(counted, xs, 1), xs);
  pool.close();
  pool.join();
  std::vector<int> values = pool.exit_results<int>();
  ASSERT_EQ(values.size(), 2u);
  std::sort(values.begin(), values.end());
  int runs = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(values[i] / 1000, static_cast<int>(i));  // slots 0 and 1
    runs += values[i] % 1000;
  }
  EXPECT_EQ(runs, 40);
}

INSTANTIATE_TEST_SUITE_P(, WorkerExitMethods,
                         ::testing::Values(StartMethod::fork, StartMethod::spawn,
                                           StartMethod::forkserver),
                         MethodName{});

TEST(WorkerExit, RunsInEachWorkerThatReachesMaxtasksperchild) {
  Watchdog dog;
  mproc::Pool pool({.processes = 1, .maxtasksperchild = 2, .worker_exit = runs_so_far});
  // Two workers leave after 2 tasks each; the third, which ran the fifth task, at join.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(pool.apply(counted, i), i);
  pool.shutdown();  // close + join
  std::vector<int> values = pool.exit_results<int>();
  std::sort(values.begin(), values.end());
  EXPECT_EQ(values, (std::vector<int>{1, 2, 2}));
}

TEST(WorkerExit, DoesNotRunInAKilledWorker) {
  Watchdog dog;
  mproc::Pool pool({.processes = 2, .worker_exit = runs_so_far});
  EXPECT_EQ(pool.apply(counted, 5), 5);
  pool.terminate();
  EXPECT_TRUE(pool.exit_results<int>().empty());
}

TEST(WorkerExit, AHookThatThrowsIsARemoteError) {
  Watchdog dog;
  mproc::Pool pool({.processes = 1, .worker_exit = hook_throws});
  EXPECT_EQ(pool.apply(counted, 1), 1);
  pool.close();
  pool.join();
  try {
    (void)pool.exit_results<int>();
    FAIL() << "no exception";
  } catch (const mproc::RemoteError& e) {
    EXPECT_EQ(e.type_name(), "std::runtime_error");
    EXPECT_EQ(e.remote_what(), "exit hook failed on purpose");
  }
}

TEST(WorkerExit, AHookThatCannotTravelIsAValueErrorUnderSpawn) {
  std::string label = "x";
  auto capturing = [label] { return label.size(); };
  try {
    mproc::Pool pool(
        {.processes = 1, .start_method = StartMethod::spawn, .worker_exit = capturing});
    FAIL() << "no exception";
  } catch (const mproc::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("the worker_exit hook"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mproc::partial"), std::string::npos) << e.what();
  }
}

TEST(PoolDaemon, ADaemonicWorkerCannotStartAProcess) {
  Watchdog dog;
  mproc::Pool pool(1);
  try {
    (void)pool.apply(start_sleeper, 0);
    FAIL() << "no exception";
  } catch (const mproc::RemoteError& e) {
    EXPECT_EQ(e.type_name(), "mproc::ProcessError");
    EXPECT_EQ(e.remote_what(), "daemonic processes are not allowed to have children");
  }
}

class PoolDaemonMethods : public ::testing::TestWithParam<StartMethod> {};

// ThreadSanitizer does not let a process start threads when it descends from a fork of a
// multi-threaded process (the test binary is one), and a nested Pool starts its result thread in
// a fork-method worker: those cases run in the other builds (spawn and forkserver workers are
// fresh images, which TSan allows).
#define SKIP_NESTED_POOL_IN_A_FORK_UNDER_TSAN(method)                \
  if (mproc_test::kThreadSanitized && (method) == StartMethod::fork) \
  GTEST_SKIP() << "ThreadSanitizer: no thread in a process forked from a multi-threaded one"

TEST_P(PoolDaemonMethods, ANonDaemonicWorkerRunsANestedPool) {
  SKIP_NESTED_POOL_IN_A_FORK_UNDER_TSAN(GetParam());
  Watchdog dog;
  mproc::Pool pool({.processes = 2, .start_method = GetParam(), .daemon = false});
  auto a = pool.apply_async(nested_sum, 10);
  auto b = pool.apply_async(nested_sum, 5);
  EXPECT_EQ(a.get(60s), 285);
  EXPECT_EQ(b.get(60s), 30);
}

TEST(PoolDaemon, AProcessStartedByATaskDiesWhenThePoolIsTerminated) {
  Watchdog dog;
  mproc::Pool pool({.processes = 1, .daemon = false});
  const int pid = pool.apply(start_sleeper, 0);
  ASSERT_GT(pid, 0);
  EXPECT_FALSE(gone(pid));
  pool.terminate();
  EXPECT_TRUE(gone_within(pid, 20s)) << "process " << pid << " outlived the pool";
}

TEST_P(PoolDaemonMethods, AProcessOfEachStartMethodDiesWhenThePoolIsTerminated) {
  Watchdog dog;
  mproc::Pool pool({.processes = 1, .daemon = false});
  const int pid = pool.apply(start_sleeper_by, GetParam());
  ASSERT_GT(pid, 0);
  EXPECT_FALSE(gone(pid));
  pool.terminate();
  EXPECT_TRUE(gone_within(pid, 20s)) << "process " << pid << " outlived the pool";
}

TEST(PoolDaemon, ANestedPoolsWorkerDiesWhenThePoolIsTerminated) {
  SKIP_NESTED_POOL_IN_A_FORK_UNDER_TSAN(StartMethod::fork);
  Watchdog dog;
  mproc::Array<int> pids(1);
  mproc::Pool pool({.processes = 1, .daemon = false});
  auto r = pool.apply_async(nested_pool_then_block, pids);
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (pids[0] == 0 && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(2ms);
  const int pid = pids[0];
  ASSERT_GT(pid, 0) << "the nested pool's worker never ran";
  pool.terminate();
  EXPECT_THROW((void)r.get(10s), mproc::BrokenPool);
  EXPECT_TRUE(gone_within(pid, 20s)) << "nested worker " << pid << " outlived the pool";
}

INSTANTIATE_TEST_SUITE_P(, PoolDaemonMethods,
                         ::testing::Values(StartMethod::fork, StartMethod::spawn,
                                           StartMethod::forkserver),
                         MethodName{});

}  // namespace
