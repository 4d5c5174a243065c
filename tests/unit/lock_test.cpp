// Lock and RLock: ownership, timeouts, Lockable, cross-process exclusion, dead-owner recovery.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mproc/sync.hpp>
#include <mutex>
#include <thread>
#include <vector>

#include "helpers/child.hpp"
#include "helpers/shared_page.hpp"

using namespace std::chrono_literals;
using mproc_test::Child;
using mproc_test::eventually;
using mproc_test::run_in_child;
using mproc_test::SharedPage;

namespace {

struct Flags {
  std::atomic<int> ready{0};
  std::atomic<int> done{0};
  long counter = 0;
};

template <class L>
class LockSuite : public ::testing::Test {};
using LockTypes = ::testing::Types<mproc::Lock, mproc::RLock>;
TYPED_TEST_SUITE(LockSuite, LockTypes);

TYPED_TEST(LockSuite, AcquireReleaseAndIsOwned) {
  TypeParam lock;
  EXPECT_FALSE(lock.is_owned());
  lock.acquire();
  EXPECT_TRUE(lock.is_owned());
  EXPECT_FALSE(lock.owner_died());
  lock.release();
  EXPECT_FALSE(lock.is_owned());
}

TYPED_TEST(LockSuite, ReleaseWhenNotHeldThrowsLockError) {
  TypeParam lock;
  try {
    lock.release();
    FAIL() << "release of an unheld lock did not throw";
  } catch (const mproc::LockError& e) {
    EXPECT_STREQ(e.what(), "mproc: release of a lock that the calling thread does not hold");
  }
}

TYPED_TEST(LockSuite, ReleaseByAnotherThreadThrowsLockError) {
  TypeParam lock;
  lock.acquire();
  bool threw = false;
  std::thread([&] {
    try {
      lock.release();
    } catch (const mproc::LockError&) {
      threw = true;
    }
  }).join();
  EXPECT_TRUE(threw);
  EXPECT_TRUE(lock.is_owned());
  lock.release();
}

TYPED_TEST(LockSuite, HeldByOtherProcessTimesOut) {
  TypeParam lock;
  SharedPage<Flags> f;
  Child holder([&] {
    lock.acquire();
    f->ready = 1;
    eventually([&] { return f->done.load() == 1; }, 30);
    lock.release();
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return f->ready.load() == 1; }));
  EXPECT_FALSE(lock.acquire(false));
  EXPECT_FALSE(lock.try_lock());
  EXPECT_FALSE(lock.acquire(30ms));
  EXPECT_FALSE(lock.acquire(-5s));  // negative timeout: zero
  EXPECT_FALSE(lock.acquire_until(std::chrono::steady_clock::now() - 1s));
  EXPECT_FALSE(lock.acquire_until(std::chrono::system_clock::now() + 20ms));
  EXPECT_FALSE(lock.try_lock_for(10ms));
  f->done = 1;
  EXPECT_EQ(holder.wait(), 0);
  EXPECT_TRUE(lock.acquire(5s));
  lock.release();
}

TYPED_TEST(LockSuite, PastDeadlineStillTakesAFreeLock) {
  TypeParam lock;
  EXPECT_TRUE(lock.acquire(-1s));
  lock.release();
  EXPECT_TRUE(lock.acquire_until(std::chrono::steady_clock::now() - 1h));
  lock.release();
}

TYPED_TEST(LockSuite, WorksWithStdScopedAndUniqueLock) {
  TypeParam lock;
  {
    std::scoped_lock g(lock);
    EXPECT_TRUE(lock.is_owned());
  }
  EXPECT_FALSE(lock.is_owned());
  std::unique_lock<TypeParam> u(lock, std::defer_lock);
  EXPECT_TRUE(u.try_lock_for(1s));
  EXPECT_TRUE(lock.is_owned());
  u.unlock();
  EXPECT_FALSE(lock.is_owned());
}

TYPED_TEST(LockSuite, CounterFromEightProcessesIsExact) {
  TypeParam lock;
  SharedPage<Flags> f;
  constexpr int kProcs = 8, kIters = 20000;
  std::vector<std::unique_ptr<Child>> children;
  for (int i = 0; i < kProcs; ++i) {
    children.push_back(std::make_unique<Child>([&] {
      for (int k = 0; k < kIters; ++k) {
        std::scoped_lock g(lock);
        long v = f->counter;
        f->counter = v + 1;
      }
      return 0;
    }));
  }
  for (auto& c : children) EXPECT_EQ(c->wait(60s), 0);
  EXPECT_EQ(f->counter, long{kProcs} * kIters);
}

TYPED_TEST(LockSuite, HolderKilledNextAcquirerRecoversAndIsTold) {
  TypeParam lock;
  SharedPage<Flags> f;
  Child holder([&] {
    lock.acquire();
    f->ready = 1;
    pause();
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return f->ready.load() == 1; }));
  holder.kill(SIGKILL);
  EXPECT_EQ(holder.wait(), -SIGKILL);
  ASSERT_TRUE(lock.acquire(10s));
  EXPECT_TRUE(lock.owner_died());
  lock.release();
  ASSERT_TRUE(lock.acquire(10s));
  EXPECT_FALSE(lock.owner_died());
  lock.release();
}

TYPED_TEST(LockSuite, HolderKilledWhileOthersWaitAllFinish) {
  TypeParam lock;
  SharedPage<Flags> f;
  Child holder([&] {
    lock.acquire();
    f->ready = 1;
    pause();
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return f->ready.load() == 1; }));
  std::vector<std::unique_ptr<Child>> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.push_back(std::make_unique<Child>([&] {
      f->done.fetch_add(1);
      if (!lock.acquire(30s)) return 2;
      int died = lock.owner_died() ? 1 : 0;
      f->counter += died;  // under the lock
      lock.release();
      return 0;
    }));
  }
  ASSERT_TRUE(eventually([&] { return f->done.load() == 3; }));
  std::this_thread::sleep_for(50ms);  // let them block (not required for correctness)
  holder.kill(SIGKILL);
  EXPECT_EQ(holder.wait(), -SIGKILL);
  for (auto& w : waiters) EXPECT_EQ(w->wait(40s), 0);
  EXPECT_EQ(f->counter, 1) << "exactly one waiter takes over from the dead owner";
}

TYPED_TEST(LockSuite, OwnerThreadExitingWhileHoldingIsRecovered) {
  TypeParam lock;
  std::thread([&] { lock.acquire(); }).join();
  ASSERT_TRUE(lock.acquire(10s));
  EXPECT_TRUE(lock.owner_died());
  lock.release();
}

// The owner and one waiter are killed at once while another waiter sleeps. If the kernel wakes the
// doomed waiter for the owner's death and it dies before taking the lock, nobody else is woken by
// the kernel; the last waiter must still get the lock (waiters re-check the lock word).
TEST(Lock, OwnerAndWaiterKilledTogetherLeaveTheLockToTheLastWaiter) {
  for (int round = 0; round < 20; ++round) {
    mproc::Lock lock;
    SharedPage<Flags> f;
    Child owner([&] {
      lock.acquire();
      f->ready = 1;
      pause();
      return 0;
    });
    ASSERT_TRUE(eventually([&] { return f->ready.load() == 1; }));
    Child waiter([&] {
      f->done = 1;
      lock.acquire();
      pause();
      return 0;
    });
    ASSERT_TRUE(eventually([&] { return f->done.load() == 1; }));
    std::atomic<int> got{0};
    std::thread last([&] {
      got = lock.acquire(30s) ? 1 : 2;
      if (got == 1) lock.release();
    });
    std::this_thread::sleep_for(20ms);  // both waiters asleep in the kernel
    owner.kill();
    waiter.kill();
    EXPECT_EQ(owner.wait(), -SIGKILL);
    EXPECT_EQ(waiter.wait(), -SIGKILL);
    last.join();
    ASSERT_EQ(got.load(), 1) << "round " << round;
  }
}

TEST(Lock, ReacquireByOwnerThrowsDeadlockError) {
  mproc::Lock lock;
  lock.acquire();
  try {
    lock.acquire();
    FAIL() << "re-acquire did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::resource_deadlock_would_occur);
  }
  EXPECT_THROW((void)lock.try_lock(), std::system_error);
  lock.release();
}

TEST(Lock, CopiesShareTheSameLock) {
  mproc::Lock a;
  mproc::Lock b = a;
  a.acquire();
  EXPECT_TRUE(b.is_owned());
  int rc = run_in_child([&] { return b.try_lock() ? 1 : 0; });
  EXPECT_EQ(rc, 0);
  b.release();
  EXPECT_FALSE(a.is_owned());
}

TEST(RLock, RecursionCountsLevels) {
  mproc::RLock lock;
  lock.acquire();
  EXPECT_TRUE(lock.acquire(false));
  EXPECT_TRUE(lock.acquire(1s));
  EXPECT_EQ(lock.depth(), 3u);
  lock.release();
  lock.release();
  EXPECT_EQ(lock.depth(), 1u);
  EXPECT_EQ(run_in_child([&] { return lock.try_lock() ? 1 : 0; }), 0);
  lock.release();
  EXPECT_EQ(lock.depth(), 0u);
  EXPECT_EQ(run_in_child([&] {
              if (!lock.try_lock()) return 1;
              lock.release();
              return 0;
            }),
            0);
  EXPECT_THROW(lock.release(), mproc::LockError);
}

TEST(RLock, KilledOwnerWithDepthIsRecoveredAtDepthOne) {
  mproc::RLock lock;
  SharedPage<Flags> f;
  Child holder([&] {
    lock.acquire();
    lock.acquire();
    f->ready = 1;
    pause();
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return f->ready.load() == 1; }));
  holder.kill();
  EXPECT_EQ(holder.wait(), -SIGKILL);
  ASSERT_TRUE(lock.acquire(10s));
  EXPECT_TRUE(lock.owner_died());
  EXPECT_EQ(lock.depth(), 1u);
  lock.release();
  EXPECT_FALSE(lock.is_owned());
}

}  // namespace
