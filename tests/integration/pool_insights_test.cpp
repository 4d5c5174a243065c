// Pool::insights(): tasks counted per slot, durations that add up within each slot's wall time
// (start-up + working + waiting + sending <= wall), a killed worker's figures kept and its task
// counted as lost, the figures frozen once the pool has stopped, durations left at zero when
// PoolOptions::insights is off, and the printable summary. No timing assertions beyond those
// inequalities and the lower bound a sleep guarantees. Every multi-process wait is bounded.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <mproc/pool.hpp>
#include <mproc/start_method.hpp>
#include <mproc/worker.hpp>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "helpers/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using mproc::StartMethod;
using mproc_test::Watchdog;

int sleep_1ms(int x) {
  std::this_thread::sleep_for(1ms);
  return x;
}
int identity(int x) { return x; }
int sleep_forever(int) {
  for (;;) std::this_thread::sleep_for(1h);
}
int kill_self(int) {
  ::raise(SIGKILL);
  return 0;
}

void expect_adds_up(const mproc::WorkerInsights& w) {
  EXPECT_LE(w.start_up + w.working + w.waiting + w.sending, w.wall)
      << "slot " << w.slot << ": start-up " << w.start_up.count() << " + working "
      << w.working.count() << " + waiting " << w.waiting.count() << " + sending "
      << w.sending.count() << " ns > wall " << w.wall.count() << " ns";
  EXPECT_GE(w.start_up.count(), 0);
  EXPECT_GE(w.working.count(), 0);
  EXPECT_GE(w.waiting.count(), 0);
  EXPECT_GE(w.sending.count(), 0);
  EXPECT_GE(w.coding.count(), 0);
  EXPECT_LE(w.coding, w.working) << "slot " << w.slot << ": coding is part of working";
}

struct MethodName {
  std::string operator()(const ::testing::TestParamInfo<StartMethod>& p) const {
    return std::string(mproc::start_method_name(p.param));
  }
};

class InsightsMethods : public ::testing::TestWithParam<StartMethod> {};

TEST_P(InsightsMethods, FiguresAddUpWithinEachWorkersWallTime) {
  Watchdog dog;
  mproc::Pool pool({.processes = 2, .start_method = GetParam(), .insights = true});
  std::vector<int> xs(50);
  std::iota(xs.begin(), xs.end(), 0);
  EXPECT_EQ(pool.map(sleep_1ms, xs, 1), xs);
  const mproc::Insights live = pool.insights();
  ASSERT_EQ(live.workers.size(), 2u);
  std::uint64_t tasks = 0;
  for (std::size_t s = 0; s < live.workers.size(); ++s) {
    const mproc::WorkerInsights& w = live.workers[s];
    EXPECT_EQ(w.slot, static_cast<int>(s));
    EXPECT_EQ(w.workers, 1u);
    EXPECT_EQ(w.lost, 0u);
    expect_adds_up(w);
    tasks += w.tasks;
  }
  EXPECT_EQ(tasks, 50u);
  EXPECT_EQ(live.total.tasks, 50u);
  EXPECT_EQ(live.total.slot, -1);
  EXPECT_EQ(live.total.workers, 2u);
  EXPECT_GE(live.total.working, 50ms);  // 50 sleeps of at least 1 ms
  expect_adds_up(live.total);
  EXPECT_EQ(live.total.wall, live.workers[0].wall + live.workers[1].wall);

  pool.close();
  pool.join();
  const mproc::Insights after = pool.insights();
  EXPECT_EQ(after.total.tasks, 50u);
  EXPECT_EQ(after.total.workers, 2u);
  EXPECT_EQ(after.delivered, 50u);  // counted after each batch: complete once the pool stopped
  EXPECT_EQ(after.encoded, 50u);    // map with chunksize 1: 50 tasks encoded at submit
  EXPECT_GT(after.encoding.count(), 0);
  EXPECT_GT(after.total.coding.count(), 0);  // 50 arguments decoded, 50 results encoded
  for (const mproc::WorkerInsights& w : after.workers) expect_adds_up(w);
  // Stopped: the figures no longer change.
  const mproc::Insights later = pool.insights();
  EXPECT_EQ(later.total.wall, after.total.wall);
  EXPECT_EQ(later.total.working, after.total.working);
}

INSTANTIATE_TEST_SUITE_P(, InsightsMethods,
                         ::testing::Values(StartMethod::fork, StartMethod::spawn), MethodName{});

TEST(Insights, AKilledWorkersFiguresAreKeptAndItsTaskIsLost) {
  Watchdog dog;
  mproc::Pool pool({.processes = 1, .insights = true});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(pool.apply(identity, i), i);
  EXPECT_THROW((void)pool.apply_async(kill_self, 0).get(30s), mproc::WorkerLost);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(pool.apply(identity, i), i);
  const mproc::Insights r = pool.insights();
  ASSERT_EQ(r.workers.size(), 1u);
  EXPECT_EQ(r.workers[0].workers, 2u);  // the one killed and its replacement
  EXPECT_EQ(r.workers[0].tasks, 8u);    // 5 before the death, 3 after; the lost one not run
  EXPECT_EQ(r.workers[0].lost, 1u);
  EXPECT_EQ(r.total.lost, 1u);
  expect_adds_up(r.workers[0]);
}

TEST(Insights, ATimedOutTaskIsLost) {
  Watchdog dog;
  mproc::Pool pool({.processes = 1, .task_timeout = 50ms, .insights = true});
  EXPECT_EQ(pool.apply(identity, 1), 1);
  EXPECT_THROW((void)pool.apply_async(sleep_forever, 0).get(30s), mproc::TaskTimeout);
  EXPECT_EQ(pool.apply(identity, 2), 2);
  const mproc::Insights r = pool.insights();
  EXPECT_EQ(r.total.lost, 1u);
  EXPECT_EQ(r.total.workers, 2u);
  EXPECT_EQ(r.total.tasks, 2u);
  expect_adds_up(r.workers[0]);
}

TEST(Insights, InAnotherProcessIsAProcessError) {
  Watchdog dog;
  mproc::Pool pool({.processes = 1, .insights = true});
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 1;
    try {
      (void)pool.insights();
    } catch (const mproc::ProcessError&) {
      code = 0;
    } catch (...) {
    }
    ::_exit(code);
  }
  int status = -1;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(Insights, OffCountsTasksAndLeavesDurationsAtZero) {
  Watchdog dog;
  mproc::Pool pool(2);
  std::vector<int> xs(20);
  EXPECT_EQ(pool.map(identity, xs, 1), xs);
  const mproc::Insights r = pool.insights();
  EXPECT_EQ(r.total.tasks, 20u);
  EXPECT_EQ(r.total.workers, 2u);
  EXPECT_EQ(r.total.wall.count(), 0);
  EXPECT_EQ(r.total.start_up.count(), 0);
  EXPECT_EQ(r.total.working.count(), 0);
  EXPECT_EQ(r.total.waiting.count(), 0);
  EXPECT_EQ(r.total.sending.count(), 0);
  EXPECT_EQ(r.total.coding.count(), 0);
  EXPECT_EQ(r.delivered, 0u);
  EXPECT_EQ(r.encoded, 0u);
  EXPECT_EQ(r.encoding.count(), 0);
}

TEST(Insights, SummaryHasALinePerSlotAndTheTotal) {
  Watchdog dog;
  mproc::Pool pool({.processes = 3, .insights = true});
  std::vector<int> xs(30);
  EXPECT_EQ(pool.map(identity, xs, 1), xs);
  const std::string text = pool.insights().to_string();
  EXPECT_EQ(text.rfind("slot ", 0), 0u) << text;
  for (const char* word :
       {"workers", "tasks", "lost", "wall", "start-up", "working", "waiting", "sending", "coding",
        "tasks encoded in", "\n0 ", "\n1 ", "\n2 ", "\ntotal ", "\nparent: "})
    EXPECT_NE(text.find(word), std::string::npos) << word << " missing in\n" << text;
  EXPECT_NE(text.find(" 30 "), std::string::npos) << text;  // the total's tasks
}

}  // namespace
