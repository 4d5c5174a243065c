// Pool futures: cancel (queued, in a worker's mailbox, running with kill_running), cancelled,
// running, done, exception, add_done_callback, successful's InvalidStateError, shutdown with
// cancel_futures, and mproc::as_completed / mproc::wait over results of two pools. Tasks wait on
// Events the test sets, so that what is running, queued or done is known, never timed; each task
// counts its runs in a shared Array, so "never ran" and "ran once" are checked.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <mproc/futures.hpp>
#include <mproc/pool.hpp>
#include <mproc/shared_memory.hpp>
#include <mproc/sync.hpp>
#include <numeric>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "helpers/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using mproc::AsyncResult;
using mproc::CancelMode;
using mproc_test::Watchdog;

// Counts its run in runs[i], waits for `gate`, returns i.
int gated(mproc::Array<int> runs, int i, mproc::Event gate) {
  std::atomic_ref<int>(runs[static_cast<std::size_t>(i)]).fetch_add(1);
  gate.wait();
  return i;
}

int counted(mproc::Array<int> runs, int i) {
  std::atomic_ref<int>(runs[static_cast<std::size_t>(i)]).fetch_add(1);
  return i;
}

int fail_on(int i, int bad) {
  if (i == bad) throw std::runtime_error("bad " + std::to_string(i));
  return i;
}

int forever(mproc::Array<int> runs, int i) {
  std::atomic_ref<int>(runs[static_cast<std::size_t>(i)]).fetch_add(1);
  for (;;) std::this_thread::sleep_for(1h);
}

template <class F>
bool eventually(F f, std::chrono::seconds limit = 30s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return f();
}

template <class R>
std::string error_of(const AsyncResult<R>& r) {
  try {
    (void)r.get(30s);
  } catch (const mproc::CancelledError& e) {
    return std::string("CancelledError: ") + e.what();
  } catch (const mproc::TaskTimeout& e) {
    return std::string("TaskTimeout: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("other: ") + e.what();
  }
  return "none";
}

TEST(PoolFutures, QueuedTasksCancelledNeverRunAndTheOthersDo) {
  Watchdog dog;
  mproc::Pool pool(1);
  mproc::Array<int> runs(8);
  mproc::Event gate;
  std::vector<AsyncResult<int>> rs;
  rs.push_back(pool.submit(gated, runs, 0, gate));
  ASSERT_TRUE(eventually([&] { return rs[0].running(); }));
  for (int i = 1; i < 8; ++i) rs.push_back(pool.submit(counted, runs, i));
  // Task 1 waits in the worker's mailbox, the rest in the parent: both kinds are withdrawn.
  for (int i : {1, 3, 5, 6}) {
    EXPECT_TRUE(rs[static_cast<std::size_t>(i)].cancel()) << i;
    EXPECT_TRUE(rs[static_cast<std::size_t>(i)].cancelled()) << i;
    EXPECT_TRUE(rs[static_cast<std::size_t>(i)].done()) << i;
    EXPECT_FALSE(rs[static_cast<std::size_t>(i)].running()) << i;
    EXPECT_TRUE(rs[static_cast<std::size_t>(i)].cancel()) << "cancelling again says cancelled";
  }
  EXPECT_FALSE(rs[0].cancel()) << "a running task is not cancelled by default";
  EXPECT_TRUE(rs[0].running());
  gate.set();
  for (int i : {0, 2, 4, 7}) EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(30s), i);
  for (int i : {1, 3, 5, 6}) {
    EXPECT_EQ(error_of(rs[static_cast<std::size_t>(i)]),
              "CancelledError: mproc::Pool: the task was cancelled");
    EXPECT_THROW((void)rs[static_cast<std::size_t>(i)].exception(), mproc::CancelledError);
  }
  pool.close();
  pool.join();
  for (int i = 0; i < 8; ++i) {
    const bool cancelled = i == 1 || i == 3 || i == 5 || i == 6;
    EXPECT_EQ(runs[static_cast<std::size_t>(i)], cancelled ? 0 : 1) << "task " << i;
  }
  EXPECT_FALSE(rs[0].cancel()) << "a done task is not cancelled";
  EXPECT_FALSE(rs[0].cancelled());
  EXPECT_EQ(rs[0].exception(), nullptr);
  EXPECT_EQ(pool.unfinished(), 0u);
}

TEST(PoolFutures, RunningTaskKilledOnRequestFailsAloneAndItsMailboxNeighbourRuns) {
  Watchdog dog;
  mproc::Pool pool(1);
  mproc::Array<int> runs(4);
  auto stuck = pool.submit(forever, runs, 0);
  ASSERT_TRUE(eventually([&] { return stuck.running() && runs[0] == 1; }));
  auto next = pool.submit(counted, runs, 1);  // waits in the same worker's mailbox
  auto later = pool.submit(counted, runs, 2);
  EXPECT_FALSE(stuck.cancel());
  EXPECT_TRUE(stuck.cancel(CancelMode::kill_running));
  EXPECT_TRUE(stuck.cancelled());
  EXPECT_EQ(error_of(stuck), "CancelledError: mproc::Pool: the task was cancelled");
  EXPECT_EQ(next.get(30s), 1);
  EXPECT_EQ(later.get(30s), 2);
  EXPECT_EQ(pool.apply(counted, runs, 3), 3) << "the replacement worker takes tasks";
  pool.close();
  pool.join();
  EXPECT_EQ(runs[0], 1);
  EXPECT_EQ(runs[1], 1) << "the task queued behind the killed one ran once";
  EXPECT_EQ(runs[2], 1);
  EXPECT_EQ(runs[3], 1);
}

TEST(PoolFutures, DoneCallbacksRunOnceAfterAndAtOnceWhenDone) {
  Watchdog dog;
  mproc::Pool pool(1);
  mproc::Array<int> runs(3);
  mproc::Event gate;
  auto r = pool.submit(gated, runs, 0, gate);
  std::atomic<int> calls{0};
  std::atomic<int> seen{-1};
  r.add_done_callback([&](const AsyncResult<int>& f) {
    seen = f.get();
    ++calls;
  });
  r.add_done_callback([&] { ++calls; });
  EXPECT_EQ(calls.load(), 0);
  gate.set();
  EXPECT_EQ(r.get(30s), 0);
  ASSERT_TRUE(eventually([&] { return calls.load() == 2; }));
  EXPECT_EQ(seen.load(), 0);
  // Done already: runs at once, on this thread.
  const auto me = std::this_thread::get_id();
  std::thread::id ran_on;
  r.add_done_callback([&](const AsyncResult<int>&) { ran_on = std::this_thread::get_id(); });
  EXPECT_EQ(ran_on, me);
  // A cancel completes the result: its callbacks run (on this thread or the result thread).
  mproc::Event gate2;
  auto busy = pool.submit(gated, runs, 1, gate2);
  auto queued = pool.submit(counted, runs, 2);
  std::atomic<int> cancel_calls{0};
  queued.add_done_callback([&](const AsyncResult<int>& f) {
    if (f.cancelled()) ++cancel_calls;
  });
  EXPECT_TRUE(queued.cancel());
  EXPECT_TRUE(queued.done());
  ASSERT_TRUE(eventually([&] { return cancel_calls.load() == 1; }));
  gate2.set();
  EXPECT_EQ(busy.get(30s), 1);
  // An exception thrown by a callback is dropped.
  r.add_done_callback([] { throw std::runtime_error("dropped"); });
}

TEST(PoolFutures, SuccessfulBeforeDoneIsInvalidStateErrorAndAValueError) {
  Watchdog dog;
  mproc::Pool pool(1);
  mproc::Array<int> runs(1);
  mproc::Event gate;
  auto r = pool.submit(gated, runs, 0, gate);
  EXPECT_THROW((void)r.successful(), mproc::InvalidStateError);
  EXPECT_THROW((void)r.successful(), mproc::ValueError);
  EXPECT_THROW((void)r.exception(10ms), mproc::TimeoutError);
  gate.set();
  EXPECT_EQ(r.result(30s), 0);
  EXPECT_TRUE(r.successful());
}

TEST(PoolFutures, ExceptionReturnsTheErrorWithoutThrowingIt) {
  Watchdog dog;
  mproc::Pool pool(1);
  auto bad = pool.submit(fail_on, 3, 3);
  std::exception_ptr e = bad.exception(30s);
  ASSERT_NE(e, nullptr);
  EXPECT_THROW(std::rethrow_exception(e), mproc::RemoteError);
  EXPECT_EQ(pool.submit(fail_on, 1, 3).exception(30s), nullptr);
}

TEST(PoolFutures, ShutdownWithCancelFuturesWithdrawsWhatHasNotStarted) {
  Watchdog dog;
  mproc::Pool pool(1);
  mproc::Array<int> runs(6);
  mproc::Event gate;
  auto first = pool.submit(gated, runs, 0, gate);
  ASSERT_TRUE(eventually([&] { return first.running(); }));
  std::vector<AsyncResult<int>> rest;
  for (int i = 1; i < 6; ++i) rest.push_back(pool.submit(counted, runs, i));
  std::thread opener([&] {
    std::this_thread::sleep_for(50ms);
    gate.set();
  });
  pool.shutdown(/*wait=*/true, /*cancel_futures=*/true);
  opener.join();
  EXPECT_EQ(first.get(0s), 0);
  for (auto& r : rest) {
    EXPECT_TRUE(r.cancelled());
    EXPECT_EQ(error_of(r), "CancelledError: mproc::Pool: the task was cancelled");
  }
  for (int i = 1; i < 6; ++i) EXPECT_EQ(runs[static_cast<std::size_t>(i)], 0);
  EXPECT_THROW(pool.submit(counted, runs, 0), mproc::ValueError);
}

TEST(PoolFutures, ShutdownWithoutWaitReturnsAndTheTasksStillFinish) {
  Watchdog dog;
  mproc::Array<int> runs(4);
  std::vector<AsyncResult<int>> rs;
  {
    mproc::Pool pool(2);
    for (int i = 0; i < 4; ++i) rs.push_back(pool.submit(counted, runs, i));
    pool.shutdown(/*wait=*/false);
    EXPECT_THROW(pool.submit(counted, runs, 0), mproc::ValueError);
  }
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(0s), i);
}

TEST(PoolFutures, MapAsyncCancelWithdrawsTheChunksNotStarted) {
  Watchdog dog;
  mproc::Pool pool(1);
  mproc::Array<int> runs(1);
  mproc::Event gate;
  auto busy = pool.submit(gated, runs, 0, gate);
  ASSERT_TRUE(eventually([&] { return busy.running(); }));
  std::vector<int> xs(100);
  std::iota(xs.begin(), xs.end(), 0);
  auto m = pool.map_async([](int x) { return x * 2; }, xs, mproc::MapOptions{.chunksize = 10});
  EXPECT_FALSE(m.running());
  EXPECT_TRUE(m.cancel());
  EXPECT_TRUE(m.cancelled());
  EXPECT_THROW((void)m.get(0s), mproc::CancelledError);
  gate.set();
  EXPECT_EQ(busy.get(30s), 0);
  pool.close();
  pool.join();
  EXPECT_EQ(pool.unfinished(), 0u);
}

std::size_t byte_sum(const std::vector<unsigned char>& big, mproc::Event gate) {
  gate.wait();
  std::size_t s = 0;
  for (unsigned char c : big) s += c;
  return s;
}

// A task withdrawn from a mailbox leaves its descriptors (a large argument's memfd, a handle's)
// in the slot's descriptor channel: the next task of that worker must not take them for its own.
TEST(PoolFutures, CancelledTasksWithDescriptorsInTheMailboxLeaveTheNextTaskIntact) {
  Watchdog dog;
  mproc::Pool pool(1);
  mproc::Array<int> runs(2);
  mproc::Event gate;
  auto busy = pool.submit(gated, runs, 0, gate);
  ASSERT_TRUE(eventually([&] { return busy.running(); }));
  const std::vector<unsigned char> big1(600 * 1024, 1), big2(700 * 1024, 2);
  mproc::Event open;
  open.set();
  auto doomed = pool.submit(byte_sum, big1, open);  // in the mailbox: memfd + an Event's fd
  auto kept = pool.submit(byte_sum, big2, open);
  EXPECT_TRUE(doomed.cancel());
  gate.set();
  EXPECT_EQ(busy.get(30s), 0);
  EXPECT_EQ(kept.get(30s), 2u * 700 * 1024);
  EXPECT_TRUE(doomed.cancelled());
}

int block_on(std::pair<int, int> x) {  // (value, 1: wait forever)
  if (x.second != 0)
    for (;;) std::this_thread::sleep_for(1h);
  return x.first;
}

TEST(PoolFutures, MapAsyncCancelWithKillRunningStopsItsRunningChunks) {
  Watchdog dog;
  mproc::Pool pool(2);
  std::vector<std::pair<int, int>> xs;
  for (int i = 0; i < 40; ++i) xs.emplace_back(i, 1);
  auto m = pool.map_async(block_on, xs, mproc::MapOptions{.chunksize = 5});
  ASSERT_TRUE(eventually([&] { return m.running(); }));
  EXPECT_FALSE(m.done());
  EXPECT_TRUE(m.cancel(CancelMode::kill_running));
  EXPECT_TRUE(m.cancelled());
  // Both workers were replaced; the pool runs the next work.
  std::vector<std::pair<int, int>> ys;
  for (int i = 0; i < 20; ++i) ys.emplace_back(i, 0);
  const std::vector<int> got = pool.map(block_on, ys);
  ASSERT_EQ(got.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i);
  pool.close();
  pool.join();
  EXPECT_EQ(pool.unfinished(), 0u);
}

TEST(PoolFutures, AsCompletedYieldsInCompletionOrderAcrossTwoPools) {
  Watchdog dog;
  mproc::Pool a(2);
  mproc::Pool b(2);
  mproc::Array<int> runs(4);
  std::vector<mproc::Event> gates(4);
  std::vector<AsyncResult<int>> fs;
  fs.push_back(a.submit(gated, runs, 0, gates[0]));
  fs.push_back(b.submit(gated, runs, 1, gates[1]));
  fs.push_back(a.submit(gated, runs, 2, gates[2]));
  fs.push_back(b.submit(gated, runs, 3, gates[3]));
  const std::vector<int> order = {2, 1, 3, 0};
  std::vector<std::size_t> done_so_far;
  auto progress = [&](std::size_t done, std::optional<std::size_t> total) {
    done_so_far.push_back(done);
    EXPECT_EQ(total, std::optional<std::size_t>(4));
  };
  auto ac = mproc::as_completed(fs, {.progress = progress});
  std::vector<int> got;
  std::size_t k = 0;
  gates[static_cast<std::size_t>(order[k])].set();
  for (const AsyncResult<int>& f : ac) {
    got.push_back(f.get());
    if (++k < order.size()) gates[static_cast<std::size_t>(order[k])].set();
  }
  EXPECT_EQ(got, order);
  EXPECT_EQ(done_so_far, (std::vector<std::size_t>{1, 2, 3, 4}));
}

TEST(PoolFutures, AsCompletedGivesThoseDoneFirstAndTimesOutNamingTheRest) {
  Watchdog dog;
  mproc::Pool pool(2);
  mproc::Array<int> runs(3);
  mproc::Event never;
  auto done = pool.submit(counted, runs, 0);
  done.wait();
  std::vector<AsyncResult<int>> fs = {pool.submit(gated, runs, 1, never), done,
                                      pool.submit(gated, runs, 2, never)};
  auto ac = mproc::as_completed(fs, 50ms);
  auto it = ac.begin();
  EXPECT_EQ(it->get(), 0);
  try {
    ++it;
    FAIL() << "no TimeoutError";
  } catch (const mproc::TimeoutError& e) {
    EXPECT_STREQ(e.what(), "mproc::as_completed: 2 (of 3) futures unfinished");
  }
  never.set();
}

TEST(PoolFutures, WaitReturnsDoneAndNotDoneForEachReturnWhen) {
  Watchdog dog;
  mproc::Pool pool(3);
  mproc::Array<int> runs(4);
  mproc::Event g1, g2;
  std::vector<AsyncResult<int>> fs = {pool.submit(gated, runs, 0, g1),
                                      pool.submit(gated, runs, 1, g2),
                                      pool.submit(counted, runs, 2)};
  auto first = mproc::wait(fs, mproc::FIRST_COMPLETED);
  ASSERT_EQ(first.done.size(), 1u);
  EXPECT_EQ(first.done[0].get(), 2);
  EXPECT_EQ(first.not_done.size(), 2u);
  auto timed = mproc::wait(fs, 20ms, mproc::ALL_COMPLETED);
  EXPECT_EQ(timed.done.size(), 1u);
  EXPECT_EQ(timed.not_done.size(), 2u);
  // FIRST_EXCEPTION: returns at the first failure, with the others still running.
  std::vector<AsyncResult<int>> gs = {pool.submit(fail_on, 7, 7), fs[0]};
  auto fe = mproc::wait(gs, mproc::FIRST_EXCEPTION);
  ASSERT_EQ(fe.done.size(), 1u);
  EXPECT_THROW((void)fe.done[0].get(), mproc::RemoteError);
  ASSERT_EQ(fe.not_done.size(), 1u);
  g1.set();
  g2.set();
  auto all = mproc::wait(fs);
  EXPECT_EQ(all.done.size(), 3u);
  EXPECT_TRUE(all.not_done.empty());
  // FIRST_EXCEPTION without a failure waits for all.
  auto none = mproc::wait(fs, mproc::FIRST_EXCEPTION);
  EXPECT_EQ(none.done.size(), 3u);
  EXPECT_TRUE(mproc::wait(std::vector<AsyncResult<int>>{}).done.empty());
}

std::vector<int> children_of(int pid) {
  std::vector<int> out;
  const std::string path =
      "/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children";
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    int c = 0;
    while (std::fscanf(f, "%d", &c) == 1) out.push_back(c);
    std::fclose(f);
  }
  return out;
}

int square_slowly(int x) {
  std::this_thread::sleep_for(std::chrono::microseconds(300));
  return x * x;
}

// as_completed over the futures of two pools while one pool's workers are killed from outside:
// every future comes out exactly once; the other pool's all succeed; the attacked pool's succeed
// or fail with WorkerLost.
TEST(PoolFutures, AsCompletedOverTwoPoolsWhileOnePoolsWorkersAreKilled) {
  Watchdog dog(std::chrono::seconds(120));
  const std::vector<int> before = children_of(getpid());
  mproc::Pool attacked(2);
  std::vector<int> zygotes;
  for (int c : children_of(getpid()))
    if (std::find(before.begin(), before.end(), c) == before.end()) zygotes.push_back(c);
  ASSERT_EQ(zygotes.size(), 1u);
  mproc::Pool calm(2);
  constexpr int kEach = 300;
  std::vector<AsyncResult<int>> fs;
  for (int i = 0; i < kEach; ++i) {
    fs.push_back(attacked.submit(square_slowly, i));
    fs.push_back(calm.submit(square_slowly, i));
  }
  std::atomic<bool> stop{false};
  std::atomic<int> kills{0};
  std::thread killer([&] {
    std::mt19937 rng(3);
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(3 + rng() % 5));
      const std::vector<int> workers = children_of(zygotes[0]);
      if (!workers.empty() && ::kill(workers[rng() % workers.size()], SIGKILL) == 0) ++kills;
    }
  });
  std::vector<int> seen(fs.size(), 0);
  int lost = 0;
  std::size_t k = 0;
  for (const AsyncResult<int>& f : mproc::as_completed(fs, 60s)) {
    const auto pos = static_cast<std::size_t>(
        std::find_if(fs.begin(), fs.end(),
                     [&](const auto& g) { return &g.wait_state() == &f.wait_state(); }) -
        fs.begin());
    ASSERT_LT(pos, fs.size());
    ++seen[pos];
    const int i = static_cast<int>(pos / 2);
    if (pos % 2 == 1) {
      EXPECT_EQ(f.get(), i * i) << "the calm pool's task " << i;
    } else {
      try {
        EXPECT_EQ(f.get(), i * i);
      } catch (const mproc::WorkerLost&) {
        ++lost;
      }
    }
    ++k;
  }
  stop = true;
  killer.join();
  EXPECT_EQ(k, fs.size());
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 1) << "future " << i;
  EXPECT_GT(kills.load(), 0);
  std::printf("as_completed under kills: %d kills, %d tasks lost\n", kills.load(), lost);
}

// Random cancels (queued and kill_running) while another thread kills workers from outside:
// every task has exactly one outcome; one cancelled while queued never ran; none ran twice.
TEST(PoolFutures, CancelUnderRandomKillsLosesNothingAndRunsNothingTwice) {
  Watchdog dog(std::chrono::seconds(120));
  constexpr int kTasks = 300;
  mproc::Pool pool(2);
  mproc::Array<int> runs(kTasks);
  std::vector<AsyncResult<int>> rs;
  for (int i = 0; i < kTasks; ++i) {
    rs.push_back(pool.submit(
        [](mproc::Array<int> r, int j) {
          std::atomic_ref<int>(r[static_cast<std::size_t>(j)]).fetch_add(1);
          std::this_thread::sleep_for(std::chrono::microseconds(200 + (j % 7) * 100));
          return j;
        },
        runs, i));
  }
  std::atomic<bool> stop{false};
  std::thread killer([&] {
    std::mt19937 rng(7);
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 10));
      // Kill one of the pool's workers: any child of the zygote, a child of ours.
      std::vector<int> workers;
      FILE* f = std::fopen(
          ("/proc/" + std::to_string(getpid()) + "/task/" + std::to_string(getpid()) + "/children")
              .c_str(),
          "r");
      int zygote = 0;
      if (f) {
        while (std::fscanf(f, "%d", &zygote) == 1) {
          FILE* g = std::fopen(
              ("/proc/" + std::to_string(zygote) + "/task/" + std::to_string(zygote) + "/children")
                  .c_str(),
              "r");
          int w = 0;
          if (g) {
            while (std::fscanf(g, "%d", &w) == 1) workers.push_back(w);
            std::fclose(g);
          }
        }
        std::fclose(f);
      }
      if (!workers.empty()) ::kill(workers[rng() % workers.size()], SIGKILL);
    }
  });
  std::mt19937 rng(11);
  std::vector<int> how(kTasks, 0);  // 1: cancel() said yes; 2: cancel(kill_running) said yes
  for (int round = 0; round < kTasks / 3; ++round) {
    const int i = static_cast<int>(rng() % kTasks);
    const bool kill = rng() % 2 == 0;
    if (rs[static_cast<std::size_t>(i)].cancel(kill ? CancelMode::kill_running
                                                    : CancelMode::queued) &&
        how[static_cast<std::size_t>(i)] == 0)
      how[static_cast<std::size_t>(i)] = kill ? 2 : 1;
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  for (auto& r : rs) r.wait();
  stop = true;
  killer.join();
  int cancelled = 0, ok = 0, lost = 0;
  for (int i = 0; i < kTasks; ++i) {
    const auto k = static_cast<std::size_t>(i);
    const int n = runs[k];
    EXPECT_LE(n, 1) << "task " << i << " ran " << n << " times";
    try {
      EXPECT_EQ(rs[k].get(0s), i);
      EXPECT_EQ(how[k], 0) << "task " << i << " was cancelled yet has a value";
      EXPECT_EQ(n, 1);
      ++ok;
    } catch (const mproc::CancelledError&) {
      EXPECT_NE(how[k], 0) << "task " << i << " cancelled without a cancel that said so";
      if (how[k] == 1) {
        EXPECT_EQ(n, 0) << "task " << i << " was cancelled queued but ran";
      }
      ++cancelled;
    } catch (const mproc::WorkerLost&) {
      // Killed from outside while running it (before or after the task counted its run).
      ++lost;
    }
  }
  EXPECT_EQ(ok + cancelled + lost, kTasks);
  EXPECT_GT(cancelled, 0);
  std::printf("tasks %d: ok %d, cancelled %d, lost to kills %d\n", kTasks, ok, cancelled, lost);
  pool.close();
  pool.join();
}

}  // namespace
