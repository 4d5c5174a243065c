// Pool: per-task time limits (PoolOptions::task_timeout, SubmitOptions::timeout,
// MapOptions::timeout) and the initializer's (PoolOptions::initializer_timeout). A task past its
// limit has its worker killed and replaced and fails alone with TaskTimeout naming it and the
// limit; an element past its limit in the middle of a chunk fails alone, the chunk's other
// elements still run once each. No timing is asserted: the tasks that must time out never end,
// and the limits are short only so that the tests are quick.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mproc/partial.hpp>
#include <mproc/pool.hpp>
#include <mproc/shared_memory.hpp>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "helpers/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_test::Watchdog;

int hang_if(mproc::Array<int> runs, int i, int bad) {
  std::atomic_ref<int>(runs[static_cast<std::size_t>(i)]).fetch_add(1);
  if (i == bad)
    for (;;) std::this_thread::sleep_for(1h);
  return i;
}

int hang_on(std::pair<int, int> x) {  // (value, bad)
  if (x.first == x.second)
    for (;;) std::this_thread::sleep_for(1h);
  return x.first * 10;
}

int counted_hang_on(mproc::Array<int> runs, std::pair<int, int> x) {
  std::atomic_ref<int>(runs[static_cast<std::size_t>(x.first)]).fetch_add(1);
  return hang_on(x);
}

void hang_forever() {
  for (;;) std::this_thread::sleep_for(1h);
}

std::string prefix(const std::string& s, std::size_t n) { return s.substr(0, n); }

TEST(PoolTaskTimeout, ATaskPastItsLimitFailsAloneAndThePoolGoesOn) {
  Watchdog dog;
  mproc::Pool pool(1);
  mproc::Array<int> runs(4);
  auto slow = pool.submit(mproc::SubmitOptions{.timeout = 100ms}, hang_if, runs, 0, 0);
  auto after = pool.submit(hang_if, runs, 1, -1);  // waits in the same worker's mailbox
  try {
    (void)slow.get(30s);
    FAIL() << "no TaskTimeout";
  } catch (const mproc::TaskTimeout& e) {
    const std::string what = e.what();
    EXPECT_EQ(prefix(what, 50), "mproc::Pool: task 1 ran past its limit of 0.1 s; i") << what;
    EXPECT_NE(what.find("was killed"), std::string::npos) << what;
    EXPECT_DOUBLE_EQ(e.limit(), 0.1);
    EXPECT_EQ(e.task(), std::optional<std::uint64_t>(1));
    EXPECT_FALSE(e.position());
  }
  EXPECT_EQ(after.get(30s), 1);
  EXPECT_EQ(pool.apply(hang_if, runs, 2, -1), 2);
  pool.close();
  pool.join();
  EXPECT_EQ(runs[0], 1);
  EXPECT_EQ(runs[1], 1);
  EXPECT_EQ(runs[2], 1);
  // A TaskTimeout is a TimeoutError.
  mproc::Pool again({.processes = 1, .task_timeout = 50ms});
  EXPECT_THROW(again.apply(hang_if, runs, 3, 3), mproc::TimeoutError);
}

TEST(PoolTaskTimeout, ThePoolsLimitAppliesToEveryTaskAndACallMayLiftIt) {
  Watchdog dog;
  mproc::Pool pool({.processes = 2, .task_timeout = 100ms});
  mproc::Array<int> runs(8);
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 6; ++i) rs.push_back(pool.submit(hang_if, runs, i, 3));
  for (int i = 0; i < 6; ++i) {
    if (i == 3) {
      EXPECT_THROW((void)rs[3].get(30s), mproc::TaskTimeout);
    } else {
      EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(30s), i);
    }
  }
  // Its own, longer, limit.
  EXPECT_EQ(pool.submit(mproc::SubmitOptions{.timeout = 30s}, hang_if, runs, 7, -1).get(30s), 7);
}

TEST(PoolTaskTimeout, AnElementInTheMiddleOfAChunkFailsAloneAndTheOthersRunOnce) {
  Watchdog dog;
  mproc::Pool pool(2);
  std::vector<std::pair<int, int>> xs;
  for (int i = 0; i < 40; ++i) xs.emplace_back(i, 17);
  mproc::Array<int> runs(40);
  auto results = pool.imap(mproc::partial(counted_hang_on, runs), xs,
                           mproc::MapOptions{.chunksize = 10, .timeout = 100ms});
  int i = 0;
  for (;; ++i) {
    if (i == 17) {
      try {
        (void)results.next(30s);
        FAIL() << "no TaskTimeout";
      } catch (const mproc::TaskTimeout& e) {
        const std::string what = e.what();
        EXPECT_EQ(prefix(what, 57), "mproc::Pool: input element 17 ran past its limit of 0.1 s")
            << what;
        EXPECT_EQ(e.position(), std::optional<std::size_t>(17));
      }
      continue;
    }
    const std::optional<int> v = results.next(30s);
    if (!v) break;
    EXPECT_EQ(*v, i * 10);
  }
  EXPECT_EQ(i, 40);
  for (int k = 0; k < 40; ++k) EXPECT_EQ(runs[static_cast<std::size_t>(k)], 1) << "element " << k;
  // map fails as a whole with the element's error, as for any element error.
  try {
    (void)pool.map(hang_on, xs, mproc::MapOptions{.chunksize = 10, .timeout = 100ms});
    FAIL() << "no TaskTimeout";
  } catch (const mproc::TaskTimeout& e) {
    EXPECT_EQ(e.position(), std::optional<std::size_t>(17));
  }
}

TEST(PoolTaskTimeout, AHangingInitializerBreaksThePoolNamingItsLimit) {
  Watchdog dog;
  mproc::Pool pool({.processes = 2, .initializer = hang_forever, .initializer_timeout = 100ms});
  mproc::Array<int> runs(1);
  auto r = pool.submit(hang_if, runs, 0, -1);
  try {
    (void)r.get(30s);
    FAIL() << "no BrokenPool";
  } catch (const mproc::BrokenPool& e) {
    EXPECT_STREQ(e.what(),
                 "mproc::Pool: a worker's initializer did not finish within its limit of 0.1 s");
  }
  EXPECT_THROW(pool.submit(hang_if, runs, 0, -1), mproc::BrokenPool);
  EXPECT_EQ(runs[0], 0);
}

int stop_self(mproc::Array<int> runs, int i) {
  std::atomic_ref<int>(runs[static_cast<std::size_t>(i)]).fetch_add(1);
  ::raise(SIGSTOP);  // stopped, not dead: only the limit ends it
  return i;
}

TEST(PoolTaskTimeout, AStoppedWorkerPastTheLimitIsKilledAndReplaced) {
  Watchdog dog;
  mproc::Pool pool({.processes = 1, .task_timeout = 100ms});
  mproc::Array<int> runs(3);
  auto stopped = pool.submit(stop_self, runs, 0);
  EXPECT_THROW((void)stopped.get(30s), mproc::TaskTimeout);
  EXPECT_EQ(pool.apply(hang_if, runs, 1, -1), 1);
  pool.close();
  pool.join();
  EXPECT_EQ(runs[0], 1);
  EXPECT_EQ(runs[1], 1);
}

// Limits and kills from outside at once: every task has one outcome (a value, TaskTimeout for the
// hanging ones, or WorkerLost for those whose worker was killed), and none runs twice.
TEST(PoolTaskTimeout, LimitsUnderRandomWorkerKillsGiveEachTaskOneOutcome) {
  Watchdog dog(std::chrono::seconds(120));
  constexpr int kTasks = 120;
  mproc::Pool pool({.processes = 2, .task_timeout = 20ms});
  mproc::Array<int> runs(kTasks);
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < kTasks; ++i)
    rs.push_back(pool.submit(hang_if, runs, i, i % 10 == 3 ? i : -1));
  std::atomic<bool> stop{false};
  std::thread killer([&] {
    unsigned seed = 5;
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      const std::string path = "/proc/" + std::to_string(::getpid()) + "/task/" +
                               std::to_string(::getpid()) + "/children";
      FILE* f = std::fopen(path.c_str(), "r");
      int zygote = 0;
      if (f == nullptr) continue;
      if (std::fscanf(f, "%d", &zygote) == 1) {
        const std::string wpath =
            "/proc/" + std::to_string(zygote) + "/task/" + std::to_string(zygote) + "/children";
        if (FILE* g = std::fopen(wpath.c_str(), "r")) {
          std::vector<int> ws;
          int w = 0;
          while (std::fscanf(g, "%d", &w) == 1) ws.push_back(w);
          std::fclose(g);
          seed = seed * 1103515245u + 12345u;
          if (!ws.empty()) ::kill(ws[(seed >> 16) % ws.size()], SIGKILL);
        }
      }
      std::fclose(f);
    }
  });
  int ok = 0, timed_out = 0, lost = 0;
  for (int i = 0; i < kTasks; ++i) {
    try {
      EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(60s), i);
      ++ok;
    } catch (const mproc::TaskTimeout&) {
      EXPECT_EQ(i % 10, 3) << "task " << i << " timed out but does not hang";
      ++timed_out;
    } catch (const mproc::WorkerLost&) {
      ++lost;
    }
    EXPECT_LE(runs[static_cast<std::size_t>(i)], 1) << "task " << i << " ran twice";
  }
  stop = true;
  killer.join();
  EXPECT_EQ(ok + timed_out + lost, kTasks);
  EXPECT_GT(timed_out, 0);
  std::printf("tasks %d: ok %d, timed out %d, lost to kills %d\n", kTasks, ok, timed_out, lost);
}

TEST(PoolTaskTimeout, LimitsThatAreNotPositiveAreValueErrors) {
  Watchdog dog;
  EXPECT_THROW(mproc::Pool({.processes = 1, .task_timeout = 0s}), mproc::ValueError);
  EXPECT_THROW(mproc::Pool({.processes = 1, .task_timeout = -1s}), mproc::ValueError);
  EXPECT_THROW(mproc::Pool({.processes = 1, .initializer_timeout = 0ms}), mproc::ValueError);
  mproc::Pool pool(1);
  mproc::Array<int> runs(1);
  EXPECT_THROW(pool.submit(mproc::SubmitOptions{.timeout = 0s}, hang_if, runs, 0, -1),
               mproc::ValueError);
  EXPECT_THROW(pool.map(hang_on, std::vector<std::pair<int, int>>{{1, 2}},
                        mproc::MapOptions{.timeout = -2s}),
               mproc::ValueError);
  // A huge one is no limit in practice.
  EXPECT_EQ(pool.submit(mproc::SubmitOptions{.timeout = std::chrono::hours(1000000)}, hang_if, runs,
                        0, -1)
                .get(30s),
            0);
}

}  // namespace
