// Pool: callables that carry data (mproc::partial, function objects with serialize()), map_async's
// callbacks, progress reporting and imap's adaptive chunking.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mproc/pool.hpp>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "helpers/count_range.hpp"
#include "helpers/pty.hpp"

namespace {

using namespace std::chrono_literals;

std::string label(const std::string& prefix, int x) { return prefix + std::to_string(x); }
int sqr(int x) { return x * x; }
int fail_at_7(int x) {
  if (x == 7) throw std::out_of_range("seven");
  return x;
}
int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

// A function object whose state travels through the codec.
struct Polynomial {
  std::vector<int> coefficients;  // c0 + c1 x + c2 x^2 ...
  int operator()(int x) const {
    int y = 0;
    for (auto it = coefficients.rbegin(); it != coefficients.rend(); ++it) y = y * x + *it;
    return y;
  }
  template <class A>
  void serialize(A& ar) {
    ar(coefficients);
  }
};

// An endless input that counts the elements taken from it.
class CountedNaturals {
 public:
  explicit CountedNaturals(std::size_t* reads) : reads_(reads) {}
  class iterator {
   public:
    using value_type = long;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(std::size_t* reads) : reads_(reads) {}
    long operator*() const {
      ++*reads_;
      return static_cast<long>(*reads_ - 1);
    }
    iterator& operator++() { return *this; }
    void operator++(int) {}
    bool operator==(std::default_sentinel_t) const { return false; }

   private:
    std::size_t* reads_ = nullptr;
  };
  iterator begin() const { return iterator(reads_); }
  std::default_sentinel_t end() const { return {}; }

 private:
  std::size_t* reads_;
};

// Progress reports, as the result thread delivers them.
struct Reports {
  std::mutex mu;
  std::vector<std::size_t> done;
  std::vector<std::optional<std::size_t>> totals;
  mproc::MapOptions options(std::size_t chunksize = 0) {
    return {.chunksize = chunksize,
            .progress = [this](std::size_t d, std::optional<std::size_t> t) {
              std::lock_guard<std::mutex> g(mu);
              done.push_back(d);
              totals.push_back(t);
            }};
  }
};

// Runs `fn` with fd 2 redirected to a fresh file; returns what was written to it.
template <class Fn>
std::string capture_stderr(Fn fn) {
  char path[] = "/tmp/mproc_stderr_XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  unlink(path);
  std::fflush(stderr);
  {
    mproc_test::StderrTo redirect(fd);
    fn();
    std::fflush(stderr);
  }
  std::string out;
  char buf[4096];
  lseek(fd, 0, SEEK_SET);
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  close(fd);
  return out;
}

TEST(PoolCallables, PartialBindsAStringForMapAndApply) {
  mproc::Pool pool(2);
  const std::string prefix = "item-";
  std::vector<int> xs = {1, 2, 3, 40};
  auto out = pool.map(mproc::partial(label, prefix), xs);
  EXPECT_EQ(out, (std::vector<std::string>{"item-1", "item-2", "item-3", "item-40"}));
  EXPECT_EQ(pool.apply(mproc::partial(label, std::string("x")), 9), "x9");
  auto lam = mproc::partial([](const std::vector<int>& w, int x) { return w.at(0) * x; },
                            std::vector<int>{5, 6});
  EXPECT_EQ(pool.apply(lam, 3), 15);
  EXPECT_EQ(lam.args(), std::make_tuple(std::vector<int>{5, 6}));
}

TEST(PoolCallables, PartialOfAPartialAndOfAFunctionObject) {
  mproc::Pool pool(2);
  auto add3 = [](int a, int b, int c) { return a * 100 + b * 10 + c; };
  auto p1 = mproc::partial(add3, 1);
  auto p2 = mproc::partial(p1, 2);
  EXPECT_EQ(pool.apply(p2, 3), 123);
  EXPECT_EQ(p2(3), 123);       // the same call in this process
  Polynomial poly{{1, 0, 2}};  // 1 + 2x^2
  EXPECT_EQ(pool.map(poly, std::vector<int>{0, 1, 3}), (std::vector<int>{1, 3, 19}));
  auto shifted =
      mproc::partial([](const Polynomial& p, int d, int x) { return p(x) + d; }, poly, 10);
  EXPECT_EQ(pool.apply(shifted, 2), 19);
}

TEST(PoolCallables, PartialWorksWithImapAndStarmap) {
  mproc::Pool pool(2);
  std::vector<std::string> got;
  for (auto s : pool.imap(mproc::partial(label, std::string("k")), mproc_test::count(0, 50)))
    got.push_back(s);
  ASSERT_EQ(got.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], "k" + std::to_string(i));
  std::vector<std::tuple<int, int>> pairs = {{1, 2}, {3, 4}};
  auto sum3 = mproc::partial([](int base, int a, int b) { return base + a + b; }, 100);
  EXPECT_EQ(pool.starmap(sum3, pairs), (std::vector<int>{103, 107}));
}

TEST(PoolMapAsync, CallbackReceivesTheWholeVectorBeforeReady) {
  mproc::Pool pool(2);
  std::vector<int> seen;
  std::atomic<bool> errored{false};
  auto r = pool.map_async(
      sqr, mproc_test::count(0, 100), {}, [&](const std::vector<int>& v) { seen = v; },
      [&](const std::exception_ptr&) { errored = true; });
  auto v = r.get(30s);
  ASSERT_EQ(v.size(), 100u);
  EXPECT_EQ(seen, v);  // the callback ran before the result became ready
  EXPECT_FALSE(errored);
  EXPECT_TRUE(r.successful());
}

TEST(PoolMapAsync, ErrorCallbackReceivesTheFirstError) {
  mproc::Pool pool(2);
  std::string what;
  bool called_ok = false;
  auto r = pool.starmap_async([](int a, int b) { return fail_at_7(a + b); },
                              std::vector<std::tuple<int, int>>{{1, 1}, {3, 4}, {0, 2}},
                              {.chunksize = 1}, [&](const std::vector<int>&) { called_ok = true; },
                              [&](const std::exception_ptr& e) {
                                try {
                                  std::rethrow_exception(e);
                                } catch (const mproc::RemoteError& err) {
                                  what = err.type_name() + "|" + err.remote_what();
                                }
                              });
  EXPECT_THROW(r.get(30s), mproc::RemoteError);
  EXPECT_EQ(what, "std::out_of_range|seven");
  EXPECT_FALSE(called_ok);
  EXPECT_FALSE(r.successful());
}

TEST(PoolProgress, MapReportsEveryChunkUpToTheTotal) {
  mproc::Pool pool(2);
  Reports rep;
  auto out = pool.map(sqr, mproc_test::count(0, 1000), rep.options(100));
  ASSERT_EQ(out.size(), 1000u);
  std::lock_guard<std::mutex> g(rep.mu);
  // One report per chunk, or more: a chunk that runs longer than the worker's flush interval (2 ms)
  // (under qemu, or on a loaded machine) sends its outcomes in pieces, each reported.
  ASSERT_GE(rep.done.size(), 10u);
  EXPECT_TRUE(std::is_sorted(rep.done.begin(), rep.done.end()));
  EXPECT_GE(rep.done.front(), 1u);
  EXPECT_LE(rep.done.front(), 100u);
  EXPECT_EQ(rep.done.back(), 1000u);
  for (auto t : rep.totals) EXPECT_EQ(t, std::optional<std::size_t>(1000));
}

TEST(PoolProgress, FailedChunksCountAsDone) {
  mproc::Pool pool(2);
  Reports rep;
  auto it = pool.imap(fail_at_7, std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, rep.options(1));
  int errors = 0, values = 0;
  for (;;) {
    try {
      if (!it.next(30s)) break;
      ++values;
    } catch (const mproc::RemoteError&) {
      ++errors;
    }
  }
  EXPECT_EQ(values, 9);
  EXPECT_EQ(errors, 1);
  std::lock_guard<std::mutex> g(rep.mu);
  ASSERT_EQ(rep.done.size(), 10u);
  EXPECT_EQ(*std::max_element(rep.done.begin(), rep.done.end()), 10u);
  EXPECT_EQ(rep.totals.back(), std::optional<std::size_t>(10));  // a vector has a size
}

TEST(PoolProgress, ImapOverAnUnsizedInputHasNoTotal) {
  mproc::Pool pool(2);
  Reports rep;
  long sum = 0;
  for (int v : pool.imap(sqr, mproc_test::count(0, 300), rep.options())) sum += v;
  EXPECT_EQ(sum, 299L * 300 * 599 / 6);
  std::lock_guard<std::mutex> g(rep.mu);
  ASSERT_FALSE(rep.done.empty());
  EXPECT_EQ(*std::max_element(rep.done.begin(), rep.done.end()), 300u);
  for (auto t : rep.totals) EXPECT_FALSE(t.has_value());
}

TEST(PoolProgress, TheBarIsNotDrawnWhenStderrIsNoTerminal) {
  mproc::Pool pool(2);
  std::vector<int> out;
  std::string written = capture_stderr([&] {
    out = pool.map(sqr, mproc_test::count(0, 500), {.progress_bar = true});
    for (int v : pool.imap(sqr, mproc_test::count(0, 50), {.progress_bar = true})) out.push_back(v);
  });
  EXPECT_EQ(out.size(), 550u);
  EXPECT_EQ(written, "");
}

TEST(PoolProgress, TheBarIsDrawnWhenStderrIsATerminal) {
  mproc_test::Pty pty;
  if (!pty.ok()) GTEST_SKIP() << "no pseudo-terminal here";
  pty.set_columns(80);
  mproc::Pool pool(2);
  std::vector<int> out;
  {
    mproc_test::StderrTo redirect(pty.slave());
    out = pool.map(sqr, mproc_test::count(0, 1000), {.chunksize = 10, .progress_bar = true});
  }
  ASSERT_EQ(out.size(), 1000u);
  const std::string drawn = pty.read_line();
  ASSERT_FALSE(drawn.empty());
  EXPECT_EQ(drawn.front(), '\r');
  EXPECT_EQ(drawn.back(), '\n');  // the last line ends the bar
  const std::string last = drawn.substr(drawn.rfind('\r'));
  EXPECT_NE(last.find("100%|"), std::string::npos) << last;
  EXPECT_NE(last.find("| 1000/1000 ["), std::string::npos) << last;
}

TEST(PoolProgress, AThrowingProgressCallbackDoesNotHurtTheMap) {
  mproc::Pool pool(2);
  std::atomic<int> calls{0};
  auto out = pool.map(sqr, mproc_test::count(0, 40),
                      {.chunksize = 4, .progress = [&](std::size_t, std::optional<std::size_t>) {
                         ++calls;
                         throw std::runtime_error("progress callback failed");
                       }});
  EXPECT_EQ(out.size(), 40u);
  EXPECT_EQ(out[39], 39 * 39);
  EXPECT_GE(calls.load(), 10);  // once per chunk, or per piece of a chunk slower than 2 ms (qemu)
}

TEST(PoolAdaptiveChunks, TinyTasksGetLargerChunks) {
  mproc::Pool pool(2);
  auto it = pool.imap([](long x) { return 2 * x; }, mproc_test::count_from(0L));
  EXPECT_EQ(it.last_chunksize(), 0u);  // nothing submitted before the first next()
  ASSERT_EQ(*it.next(30s), 0);
  std::size_t largest = 0;
  for (long i = 1; i < 200000; ++i) {
    auto v = it.next(30s);
    ASSERT_TRUE(v);
    ASSERT_EQ(*v, 2 * i);
    largest = std::max(largest, it.last_chunksize());
  }
  // A multiplication takes far less than 1 ms, so chunks grow, up to the cap.
  EXPECT_GT(largest, 64u);
  EXPECT_LE(largest, 8192u);
}

TEST(PoolAdaptiveChunks, AnElementsErrorLosesNothingElseOfItsChunk) {
  mproc::Pool pool(2);
  for (std::size_t chunk : {0u, 1u, 4u, 64u}) {  // adaptive, then fixed sizes
    auto it = pool.imap(fail_at_7, mproc_test::count(0, 20), {.chunksize = chunk});
    for (int i = 0; i < 20; ++i) {
      if (i == 7) {
        try {
          (void)it.next(30s);
          ADD_FAILURE() << "element 7 did not throw (chunksize " << chunk << ")";
        } catch (const mproc::RemoteError& e) {
          EXPECT_EQ(e.type_name(), "std::out_of_range");
          EXPECT_EQ(e.remote_what(), "seven");
          EXPECT_GT(e.pid(), 0);
        }
      } else {
        auto v = it.next(30s);
        ASSERT_TRUE(v) << "chunksize " << chunk;
        EXPECT_EQ(*v, i) << "chunksize " << chunk;
      }
    }
    EXPECT_FALSE(it.next(30s));
  }
  std::multiset<int> got;
  int errors = 0;
  auto u = pool.imap_unordered(fail_at_7, mproc_test::count(0, 20), 5);
  for (;;) {
    try {
      auto v = u.next(30s);
      if (!v) break;
      got.insert(*v);
    } catch (const mproc::RemoteError&) {
      ++errors;
    }
  }
  EXPECT_EQ(errors, 1);
  EXPECT_EQ(got.size(), 19u);
  EXPECT_EQ(got.count(7), 0u);
}

TEST(PoolAdaptiveChunks, LongTasksKeepChunksOfOne) {
  mproc::Pool pool(2);
  std::vector<int> got;
  auto it = pool.imap_unordered(sleep_ms, std::vector<int>(24, 5));
  std::size_t largest = 0;
  while (auto v = it.next(30s)) {
    got.push_back(*v);
    largest = std::max(largest, it.last_chunksize());
  }
  EXPECT_EQ(got, std::vector<int>(24, 5));
  EXPECT_EQ(largest, 1u);  // 5 ms per element is more than a chunk's 1 ms target
}

TEST(PoolAdaptiveChunks, KnownSizeKeepsTheTailBalanced) {
  mproc::Pool pool(2);
  std::vector<int> xs(10000);
  std::iota(xs.begin(), xs.end(), 0);
  auto it = pool.imap(sqr, xs);
  std::size_t n = 0;
  std::size_t largest = 0;
  while (auto v = it.next(30s)) {
    ASSERT_EQ(*v, xs[n] * xs[n]);
    ++n;
    largest = std::max(largest, it.last_chunksize());
  }
  EXPECT_EQ(n, xs.size());
  EXPECT_LE(largest, (xs.size() + 7) / 8);  // never more than a quarter of the share of a worker
  EXPECT_EQ(it.last_chunksize(), 1u);       // the last chunks shrink to one element
}

TEST(PoolAdaptiveChunks, LargeElementsAreSplitIntoTasksThatFit) {
  mproc::Pool pool(2);
  std::vector<std::string> big(12, std::string(100 * 1024, 'x'));
  for (std::size_t i = 0; i < big.size(); ++i) big[i][0] = static_cast<char>('a' + i);
  std::vector<std::string> got;
  for (auto s : pool.imap([](std::string s) { return s.substr(0, 1) + std::to_string(s.size()); },
                          big, {.chunksize = 8}))
    got.push_back(s);
  ASSERT_EQ(got.size(), 12u);
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(got[i], std::string(1, static_cast<char>('a' + i)) + "102400");
}

TEST(PoolLargeMessages, ArgumentsAndResultsOfManyMegabytes) {
  mproc::Pool pool(2);
  std::string arg(8 * 1024 * 1024, 'a');
  for (std::size_t i = 0; i < arg.size(); i += 4096) arg[i] = static_cast<char>('a' + i % 26);
  // A large argument, a large result.
  auto twice = pool.apply([](const std::string& s) { return s + s; }, arg);
  ASSERT_EQ(twice.size(), 2 * arg.size());
  EXPECT_EQ(twice.substr(arg.size()), arg);
  // map and imap whose single elements exceed a mailbox message.
  std::vector<std::string> elems = {std::string(700 * 1024, 'x'), "", std::string(300, 'y'),
                                    std::string(3 * 1024 * 1024, 'z')};
  auto sizes = pool.map([](std::string s) { return s.size(); }, elems);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{700 * 1024, 0, 300, 3 * 1024 * 1024}));
  std::vector<std::size_t> got;
  for (auto n : pool.imap([](std::string s) { return s.size(); }, elems)) got.push_back(n);
  EXPECT_EQ(got, sizes);
  // Empty arguments and results.
  EXPECT_EQ(pool.apply([](std::string s) { return s; }, std::string()), "");
  EXPECT_TRUE(pool.map(sqr, std::vector<int>{}).empty());
}

TEST(PoolAdaptiveChunks, AnEndlessInputIsReadOnlyAsFarAsTheWindowAllows) {
  mproc::Pool pool(2);
  std::size_t reads = 0;
  auto it = pool.imap([](long x) { return x + 1; }, CountedNaturals(&reads));
  std::size_t ahead = 0;
  for (long i = 0; i < 1000000; ++i) {
    auto v = it.next(30s);
    ASSERT_TRUE(v);
    ASSERT_EQ(*v, i + 1);
    ahead = std::max(ahead, reads - static_cast<std::size_t>(i + 1));
  }
  // At most 4 chunks per worker of at most 8192 elements, plus the chunk being consumed.
  EXPECT_LE(ahead, 2u * 4 * 8192 + 8192);
  EXPECT_LE(it.in_flight(), std::max<std::size_t>(it.max_in_flight(), 2 * 64));
  pool.terminate();
}

}  // namespace
