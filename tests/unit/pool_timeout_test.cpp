// Pool: the timeout forms of AsyncResult::get/wait and IMapResult::next — x(), x(Timeout) with any
// duration (integer and floating-point), x_until(Deadline) with a time point of any clock — and
// their expiry. No timing is asserted: a task that never ends is used where a wait must expire,
// and waits that must succeed get 30 s.
#include <chrono>
#include <mproc/pool.hpp>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "helpers/count_range.hpp"

namespace {

using namespace std::chrono_literals;
using std::chrono::steady_clock;
using std::chrono::system_clock;

int sqr(int x) { return x * x; }
// Never returns (the pool is terminated at the end of the test).
int never(int x) {
  for (;;) std::this_thread::sleep_for(1h);
  return x;
}
void nothing() {}

const std::chrono::duration<double> kLongD{30.0};  // 30 s as a floating-point duration

TEST(PoolTimeout, GetFormsReturnTheValueWithEveryClockAndDuration) {
  mproc::Pool pool(2);
  EXPECT_EQ(pool.apply_async(sqr, 2).get(), 4);
  EXPECT_EQ(pool.apply_async(sqr, 3).get(30s), 9);
  EXPECT_EQ(pool.apply_async(sqr, 4).get(kLongD), 16);
  EXPECT_EQ(pool.apply_async(sqr, 5).get(std::chrono::duration<float, std::milli>(30000.f)), 25);
  EXPECT_EQ(pool.apply_async(sqr, 6).get_until(steady_clock::now() + 30s), 36);
  EXPECT_EQ(pool.apply_async(sqr, 7).get_until(system_clock::now() + 30s), 49);
  EXPECT_EQ(pool.apply_async(sqr, 8).get_until(steady_clock::now() + kLongD), 64);
  EXPECT_EQ(pool.apply_async(sqr, 9).get_until(system_clock::now() + kLongD), 81);
  // Huge timeouts and deadlines saturate to "never".
  EXPECT_EQ(pool.apply_async(sqr, 10).get(std::chrono::hours::max()), 100);
  EXPECT_EQ(pool.apply_async(sqr, 11).get(std::chrono::duration<double>(1e300)), 121);
  EXPECT_EQ(pool.apply_async(sqr, 12).get_until(steady_clock::time_point::max()), 144);
  EXPECT_EQ(pool.apply_async(sqr, 13).get_until(system_clock::time_point::max()), 169);
  // void results.
  auto v = pool.apply_async(nothing);
  v.get_until(system_clock::now() + 30s);
  EXPECT_TRUE(v.successful());
}

TEST(PoolTimeout, WaitFormsReportReadiness) {
  mproc::Pool pool(2);
  auto r = pool.apply_async(sqr, 3);
  r.wait();
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(pool.apply_async(sqr, 1).wait(30s));
  EXPECT_TRUE(pool.apply_async(sqr, 1).wait(kLongD));
  EXPECT_TRUE(pool.apply_async(sqr, 1).wait_until(steady_clock::now() + 30s));
  EXPECT_TRUE(pool.apply_async(sqr, 1).wait_until(system_clock::now() + 30s));
  EXPECT_TRUE(pool.apply_async(sqr, 1).wait_until(system_clock::now() + kLongD));
  EXPECT_TRUE(pool.apply_async(sqr, 1).wait(std::chrono::nanoseconds::max()));
  // A result already there: a zero or negative timeout, or a past deadline, still sees it.
  EXPECT_TRUE(r.wait(0s));
  EXPECT_TRUE(r.wait(-1s));
  EXPECT_TRUE(r.wait(std::chrono::duration<double>(-0.5)));
  EXPECT_TRUE(r.wait_until(steady_clock::now() - 1h));
  EXPECT_TRUE(r.wait_until(system_clock::now() - 1h));
  EXPECT_EQ(r.get(-1s), 9);
  EXPECT_EQ(r.get_until(system_clock::now() - 1h), 9);
}

TEST(PoolTimeout, GetThrowsTimeoutErrorWhenEveryFormExpires) {
  mproc::Pool pool(1);
  auto r = pool.apply_async(never, 1);
  EXPECT_THROW(r.get(20ms), mproc::TimeoutError);
  EXPECT_THROW(r.get(std::chrono::duration<double>(0.02)), mproc::TimeoutError);
  EXPECT_THROW(r.get(0s), mproc::TimeoutError);
  EXPECT_THROW(r.get(-5s), mproc::TimeoutError);
  EXPECT_THROW(r.get_until(steady_clock::now() + 20ms), mproc::TimeoutError);
  EXPECT_THROW(r.get_until(system_clock::now() + 20ms), mproc::TimeoutError);
  EXPECT_THROW(r.get_until(system_clock::now() + std::chrono::duration<double>(0.02)),
               mproc::TimeoutError);
  EXPECT_THROW(r.get_until(steady_clock::now() - 1h), mproc::TimeoutError);
  EXPECT_THROW(r.get_until(system_clock::now() - 1h), mproc::TimeoutError);
  try {
    (void)r.get(1ms);
    ADD_FAILURE() << "get(1ms) returned";
  } catch (const mproc::TimeoutError& e) {
    EXPECT_STREQ(e.what(), "mproc::AsyncResult::get: the result is not ready");
  }
  EXPECT_FALSE(r.ready());
  pool.terminate();
  EXPECT_THROW(r.get(), mproc::BrokenPool);  // after expiry the result still arrives
}

TEST(PoolTimeout, WaitReturnsFalseWhenEveryFormExpires) {
  mproc::Pool pool(1);
  auto r = pool.apply_async(never, 1);
  EXPECT_FALSE(r.wait(20ms));
  EXPECT_FALSE(r.wait(std::chrono::duration<double>(0.02)));
  EXPECT_FALSE(r.wait(-1s));
  EXPECT_FALSE(r.wait_until(steady_clock::now() + 20ms));
  EXPECT_FALSE(r.wait_until(system_clock::now() + 20ms));
  EXPECT_FALSE(r.wait_until(system_clock::now() - 1h));
  pool.terminate();
  EXPECT_TRUE(r.wait(30s));
}

TEST(PoolTimeout, NextFormsReturnTheResultsWithEveryClockAndDuration) {
  mproc::Pool pool(2);
  auto it = pool.imap(sqr, mproc_test::count(0, 8));
  EXPECT_EQ(it.next(), 0);
  EXPECT_EQ(it.next(30s), 1);
  EXPECT_EQ(it.next(kLongD), 4);
  EXPECT_EQ(it.next_until(steady_clock::now() + 30s), 9);
  EXPECT_EQ(it.next_until(system_clock::now() + 30s), 16);
  EXPECT_EQ(it.next_until(system_clock::now() + kLongD), 25);
  EXPECT_EQ(it.next(std::chrono::hours::max()), 36);
  EXPECT_EQ(it.next_until(system_clock::time_point::max()), 49);
  EXPECT_FALSE(it.next_until(system_clock::now() + 30s));  // the end
  auto u = pool.imap_unordered(sqr, std::vector<int>{3});
  EXPECT_EQ(u.next_until(system_clock::now() + 30s), 9);
  EXPECT_FALSE(u.next(kLongD));
}

TEST(PoolTimeout, NextThrowsTimeoutErrorWhenEveryFormExpiresAndLosesNothing) {
  mproc::Pool pool(2);
  for (bool ordered : {true, false}) {
    std::vector<int> xs = {1, 2};
    auto check = [](auto& it) {
      EXPECT_THROW(it.next(20ms), mproc::TimeoutError);
      EXPECT_THROW(it.next(std::chrono::duration<double>(0.02)), mproc::TimeoutError);
      EXPECT_THROW(it.next(-1s), mproc::TimeoutError);
      EXPECT_THROW(it.next_until(steady_clock::now() + 20ms), mproc::TimeoutError);
      EXPECT_THROW(it.next_until(system_clock::now() + 20ms), mproc::TimeoutError);
      EXPECT_THROW(it.next_until(system_clock::now() - 1h), mproc::TimeoutError);
      try {
        (void)it.next(1ms);
        ADD_FAILURE() << "next(1ms) returned";
      } catch (const mproc::TimeoutError& e) {
        EXPECT_STREQ(e.what(), "mproc::IMapResult::next: no result came in time");
      }
    };
    if (ordered) {
      auto it = pool.imap(never, xs);
      check(it);
    } else {
      auto it = pool.imap_unordered(never, xs);
      check(it);
    }
  }
  pool.terminate();
}

}  // namespace
