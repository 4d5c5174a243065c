// bench/workloads_futures.cpp — mproc's rows of the futures groups: as_completed over many no-op
// futures, and the cost of cancelling a queued task (bench/python/anchors_futures.py has the
// CPython rows: concurrent.futures with ProcessPoolExecutor).
#include <cstdint>
#include <memory>
#include <mproc/futures.hpp>
#include <mproc/pool.hpp>
#include <mproc/sync.hpp>
#include <vector>

#include "harness.hpp"
#include "protocols.hpp"

namespace mproc_bench {
namespace {

std::shared_ptr<mproc::Pool> futures_pool() {
  restore_affinity();
  return std::make_shared<mproc::Pool>(static_cast<int>(usable_cpus()));
}

// pool.as_completed_noop: n no-op tasks submitted, then as_completed over their n futures.
const Registrar kAsCompleted{{
    .name = "pool.as_completed_noop/mproc",
    .group = "pool.as_completed_noop",
    .impl = "mproc",
    .label = "mproc::Pool submit(noop) x n, then mproc::as_completed over the n futures",
    .primary = true,
    .make =
        [] {
          return loop_runner([pool = futures_pool()](std::uint64_t n) {
            std::vector<mproc::AsyncResult<void>> fs;
            fs.reserve(n);
            for (std::uint64_t i = 0; i < n; ++i) fs.push_back(pool->submit([] {}));
            std::uint64_t seen = 0;
            for (const auto& f : mproc::as_completed(fs)) {
              f.get();
              ++seen;
            }
            check(seen == n, "pool.as_completed_noop: futures missing");
          });
        },
}};

// pool.cancel_queued: every worker is busy with a task that waits for an Event; each op submits a
// no-op task (it waits in the parent or in a mailbox) and cancels it. The gate opens when the row
// is done, before the pool is joined.
struct BusyPool {
  std::shared_ptr<mproc::Pool> pool = futures_pool();
  mproc::Event gate;
  std::vector<mproc::AsyncResult<void>> busy;
  BusyPool() {
    for (int i = 0; i < pool->processes(); ++i)
      busy.push_back(pool->submit([](mproc::Event g) { g.wait(); }, gate));
  }
  BusyPool(const BusyPool&) = delete;
  BusyPool& operator=(const BusyPool&) = delete;
  ~BusyPool() { gate.set(); }
};

const Registrar kCancelQueued{{
    .name = "pool.cancel_queued/mproc",
    .group = "pool.cancel_queued",
    .impl = "mproc",
    .label = "mproc::Pool submit(noop) then cancel(), every worker busy, x n",
    .primary = true,
    .make =
        [] {
          return loop_runner([busy = std::make_shared<BusyPool>()](std::uint64_t n) {
            bool all = true;
            for (std::uint64_t i = 0; i < n; ++i) {
              auto f = busy->pool->submit([] {});
              all = f.cancel() && all;
            }
            check(all, "pool.cancel_queued: a queued task was not cancelled");
          });
        },
}};

}  // namespace
}  // namespace mproc_bench
