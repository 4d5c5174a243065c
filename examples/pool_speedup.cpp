// CPU-bound work spread over every core with a Pool: count the primes below a bound, one block of
// numbers per task, and print the speedup over a serial loop.
//
// Python:
//   with Pool() as pool:
//       total = sum(pool.map(count_primes, [(b, b + BLOCK) for b in range(0, N, BLOCK)]))
#include <chrono>
#include <cstdio>
#include <mproc/pool.hpp>
#include <numeric>
#include <utility>
#include <vector>

namespace {

bool is_prime(long n) {
  if (n < 2) return false;
  for (long d = 2; d * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}

// The primes in [lo, hi).
long count_primes(long lo, long hi) {
  long c = 0;
  for (long n = lo; n < hi; ++n) c += is_prime(n) ? 1 : 0;
  return c;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
  constexpr long kN = 3'000'000;
  constexpr long kBlock = 20'000;
  std::vector<std::pair<long, long>> blocks;
  for (long b = 0; b < kN; b += kBlock) blocks.emplace_back(b, b + kBlock);

  auto t0 = std::chrono::steady_clock::now();
  long serial = 0;
  for (auto [lo, hi] : blocks) serial += count_primes(lo, hi);
  double t_serial = seconds_since(t0);

  mproc::Pool pool;  // one worker per CPU this process may use
  t0 = std::chrono::steady_clock::now();
  // One block per task; a progress bar on stderr when it is a terminal (mpire's progress_bar).
  std::vector<long> counts =
      pool.starmap(count_primes, blocks, {.chunksize = 1, .progress_bar = true});
  long parallel = std::accumulate(counts.begin(), counts.end(), 0L);
  double t_pool = seconds_since(t0);

  std::printf(
      "primes below %ld: %ld (serial %.3f s), %ld with %d workers (%.3f s): speedup %.2fx\n", kN,
      serial, t_serial, parallel, pool.processes(), t_pool, t_serial / t_pool);
  return serial == parallel ? 0 : 1;
}
