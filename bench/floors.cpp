// bench/floors.cpp — the floors: each group's protocol done with raw system calls and glibc.
//
// A floor is what the operation costs without any library of ours: a robust process-shared pthread
// mutex (what a robust lock must at least pay), two futex words in MAP_SHARED memory (what a
// sleeping event must at least pay), fork + _exit + waitpid (what starting a process must at least
// pay), a serial loop divided by the CPU count (what a pool of CPU-bound tasks must at least take).
// mproc's rows are measured against these, side by side in the same binary. The queue and pipe
// floors are in floors_queue.cpp.
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "protocols.hpp"

namespace mproc_bench {
namespace {

// A robust, process-shared pthread mutex; lives in shared memory.
class RobustMutex {
 public:
  RobustMutex() {
    pthread_mutexattr_t attr;
    ::pthread_mutexattr_init(&attr);
    ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    const int rc = ::pthread_mutex_init(&mutex_, &attr);
    ::pthread_mutexattr_destroy(&attr);
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_mutex_init");
  }
  RobustMutex(const RobustMutex&) = delete;
  RobustMutex& operator=(const RobustMutex&) = delete;
  ~RobustMutex() { ::pthread_mutex_destroy(&mutex_); }

  void lock() {
    const int rc = ::pthread_mutex_lock(&mutex_);
    if (rc == 0) [[likely]]
      return;
    if (rc == EOWNERDEAD) {
      ::pthread_mutex_consistent(&mutex_);
      return;
    }
    throw std::system_error(rc, std::generic_category(), "pthread_mutex_lock");
  }
  void unlock() { ::pthread_mutex_unlock(&mutex_); }

 private:
  alignas(64) pthread_mutex_t mutex_;
};

// The least a futex event can do: one 32-bit word, 0 = clear, 1 = set, 2 = clear and someone
// sleeps. `set` makes a FUTEX_WAKE only when the word says someone sleeps; `wait` sleeps with
// FUTEX_WAIT (no spinning). Shared futexes (no FUTEX_PRIVATE_FLAG), as between processes.
class FutexEvent {
 public:
  void set() {
    if (word_.exchange(1, std::memory_order_seq_cst) == 2) futex(FUTEX_WAKE, INT_MAX);
  }
  void clear() {
    std::uint32_t expected = 1;
    word_.compare_exchange_strong(expected, 0, std::memory_order_relaxed);
  }
  void wait() {
    for (;;) {
      std::uint32_t v = word_.load(std::memory_order_acquire);
      if (v == 1) return;
      if (v == 0 && !word_.compare_exchange_weak(v, 2, std::memory_order_acquire)) continue;
      futex(FUTEX_WAIT, 2);
    }
  }

 private:
  void futex(int op, std::uint32_t val) {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word_), op, val, nullptr, nullptr, 0);
  }
  alignas(64) std::atomic<std::uint32_t> word_{0};
};

struct FutexEvents {
  FutexEvent e1;
  FutexEvent e2;
};

struct HandoffState {
  RobustMutex lock;
  Turns turns;
};

const Registrar kLockUncontended{{
    .name = "lock.uncontended/floor",
    .group = "lock.uncontended",
    .impl = "floor",
    .label = "robust process-shared pthread mutex",
    .make =
        [] {
          auto m = make_shared_object<RobustMutex>();
          return loop_runner([m](std::uint64_t n) { lock_uncontended(*m, n); });
        },
}};

const Registrar kLockHandoff{{
    .name = "lock.handoff/floor",
    .group = "lock.handoff",
    .impl = "floor",
    .label = "robust process-shared pthread mutex",
    .make =
        [] {
          auto s = make_shared_object<HandoffState>();
          return pair_runner({
              .pin = Pin::kSplit,
              .before = [s] { s->turns.turns.store(0); },
              .self = [s](std::uint64_t n) { lock_handoff_side(s->lock, s->turns, 0, n); },
              .partner = [s](std::uint64_t n) { lock_handoff_side(s->lock, s->turns, 1, n); },
          });
        },
}};

// Two processes on one CPU handing a turn back and forth through two futex words.
std::unique_ptr<Runner> futex_pingpong() {
  auto s = make_shared_object<FutexEvents>();
  return pair_runner({
      .pin = Pin::kSame,
      .before = {},
      .self = [s](std::uint64_t n) { event_pingpong_a(s->e1, s->e2, n); },
      .partner = [s](std::uint64_t n) { event_pingpong_b(s->e1, s->e2, n); },
  });
}

const Registrar kEventPingpong{{
    .name = "event.pingpong/floor",
    .group = "event.pingpong",
    .impl = "floor",
    .label = "two futex words, FUTEX_WAIT/FUTEX_WAKE",
    .make = futex_pingpong,
}};

// queue.roundtrip's floor: the same two futex words, so a round trip through two blocking queues
// is measured against the least two sleeping hand-offs cost.
const Registrar kQueueRoundtrip{{
    .name = "queue.roundtrip/floor",
    .group = "queue.roundtrip",
    .impl = "floor",
    .label = "two futex words, FUTEX_WAIT/FUTEX_WAKE (event.pingpong's floor)",
    .make = futex_pingpong,
}};

const Registrar kProcessStartJoin{{
    .name = "process.start_join/floor",
    .group = "process.start_join",
    .impl = "floor",
    .label = "fork + _exit(0) + waitpid",
    .make =
        [] {
          return loop_runner([](std::uint64_t n) {
            for (std::uint64_t i = 0; i < n; ++i) {
              const pid_t pid = ::fork();
              if (pid == 0) ::_exit(0);
              if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
              int status = 0;
              while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
              }
              check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child did not exit with 0");
            }
          });
        },
}};

// pool.cpu_bound*: the group's batch of tasks run one after the other in this process, the time
// divided by the number of usable CPUs: what a pool would take with perfect speedup and no
// overhead.
Workload cpu_bound_floor(const std::string& group, std::vector<std::int64_t> tasks) {
  return {
      .name = group + "/floor",
      .group = group,
      .impl = "floor",
      .label = "serial loop over the 64 tasks, time / usable CPUs (perfect speedup)",
      .make =
          [tasks = std::move(tasks)] {
            return scaled_runner(tasks.size(), UINT64_MAX, [tasks] {
              const double t0 = now_seconds();
              std::uint64_t x = 0;
              for (const std::int64_t ns : tasks) x ^= burn_cpu(ns);
              const double t = now_seconds() - t0;
              do_not_optimize(x);
              return t / usable_cpus();
            });
          },
  };
}

const Registrar kCpuBoundSerial{cpu_bound_floor("pool.cpu_bound", cpu_bound_tasks())};
const Registrar kCpuBoundUnevenSerial{
    cpu_bound_floor("pool.cpu_bound_uneven", cpu_bound_uneven_tasks())};
const Registrar kIMapUnevenSerial{cpu_bound_floor("pool.imap_uneven", cpu_bound_uneven_tasks())};

}  // namespace
}  // namespace mproc_bench
