// shared_array — several processes fill one shared Array, each its own slice, without locking;
// each also adds its partial sum to a shared Value under the Value's lock. The parent checks every
// element and prints the sum.
//
// Python equivalent:
//   arr = multiprocessing.Array('Q', N); total = multiprocessing.Value('Q', 0)
//   def work(k): ...arr[i] = i * i ...; with total.get_lock(): total.value += part
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mproc/shared_memory.hpp>
#include <mutex>
#include <numeric>
#include <vector>

int main() {
  constexpr std::size_t kWorkers = 4;
  constexpr std::size_t kPerWorker = 250'000;
  constexpr std::size_t kN = kWorkers * kPerWorker;

  mproc::Array<std::uint64_t> squares(kN);  // zeros, in anonymous shared memory
  mproc::Value<std::uint64_t> total(0);     // with an RLock

  std::vector<pid_t> pids;
  for (std::size_t k = 0; k < kWorkers; ++k) {
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0) {
      std::perror("fork");
      return 1;
    }
    if (pid == 0) {  // worker k: the handles inherited across fork refer to the same memory
      std::uint64_t part = 0;
      for (std::size_t i = k * kPerWorker; i < (k + 1) * kPerWorker; ++i) {
        squares[i] = std::uint64_t{i} * i;  // own slice: no lock needed
        part += squares[i];
      }
      {
        std::scoped_lock g(total.get_lock());  // read-modify-write: under the lock
        total.set(total.get() + part);
      }
      _exit(0);
    }
    pids.push_back(pid);
  }

  int failed = 0;
  for (pid_t pid : pids) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  if (failed) {
    std::fprintf(stderr, "%d worker(s) failed\n", failed);
    return 1;
  }

  for (std::size_t i = 0; i < kN; ++i) {
    if (squares[i] != std::uint64_t{i} * i) {
      std::fprintf(stderr, "squares[%zu] = %llu, expected %llu\n", i,
                   static_cast<unsigned long long>(squares[i]),
                   static_cast<unsigned long long>(std::uint64_t{i} * i));
      return 1;
    }
  }
  const std::uint64_t sum = std::accumulate(squares.begin(), squares.end(), std::uint64_t{0});
  // Sum of i^2 for i < n: (n-1) n (2n-1) / 6.
  const std::uint64_t expected = std::uint64_t{kN - 1} * kN * (2 * kN - 1) / 6;
  std::printf("%zu workers filled %zu squares; sum = %llu (workers reported %llu)\n", kWorkers, kN,
              static_cast<unsigned long long>(sum), static_cast<unsigned long long>(total.get()));
  if (sum != expected || total.get() != expected) {
    std::fprintf(stderr, "expected %llu\n", static_cast<unsigned long long>(expected));
    return 1;
  }
  return 0;
}
