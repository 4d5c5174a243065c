// Semaphore, BoundedSemaphore and Event, within a process and across fork, including killed
// waiters.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mproc/sync.hpp>
#include <thread>
#include <vector>

#include "helpers/child.hpp"
#include "helpers/shared_page.hpp"

using namespace std::chrono_literals;
using mproc_test::Child;
using mproc_test::eventually;
using mproc_test::SharedPage;

namespace {

struct Counters {
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
};

TEST(Semaphore, CountsAcquiresAndReleases) {
  mproc::Semaphore s(2);
  EXPECT_EQ(s.get_value(), 2);
  EXPECT_TRUE(s.acquire(false));
  EXPECT_TRUE(s.acquire(1s));
  EXPECT_EQ(s.get_value(), 0);
  EXPECT_FALSE(s.acquire(false));
  EXPECT_FALSE(s.acquire(20ms));
  EXPECT_FALSE(s.acquire(-1s));
  s.release(2);
  EXPECT_EQ(s.get_value(), 2);
}

TEST(Semaphore, RejectsBadArguments) {
  try {
    mproc::Semaphore s(-1);
    FAIL() << "negative initial value accepted";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(), "mproc::Semaphore: initial value must be >= 0");
  }
  mproc::Semaphore s(0);
  EXPECT_THROW(s.release(0), mproc::ValueError);
}

TEST(Semaphore, DefaultIsOne) {
  mproc::Semaphore s;
  EXPECT_EQ(s.get_value(), 1);
}

TEST(BoundedSemaphore, OverReleaseThrowsValueError) {
  mproc::BoundedSemaphore s(1);
  s.acquire();
  s.release();
  try {
    s.release();
    FAIL() << "over-release accepted";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(), "mproc::Semaphore: semaphore or lock released too many times");
  }
  EXPECT_EQ(s.get_value(), 1);
}

TEST(Semaphore, OneProcessAcquiresAnotherReleases) {
  mproc::Semaphore s(0);
  Child waiter([&] { return s.acquire(30s) ? 0 : 1; });
  Child releaser([&] {
    s.release();
    return 0;
  });
  EXPECT_EQ(releaser.wait(), 0);
  EXPECT_EQ(waiter.wait(), 0);
  EXPECT_EQ(s.get_value(), 0);
}

TEST(Semaphore, ReleaseNWakesNWaiters) {
  mproc::Semaphore s(0);
  SharedPage<Counters> c;
  std::vector<std::unique_ptr<Child>> waiters;
  for (int i = 0; i < 4; ++i)
    waiters.push_back(std::make_unique<Child>([&] {
      c->started++;
      if (!s.acquire(30s)) return 1;
      c->finished++;
      return 0;
    }));
  ASSERT_TRUE(eventually([&] { return c->started.load() == 4; }));
  s.release(3);
  ASSERT_TRUE(eventually([&] { return c->finished.load() == 3; }));
  s.release();
  for (auto& w : waiters) EXPECT_EQ(w->wait(), 0);
  EXPECT_EQ(s.get_value(), 0);
}

TEST(Semaphore, KilledWaiterDoesNotBlockOthers) {
  mproc::Semaphore s(0);
  SharedPage<Counters> c;
  Child doomed([&] {
    c->started++;
    s.acquire();
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return c->started.load() == 1; }));
  std::this_thread::sleep_for(20ms);
  doomed.kill();
  EXPECT_EQ(doomed.wait(), -SIGKILL);
  Child waiter([&] { return s.acquire(30s) ? 0 : 1; });
  s.release();
  EXPECT_EQ(waiter.wait(), 0);
}

TEST(Event, SetClearIsSet) {
  mproc::Event e;
  EXPECT_FALSE(e.is_set());
  EXPECT_FALSE(e.wait(10ms));
  EXPECT_FALSE(e.wait(-1s));
  e.set();
  EXPECT_TRUE(e.is_set());
  EXPECT_TRUE(e.wait(0s));
  e.wait();
  e.set();  // idempotent
  e.clear();
  EXPECT_FALSE(e.is_set());
  EXPECT_FALSE(e.wait_until(std::chrono::system_clock::now() + 10ms));
}

TEST(Event, SetInOneProcessWakesAllWaiters) {
  mproc::Event e;
  SharedPage<Counters> c;
  std::vector<std::unique_ptr<Child>> waiters;
  for (int i = 0; i < 5; ++i)
    waiters.push_back(std::make_unique<Child>([&] {
      c->started++;
      return e.wait(30s) ? 0 : 1;
    }));
  ASSERT_TRUE(eventually([&] { return c->started.load() == 5; }));
  Child setter([&] {
    e.set();
    return 0;
  });
  EXPECT_EQ(setter.wait(), 0);
  for (auto& w : waiters) EXPECT_EQ(w->wait(), 0);
}

TEST(Event, KilledWaiterDoesNotHangTheOthers) {
  mproc::Event e;
  SharedPage<Counters> c;
  Child doomed([&] {
    c->started++;
    e.wait();
    return 0;
  });
  Child survivor([&] {
    c->started++;
    return e.wait(30s) ? 0 : 1;
  });
  ASSERT_TRUE(eventually([&] { return c->started.load() == 2; }));
  doomed.kill();
  EXPECT_EQ(doomed.wait(), -SIGKILL);
  e.set();
  EXPECT_EQ(survivor.wait(), 0);
}

TEST(Event, PingPongBetweenProcesses) {
  mproc::Event ping, pong;
  constexpr int kRounds = 2000;
  Child peer([&] {
    for (int i = 0; i < kRounds; ++i) {
      if (!ping.wait(30s)) return 1;
      ping.clear();
      pong.set();
    }
    return 0;
  });
  for (int i = 0; i < kRounds; ++i) {
    ping.set();
    ASSERT_TRUE(pong.wait(30s));
    pong.clear();
  }
  EXPECT_EQ(peer.wait(), 0);
}

}  // namespace
