#include "posix/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "posix/timespec.hpp"

namespace mproc::detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == 4 &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "futex words must be plain lock-free 32-bit words");

int futex_wait(const std::atomic<std::uint32_t>* word, std::uint32_t expected,
               const Expiry& deadline) noexcept {
  timespec storage{};
  timespec* tsp = deadline_timespec(deadline, storage);
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
