// Every blocking call in every timeout form of mproc/timeout.hpp: a duration (integer and
// floating-point), a steady_clock deadline and a system_clock deadline; and the limits of
// durations and time points. For each call, a limit that
// expires gives the documented answer (false, empty, Full, Empty, BrokenBarrierError), and one that
// is met gives the value. No timing is asserted: an expiring limit is short and nothing can meet
// it; a met limit is long and the call can succeed at once (or is woken by another thread).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mproc/pipe.hpp>
#include <mproc/process.hpp>
#include <mproc/queue.hpp>
#include <mproc/sync.hpp>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "helpers/watchdog.hpp"

using namespace std::chrono_literals;

namespace {

enum class Form { kMilliseconds, kDoubleSeconds, kSteadyDeadline, kSystemDeadline };

std::string form_name(const ::testing::TestParamInfo<Form>& info) {
  switch (info.param) {
    case Form::kMilliseconds:
      return "Milliseconds";
    case Form::kDoubleSeconds:
      return "DoubleSeconds";
    case Form::kSteadyDeadline:
      return "SteadyDeadline";
    case Form::kSystemDeadline:
      return "SystemDeadline";
  }
  return "?";
}

constexpr auto kExpires = 20ms;  // nothing meets it
constexpr auto kMet = 30s;       // met at once or by another thread; a hang fails the watchdog

// Calls `timed(duration)` or `until(time_point)` with a limit of `limit`, in the form `form`.
// Both callables are generic lambdas, so every form is compiled for every call.
template <class Timed, class Until>
decltype(auto) with_limit(Form form, std::chrono::milliseconds limit, Timed timed, Until until) {
  switch (form) {
    case Form::kMilliseconds:
      return timed(limit);
    case Form::kDoubleSeconds:
      return timed(std::chrono::duration<double>(limit));
    case Form::kSteadyDeadline:
      return until(std::chrono::steady_clock::now() + limit);
    case Form::kSystemDeadline:
      break;
  }
  return until(std::chrono::system_clock::now() + limit);
}

class TimeoutForm : public ::testing::TestWithParam<Form> {
 protected:
  // with_limit in this test's form.
  template <class Timed, class Until>
  decltype(auto) in_form(std::chrono::milliseconds limit, Timed timed, Until until) {
    return with_limit(GetParam(), limit, timed, until);
  }
  mproc_test::Watchdog watchdog_{std::chrono::seconds(60)};
};

INSTANTIATE_TEST_SUITE_P(AllForms, TimeoutForm,
                         ::testing::Values(Form::kMilliseconds, Form::kDoubleSeconds,
                                           Form::kSteadyDeadline, Form::kSystemDeadline),
                         form_name);

// ---------------------------------------------------------------------------------------------
// The limits of durations and time points

// Whether `t` has passed (read after `t` was computed).
bool is_past(std::chrono::steady_clock::time_point t) {
  return t <= std::chrono::steady_clock::now();
}

TEST(Timeout, TheLimitsOfAnyDurationAreZeroOrNever) {
  using std::chrono::steady_clock;
  const auto never = steady_clock::time_point::max();
  EXPECT_EQ(mproc::Timeout(std::chrono::nanoseconds::max()).when(), never);
  EXPECT_EQ(mproc::Timeout(std::chrono::hours::max()).when(), never);
  EXPECT_EQ(mproc::Timeout(std::chrono::duration<double>::max()).when(), never);
  EXPECT_TRUE(is_past(mproc::Timeout(std::chrono::nanoseconds::min()).when()));
  EXPECT_TRUE(is_past(mproc::Timeout(std::chrono::hours::min()).when()));
  EXPECT_TRUE(is_past(mproc::Timeout(-std::chrono::duration<double>::max()).when()));
}

TEST(Deadline, TheLimitsOfAnyClocksTimePointsAreLongPastOrNever) {
  mproc_test::Watchdog watchdog(std::chrono::seconds(60));
  using std::chrono::hours;
  using std::chrono::steady_clock;
  using std::chrono::system_clock;
  using std::chrono::time_point;
  const auto never = steady_clock::time_point::max();
  const auto century = hours(24 * 365 * 100);
  EXPECT_EQ(mproc::Deadline(steady_clock::time_point::max()).when(), never);
  EXPECT_EQ(mproc::Deadline(time_point<steady_clock, hours>::max()).when(), never);
  EXPECT_EQ(mproc::Deadline(time_point<system_clock, hours>::max()).when(), never);
  EXPECT_GE(mproc::Deadline(system_clock::time_point::max()).when(), steady_clock::now() + century);
  // Before: system_clock's minimum overflowed `t - now` into a wait of 236 years, and
  // time_point<system_clock, hours>::max() into an immediate deadline.
  EXPECT_TRUE(is_past(mproc::Deadline(steady_clock::time_point::min()).when()));
  EXPECT_TRUE(is_past(mproc::Deadline(time_point<steady_clock, hours>::min()).when()));
  EXPECT_TRUE(is_past(mproc::Deadline(system_clock::time_point::min()).when()));
  EXPECT_TRUE(is_past(mproc::Deadline(time_point<system_clock, hours>::min()).when()));
  // And a call given one tries once.
  mproc::Event e;
  EXPECT_FALSE(e.wait_until(system_clock::time_point::min()));
  mproc::Queue<int> q;
  EXPECT_THROW((void)q.get_until(system_clock::time_point::min()), mproc::Empty);
  q.put(3);
  EXPECT_EQ(q.get_until(time_point<steady_clock, hours>::min()), 3);
}

// ---------------------------------------------------------------------------------------------
// Queues

TEST_P(TimeoutForm, QueueGetThrowsEmptyWhenItExpiresAndReturnsTheItemWhenMet) {
  mproc::Queue<int> q;
  EXPECT_THROW(
      in_form(
          kExpires, [&](auto t) { return q.get(t); }, [&](auto d) { return q.get_until(d); }),
      mproc::Empty);
  q.put(7);
  EXPECT_EQ(in_form(
                kMet, [&](auto t) { return q.get(t); }, [&](auto d) { return q.get_until(d); }),
            7);
}

TEST_P(TimeoutForm, QueuePutThrowsFullWhenItExpiresAndPutsWhenMet) {
  mproc::Queue<int> q(1);
  in_form(
      kMet, [&](auto t) { q.put(1, t); }, [&](auto d) { q.put_until(1, d); });
  EXPECT_THROW(in_form(
                   kExpires, [&](auto t) { q.put(2, t); }, [&](auto d) { q.put_until(2, d); }),
               mproc::Full);
  EXPECT_EQ(q.get(), 1);
  EXPECT_TRUE(q.empty());
}

TEST_P(TimeoutForm, QueuePutManyPutsAPrefixWhenItExpiresAndAllWhenMet) {
  mproc::Queue<int> q(2);
  const std::vector<int> items{1, 2, 3};
  EXPECT_EQ(in_form(
                kExpires, [&](auto t) { return q.put_many(items, t); },
                [&](auto d) { return q.put_many_until(items, d); }),
            2u);
  EXPECT_EQ(q.get_many(10), (std::vector<int>{1, 2}));
  EXPECT_EQ(in_form(
                kMet,
                [&](auto t) {
                  return q.put_many(std::vector<int>{4, 5}, t);
                },
                [&](auto d) {
                  return q.put_many_until(std::vector<int>{4, 5}, d);
                }),
            2u);
  EXPECT_EQ(q.get_many(10), (std::vector<int>{4, 5}));
}

TEST_P(TimeoutForm, QueueGetManyReturnsNothingWhenItExpiresAndTheItemsWhenMet) {
  mproc::Queue<std::string> q;
  EXPECT_TRUE(in_form(
                  kExpires, [&](auto t) { return q.get_many(4, t); },
                  [&](auto d) { return q.get_many_until(4, d); })
                  .empty());
  q.put("a");
  q.put("b");
  EXPECT_EQ(in_form(
                kMet, [&](auto t) { return q.get_many(4, t); },
                [&](auto d) { return q.get_many_until(4, d); }),
            (std::vector<std::string>{"a", "b"}));
}

TEST_P(TimeoutForm, QueueGetIsWokenByAPutFromAnotherThread) {
  mproc::Queue<int> q;
  std::thread producer([&] {
    std::this_thread::sleep_for(5ms);
    q.put(42);
  });
  EXPECT_EQ(in_form(
                kMet, [&](auto t) { return q.get(t); }, [&](auto d) { return q.get_until(d); }),
            42);
  producer.join();
}

TEST_P(TimeoutForm, JoinableQueueJoinIsFalseWhenItExpiresAndTrueWhenMet) {
  mproc::JoinableQueue<int> q;
  q.put(1);
  EXPECT_FALSE(in_form(
      kExpires, [&](auto t) { return q.join(t); }, [&](auto d) { return q.join_until(d); }));
  EXPECT_EQ(q.get(), 1);
  q.task_done();
  EXPECT_TRUE(in_form(
      kMet, [&](auto t) { return q.join(t); }, [&](auto d) { return q.join_until(d); }));
}

TEST_P(TimeoutForm, SimpleQueueGetThrowsEmptyWhenItExpiresAndReturnsTheItemWhenMet) {
  mproc::SimpleQueue<int> q;
  EXPECT_THROW(
      in_form(
          kExpires, [&](auto t) { return q.get(t); }, [&](auto d) { return q.get_until(d); }),
      mproc::Empty);
  in_form(
      kMet, [&](auto t) { q.put(9, t); }, [&](auto d) { q.put_until(9, d); });
  EXPECT_EQ(in_form(
                kMet, [&](auto t) { return q.get(t); }, [&](auto d) { return q.get_until(d); }),
            9);
}

TEST_P(TimeoutForm, SimpleQueuePutThrowsFullWhenItExpiresOnAFullRing) {
  mproc::SimpleQueue<std::string> q(mproc::QueueOptions{.capacity = 4096});
  const std::string item(500, 'x');
  int put = 0;
  try {
    for (; put < 100; ++put) q.put(item, 0ms);  // until the ring is full
  } catch (const mproc::Full&) {
  }
  ASSERT_GT(put, 0);
  ASSERT_LT(put, 100) << "a 4 KiB ring took 100 items of 500 bytes";
  EXPECT_THROW(
      in_form(
          kExpires, [&](auto t) { q.put(item, t); }, [&](auto d) { q.put_until(item, d); }),
      mproc::Full);
  EXPECT_EQ(q.get(), item);
}

// ---------------------------------------------------------------------------------------------
// Locks and semaphores

// Runs `fn` on another thread (so that an owned lock held by this one is busy there).
template <class Fn>
auto on_other_thread(Fn fn) {
  decltype(fn()) out{};
  std::thread t([&] { out = fn(); });
  t.join();
  return out;
}

template <class L>
void check_lock_forms(Form form, L& lock) {
  auto acquire = [&](std::chrono::milliseconds limit) {
    return with_limit(
        form, limit, [&](auto t) { return lock.acquire(t); },
        [&](auto d) { return lock.acquire_until(d); });
  };
  auto try_lock = [&](std::chrono::milliseconds limit) {
    return with_limit(
        form, limit, [&](auto t) { return lock.try_lock_for(t); },
        [&](auto d) { return lock.try_lock_until(d); });
  };
  ASSERT_TRUE(acquire(kMet));
  EXPECT_FALSE(on_other_thread([&] { return acquire(kExpires); }));
  EXPECT_FALSE(on_other_thread([&] { return try_lock(kExpires); }));
  lock.release();
  ASSERT_TRUE(try_lock(kMet));
  lock.unlock();
  // std::unique_lock passes its duration or time point to try_lock_for / try_lock_until.
  EXPECT_TRUE(with_limit(
      form, kMet, [&](auto t) { return std::unique_lock<L>(lock, t).owns_lock(); },
      [&](auto d) { return std::unique_lock<L>(lock, d).owns_lock(); }));
  EXPECT_FALSE(lock.is_owned());
}

TEST_P(TimeoutForm, LockAcquireIsFalseWhenItExpiresAndTrueWhenMet) {
  mproc::Lock lock;
  check_lock_forms(GetParam(), lock);
}

TEST_P(TimeoutForm, RLockAcquireIsFalseWhenItExpiresAndTrueWhenMet) {
  mproc::RLock lock;
  check_lock_forms(GetParam(), lock);
}

TEST_P(TimeoutForm, SemaphoreAcquireIsFalseWhenItExpiresAndTrueWhenMet) {
  mproc::Semaphore s(0);
  auto acquire = [&](std::chrono::milliseconds limit) {
    return in_form(
        limit, [&](auto t) { return s.acquire(t); }, [&](auto d) { return s.acquire_until(d); });
  };
  EXPECT_FALSE(acquire(kExpires));
  s.release();
  EXPECT_TRUE(acquire(kMet));
  EXPECT_EQ(s.get_value(), 0);
  std::thread releaser([&] {
    std::this_thread::sleep_for(5ms);
    s.release();
  });
  EXPECT_TRUE(acquire(kMet));  // woken by the release
  releaser.join();
}

TEST_P(TimeoutForm, BoundedSemaphoreAcquireIsFalseWhenItExpiresAndTrueWhenMet) {
  mproc::BoundedSemaphore s(1);
  auto acquire = [&](std::chrono::milliseconds limit) {
    return in_form(
        limit, [&](auto t) { return s.acquire(t); }, [&](auto d) { return s.acquire_until(d); });
  };
  EXPECT_TRUE(acquire(kMet));
  EXPECT_FALSE(acquire(kExpires));
  s.release();
  EXPECT_THROW(s.release(), mproc::ValueError);
}

// ---------------------------------------------------------------------------------------------
// Condition, Event, Barrier

TEST_P(TimeoutForm, ConditionAcquireIsFalseWhenItExpiresAndTrueWhenMet) {
  mproc::Condition cond(mproc::Lock{});
  auto acquire = [&](std::chrono::milliseconds limit) {
    return in_form(
        limit, [&](auto t) { return cond.acquire(t); },
        [&](auto d) { return cond.acquire_until(d); });
  };
  ASSERT_TRUE(acquire(kMet));
  EXPECT_FALSE(on_other_thread([&] { return acquire(kExpires); }));
  cond.release();
}

TEST_P(TimeoutForm, ConditionWaitIsFalseWhenItExpiresAndTrueWhenNotified) {
  mproc::Condition cond;
  std::scoped_lock g(cond);
  EXPECT_FALSE(in_form(
      kExpires, [&](auto t) { return cond.wait(t); }, [&](auto d) { return cond.wait_until(d); }));
  // A notifier that can only run while this thread waits (the wait releases the lock).
  std::atomic<bool> done{false};
  std::thread notifier([&] {
    while (!done.load()) {
      {
        std::scoped_lock n(cond);
        cond.notify();
      }
      std::this_thread::sleep_for(1ms);
    }
  });
  const bool woken = in_form(
      kMet, [&](auto t) { return cond.wait(t); }, [&](auto d) { return cond.wait_until(d); });
  done.store(true);
  cond.release();  // let the notifier finish its turn
  notifier.join();
  cond.acquire();
  EXPECT_TRUE(woken);
}

TEST_P(TimeoutForm, ConditionWaitForReturnsThePredicatesLastValue) {
  mproc::Condition cond;
  std::scoped_lock g(cond);
  int calls = 0;
  EXPECT_FALSE(in_form(
      kExpires, [&](auto t) { return cond.wait_for([&] { return ++calls > 1000000; }, t); },
      [&](auto d) { return cond.wait_for_until([&] { return ++calls > 1000000; }, d); }));
  EXPECT_GE(calls, 1);
  EXPECT_TRUE(in_form(
      kMet, [&](auto t) { return cond.wait_for([] { return true; }, t); },
      [&](auto d) { return cond.wait_for_until([] { return true; }, d); }));
}

TEST_P(TimeoutForm, EventWaitIsFalseWhenItExpiresAndTrueWhenSet) {
  mproc::Event e;
  EXPECT_FALSE(in_form(
      kExpires, [&](auto t) { return e.wait(t); }, [&](auto d) { return e.wait_until(d); }));
  std::thread setter([&] {
    std::this_thread::sleep_for(5ms);
    e.set();
  });
  EXPECT_TRUE(in_form(
      kMet, [&](auto t) { return e.wait(t); }, [&](auto d) { return e.wait_until(d); }));
  setter.join();
}

TEST_P(TimeoutForm, BarrierWaitBreaksWhenItExpiresAndReturnsTheIndexWhenMet) {
  mproc::Barrier alone(2);
  EXPECT_THROW(in_form(
                   kExpires, [&](auto t) { return alone.wait(t); },
                   [&](auto d) { return alone.wait_until(d); }),
               mproc::BrokenBarrierError);
  EXPECT_TRUE(alone.broken());

  mproc::Barrier pair(2);
  int other = -1;
  std::thread partner([&] { other = pair.wait(kMet); });
  const int mine = in_form(
      kMet, [&](auto t) { return pair.wait(t); }, [&](auto d) { return pair.wait_until(d); });
  partner.join();
  EXPECT_EQ(mine + other, 1);  // indices 0 and 1
}

// ---------------------------------------------------------------------------------------------
// Connections and mproc::wait

TEST_P(TimeoutForm, ConnectionPollAndRecvGiveNothingWhenTheyExpireAndTheMessageWhenMet) {
  auto ends = mproc::Pipe();  // no structured binding: lambdas capture these (clang 14)
  mproc::Connection& a = ends.first;
  mproc::Connection& b = ends.second;
  EXPECT_FALSE(in_form(
      kExpires, [&](auto t) { return b.poll(t); }, [&](auto d) { return b.poll_until(d); }));
  EXPECT_FALSE(in_form(
                   kExpires, [&](auto t) { return b.recv<int>(t); },
                   [&](auto d) { return b.recv_until<int>(d); })
                   .has_value());
  a.send(5);
  EXPECT_TRUE(in_form(
      kMet, [&](auto t) { return b.poll(t); }, [&](auto d) { return b.poll_until(d); }));
  EXPECT_EQ(in_form(
                kMet, [&](auto t) { return b.recv<int>(t, 64); },
                [&](auto d) { return b.recv_until<int>(d, 64); }),
            std::optional<int>(5));
}

TEST_P(TimeoutForm, WaitReturnsNothingWhenItExpiresAndTheReadyIndicesWhenMet) {
  auto [a, b] = mproc::Pipe();
  auto [c, d] = mproc::Pipe();
  std::vector<mproc::Connection> ends;
  ends.push_back(std::move(b));
  ends.push_back(std::move(d));
  const std::vector<mproc::Waitable> list{ends[0], ends[1]};
  const std::span<const mproc::Waitable> span(list);
  using Ready = std::vector<std::size_t>;
  auto wait_range = [&](std::chrono::milliseconds limit) {
    return in_form(
        limit, [&](auto t) { return mproc::wait(ends, t); },
        [&](auto dl) { return mproc::wait_until(ends, dl); });
  };
  auto wait_span = [&](std::chrono::milliseconds limit) {
    return in_form(
        limit, [&](auto t) { return mproc::wait(span, t); },
        [&](auto dl) { return mproc::wait_until(span, dl); });
  };
  auto wait_list = [&](std::chrono::milliseconds limit) {
    return in_form(
        limit,
        [&](auto t) {
          return mproc::wait({ends[0], ends[1]}, t);
        },
        [&](auto dl) {
          return mproc::wait_until({ends[0], ends[1]}, dl);
        });
  };
  EXPECT_EQ(wait_range(kExpires), Ready{});
  EXPECT_EQ(wait_span(kExpires), Ready{});
  EXPECT_EQ(wait_list(kExpires), Ready{});
  c.send(1);
  EXPECT_EQ(wait_range(kMet), Ready{1});
  EXPECT_EQ(wait_span(kMet), Ready{1});
  EXPECT_EQ(wait_list(kMet), Ready{1});
  EXPECT_EQ(mproc::wait(ends), Ready{1});
  EXPECT_EQ(mproc::wait({ends[0], ends[1]}), Ready{1});
  a.send(2);
}

// ---------------------------------------------------------------------------------------------
// Processes

TEST_P(TimeoutForm, ProcessJoinIsFalseWhenItExpiresAndTrueWhenMet) {
  mproc::Event go;
  mproc::Process p(
      [](mproc::Event e) {
        if (!e.wait(30s)) return 2;
        return 7;
      },
      go);
  p.start();
  const bool early = in_form(
      kExpires, [&](auto t) { return p.join(t); }, [&](auto d) { return p.join_until(d); });
  go.set();
  const bool joined = in_form(
      kMet, [&](auto t) { return p.join(t); }, [&](auto d) { return p.join_until(d); });
  if (!joined) {
    p.kill();
    p.join();
  }
  EXPECT_FALSE(early);
  EXPECT_TRUE(joined);
  EXPECT_EQ(p.exitcode(), 7);
}

// The met form of ParentProcess::join cannot be observed: a child dies with its parent
// (PR_SET_PDEATHSIG), so only the expiring one is checked, in a child.
TEST_P(TimeoutForm, ParentProcessJoinIsFalseWhileTheParentRuns) {
  mproc::Process p(
      [](Form form) {
        auto parent = mproc::parent_process();
        if (!parent) return 2;
        const bool ended = with_limit(
            form, kExpires, [&](auto t) { return parent->join(t); },
            [&](auto d) { return parent->join_until(d); });
        return ended ? 3 : 0;
      },
      GetParam());
  p.start();
  if (!p.join(kMet)) {
    p.kill();
    p.join();
  }
  EXPECT_EQ(p.exitcode(), 0);
}

}  // namespace
