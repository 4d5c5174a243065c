// sync_travel_pool_test.cpp — locks, Semaphore, Event, Value, Array and SharedMemory as arguments
// of Pool tasks under each start method (fork, spawn, forkserver): they travel beside the task to
// a worker that never inherited them and work there against the parent. Every wait is bounded.
#include <gtest/gtest.h>

#include <chrono>
#include <mproc/pool.hpp>
#include <mproc/shared_memory.hpp>
#include <mproc/start_method.hpp>
#include <mproc/sync.hpp>
#include <string>
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

class SyncTravelPool : public ::testing::TestWithParam<StartMethod> {
 protected:
  mproc::PoolOptions opts(int n = 2) const {
    return mproc::PoolOptions{.processes = n, .start_method = GetParam()};
  }
  mproc_test::Watchdog dog_{std::chrono::seconds(120)};
};

int hold_lock(mproc::Lock lock, mproc::Event held, mproc::Event go) {
  if (!lock.acquire(20s)) return 1;
  held.set();
  if (!go.wait(20s)) return 2;
  lock.release();
  return 0;
}

TEST_P(SyncTravelPool, ALockTakenInATaskIsHeldForTheParent) {
  mproc::Pool pool(opts());
  mproc::Lock lock;  // made after the pool: its workers can only have it by receiving it
  mproc::Event held;
  mproc::Event go;
  auto r = pool.apply_async(hold_lock, lock, held, go);
  ASSERT_TRUE(held.wait(20s));
  EXPECT_FALSE(lock.try_acquire());
  go.set();
  EXPECT_EQ(r.get(30s), 0);
  EXPECT_TRUE(lock.try_acquire());
  lock.release();
}

int add_under_lock(mproc::Value<long> total, mproc::Array<int> seen, int k) {
  {
    mproc::RLock& l = total.get_lock();
    l.acquire();
    total.set(total.get() + k);
    l.release();
  }
  seen[static_cast<std::size_t>(k)] = 1;
  return k;
}

TEST_P(SyncTravelPool, ValueAndArrayWritesFromManyTasksAddUp) {
  mproc::Pool pool(opts());
  mproc::Value<long> total(0);
  mproc::Array<int> seen(50, mproc::no_lock);
  std::vector<mproc::AsyncResult<int>> rs;
  for (int k = 0; k < 50; ++k) rs.push_back(pool.apply_async(add_under_lock, total, seen, k));
  for (auto& r : rs) (void)r.get(30s);
  EXPECT_EQ(total.get(), 49 * 50 / 2);
  for (int k = 0; k < 50; ++k) EXPECT_EQ(seen[static_cast<std::size_t>(k)], 1) << k;
}

int release_and_fill(mproc::Semaphore sem, mproc::SharedMemory shm) {
  shm.buf()[0] = std::byte{7};
  sem.release(2);
  return static_cast<int>(shm.size());
}

TEST_P(SyncTravelPool, SemaphoreAndSharedMemoryReachATask) {
  mproc::Pool pool(opts());
  mproc::Semaphore sem(0);
  auto shm = mproc::SharedMemory::create(100);
  auto r = pool.apply_async(release_and_fill, sem, mproc::SharedMemory::attach(shm.name()));
  EXPECT_TRUE(sem.acquire(20s));
  EXPECT_EQ(r.get(30s), 100);
  EXPECT_EQ(sem.get_value(), 1);
  EXPECT_EQ(shm.buf()[0], std::byte{7});
  EXPECT_TRUE(shm.owns_name());
}

INSTANTIATE_TEST_SUITE_P(, SyncTravelPool,
                         ::testing::Values(StartMethod::fork, StartMethod::spawn,
                                           StartMethod::forkserver),
                         MethodName{});

}  // namespace
