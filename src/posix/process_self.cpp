#include "posix/process_self.hpp"

#include <pthread.h>
#include <sched.h>

#include <bit>
#include <cerrno>
#include <cstddef>
#include <vector>

#include "posix/error.hpp"

namespace mproc::detail {

std::error_code register_fork_handlers(void (*prepare)(), void (*parent)(),
                                       void (*child)()) noexcept {
  return errno_code(pthread_atfork(prepare, parent, child));
}

int online_cpu_count() noexcept {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : static_cast<int>(n);
}

std::error_code affinity_cpu_count(int& n) {
  for (std::size_t words = 16; words <= (std::size_t{1} << 16); words *= 2) {
    std::vector<unsigned long> mask(words, 0);
    if (::sched_getaffinity(0, words * sizeof(unsigned long),
                            reinterpret_cast<cpu_set_t*>(mask.data())) == 0) {
      n = 0;
      for (unsigned long w : mask) n += std::popcount(w);
      return {};
    }
    if (errno != EINVAL) return last_error();
  }
  return errno_code(EINVAL);
}

}  // namespace mproc::detail
