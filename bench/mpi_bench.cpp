// bench/mpi_bench.cpp — the MPI groups: mproc::mpi::Pool over the ranks of an MPI job, and a local
// mproc::Pool of as many workers, in one program that runs under mpirun.
//
//   mpirun -np 2 --oversubscribe --mca btl self,vader mpi_bench --serve
//   mpi_bench --list | --info          (no launcher needed: MPI is not touched)
//
// It speaks the command line of `bench` (command_line.hpp: --list, --info, --serve [--pin P], and
// the "make NAME" / "run NAME N" protocol on stdin; stdin and stdout reach rank 0 through mpirun),
// so bench/compare.py drives it with the same policy as every other row, and runs the
// mpi4py.futures anchors of the same groups (bench/python/anchors_mpi.py) beside it. It cannot be a
// row of `bench`: every rank runs main, and mproc::init turns the ranks other than 0 into the
// pool's servers.
//
// The rows of one group share one mpi::Pool (one may be open at a time) and, for the local rows,
// one mproc::Pool with the mpi::Pool's processes() workers, both made when the first row of the
// group is made and kept until its last row is gone (outside every clock). Each pool's size is
// written on stderr when it is made (mpirun passes it on), so the table can be read with it.
#include <sched.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <mproc/mpi.hpp>
#include <mproc/pool.hpp>
#include <mproc/start_method.hpp>
#include <ranges>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "command_line.hpp"
#include "harness.hpp"
#include "protocols.hpp"

namespace mproc_bench {

// The groups of this program (bench/groups.cpp holds those of `bench`). compare.py shows them in
// a table of their own: mproc (the mpi::Pool), python (mpi4py.futures) and local (mproc::Pool).
const std::vector<Group>& groups() {
  static const std::vector<Group> all = {
      // The target: a task's overhead at least 10x below mpi4py.futures'.
      {.name = "mpi.submit_noop",
       .op = "one no-op task over the ranks: apply_async (submit), n of them, then get() each",
       .target = "python/mproc>=10"},
      // Rank 0's dispatch rate: every task goes to the other rank and its outcome comes back
      // (MpiOptions::rank0_works false, the layout of mpi4py.futures, whose rank 0 is a master):
      // the messages per second that bound how many nodes one rank 0 keeps busy.
      {.name = "mpi.remote_noop",
       .op = "one no-op task sent by rank 0 to the other rank and its outcome back (rank 0 runs "
             "none: MpiOptions::rank0_works false), n of them, then get() each",
       .target = "python/mproc>=10",
       .rate = Rate::kMessages},
      {.name = "mpi.map_1e5",
       .op = "one element of map(identity, range(10^5)) over the ranks",
       .target = ""},
      // The target: a speedup of at least 0.9x the rank count (2) over the same tasks run
      // one after another in rank 0 (the row "mpi.cpu_bound/mproc.serial").
      {.name = "mpi.cpu_bound",
       .op = "one task of map(burn 10 ms of CPU time, 16 tasks, chunksize 1) over the ranks",
       .target = "speedup>=1.8"},
  };
  return all;
}

namespace {

constexpr int kMpiMapItems = 100'000;               // anchors_mpi.py MAP_ITEMS
constexpr std::size_t kMpiCpuTasks = 16;            // anchors_mpi.py CPU_TASKS
constexpr std::int64_t kMpiCpuTaskNs = 10'000'000;  // anchors_mpi.py CPU_TASK_NS

// The mpi::Pool of the group being measured (see the header comment); `rank0_works` false only in
// mpi.remote_noop, whose rows are alone in their job.
std::shared_ptr<mproc::mpi::Pool> mpi_pool(bool rank0_works = true) {
  static std::weak_ptr<mproc::mpi::Pool> current;
  if (auto p = current.lock()) return p;
  restore_affinity();
  auto p = std::make_shared<mproc::mpi::Pool>(mproc::PoolOptions{},
                                              mproc::mpi::MpiOptions{.rank0_works = rank0_works});
  std::string per_rank;
  for (const int w : p->workers_per_rank()) {
    per_rank += (per_rank.empty() ? "" : ", ") + std::to_string(w);
  }
  std::fprintf(stderr, "mpi_bench: mproc::mpi::Pool over %d ranks: %d worker(s) (per rank: %s)\n",
               mproc::mpi::size(), p->processes(), per_rank.c_str());
  current = p;
  return p;
}

// The local mproc::Pool of the group: as many workers as the mpi::Pool has in all, on the CPUs a
// program started without mpirun would have. mpirun binds each rank to a core by default (-np 2),
// and rank 0's children inherit that; so the local pool is made with the launcher's CPUs (its
// parent's affinity: mpirun or orted, which are not bound), its zygote and workers forked with
// them, and rank 0 gets its own CPUs back afterwards. Under --bind-to none nothing changes.
std::shared_ptr<mproc::Pool> local_pool(bool rank0_works) {
  static std::weak_ptr<mproc::Pool> current;
  if (auto p = current.lock()) return p;
  const int processes = mpi_pool(rank0_works)->processes();
  restore_affinity();
  cpu_set_t own;
  cpu_set_t launcher;
  CPU_ZERO(&own);
  CPU_ZERO(&launcher);
  const bool widen = ::sched_getaffinity(0, sizeof own, &own) == 0 &&
                     ::sched_getaffinity(::getppid(), sizeof launcher, &launcher) == 0 &&
                     ::sched_setaffinity(0, sizeof launcher, &launcher) == 0;
  std::shared_ptr<mproc::Pool> p;
  try {
    p = std::make_shared<mproc::Pool>(processes);
  } catch (...) {
    if (widen) ::sched_setaffinity(0, sizeof own, &own);
    throw;
  }
  if (widen) ::sched_setaffinity(0, sizeof own, &own);
  std::fprintf(stderr, "mpi_bench: local mproc::Pool: %d worker(s) on %d CPU(s)\n", p->processes(),
               CPU_COUNT(widen ? &launcher : &own));
  current = p;
  return p;
}

// The rows run on `Pool` (an mpi::Pool or a local one), kept alive with the group's mpi::Pool
// (a local row holds both, so the count it was sized by stays the one in use).
struct Pools {
  std::shared_ptr<mproc::mpi::Pool> mpi;
  std::shared_ptr<mproc::Pool> local;
  [[nodiscard]] mproc::Pool& use() const { return local ? *local : *mpi; }
};

Pools pools(bool local, bool rank0_works = true) {
  return {mpi_pool(rank0_works), local ? local_pool(rank0_works) : nullptr};
}

template <class Submit>
Workload noop_workload(const std::string& group, const std::string& impl, const std::string& label,
                       bool primary, bool local, Submit submit, bool rank0_works = true) {
  return {
      .name = group + "/" + impl,
      .group = group,
      .impl = local ? "local" : "mproc",
      .label = label,
      .primary = primary,
      .make =
          [submit, local, rank0_works] {
            return loop_runner([submit, p = pools(local, rank0_works)](std::uint64_t n) {
              std::vector<mproc::AsyncResult<void>> results;
              results.reserve(n);
              for (std::uint64_t i = 0; i < n; ++i) results.push_back(submit(p.use()));
              for (auto& r : results) r.get();
            });
          },
  };
}

mproc::AsyncResult<void> apply_noop(mproc::Pool& p) {
  return p.apply_async([] {});
}

const Registrar kNoop{
    noop_workload("mpi.submit_noop", "mproc",
                  "mproc::mpi::Pool apply_async(noop) x n, then get() each (workers on every rank)",
                  true, false, apply_noop)};
const Registrar kNoopSubmit{
    noop_workload("mpi.submit_noop", "mproc.submit",
                  "mproc::mpi::Pool submit(noop) x n, then get() each (executor style)", false,
                  false, [](mproc::Pool& p) { return p.submit([] {}); })};
const Registrar kNoopLocal{
    noop_workload("mpi.submit_noop", "local",
                  "local mproc::Pool (as many workers) apply_async(noop) x n, then get() each",
                  true, true, apply_noop)};

const Registrar kRemoteNoop{noop_workload(
    "mpi.remote_noop", "mproc",
    "mproc::mpi::Pool, rank0_works false: apply_async(noop) x n, then get() each (every task "
    "over MPI)",
    true, false, apply_noop, false)};
const Registrar kRemoteNoopLocal{noop_workload(
    "mpi.remote_noop", "local",
    "local mproc::Pool (as many workers: the other rank's) apply_async(noop) x n, then get() each",
    true, true, apply_noop, false)};

Workload map_workload(const std::string& impl, const std::string& label, bool local) {
  return {
      .name = "mpi.map_1e5/" + impl,
      .group = "mpi.map_1e5",
      .impl = local ? "local" : "mproc",
      .label = label,
      .make =
          [local] {
            return scaled_runner(kMpiMapItems, UINT64_MAX, [p = pools(local)] {
              const double t0 = now_seconds();
              std::vector<int> v =
                  p.use().map([](int x) { return x; }, std::views::iota(0, kMpiMapItems));
              const double t = now_seconds() - t0;
              check(v.size() == kMpiMapItems && v.back() == kMpiMapItems - 1,
                    "mpi.map_1e5: wrong results");
              return t;
            });
          },
  };
}

const Registrar kMap{map_workload(
    "mproc", "mproc::mpi::Pool map(identity, iota(0, 10^5)), automatic chunksize", false)};
const Registrar kMapLocal{map_workload(
    "local",
    "local mproc::Pool (as many workers) map(identity, iota(0, 10^5)), automatic chunksize", true)};

std::vector<std::int64_t> cpu_tasks() {
  return std::vector<std::int64_t>(kMpiCpuTasks, kMpiCpuTaskNs);
}

Workload cpu_workload(const std::string& impl, const std::string& label, bool local) {
  return {
      .name = "mpi.cpu_bound/" + impl,
      .group = "mpi.cpu_bound",
      .impl = local ? "local" : "mproc",
      .label = label,
      .make =
          [local] {
            return scaled_runner(kMpiCpuTasks, UINT64_MAX, [tasks = cpu_tasks(), p = pools(local)] {
              const double t0 = now_seconds();
              std::vector<std::uint64_t> v = p.use().map(&burn_cpu, tasks, 1);
              const double t = now_seconds() - t0;
              check(v.size() == tasks.size(), "mpi.cpu_bound: results missing");
              return t;
            });
          },
  };
}

const Registrar kCpu{
    cpu_workload("mproc", "mproc::mpi::Pool map(burn 10 ms, 16 tasks, chunksize 1)", false)};
const Registrar kCpuLocal{cpu_workload(
    "local", "local mproc::Pool (as many workers) map(burn 10 ms, 16 tasks, chunksize 1)", true)};

// The base of the speedup: the same tasks called one after another in rank 0 (the group's pools
// idle meanwhile, as they would in a program that did not use them).
const Registrar kCpuSerial{{
    .name = "mpi.cpu_bound/mproc.serial",
    .group = "mpi.cpu_bound",
    .impl = "mproc",
    .label = "serial: the same 16 tasks of burn 10 ms called in a loop in rank 0 (the speedup's "
             "base)",
    .primary = false,
    .make =
        [] {
          return scaled_runner(kMpiCpuTasks, UINT64_MAX, [tasks = cpu_tasks()] {
            restore_affinity();
            const double t0 = now_seconds();
            std::uint64_t x = 0;
            for (const std::int64_t ns : tasks) x ^= burn_cpu(ns);
            const double t = now_seconds() - t0;
            do_not_optimize(x);
            return t;
          });
        },
}};

// ------------------------------------------------------------------ the command line

// The serve loop needs an MPI job: outside one, the pool would be a local one.
int require_launcher() {
  if (mproc::mpi::launched()) return 0;
  std::fprintf(stderr,
               "mpi_bench: --serve runs under mpirun (mpirun -np 2 ... mpi_bench --serve); "
               "started without it, the pool would be a local one\n");
  return 2;
}

}  // namespace
}  // namespace mproc_bench

int main(int argc, char** argv) {
  // First: under mpirun, the ranks other than 0 serve the pools here and never return.
  mproc::init(argc, argv);
  // Both pools fork their workers (an mpi::Pool's ranks always do), as `bench`'s rows do.
  mproc::set_start_method(mproc::StartMethod::fork);
  return mproc_bench::run_command_line(
      argc, argv,
      {"mpi_bench", "--serve under mpirun (bench/compare.py drives it; see bench/mpi_bench.cpp)",
       &mproc_bench::require_launcher});
}
