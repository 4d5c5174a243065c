// Condition and Barrier: Python's semantics, across fork, with killed waiters.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mproc/sync.hpp>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "helpers/child.hpp"
#include "helpers/shared_page.hpp"

using namespace std::chrono_literals;
using mproc_test::Child;
using mproc_test::eventually;
using mproc_test::SharedPage;

namespace {

struct State {
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  std::atomic<int> actions{0};
  int value = 0;
  int indices[64] = {};
};

// ---------------------------------------------------------------------------------------------
// Condition

TEST(Condition, WaitWithoutLockThrowsLockError) {
  mproc::Condition c;
  try {
    c.wait();
    FAIL() << "wait without the lock did not throw";
  } catch (const mproc::LockError& e) {
    EXPECT_STREQ(e.what(), "mproc::Condition: cannot wait on un-acquired lock");
  }
}

TEST(Condition, NotifyWithoutLockThrowsLockError) {
  mproc::Condition c;
  try {
    c.notify();
    FAIL() << "notify without the lock did not throw";
  } catch (const mproc::LockError& e) {
    EXPECT_STREQ(e.what(), "mproc::Condition: cannot notify on un-acquired lock");
  }
  EXPECT_THROW(c.notify_all(), mproc::LockError);
}

TEST(Condition, WaitTimesOutAndKeepsTheLock) {
  mproc::Lock lock;
  mproc::Condition c(lock);
  std::scoped_lock g(c);
  EXPECT_FALSE(c.wait(20ms));
  EXPECT_TRUE(lock.is_owned());
  EXPECT_FALSE(c.wait(-1s));
  EXPECT_FALSE(c.wait_for([] { return false; }, 20ms));
  EXPECT_TRUE(c.wait_for([] { return true; }, 0s));
  EXPECT_TRUE(lock.is_owned());
}

TEST(Condition, WaitRestoresRLockDepth) {
  mproc::RLock lock;
  mproc::Condition c(lock);
  lock.acquire();
  lock.acquire();
  EXPECT_FALSE(c.wait(10ms));
  EXPECT_EQ(lock.depth(), 2u);
  lock.release();
  lock.release();
  EXPECT_FALSE(lock.is_owned());
}

TEST(Condition, WaitForPredicateAcrossProcesses) {
  mproc::Condition c;
  SharedPage<State> s;
  Child consumer([&] {
    std::scoped_lock g(c);
    s->started = 1;
    bool ok = c.wait_for([&] { return s->value == 42; }, 30s);
    return ok && s->value == 42 ? 0 : 1;
  });
  ASSERT_TRUE(eventually([&] { return s->started.load() == 1; }));
  for (int v = 40; v <= 42; ++v) {
    std::scoped_lock g(c);
    s->value = v;
    c.notify();
  }
  EXPECT_EQ(consumer.wait(), 0);
}

TEST(Condition, NotifyAllWakesEveryWaiter) {
  mproc::Condition c;
  SharedPage<State> s;
  std::vector<std::unique_ptr<Child>> waiters;
  for (int i = 0; i < 4; ++i)
    waiters.push_back(std::make_unique<Child>([&] {
      std::scoped_lock g(c);
      s->started++;
      return c.wait_for([&] { return s->value == 1; }, 30s) ? 0 : 1;
    }));
  ASSERT_TRUE(eventually([&] { return s->started.load() == 4; }));
  {
    std::scoped_lock g(c);
    s->value = 1;
    c.notify_all();
  }
  for (auto& w : waiters) EXPECT_EQ(w->wait(), 0);
}

TEST(Condition, NotifyOneWakesAtLeastOne) {
  mproc::Condition c;
  SharedPage<State> s;
  Child waiter([&] {
    std::scoped_lock g(c);
    s->started = 1;
    return c.wait(30s) ? 0 : 1;
  });
  ASSERT_TRUE(eventually([&] { return s->started.load() == 1; }));
  // The waiter released the lock inside wait() once we can take it.
  std::scoped_lock g(c);
  c.notify(1);
  c.release();
  EXPECT_EQ(waiter.wait(), 0);
  c.acquire();
}

TEST(Condition, KilledWaiterDoesNotHangTheOthers) {
  mproc::Condition c;
  SharedPage<State> s;
  Child doomed([&] {
    std::scoped_lock g(c);
    s->started++;
    c.wait();
    return 0;
  });
  Child survivor([&] {
    std::scoped_lock g(c);
    s->started++;
    return c.wait_for([&] { return s->value == 1; }, 30s) ? 0 : 1;
  });
  ASSERT_TRUE(eventually([&] { return s->started.load() == 2; }));
  doomed.kill();
  EXPECT_EQ(doomed.wait(), -SIGKILL);
  {
    std::scoped_lock g(c);
    s->value = 1;
    c.notify_all();
  }
  EXPECT_EQ(survivor.wait(), 0);
}

// ---------------------------------------------------------------------------------------------
// Barrier

TEST(Barrier, RejectsFewerThanOneParty) {
  try {
    mproc::Barrier b(0);
    FAIL() << "Barrier(0) accepted";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(), "mproc::Barrier: parties must be >= 1");
  }
}

TEST(Barrier, OnePartyPassesAtOnceAndRunsTheAction) {
  int runs = 0;
  mproc::Barrier b(1, [&] { ++runs; });
  EXPECT_EQ(b.parties(), 1);
  EXPECT_EQ(b.wait(), 0);
  EXPECT_EQ(b.wait(), 0);
  EXPECT_EQ(runs, 2);
  EXPECT_FALSE(b.broken());
}

TEST(Barrier, FourProcessesGetDistinctIndicesAndOneActionPerPass) {
  SharedPage<State> s;
  constexpr int kParties = 4, kPasses = 3;
  mproc::Barrier b(kParties, [&] { s->actions++; });
  std::vector<std::unique_ptr<Child>> kids;
  for (int i = 0; i < kParties; ++i)
    kids.push_back(std::make_unique<Child>([&, i] {
      for (int p = 0; p < kPasses; ++p) {
        int idx = b.wait(30s);
        s->indices[p * kParties + i] = idx;
      }
      return 0;
    }));
  for (auto& k : kids) EXPECT_EQ(k->wait(), 0);
  EXPECT_EQ(s->actions.load(), kPasses);
  for (int p = 0; p < kPasses; ++p) {
    std::set<int> seen(s->indices + p * kParties, s->indices + (p + 1) * kParties);
    EXPECT_EQ(seen, (std::set<int>{0, 1, 2, 3})) << "pass " << p;
  }
}

TEST(Barrier, TimeoutBreaksTheBarrier) {
  mproc::Barrier b(2);
  EXPECT_THROW(b.wait(20ms), mproc::BrokenBarrierError);
  EXPECT_TRUE(b.broken());
  EXPECT_THROW(b.wait(1s), mproc::BrokenBarrierError);
  b.reset();
  EXPECT_FALSE(b.broken());
}

TEST(Barrier, DefaultTimeoutApplies) {
  mproc::Barrier b(2, {}, std::chrono::milliseconds(20));
  try {
    b.wait();
    FAIL() << "wait did not time out";
  } catch (const mproc::BrokenBarrierError& e) {
    EXPECT_STREQ(e.what(), "mproc::Barrier: the barrier is broken");
  }
}

TEST(Barrier, AbortBreaksWaitersInOtherProcesses) {
  mproc::Barrier b(3);
  SharedPage<State> s;
  Child waiter([&] {
    s->started = 1;
    try {
      (void)b.wait(30s);
    } catch (const mproc::BrokenBarrierError&) {
      return 0;
    }
    return 1;
  });
  ASSERT_TRUE(eventually([&] { return b.n_waiting() == 1; }));
  b.abort();
  EXPECT_EQ(waiter.wait(), 0);
  EXPECT_TRUE(b.broken());
  EXPECT_EQ(b.n_waiting(), 0);
  EXPECT_THROW(b.wait(), mproc::BrokenBarrierError);
}

TEST(Barrier, ResetBreaksCurrentWaitersThenWorksAgain) {
  mproc::Barrier b(2);
  Child waiter([&] {
    try {
      (void)b.wait(30s);
    } catch (const mproc::BrokenBarrierError&) {
      return 0;
    }
    return 1;
  });
  ASSERT_TRUE(eventually([&] { return b.n_waiting() == 1; }));
  b.reset();
  EXPECT_EQ(waiter.wait(), 0);
  EXPECT_FALSE(b.broken());
  Child partner([&] { return b.wait(30s) >= 0 ? 0 : 1; });
  EXPECT_GE(b.wait(30s), 0);
  EXPECT_EQ(partner.wait(), 0);
}

TEST(Barrier, ThrowingActionBreaksItAndPropagates) {
  mproc::Barrier b(2, [] { throw std::runtime_error("action failed"); });
  SharedPage<State> s;
  Child waiter([&] {
    try {
      (void)b.wait(30s);
    } catch (const mproc::BrokenBarrierError&) {
      return 0;
    } catch (const std::runtime_error&) {
      return 2;  // this side ran the action
    }
    return 1;
  });
  int here = -1;
  try {
    (void)b.wait(30s);
    here = 1;
  } catch (const mproc::BrokenBarrierError&) {
    here = 0;
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "action failed");
    here = 2;
  }
  int there = waiter.wait();
  EXPECT_EQ(here + there, 2)
      << "one side ran the action and saw its exception, the other is broken";
  EXPECT_NE(here, 1);
  EXPECT_TRUE(b.broken());
}

TEST(Barrier, KilledWaiterStillCountsAsArrived) {
  mproc::Barrier b(3);
  Child doomed([&] {
    (void)b.wait();
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return b.n_waiting() == 1; }));
  doomed.kill();
  EXPECT_EQ(doomed.wait(), -SIGKILL);
  Child partner([&] { return b.wait(30s) >= 0 ? 0 : 1; });
  EXPECT_GE(b.wait(30s), 0);
  EXPECT_EQ(partner.wait(), 0);
}

TEST(Barrier, ProcessKilledInTheActionBreaksIt) {
  SharedPage<State> s;
  mproc::Barrier b(2, [&] {
    s->value = getpid();
    s->started = 1;
    pause();  // the process running the action is killed here
  });
  auto arrive = [&] {
    try {
      (void)b.wait(60s);
    } catch (const mproc::BrokenBarrierError&) {
      return 0;
    }
    return 1;
  };
  Child first(arrive);
  Child second(arrive);
  ASSERT_TRUE(eventually([&] { return s->started.load() == 1; }));
  Child& runner = s->value == first.pid() ? first : second;
  Child& other = s->value == first.pid() ? second : first;
  ASSERT_EQ(runner.pid(), s->value);
  runner.kill();
  EXPECT_EQ(runner.wait(), -SIGKILL);
  EXPECT_EQ(other.wait(30s), 0) << "the survivor must see BrokenBarrierError, not hang";
  EXPECT_TRUE(b.broken());
}

}  // namespace
