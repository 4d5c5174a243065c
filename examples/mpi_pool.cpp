// The same Pool across the ranks of an MPI job: a CPU-bound map over every rank's workers.
//
//   mpirun --oversubscribe -np 3 ./mpi_pool        (make mpi-demo)
//   ./mpi_pool                                     (no launcher: a local pool, same result)
//
// Every rank runs main. mproc::init turns ranks 1..N-1 into servers of rank 0's pools (they never
// return from it); rank 0 goes on, and its mpi::Pool puts workers on every rank: each rank drives a
// local pool over its share of its node's cores, so tasks cross machines over MPI and stay in
// shared memory within one.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mproc/mpi.hpp>
#include <mproc/mproc.hpp>
#include <numeric>
#include <ranges>
#include <vector>

namespace {

// The primes in [lo, lo + 20000): deliberately slow trial division, so each element is CPU work.
std::int64_t primes_in_block(std::int64_t block) {
  const std::int64_t lo = block * 20000;
  std::int64_t count = 0;
  for (std::int64_t n = std::max<std::int64_t>(lo, 2); n < lo + 20000; ++n) {
    bool prime = true;
    for (std::int64_t d = 2; d * d <= n; ++d)
      if (n % d == 0) {
        prime = false;
        break;
      }
    count += prime ? 1 : 0;
  }
  return count;
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // ranks other than 0 serve here

  const auto blocks = std::views::iota(std::int64_t{0}, std::int64_t{120});
  auto t0 = std::chrono::steady_clock::now();
  mproc::mpi::Pool pool;
  std::printf("MPI job: %s, %d rank(s); workers per rank:", mproc::mpi::launched() ? "yes" : "no",
              mproc::mpi::size());
  for (int n : pool.workers_per_rank()) std::printf(" %d", n);
  std::printf(" (%d in all)\n", pool.processes());

  const std::vector<std::int64_t> counts = pool.map(primes_in_block, blocks);
  const std::int64_t total = std::accumulate(counts.begin(), counts.end(), std::int64_t{0});
  const double pool_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  pool.close();
  pool.join();

  // The same work in this process alone, to check the result (and to compare the time).
  t0 = std::chrono::steady_clock::now();
  std::int64_t serial = 0;
  for (std::int64_t b : blocks) serial += primes_in_block(b);
  const double serial_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::printf("primes below %lld: %lld over the pool in %.2f s, %lld serially in %.2f s\n",
              static_cast<long long>(blocks.size() * 20000), static_cast<long long>(total), pool_s,
              static_cast<long long>(serial), serial_s);
  return total == serial ? 0 : 1;
}
