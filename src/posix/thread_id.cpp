#include "posix/thread_id.hpp"

#include <pthread.h>
#include <unistd.h>

namespace mproc::detail {
namespace {

thread_local pid_t t_tid = 0;
pid_t g_pid = 0;

void reset_after_fork() noexcept {
  t_tid = 0;
  g_pid = 0;
}

[[maybe_unused]] const int kRegistered = [] {
  pthread_atfork(nullptr, nullptr, &reset_after_fork);
  return 0;
}();

}  // namespace

pid_t this_thread_id() noexcept {
  if (t_tid == 0) t_tid = gettid();
  return t_tid;
}

pid_t this_process_id() noexcept {
  pid_t p = __atomic_load_n(&g_pid, __ATOMIC_RELAXED);
  if (p == 0) {
    p = getpid();
    __atomic_store_n(&g_pid, p, __ATOMIC_RELAXED);
  }
  return p;
}

}  // namespace mproc::detail
