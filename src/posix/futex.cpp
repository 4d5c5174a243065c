#include "posix/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace mproc::detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == 4 &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "futex words must be plain lock-free 32-bit words");

int futex_wait(const std::atomic<std::uint32_t>* word, std::uint32_t expected,
               const Expiry& deadline) noexcept {
  timespec ts{};
  timespec* tsp = nullptr;
  if (deadline) {
    if (*deadline == Clock::time_point::max()) {
      tsp = nullptr;
    } else {
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch());
      if (ns.count() < 0) ns = std::chrono::nanoseconds::zero();
      ts.tv_sec = static_cast<time_t>(ns.count() / 1000000000);
      ts.tv_nsec = static_cast<long>(ns.count() % 1000000000);
      tsp = &ts;
    }
  }
  long r =
      syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, tsp, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (r == 0) return 0;
  int e = errno;
  if (e == EAGAIN) return 0;
  return e;
}

int futex_wake(const std::atomic<std::uint32_t>* word, int n) noexcept {
  long r = syscall(SYS_futex, word, FUTEX_WAKE, n, nullptr, nullptr, 0);
  return r < 0 ? -errno : static_cast<int>(r);
}

}  // namespace mproc::detail
