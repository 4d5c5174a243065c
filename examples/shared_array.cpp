// shared_array — several processes fill one SharedMemory block viewed as an array, each its own
// slice, without locking; each also adds its partial sum to a shared Value under the Value's lock.
// The parent checks every element and prints the sum.
//
// Python equivalent:
//   shm = shared_memory.SharedMemory(create=True, size=N * 8)
//   arr = numpy.ndarray((N,), dtype=numpy.uint64, buffer=shm.buf); total = Value('Q', 0)
//   def work(k): ...arr[i] = i * i ...; with total.get_lock(): total.value += part
#include <cstdint>
#include <cstdio>
#include <mproc/mproc.hpp>
#include <mutex>
#include <numeric>
#include <span>
#include <vector>

int main() {
  constexpr std::size_t kWorkers = 4;
  constexpr std::size_t kPerWorker = 250'000;
  constexpr std::size_t kN = kWorkers * kPerWorker;

  // Anonymous: nothing appears in /dev/shm; children inherit the mapping. (SharedMemory::create
  // ("name", size) would give a named segment that Python's SharedMemory(name=...) can attach.)
  auto shm = mproc::SharedMemory::anonymous(kN * sizeof(std::uint64_t));
  std::span<std::uint64_t> squares(reinterpret_cast<std::uint64_t*>(shm.buf().data()), kN);
  mproc::Value<std::uint64_t> total(0);  // with an RLock

  std::vector<mproc::Process> workers;
  for (std::size_t k = 0; k < kWorkers; ++k) {
    workers.emplace_back(
        [&](std::size_t slice) {
          std::uint64_t part = 0;
          for (std::size_t i = slice * kPerWorker; i < (slice + 1) * kPerWorker; ++i) {
            squares[i] = std::uint64_t{i} * i;  // own slice: no lock needed
            part += squares[i];
          }
          std::scoped_lock g(total.get_lock());  // read-modify-write: under the lock
          total.set(total.get() + part);
        },
        k);
    workers.back().start();
  }
  for (auto& w : workers) {
    w.join();
    if (w.exitcode() != 0) {
      std::fprintf(stderr, "%s failed with exit code %d\n", w.name().c_str(), *w.exitcode());
      return 1;
    }
  }

  const std::uint64_t sum = std::accumulate(squares.begin(), squares.end(), std::uint64_t{0});
  // Sum of i^2 for i < n: (n-1) n (2n-1) / 6.
  const std::uint64_t expected = std::uint64_t{kN - 1} * kN * (2 * kN - 1) / 6;
  std::printf("%zu processes filled %zu squares; sum = %llu (workers reported %llu)\n", kWorkers,
              kN, static_cast<unsigned long long>(sum),
              static_cast<unsigned long long>(total.get()));
  return sum == expected && total.get() == expected ? 0 : 1;
}
