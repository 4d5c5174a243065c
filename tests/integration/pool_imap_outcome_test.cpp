// Pool map/imap when an element crashes its worker, throws, or its worker is killed from outside:
// every input yields exactly one outcome — its value, or an error at its own position — and the
// errors name the input element (WorkerLost/RemoteError::position(), "input element N" in
// what()); errors of apply/submit tasks name the task instead.
//
// The first tests are the newcomer's program: imap over 0..999 where input 537 calls abort()
// must give 999 right values and one WorkerLost at position 537, whatever the chunking.
//
// Bounded: every next() waits at most 30 s, every collection stops after a few outcomes more than
// the input has, and a watchdog ends the test binary (exit 2, with a message) if a test runs over
// 90 s, before ctest's own timeout.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mproc/pool.hpp>
#include <mutex>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "helpers/count_range.hpp"
#include "helpers/shared_page.hpp"
#include "helpers/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_test::eventually;
using mproc_test::SharedPage;

constexpr int kInputs = 1000;
constexpr int kCrash = 537;         // the input that aborts (or throws) in the issue's program
constexpr std::size_t kSlack = 16;  // outcomes taken beyond the input's size, to see doubles

using mproc_test::Watchdog;

int value_of(int x) { return 2 * x + 1; }
int input_of(int v) { return (v - 1) / 2; }  // value_of's inverse (for odd v)

// The issue's work function: input 537 aborts its worker (default disposition first, so that a
// sanitizer's handler does not turn the signal into an exit code).
int abort_at_537(int x) {
  if (x == kCrash) {
    ::signal(SIGABRT, SIG_DFL);
    std::abort();
  }
  return value_of(x);
}

int throw_at_537(int x) {
  if (x == kCrash) throw std::runtime_error("bad input " + std::to_string(x));
  return value_of(x);
}

int add_throw_at_537(int a, int b) {
  if (a == kCrash) throw std::runtime_error("bad input " + std::to_string(a));
  return a + b;
}

// What one next() gave: a value, or the exception it threw.
struct Outcome {
  std::optional<int> value;
  std::string kind;  // "WorkerLost", "RemoteError", "TimeoutError", or the what() of another error
  std::optional<std::size_t> position;
  std::string what;
  int exitcode = 0;  // WorkerLost
  int pid = 0;       // WorkerLost, RemoteError
};

std::string describe(const Outcome& o) {
  if (o.value) return "the value " + std::to_string(*o.value);
  std::string s =
      o.kind + " at position " + (o.position ? std::to_string(*o.position) : std::string("<none>"));
  return s + " (\"" + o.what + "\")";
}

// True when `what` names input element `i` ("input element 537", not "input element 5370").
bool names_element(const std::string& what, std::size_t i) {
  const std::string key = "input element " + std::to_string(i);
  for (auto at = what.find(key); at != std::string::npos; at = what.find(key, at + 1)) {
    const std::size_t end = at + key.size();
    if (end == what.size() || what[end] < '0' || what[end] > '9') return true;
  }
  return false;
}

// Every outcome of `results`, each next() waiting at most 30 s, up to `limit` of them. `ended`:
// whether next() reported the end of the sequence. A next() that waited 30 s in vain stops the
// collection (its outcome is recorded as "TimeoutError").
template <class Results>
std::vector<Outcome> collect(Results& results, std::size_t limit, bool& ended) {
  std::vector<Outcome> out;
  ended = false;
  while (out.size() < limit) {
    Outcome o;
    try {
      const std::optional<int> v = results.next(30s);
      if (!v) {
        ended = true;
        break;
      }
      o.value = *v;
    } catch (const mproc::TimeoutError& e) {
      o.kind = "TimeoutError";
      o.what = e.what();
      out.push_back(o);
      break;
    } catch (const mproc::WorkerLost& e) {
      o.kind = "WorkerLost";
      o.position = e.position();
      o.what = e.what();
      o.exitcode = e.exitcode();
      o.pid = e.pid();
    } catch (const mproc::RemoteError& e) {
      o.kind = "RemoteError";
      o.position = e.position();
      o.what = e.what();
      o.pid = e.pid();
    } catch (const std::exception& e) {
      o.kind = std::string("another error: ") + e.what();
      o.what = e.what();
    }
    out.push_back(o);
  }
  return out;
}

// The error an input must yield: its kind and, for WorkerLost, the exit code (0: any).
struct ErrorSpec {
  std::string kind;
  int exitcode = 0;
};

// Problems found, one a line (the first 10, then a count); empty when all is right.
class Problems {
 public:
  void add(const std::string& line) {
    if (count_++ < 10) out_ << "  " << line << "\n";
  }
  std::string str(const std::string& summary) const {
    if (count_ == 0) return "";
    std::string s = summary + "\n" + out_.str();
    if (count_ > 10) s += "  ... and " + std::to_string(count_ - 10) + " more\n";
    return s;
  }

 private:
  std::ostringstream out_;
  int count_ = 0;
};

// Checks the error outcome `o` of input `i` against `spec`.
void check_error(Problems& p, const Outcome& o, std::size_t i, const ErrorSpec& spec) {
  const std::string at = "input " + std::to_string(i) + ": ";
  if (o.value) {
    p.add(at + "the value " + std::to_string(*o.value) + ", expected " + spec.kind);
  } else if (o.kind != spec.kind) {
    p.add(at + describe(o) + ", expected " + spec.kind);
  } else if (o.position != i) {
    p.add(at + describe(o) + ": position() is not " + std::to_string(i));
  } else if (!names_element(o.what, i)) {
    p.add(at + describe(o) + ": what() does not name \"input element " + std::to_string(i) + "\"");
  } else if (spec.exitcode != 0 && o.exitcode != spec.exitcode) {
    p.add(at + describe(o) + ": exit code " + std::to_string(o.exitcode) + ", expected " +
          std::to_string(spec.exitcode));
  }
}

// imap: outcome k is input k's: value_of(k), or the error `errors` names for k.
std::string check_ordered(const std::vector<Outcome>& got, bool ended, std::size_t n,
                          const std::map<std::size_t, ErrorSpec>& errors) {
  Problems p;
  std::size_t right = 0, errs = 0;
  for (const Outcome& o : got) (o.value ? right : errs) += 1;
  if (got.size() != n || !ended)
    p.add(std::to_string(got.size()) + " outcomes, expected " + std::to_string(n) +
          (ended ? ", then the end" : ", and no end seen"));
  right = 0;
  for (std::size_t i = 0; i < got.size() && i < n; ++i) {
    const Outcome& o = got[i];
    if (auto e = errors.find(i); e != errors.end()) {
      check_error(p, o, i, e->second);
      continue;
    }
    if (!o.value) {
      p.add("input " + std::to_string(i) + ": " + describe(o) + ", expected the value " +
            std::to_string(value_of(static_cast<int>(i))));
    } else if (*o.value != value_of(static_cast<int>(i))) {
      p.add("input " + std::to_string(i) + ": the value " + std::to_string(*o.value) + " (input " +
            std::to_string(input_of(*o.value)) + "'s), expected " +
            std::to_string(value_of(static_cast<int>(i))));
    } else {
      ++right;
    }
  }
  return p.str("imap: " + std::to_string(got.size()) + " outcomes: " + std::to_string(right) +
               " right values at their position, " + std::to_string(errs) + " errors");
}

// imap_unordered: each input exactly once, as its value or as the error `errors` names for it
// (found by position()).
std::string check_unordered(const std::vector<Outcome>& got, bool ended, std::size_t n,
                            const std::map<std::size_t, ErrorSpec>& errors) {
  Problems p;
  std::vector<int> seen(n, 0);
  std::size_t values = 0, errs = 0;
  if (got.size() != n || !ended)
    p.add(std::to_string(got.size()) + " outcomes, expected " + std::to_string(n) +
          (ended ? ", then the end" : ", and no end seen"));
  for (const Outcome& o : got) {
    if (o.value) {
      ++values;
      const int v = *o.value;
      const int i = input_of(v);
      if (v % 2 != 1 || i < 0 || static_cast<std::size_t>(i) >= n) {
        p.add("the value " + std::to_string(v) + " is no input's");
        continue;
      }
      ++seen[static_cast<std::size_t>(i)];
      if (errors.count(static_cast<std::size_t>(i)))
        p.add("input " + std::to_string(i) + ": a value, expected " +
              errors.at(static_cast<std::size_t>(i)).kind);
      continue;
    }
    ++errs;
    if (!o.position || *o.position >= n) {
      p.add(describe(o) + ": names no input");
      continue;
    }
    const std::size_t i = *o.position;
    ++seen[i];
    if (auto e = errors.find(i); e != errors.end()) {
      check_error(p, o, i, e->second);
    } else {
      p.add("input " + std::to_string(i) + ": " + describe(o) + ", expected a value");
    }
  }
  std::size_t missing = 0, doubled = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (seen[i] == 0) {
      if (missing++ < 3) p.add("input " + std::to_string(i) + ": no outcome");
    } else if (seen[i] > 1) {
      if (doubled++ < 3)
        p.add("input " + std::to_string(i) + ": " + std::to_string(seen[i]) + " outcomes");
    }
  }
  return p.str("imap_unordered: " + std::to_string(got.size()) +
               " outcomes: " + std::to_string(values) + " values, " + std::to_string(errs) +
               " errors; " + std::to_string(missing) + " inputs without outcome, " +
               std::to_string(doubled) + " with several");
}

std::vector<int> inputs() {
  std::vector<int> v(kInputs);
  for (int i = 0; i < kInputs; ++i) v[static_cast<std::size_t>(i)] = i;
  return v;
}

const std::map<std::size_t, ErrorSpec> kAbortAt537 = {
    {kCrash, {"WorkerLost", -SIGABRT}},
};

// ----------------------------------------------------------------------------- the issue's program

// Pool with default options, imap with default (adaptive) chunks over a vector 0..999; input 537
// aborts: 999 right values in order and one WorkerLost at position 537.
TEST(PoolImapOutcome, IssueProgramGives999ValuesAndWorkerLostAt537) {
  Watchdog dog;
  const std::vector<int> xs = inputs();
  mproc::Pool pool;
  auto results = pool.imap(abort_at_537, xs);
  bool ended = false;
  const auto got = collect(results, xs.size() + kSlack, ended);
  EXPECT_EQ(check_ordered(got, ended, xs.size(), kAbortAt537), "");
  if (got.size() > kCrash && got[kCrash].kind == "WorkerLost")
    std::printf("input 537: %s\n", got[kCrash].what.c_str());
}

// The same over an input without a size (chunks are not capped by the remaining count).
TEST(PoolImapOutcome, IssueProgramOverAnUnsizedInputGives999ValuesAndWorkerLostAt537) {
  Watchdog dog;
  mproc::Pool pool;
  auto results = pool.imap(abort_at_537, mproc_test::count(0, kInputs));
  bool ended = false;
  const auto got = collect(results, kInputs + kSlack, ended);
  EXPECT_EQ(check_ordered(got, ended, kInputs, kAbortAt537), "");
}

// ---------------------------------------------------------------------------------- every chunking

struct Chunking {
  std::size_t chunksize;  // 0: adaptive
  bool sized;             // std::vector (sized) or mproc_test::count (unsized)
  bool ordered;           // imap or imap_unordered
};

void PrintTo(const Chunking& c, std::ostream* os) {
  *os << (c.ordered ? "imap" : "imap_unordered") << ", chunksize " << c.chunksize
      << (c.chunksize == 0 ? " (adaptive)" : "") << ", " << (c.sized ? "vector" : "unsized input");
}

std::string chunking_name(const ::testing::TestParamInfo<Chunking>& info) {
  const Chunking& c = info.param;
  return (c.ordered ? std::string("imap_") : std::string("imap_unordered_")) +
         (c.chunksize == 0 ? std::string("adaptive") : "chunk" + std::to_string(c.chunksize)) +
         (c.sized ? "_vector" : "_unsized");
}

class PoolImapChunking : public ::testing::TestWithParam<Chunking> {};

template <class Results>
std::string run_and_check(Results&& results, bool ordered,
                          const std::map<std::size_t, ErrorSpec>& errors) {
  bool ended = false;
  const auto got = collect(results, kInputs + kSlack, ended);
  return ordered ? check_ordered(got, ended, kInputs, errors)
                 : check_unordered(got, ended, kInputs, errors);
}

TEST_P(PoolImapChunking, EveryInputYieldsOneOutcomeWhenInput537Aborts) {
  Watchdog dog;
  const Chunking c = GetParam();
  mproc::Pool pool(2);
  const std::vector<int> xs = inputs();
  std::string problems;
  if (c.ordered) {
    problems =
        c.sized ? run_and_check(pool.imap(abort_at_537, xs, c.chunksize), true, kAbortAt537)
                : run_and_check(pool.imap(abort_at_537, mproc_test::count(0, kInputs), c.chunksize),
                                true, kAbortAt537);
  } else {
    problems =
        c.sized
            ? run_and_check(pool.imap_unordered(abort_at_537, xs, c.chunksize), false, kAbortAt537)
            : run_and_check(
                  pool.imap_unordered(abort_at_537, mproc_test::count(0, kInputs), c.chunksize),
                  false, kAbortAt537);
  }
  EXPECT_EQ(problems, "");
  // The pool still serves, with a replacement worker.
  EXPECT_EQ(pool.apply(value_of, 20), 41);
}

std::vector<Chunking> all_chunkings() {
  std::vector<Chunking> out;
  for (bool ordered : {true, false})
    for (std::size_t chunksize :
         {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{64}, std::size_t{1000}})
      for (bool sized : {true, false}) out.push_back({chunksize, sized, ordered});
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllChunkings, PoolImapChunking, ::testing::ValuesIn(all_chunkings()),
                         chunking_name);

// ------------------------------------------------------------------------ errors name the input

const std::map<std::size_t, ErrorSpec> kThrowAt537 = {{kCrash, {"RemoteError", 0}}};

TEST(PoolErrorOrigin, ImapRemoteErrorNamesItsPosition) {
  Watchdog dog;
  mproc::Pool pool(2);
  const std::vector<int> xs = inputs();
  EXPECT_EQ(run_and_check(pool.imap(throw_at_537, xs), true, kThrowAt537), "") << "adaptive";
  EXPECT_EQ(run_and_check(pool.imap(throw_at_537, xs, 64), true, kThrowAt537), "") << "chunk 64";
  EXPECT_EQ(run_and_check(pool.imap_unordered(throw_at_537, xs, 7), false, kThrowAt537), "")
      << "unordered, chunk 7";
}

TEST(PoolErrorOrigin, ImapRemoteErrorKeepsTheOriginalTypeAndWhat) {
  Watchdog dog;
  mproc::Pool pool(2);
  auto results = pool.imap(throw_at_537, mproc_test::count(0, kInputs), 1);
  for (int i = 0; i < kCrash; ++i) ASSERT_EQ(results.next(30s), value_of(i)) << "input " << i;
  try {
    (void)results.next(30s);
    FAIL() << "input 537 gave a value";
  } catch (const mproc::RemoteError& e) {
    EXPECT_EQ(e.type_name(), "std::runtime_error");
    EXPECT_EQ(e.remote_what(), "bad input 537");
    EXPECT_EQ(e.position(), std::optional<std::size_t>(kCrash));
    EXPECT_FALSE(e.task().has_value());
    // "std::runtime_error: bad input 537 (in worker pid N, input element 537)"
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("std::runtime_error: bad input 537 (in worker pid " +
                             std::to_string(e.pid()) + ", input element 537)",
                         0),
              0u)
        << what;
  }
  EXPECT_EQ(results.next(30s), value_of(kCrash + 1));
}

// map fails (as Python's does) with the element's error, which names its position.
TEST(PoolErrorOrigin, MapFailsWithRemoteErrorNamingThePosition) {
  Watchdog dog;
  mproc::Pool pool(2);
  const std::vector<int> xs = inputs();
  for (std::size_t chunksize : {std::size_t{0}, std::size_t{1}, std::size_t{64}}) {
    try {
      (void)pool.map(throw_at_537, xs, chunksize);
      ADD_FAILURE() << "chunksize " << chunksize << ": map succeeded";
    } catch (const mproc::RemoteError& e) {
      EXPECT_EQ(e.position(), std::optional<std::size_t>(kCrash))
          << "chunksize " << chunksize << ": " << e.what();
      EXPECT_TRUE(names_element(e.what(), kCrash)) << "chunksize " << chunksize << ": " << e.what();
      EXPECT_EQ(e.remote_what(), "bad input 537");
    }
  }
}

TEST(PoolErrorOrigin, StarmapFailsWithRemoteErrorNamingThePosition) {
  Watchdog dog;
  mproc::Pool pool(2);
  std::vector<std::tuple<int, int>> args;
  for (int i = 0; i < kInputs; ++i) args.emplace_back(i, 1);
  try {
    (void)pool.starmap(add_throw_at_537, args);
    ADD_FAILURE() << "starmap succeeded";
  } catch (const mproc::RemoteError& e) {
    EXPECT_EQ(e.position(), std::optional<std::size_t>(kCrash)) << e.what();
    EXPECT_TRUE(names_element(e.what(), kCrash)) << e.what();
  }
}

// map fails with WorkerLost naming the element whose call killed the worker.
TEST(PoolErrorOrigin, MapFailsWithWorkerLostNamingThePosition) {
  Watchdog dog;
  mproc::Pool pool(2);
  const std::vector<int> xs = inputs();
  for (std::size_t chunksize : {std::size_t{0}, std::size_t{1}, std::size_t{64}}) {
    try {
      (void)pool.map(abort_at_537, xs, chunksize);
      ADD_FAILURE() << "chunksize " << chunksize << ": map succeeded";
    } catch (const mproc::WorkerLost& e) {
      EXPECT_EQ(e.exitcode(), -SIGABRT) << e.what();
      EXPECT_EQ(e.position(), std::optional<std::size_t>(kCrash))
          << "chunksize " << chunksize << ": " << e.what();
      EXPECT_TRUE(names_element(e.what(), kCrash)) << "chunksize " << chunksize << ": " << e.what();
    }
  }
  // The pool still serves.
  EXPECT_EQ(pool.map(value_of, std::vector<int>{1, 2, 3}), (std::vector<int>{3, 5, 7}));
}

// apply_async/submit tasks have a number (1 for the first task of a pool), no position.
TEST(PoolErrorOrigin, ApplyErrorsNameTheTaskAndNoPosition) {
  Watchdog dog;
  mproc::Pool pool(2);
  auto ok = pool.apply_async(value_of, 1);  // task 1
  auto thrown = pool.apply_async([]() -> int { throw std::runtime_error("apply failed"); });  // 2
  auto crashed = pool.submit([]() -> int {  // task 3
    ::signal(SIGABRT, SIG_DFL);
    std::abort();
  });
  EXPECT_EQ(ok.get(30s), 3);
  try {
    (void)thrown.get(30s);
    ADD_FAILURE() << "the throwing task succeeded";
  } catch (const mproc::RemoteError& e) {
    EXPECT_FALSE(e.position().has_value()) << e.what();
    EXPECT_EQ(e.task(), std::optional<std::uint64_t>(2)) << e.what();
    EXPECT_NE(std::string(e.what()).find(", task 2)"), std::string::npos) << e.what();
  }
  try {
    (void)crashed.get(30s);
    ADD_FAILURE() << "the aborting task succeeded";
  } catch (const mproc::WorkerLost& e) {
    EXPECT_FALSE(e.position().has_value()) << e.what();
    EXPECT_EQ(e.task(), std::optional<std::uint64_t>(3)) << e.what();
    EXPECT_NE(std::string(e.what()).find("task 3"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("input element"), std::string::npos) << e.what();
  }
}

// ------------------------------------------------------------------------------ two deaths at once

struct KillBoard {
  std::atomic<int> victim_pid{0};
};

constexpr int kSelfCrash = 300;  // aborts its worker
constexpr int kVictim = 700;     // its worker is SIGKILLed from outside while it runs

// The work of crash_and_kill: input 300 aborts, input 700 publishes its worker's pid and waits
// to be killed.
struct CrashOrBeKilled {
  KillBoard* b;
  int operator()(int x) const {
    if (x == kSelfCrash) {
      ::signal(SIGABRT, SIG_DFL);
      std::abort();
    }
    if (x == kVictim) {
      b->victim_pid.store(static_cast<int>(getpid()));
      // Killed long before this ends (if never killed: a value, which the check reports).
      for (int i = 0; i < 2000; ++i) std::this_thread::sleep_for(10ms);
    }
    return value_of(x);
  }
};

// An element that crashes deterministically and another whose worker is killed from outside, in
// the same imap: both are WorkerLost at their own position (SIGABRT and SIGKILL), every other
// input yields its value.
void crash_and_kill(bool ordered, std::size_t chunksize) {
  Watchdog dog;
  SharedPage<KillBoard> board;
  KillBoard* b = &*board;
  mproc::Pool pool(2);
  const CrashOrBeKilled f{b};
  std::atomic<int> killed{0};
  std::thread killer([&] {
    if (!eventually([&] { return b->victim_pid.load() != 0; }, 30.0)) return;
    const int pid = b->victim_pid.load();
    if (::kill(pid, SIGKILL) == 0) killed = pid;
  });
  const std::vector<int> xs = inputs();
  const std::map<std::size_t, ErrorSpec> errors = {
      {kSelfCrash, {"WorkerLost", -SIGABRT}},
      {kVictim, {"WorkerLost", -SIGKILL}},
  };
  bool ended = false;
  std::vector<Outcome> got;
  if (ordered) {
    auto results = pool.imap(f, xs, chunksize);
    got = collect(results, xs.size() + kSlack, ended);
  } else {
    auto results = pool.imap_unordered(f, xs, chunksize);
    got = collect(results, xs.size() + kSlack, ended);
  }
  killer.join();
  ASSERT_NE(killed.load(), 0) << "input 700 never ran (or its worker could not be killed)";
  EXPECT_EQ(ordered ? check_ordered(got, ended, xs.size(), errors)
                    : check_unordered(got, ended, xs.size(), errors),
            "");
  for (const Outcome& o : got) {
    if (o.kind == "WorkerLost" && o.position == std::optional<std::size_t>(kVictim)) {
      EXPECT_EQ(o.pid, killed.load()) << o.what;
    }
  }
  EXPECT_EQ(pool.apply(value_of, 20), 41);
}

TEST(PoolImapOutcome, CrashAndOutsideKillInOneAdaptiveImapAreBothAccounted) {
  crash_and_kill(true, 0);
}

TEST(PoolImapOutcome, CrashAndOutsideKillInOneImapWithChunksOf64AreBothAccounted) {
  crash_and_kill(true, 64);
}

TEST(PoolImapOutcome, CrashAndOutsideKillInOneAdaptiveImapUnorderedAreBothAccounted) {
  crash_and_kill(false, 0);
}

}  // namespace
