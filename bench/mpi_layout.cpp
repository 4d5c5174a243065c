// The MPI pool on whatever layout mpirun gives it: docs/benchmarks.md, "MPI" (the two layouts, and
// rank 0's CPU time per task). Not a row of `make bench`: its point is the launcher's options.
//
//   mpirun -np 1 --bind-to none ./mpi_layout            hybrid: one rank, every core
//   mpirun -np 2 --bind-to core ./mpi_layout            one rank per core
//   mpirun -np 2 --bind-to core ./mpi_layout dispatch   rank 0's CPU time per task, every task
//                                                       over MPI (rank0_works false)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mproc/mpi.hpp>
#include <mproc/mproc.hpp>
#include <vector>

namespace {

int noop(int x) { return x; }

// About `ms` of arithmetic (until the clock says so).
double burn(int ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  double x = 1;
  while (std::chrono::steady_clock::now() < end)
    for (int i = 0; i < 1000; ++i) x = x * 1.0000001 + 1e-9;
  return x;
}

template <class F>
double best_of(int reps, F f) {
  double best = 1e9;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

void layouts() {
  mproc::mpi::Pool pool;
  std::printf("ranks %d, workers per rank:", mproc::mpi::size());
  for (int n : pool.workers_per_rank()) std::printf(" %d", n);
  std::printf("\n");
  const int n = 20000;
  double t = best_of(5, [&] {
    std::vector<mproc::AsyncResult<int>> rs;
    rs.reserve(n);
    for (int i = 0; i < n; ++i) rs.push_back(pool.apply_async(noop, i));
    for (auto& r : rs) (void)r.get();
  });
  std::printf("apply_async no-op: %.2f us/task\n", t / n * 1e6);
  std::vector<int> xs(100000);
  for (int i = 0; i < 100000; ++i) xs[static_cast<std::size_t>(i)] = i;
  t = best_of(5, [&] { (void)pool.map(noop, xs); });
  std::printf("map 1e5 no-op: %.2f ns/element\n", t / 1e5 * 1e9);
  const std::vector<int> ms(16, 10);
  const double serial = best_of(3, [&] {
    for (int m : ms) (void)burn(m);
  });
  t = best_of(3, [&] { (void)pool.map(burn, ms, {.chunksize = 1}); });
  std::printf("cpu-bound 16 x 10 ms: serial %.1f ms, pool %.1f ms, speedup %.2f\n", serial * 1e3,
              t * 1e3, serial / t);
}

void dispatch() {
  mproc::mpi::Pool pool({}, {.rank0_works = false});
  for (int rep = 0; rep < 3; ++rep) {
    const int n = 50000;
    const double c0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<mproc::AsyncResult<int>> rs;
    rs.reserve(n);
    for (int i = 0; i < n; ++i) rs.push_back(pool.apply_async(noop, i));
    for (auto& r : rs) (void)r.get();
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = cpu_seconds() - c0;
    std::printf(
        "ranks %d: %.1f us/task wall (%.0f tasks/s); rank 0 CPU %.2f us/task (at most %.0f "
        "tasks/s)\n",
        mproc::mpi::size(), wall / n * 1e6, n / wall, cpu / n * 1e6, n / cpu);
  }
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  if (argc > 1 && std::strcmp(argv[1], "dispatch") == 0)
    dispatch();
  else
    layouts();
}
