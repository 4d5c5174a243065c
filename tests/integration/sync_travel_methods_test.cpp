// sync_travel_methods_test.cpp — locks, Semaphore, Condition, Event, Barrier, Value, Array and
// SharedMemory as arguments of a Process under each start method (fork, spawn, forkserver): under
// spawn and forkserver they reach a fresh program image through their codecs (descriptors beside
// the bytes) and work there against the parent. Children report through exit codes and the
// handles themselves; every wait is bounded.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <mproc/codec.hpp>
#include <mproc/detail/travel.hpp>
#include <mproc/process.hpp>
#include <mproc/shared_memory.hpp>
#include <mproc/start_method.hpp>
#include <mproc/sync.hpp>
#include <set>
#include <string>

#include "helpers/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using mproc::StartMethod;

constexpr auto kLong = 30s;

struct MethodName {
  std::string operator()(const ::testing::TestParamInfo<StartMethod>& p) const {
    return std::string(mproc::start_method_name(p.param));
  }
};

class SyncTravel : public ::testing::TestWithParam<StartMethod> {
 protected:
  mproc::ProcessOptions opts() const { return mproc::ProcessOptions{.start_method = GetParam()}; }
  static int finish(mproc::Process& p) {
    EXPECT_TRUE(p.join(kLong));
    return p.exitcode().value_or(-1000);
  }
  mproc_test::Watchdog dog_{std::chrono::seconds(120)};
};

// A second handle to the same segment in this process (a SharedMemory is move-only, and the
// Process takes the first): the handle travels to this very process.
mproc::SharedMemory another_handle(const mproc::SharedMemory& shm) {
  mproc::detail::Descriptors fds;
  std::vector<std::byte> bytes;
  {
    mproc::detail::TravelOut out(fds);
    bytes = mproc::to_bytes(shm);
  }
  mproc::detail::TravelIn in(fds);
  return mproc::from_bytes<mproc::SharedMemory>(bytes);
}

TEST_P(SyncTravel, ALockTakenByTheChildIsHeldForTheParent) {
  mproc::Lock lock;
  mproc::Event held;
  mproc::Event go;
  mproc::Process p(
      opts(),
      [](mproc::Lock l, mproc::Event h, mproc::Event g) {
        if (!l.acquire(20s)) return 1;
        h.set();
        if (!g.wait(20s)) return 2;
        l.release();
        return 0;
      },
      lock, held, go);
  p.start();
  ASSERT_TRUE(held.wait(20s));
  EXPECT_FALSE(lock.try_acquire());
  go.set();
  EXPECT_EQ(finish(p), 0);
  EXPECT_TRUE(lock.try_acquire());
  EXPECT_FALSE(lock.owner_died());
  lock.release();
}

TEST_P(SyncTravel, AChildKilledHoldingAnRLockLeavesItOwnerDied) {
  mproc::RLock lock;
  mproc::Event held;
  mproc::Process p(
      opts(),
      [](mproc::RLock l, mproc::Event h) {
        l.acquire();
        h.set();
        mproc::Event never;
        (void)never.wait(60s);  // killed here
        return 0;
      },
      lock, held);
  p.start();
  ASSERT_TRUE(held.wait(20s));
  EXPECT_FALSE(lock.try_acquire());
  p.kill();
  ASSERT_TRUE(p.join(kLong));
  ASSERT_TRUE(lock.acquire(10s));
  EXPECT_TRUE(lock.owner_died());
  lock.release();
}

TEST_P(SyncTravel, SemaphoreCountsAndTheBoundAreShared) {
  mproc::Semaphore sem(0);
  mproc::BoundedSemaphore bounded(1);
  mproc::Process p(
      opts(),
      [](mproc::Semaphore s, mproc::BoundedSemaphore b) {
        if (!s.acquire(20s)) return 1;  // until the parent releases
        s.release(3);
        try {
          b.release();
          return 2;
        } catch (const mproc::ValueError&) {
        }
        return b.try_acquire() ? 0 : 3;
      },
      sem, bounded);
  p.start();
  sem.release();
  EXPECT_EQ(finish(p), 0);
  EXPECT_EQ(sem.get_value(), 3);
  EXPECT_EQ(bounded.get_value(), 0);
}

TEST_P(SyncTravel, ConditionNotifyWakesTheChild) {
  mproc::Condition cond{mproc::Lock()};
  mproc::Value<int> flag(0, mproc::no_lock);
  mproc::Event waiting;
  mproc::Process p(
      opts(),
      [](mproc::Condition c, mproc::Value<int> f, mproc::Event w) {
        c.acquire();
        w.set();
        const bool notified = c.wait(20s);
        const int seen = f.get();
        c.release();
        return notified && seen == 7 ? 0 : 1;
      },
      cond, flag, waiting);
  p.start();
  ASSERT_TRUE(waiting.wait(20s));
  ASSERT_TRUE(cond.acquire(20s));  // the child gave it up in wait()
  flag.set(7);
  cond.notify();
  cond.release();
  EXPECT_EQ(finish(p), 0);
}

TEST_P(SyncTravel, ABarrierPassesWithThreeProcesses) {
  mproc::Barrier barrier(3, {}, std::chrono::duration<double>(20));
  auto party = [](mproc::Barrier b) { return 10 + b.wait(); };  // its default timeout travelled
  mproc::Process a(opts(), party, barrier);
  mproc::Process b(opts(), party, barrier);
  a.start();
  b.start();
  std::set<int> indices{barrier.wait()};
  indices.insert(finish(a) - 10);
  indices.insert(finish(b) - 10);
  EXPECT_EQ(indices, (std::set<int>{0, 1, 2}));
}

TEST_P(SyncTravel, ValueAndArrayWritesAreSeenBothWaysWithTheSameLock) {
  mproc::Value<long> v(5);
  mproc::Array<double> a(4, mproc::no_lock);
  a[0] = 1.5;
  mproc::Event locked;
  mproc::Event go;
  mproc::Process p(
      opts(),
      [](mproc::Value<long> cv, mproc::Array<double> ca, mproc::Event l, mproc::Event g) {
        if (cv.get() != 5 || ca.size() != 4 || ca[0] != 1.5 || ca.has_lock()) return 1;
        cv.set(6);
        ca[3] = 2.5;
        cv.get_lock().acquire();
        l.set();
        if (!g.wait(20s)) return 2;
        cv.get_lock().release();
        return 0;
      },
      v, a, locked, go);
  p.start();
  ASSERT_TRUE(locked.wait(20s));
  EXPECT_EQ(v.get_obj(), 6);
  EXPECT_EQ(a[3], 2.5);
  EXPECT_FALSE(v.get_lock().try_acquire());
  go.set();
  EXPECT_EQ(finish(p), 0);
  EXPECT_EQ(v.get(), 6);
}

TEST_P(SyncTravel, SharedMemoryIsSharedAndTheChildNeverUnlinks) {
  auto anon = mproc::SharedMemory::anonymous(64);
  auto named = mproc::SharedMemory::create(64);  // the creator stays here
  auto anon_here = another_handle(anon);
  anon.buf()[0] = std::byte{1};
  named.buf()[0] = std::byte{2};
  // The Process gets the anonymous segment and an attached handle of the named one (it drops its
  // arguments after start(); a creator's handle moved into it would unlink the name then).
  mproc::Process p(
      opts(),
      [](mproc::SharedMemory a, mproc::SharedMemory n, std::string expected_name) {
        if (a.buf()[0] != std::byte{1} || n.buf()[0] != std::byte{2}) return 1;
        if (n.name() != expected_name || !a.name().empty() || n.owns_name()) return 2;
        a.buf()[1] = std::byte{3};
        n.buf()[1] = std::byte{4};
        return 0;
      },
      std::move(anon), mproc::SharedMemory::attach(named.name()), named.name());
  p.start();
  EXPECT_EQ(finish(p), 0);
  EXPECT_EQ(anon_here.buf()[1], std::byte{3});
  EXPECT_EQ(named.buf()[1], std::byte{4});
  EXPECT_NO_THROW((void)mproc::SharedMemory::attach(named.name()));  // nobody unlinked it
  EXPECT_TRUE(named.owns_name());
}

INSTANTIATE_TEST_SUITE_P(, SyncTravel,
                         ::testing::Values(StartMethod::fork, StartMethod::spawn,
                                           StartMethod::forkserver),
                         MethodName{});

}  // namespace
