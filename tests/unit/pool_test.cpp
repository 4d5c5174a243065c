// Pool: the API of multiprocessing.Pool (after CPython's test_multiprocessing Pool tests).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <mproc/pool.hpp>
#include <numeric>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "helpers/count_range.hpp"
#include "helpers/shared_page.hpp"

namespace {

using namespace std::chrono_literals;

int sqr(int x) { return x * x; }
int add(int a, int b) { return a + b; }
int sleepy_sqr(int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(x % 7));
  return x * x;
}
int slow_sqr(int x) {
  std::this_thread::sleep_for(std::chrono::seconds(30));
  return x * x;
}
int raise_at_5(int x) {
  if (x == 5) throw std::invalid_argument("five is bad");
  return x;
}
std::string greet(std::string name, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += "hi " + name + ";";
  return out;
}
int my_pid() { return static_cast<int>(getpid()); }

// State that exists before the Pool is created is visible to the workers (copy-on-write).
int g_before_pool = 0;
int read_before_pool() { return g_before_pool; }

// An input range whose iterator throws when it reaches element `when`.
struct SayWhenError : std::runtime_error {
  SayWhenError() : std::runtime_error("Somebody said when") {}
};
class ThrowingRange {
 public:
  explicit ThrowingRange(int total, int when) : total_(total), when_(when) {}
  class iterator {
   public:
    using value_type = int;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(int i, int when) : i_(i), when_(when) {}
    int operator*() const {
      if (i_ == when_) throw SayWhenError();
      return i_;
    }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    void operator++(int) { ++i_; }
    bool operator==(const iterator& o) const { return i_ == o.i_; }

   private:
    int i_ = 0;
    int when_ = 0;
  };
  iterator begin() const { return iterator(0, when_); }
  iterator end() const { return iterator(total_, when_); }

 private:
  int total_;
  int when_;
};

TEST(Pool, ZeroOrNegativeProcessesThrowsValueError) {
  EXPECT_THROW(mproc::Pool(0), mproc::ValueError);
  EXPECT_THROW(mproc::Pool(-1), mproc::ValueError);
  EXPECT_THROW(mproc::Pool({.processes = 2, .maxtasksperchild = 0}), mproc::ValueError);
}

TEST(Pool, DefaultProcessesIsProcessCpuCount) {
  mproc::Pool pool;
  EXPECT_EQ(pool.processes(), mproc::process_cpu_count());
}

TEST(Pool, ApplyReturnsTheResult) {
  mproc::Pool pool(2);
  EXPECT_EQ(pool.apply(sqr, 5), 25);
  EXPECT_EQ(pool.apply(add, 2, 3), 5);
  EXPECT_EQ(pool.apply(greet, std::string("bob"), 2), "hi bob;hi bob;");
  EXPECT_EQ(pool.apply([] { return 7; }), 7);
  int k = 10;  // a trivially copyable capture travels with the lambda
  EXPECT_EQ(pool.apply([k](int x) { return k * x; }, 4), 40);
  EXPECT_NE(pool.apply(my_pid), static_cast<int>(getpid()));
}

TEST(Pool, ApplyAsyncGetWaitReadySuccessful) {
  mproc::Pool pool(2);
  mproc::AsyncResult<int> r = pool.apply_async(sqr, 6);
  EXPECT_EQ(r.get(), 36);
  EXPECT_EQ(r.get(), 36);  // get() may be called again
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.successful());
  auto f = pool.submit(add, 1, 2);
  EXPECT_TRUE(f.wait(30s));
  EXPECT_EQ(f.get(), 3);
  auto v = pool.apply_async([](int) {}, 1);
  v.wait();
  v.get();
  EXPECT_TRUE(v.successful());
}

TEST(Pool, StateBeforeThePoolIsVisibleToWorkers) {
  g_before_pool = 1234;
  mproc::Pool pool(1);
  g_before_pool = 5;  // too late: the workers copy the state at the Pool's creation
  EXPECT_EQ(pool.apply(read_before_pool), 1234);
}

TEST(Pool, GetWithTimeoutThrowsTimeoutError) {
  mproc::Pool pool(1);
  auto r = pool.apply_async(slow_sqr, 3);
  EXPECT_THROW(r.get(50ms), mproc::TimeoutError);
  EXPECT_FALSE(r.wait(10ms));
  EXPECT_FALSE(r.ready());
  EXPECT_THROW((void)r.successful(), mproc::ValueError);
  pool.terminate();
  EXPECT_THROW(r.get(), mproc::BrokenPool);
}

TEST(Pool, TaskExceptionBecomesRemoteError) {
  mproc::Pool pool(2);
  auto r = pool.apply_async(raise_at_5, 5);
  try {
    r.get();
    FAIL() << "no exception";
  } catch (const mproc::RemoteError& e) {
    EXPECT_EQ(e.type_name(), "std::invalid_argument");
    EXPECT_EQ(e.remote_what(), "five is bad");
    EXPECT_GT(e.pid(), 0);
    EXPECT_NE(e.pid(), static_cast<int>(getpid()));
    EXPECT_NE(std::string(e.what()).find("std::invalid_argument: five is bad (in worker pid "),
              std::string::npos);
  }
  EXPECT_TRUE(r.ready());
  EXPECT_FALSE(r.successful());
  EXPECT_EQ(pool.apply(sqr, 3), 9);  // other tasks are unaffected
}

TEST(Pool, CallbackAndErrorCallback) {
  mproc::Pool pool(2);
  std::atomic<int> got{0};
  std::atomic<bool> got_error{false};
  auto r = pool.apply_async(sqr, std::tuple{7}, [&](const int& v) { got = v; });
  r.wait();
  EXPECT_EQ(got.load(), 49);  // the callback ran before the result became ready
  auto e = pool.apply_async(raise_at_5, std::tuple{5}, nullptr, [&](const std::exception_ptr& ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const mproc::RemoteError& re) {
      got_error = re.remote_what() == "five is bad";
    } catch (...) {
    }
  });
  e.wait();
  EXPECT_TRUE(got_error.load());
}

TEST(Pool, MapReturnsResultsInOrder) {
  mproc::Pool pool(4);
  std::vector<int> in(1000);
  std::iota(in.begin(), in.end(), 0);
  std::vector<int> want;
  for (int x : in) want.push_back(x * x);
  EXPECT_EQ(pool.map(sqr, in), want);
  EXPECT_EQ(pool.map(sqr, in, 1), std::vector<int>(want.begin(), want.end()));
  EXPECT_EQ(pool.map(sqr, in, 77), want);
  EXPECT_EQ(pool.map(sqr, mproc_test::count(0, 1000)), want);
  auto r = pool.map_async(sqr, in);
  EXPECT_EQ(r.get(), want);
}

TEST(Pool, MapOfStringsSplitsLargeChunks) {
  mproc::Pool pool(2);
  std::vector<std::string> in(64, std::string(20000, 'x'));
  auto out = pool.map([](std::string s) { return s.size(); }, in, 64);
  EXPECT_EQ(out, std::vector<std::size_t>(64, 20000));
}

TEST(Pool, EmptyInputGivesEmptyResult) {
  mproc::Pool pool(2);
  EXPECT_TRUE(pool.map(sqr, std::vector<int>{}).empty());
  EXPECT_TRUE(pool.map_async(sqr, std::vector<int>{}).get().empty());
  EXPECT_TRUE(pool.starmap(add, std::vector<std::tuple<int, int>>{}).empty());
  int n = 0;
  for (int v : pool.imap(sqr, std::vector<int>{})) n += v + 1;
  for (int v : pool.imap_unordered(sqr, std::vector<int>{})) n += v + 1;
  EXPECT_EQ(n, 0);
}

TEST(Pool, StarmapAppliesTuples) {
  mproc::Pool pool(3);
  std::vector<std::tuple<int, int>> in;
  for (int i = 0; i < 100; ++i) in.emplace_back(i, 2 * i);
  std::vector<int> want;
  for (auto [a, b] : in) want.push_back(a + b);
  EXPECT_EQ(pool.starmap(add, in), want);
  EXPECT_EQ(pool.starmap_async(add, in, 7).get(), want);
}

TEST(Pool, MapErrorIsThrownAndDoesNotDeadlockJoin) {
  mproc::Pool pool(2);
  std::vector<int> in(20);
  std::iota(in.begin(), in.end(), 0);
  EXPECT_THROW(pool.map(raise_at_5, in), mproc::RemoteError);
  EXPECT_THROW(pool.map(raise_at_5, in, 1), mproc::RemoteError);
  pool.close();
  pool.join();
}

TEST(Pool, MapPropagatesTheInputRangesException) {
  mproc::Pool pool(2);
  EXPECT_THROW(pool.map(sqr, ThrowingRange(100, 10)), SayWhenError);
  EXPECT_THROW(pool.map(sqr, ThrowingRange(100, 0)), SayWhenError);
  EXPECT_EQ(pool.map(sqr, ThrowingRange(10, 100)).size(), 10u);
}

TEST(Pool, ImapRaisesTheInputRangesExceptionAtItsPosition) {
  mproc::Pool pool(2);
  for (std::size_t chunk : {1u, 3u}) {
    auto it = pool.imap(sqr, ThrowingRange(100, 10), chunk);
    for (int i = 0; i < 10; ++i) {
      auto v = it.next(30s);
      ASSERT_TRUE(v);
      EXPECT_EQ(*v, i * i);
    }
    EXPECT_THROW(it.next(30s), SayWhenError);
    EXPECT_FALSE(it.next(30s));
  }
  auto u = pool.imap_unordered(sqr, ThrowingRange(100, 10), 2);
  std::set<int> got;
  try {
    for (;;) {
      auto v = u.next(30s);
      ASSERT_TRUE(v) << "ended without the input's exception";
      got.insert(*v);
    }
  } catch (const SayWhenError&) {
  }
  EXPECT_EQ(got.size(), 10u);
}

TEST(Pool, ImapKeepsOrder) {
  mproc::Pool pool(4);
  std::vector<int> got;
  for (int v : pool.imap(sleepy_sqr, mproc_test::count(0, 200))) got.push_back(v);
  ASSERT_EQ(got.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i * i);
  got.clear();
  for (int v : pool.imap(sleepy_sqr, mproc_test::count(0, 200), 16)) got.push_back(v);
  ASSERT_EQ(got.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i * i);
}

TEST(Pool, ImapUnorderedGivesTheSameSet) {
  mproc::Pool pool(4);
  std::multiset<int> got, want;
  for (int i = 0; i < 300; ++i) want.insert(i * i);
  for (int v : pool.imap_unordered(sleepy_sqr, mproc_test::count(0, 300), 5)) got.insert(v);
  EXPECT_EQ(got, want);
}

TEST(Pool, ImapTaskErrorIsRaisedAtItsPositionAndIterationGoesOn) {
  mproc::Pool pool(2);
  auto it = pool.imap(raise_at_5, mproc_test::count(0, 10));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(*it.next(30s), i);
  EXPECT_THROW(it.next(30s), mproc::RemoteError);
  for (int i = 6; i < 10; ++i) EXPECT_EQ(*it.next(30s), i);
  EXPECT_FALSE(it.next(30s));
}

TEST(Pool, ImapNextWithTimeoutThrowsTimeoutError) {
  mproc::Pool pool(1);
  auto it = pool.imap(slow_sqr, mproc_test::count(0, 3));
  EXPECT_THROW(it.next(50ms), mproc::TimeoutError);
  pool.terminate();
}

TEST(Pool, ImapOverAnInfiniteInputRunsInBoundedMemory) {
  mproc::Pool pool(4);
  auto it = pool.imap([](long x) { return x + 1; }, mproc_test::count_from(0L), 8);
  long want = 1;
  std::size_t max_seen = 0;
  for (int i = 0; i < 100000; ++i) {
    auto v = it.next(30s);
    ASSERT_TRUE(v);
    ASSERT_EQ(*v, want++);
    max_seen = std::max(max_seen, it.in_flight());
  }
  EXPECT_LE(max_seen, it.max_in_flight());
  EXPECT_EQ(it.max_in_flight(), 64u * 4 / 8);  // the default: 64 elements per worker, chunks of 8
  // The pool's own count drops a little after next() may already have taken a result (a batch
  // of results is accounted for once its callbacks have run); once nothing more is consumed, it
  // settles at no more than the chunks in flight.
  EXPECT_TRUE(mproc_test::eventually([&] { return pool.unfinished() <= it.in_flight(); }));
  EXPECT_LE(it.in_flight(), it.max_in_flight());
  pool.terminate();
}

TEST(Pool, MillionTinyTasksViaMap) {
  mproc::Pool pool(4);
  auto out = pool.map([](int x) { return x + 1; }, mproc_test::count(0, 1000000));
  ASSERT_EQ(out.size(), 1000000u);
  for (int i = 0; i < 1000000; ++i) ASSERT_EQ(out[static_cast<std::size_t>(i)], i + 1);
}

TEST(Pool, UnevenDurationsAllComplete) {
  mproc::Pool pool(4);
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 60; ++i)
    rs.push_back(pool.apply_async(
        [](int x) {
          std::this_thread::sleep_for(std::chrono::milliseconds(x % 4 == 0 ? 50 : 1));
          return x;
        },
        i));
  for (int i = 0; i < 60; ++i) EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(30s), i);
}

TEST(Pool, CloseRejectsNewTasksAndJoinFinishesSubmittedWork) {
  mproc::Pool pool(2);
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 20; ++i) rs.push_back(pool.apply_async(sleepy_sqr, i));
  EXPECT_THROW(pool.join(), mproc::ValueError);  // still running
  pool.close();
  EXPECT_THROW(pool.apply_async(sqr, 1), mproc::ValueError);
  pool.join();
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(rs[static_cast<std::size_t>(i)].ready());
    EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(), i * i);
  }
  pool.join();  // again: nothing to do
}

TEST(Pool, DestructorFinishesSubmittedWork) {
  std::vector<mproc::AsyncResult<int>> rs;
  {
    mproc::Pool pool(2);
    for (int i = 0; i < 10; ++i) rs.push_back(pool.apply_async(sleepy_sqr, i));
  }
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(rs[static_cast<std::size_t>(i)].ready());
    EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(), i * i);
  }
}

TEST(Pool, TerminateReturnsPromptlyWithSlowTasksPending) {
  mproc::Pool pool(2);
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 10; ++i) rs.push_back(pool.apply_async(slow_sqr, i));
  std::this_thread::sleep_for(50ms);
  pool.terminate();  // would take 150 s if it waited for the tasks (the ctest timeout is 60 s)
  for (auto& r : rs) {
    ASSERT_TRUE(r.ready());
    EXPECT_THROW(r.get(), mproc::BrokenPool);
  }
  pool.join();
  EXPECT_THROW(pool.apply(sqr, 1), mproc::ValueError);
}

TEST(Pool, ManyThreadsSubmitConcurrently) {
  mproc::Pool pool(3);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        int x = t * 1000 + i;
        if (pool.apply(sqr, x) != x * x) ++wrong;
      }
      auto v = pool.map(sqr, mproc_test::count(0, 100), 3);
      for (int i = 0; i < 100; ++i)
        if (v[static_cast<std::size_t>(i)] != i * i) ++wrong;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

int g_init_value = 0;
void init_set_42() { g_init_value = 42; }
int read_init_value() { return g_init_value; }

TEST(Pool, InitializerRunsInEachWorker) {
  mproc::Pool pool({.processes = 3, .initializer = init_set_42});
  auto out = pool.map([](int) { return read_init_value(); }, mproc_test::count(0, 30), 1);
  EXPECT_EQ(out, std::vector<int>(30, 42));
  EXPECT_EQ(g_init_value, 0);  // not in the parent
}

TEST(Pool, MaxtasksperchildReplacesWorkersWithoutLosingTasks) {
  mproc::Pool pool({.processes = 2, .maxtasksperchild = 3});
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 40; ++i) rs.push_back(pool.apply_async(my_pid));
  std::set<int> pids;
  for (auto& r : rs) pids.insert(r.get(30s));
  // 40 tasks, at most 3 per worker: at least 14 distinct workers ran them.
  EXPECT_GE(pids.size(), 14u);
  auto out = pool.map(sqr, mproc_test::count(0, 100), 1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(out[static_cast<std::size_t>(i)], i * i);
}

}  // namespace
