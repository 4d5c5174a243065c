// bench/workloads_pool.cpp — mproc's rows of the pool groups.
//
// Each workload makes one mproc::Pool with one worker per usable CPU when its runner is made, and
// reuses it for every repetition: pool start-up is never timed. The tasks are captureless lambdas
// (the callable travels as its object bytes, see <mproc/pool.hpp>).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mproc/pool.hpp>
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

constexpr std::uint64_t kMapItems = 1'000'000;  // pool.map_noop_1e6: items per map
constexpr std::uint64_t kFirstResultCalls =
    20;  // pool.imap_first_result: imap starts timed per rep

std::shared_ptr<mproc::Pool> make_pool() {
  restore_affinity();  // the workers may use every CPU, whatever a previous group pinned
  return std::make_shared<mproc::Pool>(static_cast<int>(usable_cpus()));
}

// Waits (untimed) until every task submitted to `pool` has finished.
void drain(const mproc::Pool& pool) {
  while (pool.unfinished() != 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
}

// A row of pool.apply_async_noop: `submit(pool)` submits one no-op task, n times, then each
// result's get() is called in order.
template <class Submit>
Workload noop_tasks_workload(const std::string& name, const std::string& label, bool primary,
                             Submit submit) {
  return {
      .name = name,
      .group = "pool.apply_async_noop",
      .impl = "mproc",
      .label = label,
      .primary = primary,
      .make =
          [submit] {
            return loop_runner([submit, pool = make_pool()](std::uint64_t n) {
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

// The mproc row of an imap group: imap(identity, iota(0, n)) consumed in order, with `chunksize`
// (0: adaptive).
Workload imap_identity_workload(const std::string& group, const std::string& label,
                                std::size_t chunksize) {
  return {
      .name = group + "/mproc",
      .group = group,
      .impl = "mproc",
      .label = label,
      .make =
          [order = group + ": a result out of order", missing = group + ": results missing",
           chunksize] {
            return loop_runner([order, missing, chunksize, pool = make_pool()](std::uint64_t n) {
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

const Registrar kIMapAdaptive{imap_identity_workload(
    "pool.imap_adaptive",
    "mproc::Pool imap(identity, iota(0, n)), adaptive chunks, consumed in order", 0)};

const Registrar kMap1e6{{
    .name = "pool.map_noop_1e6/mproc",
    .group = "pool.map_noop_1e6",
    .impl = "mproc",
    .label = "mproc::Pool map(identity, iota(0, 10^6)), automatic chunksize",
    .make =
        [] {
          return scaled_runner(kMapItems, UINT64_MAX, [pool = make_pool()] {
            const double t0 = now_seconds();
            std::vector<int> v =
                pool->map([](int x) { return x; }, std::views::iota(0, int{kMapItems}));
            const double t = now_seconds() - t0;
            check(v.size() == kMapItems && v.back() == int{kMapItems} - 1,
                  "pool.map_noop_1e6: wrong results");
            return t;
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
