// bench/workloads_pool.cpp — mproc's rows of the pool groups.
//
// Each workload makes one mproc::Pool with one worker per usable CPU when its runner is made, and
// reuses it for every repetition: pool start-up is never timed. The tasks are captureless lambdas
// (the callable travels as its object bytes, see <mproc/pool.hpp>).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mproc/pool.hpp>
#include <mproc/queue.hpp>
#include <numeric>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "protocols.hpp"

namespace mproc_bench {
namespace {

constexpr std::uint64_t kMapItems = 1'000'000;  // pool.map_noop_1e6, pool.map_small: items per map
constexpr std::uint64_t kFirstResultCalls =
    20;  // pool.imap_first_result: imap starts timed per rep

std::shared_ptr<mproc::Pool> make_pool() {
  restore_affinity();  // the workers may use every CPU, whatever a previous group pinned
  return std::make_shared<mproc::Pool>(static_cast<int>(usable_cpus()));
}

// The pool of the group being measured: the rows of one group (made together, destroyed together
// by the harness) share one Pool, so that they differ only in what they measure (two pools doing
// the same map were measured up to 1.5x apart in one group, one pool's rows alike).
std::shared_ptr<mproc::Pool> group_pool() {
  static std::weak_ptr<mproc::Pool> current;
  if (auto p = current.lock()) return p;
  auto p = make_pool();
  current = p;
  return p;
}

// Waits (untimed) until every task submitted to `pool` has finished.
void drain(const mproc::Pool& pool) {
  while (pool.unfinished() != 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
}

// A pool with PoolOptions::insights on (the rows ".insights": the cost of measuring).
std::shared_ptr<mproc::Pool> make_insights_pool() {
  restore_affinity();
  return std::make_shared<mproc::Pool>(
      mproc::PoolOptions{.processes = static_cast<int>(usable_cpus()), .insights = true});
}

// A row of pool.apply_async_noop: `submit(pool)` submits one no-op task, n times, then each
// result's get() is called in order (`insights`: in a pool with PoolOptions::insights on).
template <class Submit>
Workload noop_tasks_workload(const std::string& name, const std::string& label, bool primary,
                             Submit submit, bool insights = false) {
  return {
      .name = name,
      .group = "pool.apply_async_noop",
      .impl = "mproc",
      .label = label,
      .primary = primary,
      .make =
          [submit, insights] {
            return loop_runner(
                [submit, pool = insights ? make_insights_pool() : make_pool()](std::uint64_t n) {
                  std::vector<mproc::AsyncResult<void>> results;
                  results.reserve(n);
                  for (std::uint64_t i = 0; i < n; ++i) results.push_back(submit(*pool));
                  for (auto& r : results) r.get();
                });
          },
  };
}

const Registrar kApplyAsync{noop_tasks_workload(
    "pool.apply_async_noop/mproc", "mproc::Pool apply_async(noop) x n, then get() each", true,
    [](mproc::Pool& p) { return p.apply_async([] {}); })};

const Registrar kSubmit{
    noop_tasks_workload("pool.apply_async_noop/mproc.submit",
                        "mproc::Pool submit(noop) x n, then get() each (executor style)", false,
                        [](mproc::Pool& p) { return p.submit([] {}); })};

const Registrar kApplyAsyncInsights{noop_tasks_workload(
    "pool.apply_async_noop/mproc.insights",
    "insights on: mproc::Pool apply_async(noop) x n, then get() each", false,
    [](mproc::Pool& p) { return p.apply_async([] {}); }, true)};

// The mproc row of an imap group: imap(identity, iota(0, n)) consumed in order, with `chunksize`
// (0: adaptive); `insights`: the row "<group>/mproc.insights", in a pool with insights on.
Workload imap_identity_workload(const std::string& group, const std::string& label,
                                std::size_t chunksize, bool insights = false) {
  return {
      .name = group + (insights ? "/mproc.insights" : "/mproc"),
      .group = group,
      .impl = "mproc",
      .label = label,
      .primary = !insights,
      .make =
          [order = group + ": a result out of order", missing = group + ": results missing",
           chunksize, insights] {
            return loop_runner(
                [order, missing, chunksize,
                 pool = insights ? make_insights_pool() : make_pool()](std::uint64_t n) {
                  std::uint64_t expect = 0;
                  for (std::uint64_t r : pool->imap([](std::uint64_t x) { return x; },
                                                    std::views::iota(0u, n), chunksize)) {
                    check(r == expect++, order.c_str());
                  }
                  check(expect == n, missing.c_str());
                });
          },
  };
}

const Registrar kIMapChunk1{imap_identity_workload(
    "pool.imap_chunk1", "mproc::Pool imap(identity, iota(0, n), 1), consumed in order", 1)};

const Registrar kIMapChunk1Insights{imap_identity_workload(
    "pool.imap_chunk1", "insights on: mproc::Pool imap(identity, iota(0, n), 1), consumed in order",
    1, true)};

const Registrar kIMapAdaptive{imap_identity_workload(
    "pool.imap_adaptive",
    "mproc::Pool imap(identity, iota(0, n)), adaptive chunks, consumed in order", 0)};

// A row of a map-of-ints group: map(identity, iota(0, 10^6)) with `chunksize` (0: automatic).
Workload map_ints_workload(const std::string& name, const std::string& group,
                           const std::string& label, bool primary, std::size_t chunksize) {
  return {
      .name = name,
      .group = group,
      .impl = "mproc",
      .label = label,
      .primary = primary,
      .make =
          [wrong = group + ": wrong results", chunksize] {
            return scaled_runner(kMapItems, UINT64_MAX, [wrong, chunksize, pool = group_pool()] {
              const double t0 = now_seconds();
              std::vector<int> v = pool->map([](int x) { return x; },
                                             std::views::iota(0, int{kMapItems}), chunksize);
              const double t = now_seconds() - t0;
              check(v.size() == kMapItems && v.back() == int{kMapItems} - 1, wrong.c_str());
              return t;
            });
          },
  };
}

const Registrar kMap1e6{
    map_ints_workload("pool.map_noop_1e6/mproc", "pool.map_noop_1e6",
                      "mproc::Pool map(identity, iota(0, 10^6)), automatic chunksize", true, 0)};

// pool.map_throwing: every element throws; the map throws the first error that arrives, and the
// clock stops when the pool has finished every element (drain). The cost of an element's failure
// in the worker (the throw, its stack recorded at the throw and symbolised into the traceback, its
// error record) and in the parent (a RemoteError made for each). Compare a build with
// -DMPROC_TRACEBACKS=OFF (--baseline) for the traceback's share.
constexpr std::uint64_t kThrowItems = 100'000;

const Registrar kMapThrowing{{
    .name = "pool.map_throwing/mproc",
    .group = "pool.map_throwing",
    .impl = "mproc",
    .label = "mproc::Pool map(f, iota(0, 10^5)), f throws std::runtime_error for every element",
    .primary = true,
    .make =
        [] {
          return scaled_runner(kThrowItems, UINT64_MAX, [pool = group_pool()] {
            const double t0 = now_seconds();
            bool caught = false;
            try {
              (void)pool->map([](int x) -> int { throw std::runtime_error(std::to_string(x)); },
                              std::views::iota(0, int{kThrowItems}));
            } catch (const mproc::RemoteError& e) {
              caught = e.position().has_value();
            }
            drain(*pool);  // the map throws at its first error; the other elements still fail
            const double t = now_seconds() - t0;
            check(caught, "pool.map_throwing: the map did not throw an element's RemoteError");
            return t;
          });
        },
}};

// pool.map_small: the automatic chunksize against manual ones on the same 10^6 ints. The manual
// rows are named "<group>/mproc.chunksize<N>": compare.py takes the best of them for the group's
// "mproc/manual" ratio.
const Registrar kMapSmallAuto{
    map_ints_workload("pool.map_small/mproc", "pool.map_small",
                      "mproc::Pool map(identity, iota(0, 10^6)), automatic chunksize", true, 0)};
const Registrar kMapSmall1000{map_ints_workload(
    "pool.map_small/mproc.chunksize1000", "pool.map_small",
    "chunksize 1000: mproc::Pool map(identity, iota(0, 10^6), 1000)", false, 1000)};
const Registrar kMapSmall10000{map_ints_workload(
    "pool.map_small/mproc.chunksize10000", "pool.map_small",
    "chunksize 10000: mproc::Pool map(identity, iota(0, 10^6), 10000)", false, 10000)};
const Registrar kMapSmall62500{map_ints_workload(
    "pool.map_small/mproc.chunksize62500", "pool.map_small",
    "chunksize 62500: mproc::Pool map(identity, iota(0, 10^6), 62500)", false, 62500)};
const Registrar kMapSmall125000{map_ints_workload(
    "pool.map_small/mproc.chunksize125000", "pool.map_small",
    "chunksize 125000: mproc::Pool map(identity, iota(0, 10^6), 125000)", false, 125000)};

// pool.map_large: map over kLargeStrings strings of kLargeBytes bytes (36 MB) with a cheap
// function (the count of one byte value), the input a const vector as a user passes it. String i
// holds i % 97 bytes 'x', the rest 'a', so that every result is checked.
constexpr std::size_t kLargeStrings = 900;
constexpr std::size_t kLargeBytes = 40'000;

std::shared_ptr<const std::vector<std::string>> large_strings() {
  auto v = std::make_shared<std::vector<std::string>>();
  v->reserve(kLargeStrings);
  for (std::size_t i = 0; i < kLargeStrings; ++i) {
    std::string s(kLargeBytes, 'a');
    for (std::size_t j = 0; j < i % 97; ++j) s[j * 401 % kLargeBytes] = 'x';
    v->push_back(std::move(s));
  }
  return v;
}

std::size_t count_x(const std::string& s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), 'x'));
}

std::size_t expected_x() {
  std::size_t sum = 0;
  for (std::size_t i = 0; i < kLargeStrings; ++i) sum += i % 97;
  return sum;
}

Workload map_large_workload(const std::string& name, const std::string& label, bool primary,
                            std::size_t chunksize) {
  return {
      .name = name,
      .group = "pool.map_large",
      .impl = "mproc",
      .label = label,
      .primary = primary,
      .make =
          [chunksize] {
            return scaled_runner(
                kLargeStrings, UINT64_MAX,
                [chunksize, strings = large_strings(), pool = group_pool()] {
                  const double t0 = now_seconds();
                  std::vector<std::size_t> v = pool->map(
                      [](const std::string& s) { return count_x(s); }, *strings, chunksize);
                  const double t = now_seconds() - t0;
                  check(v.size() == kLargeStrings &&
                            std::accumulate(v.begin(), v.end(), std::size_t{0}) == expected_x(),
                        "pool.map_large: wrong results");
                  return t;
                });
          },
  };
}

const Registrar kMapLargeAuto{map_large_workload(
    "pool.map_large/mproc",
    "mproc::Pool map(count 'x', 900 std::strings of 40 KB), automatic chunksize", true, 0)};
const Registrar kMapLarge1{map_large_workload(
    "pool.map_large/mproc.chunksize1",
    "chunksize 1: mproc::Pool map(count 'x', 900 std::strings of 40 KB, 1)", false, 1)};
const Registrar kMapLarge2{map_large_workload(
    "pool.map_large/mproc.chunksize2",
    "chunksize 2: mproc::Pool map(count 'x', 900 std::strings of 40 KB, 2)", false, 2)};
const Registrar kMapLarge4{map_large_workload(
    "pool.map_large/mproc.chunksize4",
    "chunksize 4: mproc::Pool map(count 'x', 900 std::strings of 40 KB, 4)", false, 4)};
const Registrar kMapLarge16{map_large_workload(
    "pool.map_large/mproc.chunksize16",
    "chunksize 16: mproc::Pool map(count 'x', 900 std::strings of 40 KB, 16)", false, 16)};

// The plain-Queue bound of pool.map_large: the same strings put on one mproc::Queue by a partner
// process and got here (2 processes on 2 CPUs), each string checked by its size and first byte.
const Registrar kMapLargeQueue{{
    .name = "pool.map_large/mproc.queue",
    .group = "pool.map_large",
    .impl = "mproc",
    .label = "the bound: the same strings through one mproc::Queue<std::string>, put by a "
             "partner, got here",
    .primary = false,
    .make =
        [] {
          mproc::Queue<std::string> q;
          auto strings = large_strings();
          return pair_runner({
              .pin = Pin::kSplit,
              .before = {},
              .self =
                  [q](std::uint64_t n) mutable {
                    for (std::uint64_t i = 0; i < n; ++i) {
                      const std::string s = q.get();
                      check(s.size() == kLargeBytes && s[0] == (i % kLargeStrings % 97 ? 'x' : 'a'),
                            "pool.map_large queue: a wrong string");
                    }
                  },
              .partner =
                  [q, strings](std::uint64_t n) mutable {
                    for (std::uint64_t i = 0; i < n; ++i) q.put((*strings)[i % kLargeStrings]);
                  },
          });
        },
}};

// The mproc row of a pool.cpu_bound* group: map(burn_cpu, tasks, 1) over the group's batch.
Workload cpu_bound_workload(const std::string& group, const std::string& label,
                            std::vector<std::int64_t> tasks) {
  return {
      .name = group + "/mproc",
      .group = group,
      .impl = "mproc",
      .label = label,
      .make =
          [what = group + ": results missing", tasks = std::move(tasks)] {
            return scaled_runner(tasks.size(), UINT64_MAX, [what, tasks, pool = make_pool()] {
              const double t0 = now_seconds();
              std::vector<std::uint64_t> v = pool->map(&burn_cpu, tasks, 1);
              const double t = now_seconds() - t0;
              check(v.size() == tasks.size(), what.c_str());
              return t;
            });
          },
  };
}

const Registrar kCpuBound{cpu_bound_workload(
    "pool.cpu_bound", "mproc::Pool map(burn 5 ms, 64 tasks, chunksize 1)", cpu_bound_tasks())};

const Registrar kCpuBoundUneven{cpu_bound_workload(
    "pool.cpu_bound_uneven", "mproc::Pool map(burn 1/2/4/8/16 ms in turn, 64 tasks, chunksize 1)",
    cpu_bound_uneven_tasks())};

const Registrar kIMapUneven{{
    .name = "pool.imap_uneven/mproc",
    .group = "pool.imap_uneven",
    .impl = "mproc",
    .label = "mproc::Pool imap_unordered(burn 1/2/4/8/16 ms in turn, 64 tasks), adaptive chunks",
    .make =
        [] {
          return scaled_runner(cpu_bound_uneven_tasks().size(), UINT64_MAX,
                               [tasks = cpu_bound_uneven_tasks(), pool = make_pool()] {
                                 const double t0 = now_seconds();
                                 std::size_t got = 0;
                                 for (std::uint64_t r : pool->imap_unordered(&burn_cpu, tasks)) {
                                   do_not_optimize(r);
                                   ++got;
                                 }
                                 const double t = now_seconds() - t0;
                                 check(got == tasks.size(), "pool.imap_uneven: results missing");
                                 return t;
                               });
        },
}};

const Registrar kFirstResult{{
    .name = "pool.imap_first_result/mproc",
    .group = "pool.imap_first_result",
    .impl = "mproc",
    .label = "mproc::Pool imap(identity, iota(0)) (unbounded), then next()",
    .make =
        [] {
          return scaled_runner(1, kFirstResultCalls, [pool = make_pool()] {
            double t = 0;
            {
              const double t0 = now_seconds();
              auto results = pool->imap([](std::uint64_t x) { return x; }, std::views::iota(0u));
              const std::optional<std::uint64_t> first = results.next();
              t = now_seconds() - t0;
              check(first == 0u, "pool.imap_first_result: wrong first result");
            }
            drain(*pool);  // the chunks still in flight finish outside the clock
            return t;
          });
        },
}};

}  // namespace
}  // namespace mproc_bench
