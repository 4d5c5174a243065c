// channel_travel_pool_test.cpp — Queue, JoinableQueue, SimpleQueue and Connection as arguments of
// Pool tasks under each start method (fork, spawn, forkserver): made after the pool, they reach a
// worker that never inherited them (Python's Pool needs a Manager for a Queue) and work there
// against the parent. Every wait is bounded.
#include <gtest/gtest.h>

#include <chrono>
#include <mproc/pipe.hpp>
#include <mproc/pool.hpp>
#include <mproc/queue.hpp>
#include <mproc/start_method.hpp>
#include <string>
#include <utility>
#include <vector>

#include "helpers/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using mproc::StartMethod;

struct MethodName {
  std::string operator()(const ::testing::TestParamInfo<StartMethod>& p) const {
    return std::string(mproc::start_method_name(p.param));
  }
};

class ChannelTravelPool : public ::testing::TestWithParam<StartMethod> {
 protected:
  mproc::PoolOptions opts(int n = 2) const {
    return mproc::PoolOptions{.processes = n, .start_method = GetParam()};
  }
  mproc_test::Watchdog dog_{std::chrono::seconds(120)};
};

int put_block(mproc::Queue<int> q, int first, int n) {
  for (int i = first; i < first + n; ++i) q.put(i);
  return n;
}

TEST_P(ChannelTravelPool, TasksPutOnAQueueMadeAfterThePool) {
  mproc::Pool pool(opts());
  mproc::Queue<int> q(0, {.capacity = 4096});
  std::vector<mproc::AsyncResult<int>> rs;
  for (int k = 0; k < 8; ++k) rs.push_back(pool.apply_async(put_block, q, k * 100, 100));
  // Each task's items arrive in its order; blocks of different tasks interleave.
  std::vector<int> next(8);
  for (int k = 0; k < 8; ++k) next[static_cast<std::size_t>(k)] = k * 100;
  for (int i = 0; i < 800; ++i) {
    const int v = q.get(30s);
    ASSERT_GE(v, 0);
    ASSERT_LT(v, 800);
    ASSERT_EQ(v, next[static_cast<std::size_t>(v / 100)]++);
  }
  for (auto& r : rs) EXPECT_EQ(r.get(30s), 100);
  EXPECT_EQ(q.qsize(), 0u);
}

int consume(mproc::JoinableQueue<std::string> q, int n) {
  int total = 0;
  for (int i = 0; i < n; ++i) {
    total += static_cast<int>(q.get(30s).size());
    q.task_done();
  }
  return total;
}

TEST_P(ChannelTravelPool, JoinableQueueJoinsAfterTheTasksTaskDone) {
  mproc::Pool pool(opts());
  mproc::JoinableQueue<std::string> q;
  auto a = pool.apply_async(consume, q, 5);
  auto b = pool.apply_async(consume, q, 5);
  for (int i = 0; i < 10; ++i) q.put(std::string(static_cast<std::size_t>(i), 'x'));
  EXPECT_TRUE(q.join(30s));
  EXPECT_EQ(a.get(30s) + b.get(30s), 45);
}

std::string shout(mproc::SimpleQueue<std::string> in, mproc::SimpleQueue<std::string> out) {
  std::string s = in.get(30s);
  out.put(s + "!");
  return s;
}

TEST_P(ChannelTravelPool, SimpleQueuesBothWays) {
  mproc::Pool pool(opts(1));
  mproc::SimpleQueue<std::string> in;
  mproc::SimpleQueue<std::string> out;
  auto r = pool.apply_async(shout, in, out);
  in.put("hey");
  EXPECT_EQ(out.get(30s), "hey!");
  EXPECT_EQ(r.get(30s), "hey");
}

int echo_plus_one(mproc::Connection conn) {
  const int x = conn.recv<int>();
  conn.send(x + 1);
  return x;
}

TEST_P(ChannelTravelPool, ConnectionReachesATask) {
  mproc::Pool pool(opts(1));
  auto [mine, theirs] = mproc::Pipe();
  auto r = pool.apply_async(echo_plus_one, std::move(theirs));
  mine.send(9);
  EXPECT_EQ(mine.recv<int>(), 10);
  EXPECT_EQ(r.get(30s), 9);
}

INSTANTIATE_TEST_SUITE_P(, ChannelTravelPool,
                         ::testing::Values(StartMethod::fork, StartMethod::spawn,
                                           StartMethod::forkserver),
                         MethodName{});

}  // namespace
