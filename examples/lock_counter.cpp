// Eight processes increment one counter in shared memory; a Lock makes the result exact.
//
// Python:
//   counter = multiprocessing.Value('l', 0, lock=False); lock = multiprocessing.Lock()
//   def work(): for _ in range(N): with lock: counter.value += 1
#include <cstdio>
#include <mproc/mproc.hpp>
#include <mutex>
#include <vector>

int main() {
  constexpr int kProcesses = 8;
  constexpr long kIncrements = 100000;

  mproc::Lock lock;
  mproc::Value<long> counter(0, mproc::no_lock);

  auto work = [&] {
    for (long i = 0; i < kIncrements; ++i) {
      std::scoped_lock guard(lock);
      counter.set(counter.get() + 1);  // a read-modify-write that would race without the lock
    }
  };

  std::vector<mproc::Process> workers;
  for (int i = 0; i < kProcesses; ++i) workers.emplace_back(work);
  for (auto& p : workers) p.start();
  for (auto& p : workers) p.join();

  const long expected = kProcesses * kIncrements;
  std::printf("%d processes x %ld increments: counter = %ld (expected %ld)\n", kProcesses,
              kIncrements, counter.get(), expected);
  return counter.get() == expected ? 0 : 1;
}
