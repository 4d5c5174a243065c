// How a chunk of map/imap travels and fails, element by element: each element is encoded once and
// read from the input once; a worker that dies mid-chunk loses no finished element and runs none
// twice (its staged outcomes are delivered); results larger than the staging area travel alone.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <mproc/pool.hpp>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "helpers/shared_page.hpp"

using namespace std::chrono_literals;

namespace {

// Counts how often an element is encoded in this process (the parent: the workers are forks with
// their own copy of the counter).
std::atomic<int> g_encodes{0};

struct Counted {
  std::string text;
};

}  // namespace

// Counts every encoding of Counted, whatever the archive does.
template <>
struct mproc::codec<Counted> {
  static std::size_t size(const Counted& c) { return mproc::encoded_size(c.text); }
  static void encode(Writer& w, const Counted& c) {
    g_encodes.fetch_add(1, std::memory_order_relaxed);
    mproc::encode(w, c.text);
  }
  static Counted decode(Reader& r) { return Counted{mproc::decode<std::string>(r)}; }
};

namespace {

std::size_t length_of(const Counted& c) { return c.text.size(); }

std::vector<Counted> counted_input(std::size_t n, std::size_t bytes) {
  std::vector<Counted> v;
  for (std::size_t i = 0; i < n; ++i) v.push_back(Counted{std::string(bytes + i % 7, 'x')});
  return v;
}

// How many times each element started, across all worker processes.
struct Starts {
  std::atomic<int> n[4096];
};
Starts* g_starts = nullptr;

}  // namespace

TEST(PoolChunkEncoding, MapEncodesEachElementOnceWhateverTheChunkSize) {
  mproc::Pool pool(2);
  const auto input = counted_input(300, 40000);  // 12 MB: chunks end by their encoded size
  for (std::size_t chunksize : {0, 1, 7, 300}) {
    g_encodes = 0;
    auto lengths = pool.map(length_of, input, chunksize);
    ASSERT_EQ(lengths.size(), input.size());
    for (std::size_t i = 0; i < input.size(); ++i) EXPECT_EQ(lengths[i], input[i].text.size());
    EXPECT_EQ(g_encodes.load(), 300) << "chunksize " << chunksize;
  }
}

TEST(PoolChunkEncoding, ImapEncodesEachElementOnceWhateverTheChunkSize) {
  mproc::Pool pool(2);
  const auto input = counted_input(300, 40000);
  for (std::size_t chunksize : {0, 1, 300}) {
    g_encodes = 0;
    std::size_t i = 0;
    for (std::size_t len : pool.imap(length_of, input, chunksize)) {
      EXPECT_EQ(len, input[i].text.size());
      ++i;
    }
    EXPECT_EQ(i, input.size());
    EXPECT_EQ(g_encodes.load(), 300) << "chunksize " << chunksize;
  }
}

// 40 KB strings made on each dereference, counting the dereferences (std::views::transform does
// not compile with clang 14 on libstdc++ 12).
class MadeStrings {
 public:
  // `throw_after`: the increment past that element throws (an input that fails half-way).
  MadeStrings(int n, int* reads, int throw_after = -1)
      : n_(n), reads_(reads), throw_after_(throw_after) {}
  class iterator {
   public:
    using value_type = std::string;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(int i, int* reads, int throw_after)
        : i_(i), reads_(reads), throw_after_(throw_after) {}
    std::string operator*() const {
      ++*reads_;
      return std::string(40000, static_cast<char>('a' + i_ % 26));
    }
    iterator& operator++() {
      if (i_ == throw_after_) throw std::runtime_error("the input failed");
      ++i_;
      return *this;
    }
    iterator operator++(int) {
      iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const iterator& o) const { return i_ == o.i_; }

   private:
    int i_ = 0;
    int* reads_ = nullptr;
    int throw_after_ = -1;
  };
  iterator begin() const { return iterator(0, reads_, throw_after_); }
  iterator end() const { return iterator(n_, reads_, throw_after_); }

 private:
  int n_;
  int* reads_;
  int throw_after_;
};

TEST(PoolChunkEncoding, ImapReadsEachInputElementOnceWhenChunksEndBySize) {
  mproc::Pool pool(2);
  int reads = 0;
  // 40 KB elements: adaptive chunks end before the element that would pass their byte budget,
  // and that element is the next chunk's first, read once.
  MadeStrings input(200, &reads);
  int i = 0;
  for (char c : pool.imap([](const std::string& s) { return s[0]; }, input)) {
    EXPECT_EQ(c, static_cast<char>('a' + i % 26));
    ++i;
  }
  EXPECT_EQ(i, 200);
  EXPECT_EQ(reads, 200);
}

TEST(PoolChunkEncoding, ImapOfLargeElementsRaisesTheInputsExceptionAfterTheElementsBeforeIt) {
  mproc::Pool pool(2);
  int reads = 0;
  MadeStrings input(200, &reads, /*throw_after=*/57);  // elements 0..57 exist, then it throws
  auto seq = pool.imap([](const std::string& s) { return s[0]; }, input);
  for (int i = 0; i <= 57; ++i) {
    auto c = seq.next(60s);
    ASSERT_TRUE(c.has_value()) << i;
    EXPECT_EQ(*c, static_cast<char>('a' + i % 26)) << i;
  }
  try {
    (void)seq.next(60s);
    FAIL() << "the input's exception did not come";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "the input failed");
  }
  EXPECT_FALSE(seq.next(60s).has_value());
  EXPECT_EQ(reads, 58);
}

// A chunk whose worker dies after finishing some elements: those are delivered from the staging
// area, not run again; the running element fails; the rest run elsewhere. With quick elements
// (nothing sent before the death) and slow ones (pieces sent every few milliseconds before it).
class PoolChunkDeath : public ::testing::TestWithParam<int> {};

TEST_P(PoolChunkDeath, FinishedElementsAreDeliveredAndNothingRunsTwice) {
  const int sleep_us = GetParam();
  mproc_test::SharedPage<Starts> starts;
  g_starts = &*starts;
  mproc::Pool pool(2);
  static int s_sleep_us;
  s_sleep_us = sleep_us;
  auto work = [](int x) {
    g_starts->n[x].fetch_add(1);
    if (s_sleep_us) std::this_thread::sleep_for(std::chrono::microseconds(s_sleep_us));
    if (x == 45) {
      ::signal(SIGABRT, SIG_DFL);
      std::abort();
    }
    return 2 * x;
  };
  std::vector<int> input(100);
  std::iota(input.begin(), input.end(), 0);
  auto seq = pool.imap(work, input, /*chunksize=*/50);
  for (int i = 0; i < 100; ++i) {
    try {
      auto v = seq.next(60s);
      ASSERT_TRUE(v.has_value()) << i;
      EXPECT_NE(i, 45);
      EXPECT_EQ(*v, 2 * i);
    } catch (const mproc::WorkerLost& e) {
      EXPECT_EQ(i, 45);
      EXPECT_EQ(e.position(), std::optional<std::size_t>(45));
      EXPECT_EQ(e.exitcode(), -SIGABRT);
    }
  }
  EXPECT_FALSE(seq.next(60s).has_value());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(starts->n[i].load(), 1) << "element " << i;
}

INSTANTIATE_TEST_SUITE_P(QuickAndSlowElements, PoolChunkDeath, ::testing::Values(0, 300));

TEST(PoolChunkDeath, AnOutsideKillMidChunkRunsNoElementTwice) {
  mproc_test::SharedPage<Starts> starts;
  g_starts = &*starts;
  mproc_test::SharedPage<std::atomic<int>> victim;
  static std::atomic<int>* s_victim;
  s_victim = &*victim;
  mproc::Pool pool(1);
  auto work = [](int x) {
    g_starts->n[x].fetch_add(1);
    if (x == 30) {
      s_victim->store(static_cast<int>(::getpid()));
      std::this_thread::sleep_for(60s);  // killed from outside
    }
    return 2 * x;
  };
  std::vector<int> input(64);
  std::iota(input.begin(), input.end(), 0);
  auto result = pool.map_async(work, input, mproc::MapOptions{.chunksize = 64});
  ASSERT_TRUE(mproc_test::eventually([&] { return victim->load() != 0; }));
  ASSERT_EQ(::kill(victim->load(), SIGKILL), 0);
  try {
    (void)result.get(60s);
    FAIL() << "the map succeeded";
  } catch (const mproc::WorkerLost& e) {
    EXPECT_EQ(e.position(), std::optional<std::size_t>(30));
    EXPECT_NE(std::string(e.what()).find("killed by signal 9 (SIGKILL)) while running input "
                                         "element 30"),
              std::string::npos)
        << e.what();
  }
  // The map failed, and the rest of its chunk still ran (as in Python), each element once.
  ASSERT_TRUE(mproc_test::eventually([&] { return pool.unfinished() == 0; }));
  for (int i = 0; i < 64; ++i) EXPECT_EQ(starts->n[i].load(), 1) << "element " << i;
  EXPECT_EQ(pool.apply([] { return 7; }), 7);
}

TEST(PoolChunkResults, ResultsLargerThanTheStagingAreaTravelAlone) {
  mproc::Pool pool(2);
  std::vector<int> input = {1, 1100, 2, 1700, 3};  // KiB of result each: two pass 1 MiB
  auto make = [](int kib) { return std::string(static_cast<std::size_t>(kib) * 1024, 'r'); };
  for (std::size_t chunksize : {0, 5}) {
    auto out = pool.map(make, input, chunksize);
    ASSERT_EQ(out.size(), input.size());
    for (std::size_t i = 0; i < input.size(); ++i)
      EXPECT_EQ(out[i].size(), static_cast<std::size_t>(input[i]) * 1024) << i;
  }
  std::size_t i = 0;
  for (const std::string& s : pool.imap_unordered(make, input, 5)) {
    EXPECT_TRUE(s.size() % 1024 == 0 && s.size() > 0);
    ++i;
  }
  EXPECT_EQ(i, input.size());
}

TEST(PoolChunkResults, AnElementThatThrowsFailsAloneAtItsPosition) {
  mproc::Pool pool(2);
  // An element that throws is that element's RemoteError, at its position; its neighbours in the
  // same chunk are unaffected.
  auto work = [](int x) -> std::vector<std::string> {
    if (x == 3) throw std::length_error("cannot build it");
    return {std::to_string(x)};
  };
  std::vector<int> input = {0, 1, 2, 3, 4, 5};
  auto seq = pool.imap(work, input, 6);
  for (int i = 0; i < 6; ++i) {
    try {
      auto v = seq.next(60s);
      ASSERT_TRUE(v.has_value());
      EXPECT_EQ(v->at(0), std::to_string(i));
    } catch (const mproc::RemoteError& e) {
      EXPECT_EQ(i, 3);
      EXPECT_EQ(e.type_name(), "std::length_error");
      EXPECT_EQ(e.position(), std::optional<std::size_t>(3));
      EXPECT_NE(std::string(e.what()).find("input element 3)"), std::string::npos) << e.what();
    }
  }
}

namespace {
// A result whose encoding throws for the value 3 (in the worker, after the element returned).
struct Picky {
  int v = 0;
};
}  // namespace

template <>
struct mproc::codec<Picky> {
  static std::size_t size(const Picky&) { return sizeof(int); }
  static void encode(Writer& w, const Picky& p) {
    if (p.v == 3) throw std::runtime_error("refuses to encode 3");
    w.write_value(p.v);
  }
  static Picky decode(Reader& r) { return Picky{r.read_value<int>()}; }
};

TEST(PoolChunkResults, AResultThatCannotBeEncodedFailsItsElementAlone) {
  mproc::Pool pool(2);
  std::vector<int> input = {0, 1, 2, 3, 4, 5};
  auto seq = pool.imap([](int x) { return Picky{x}; }, input, 6);
  int errors = 0;
  for (int i = 0; i < 6; ++i) {
    try {
      auto v = seq.next(60s);
      ASSERT_TRUE(v.has_value());
      EXPECT_EQ(v->v, i);
    } catch (const mproc::RemoteError& e) {
      ++errors;
      EXPECT_EQ(i, 3);
      EXPECT_EQ(e.type_name(), "std::runtime_error");
      EXPECT_EQ(e.remote_what(), "refuses to encode 3");
      EXPECT_EQ(e.position(), std::optional<std::size_t>(3));
    }
  }
  EXPECT_EQ(errors, 1);
  EXPECT_FALSE(seq.next(60s).has_value());
}
