#include "posix/thread_id.hpp"

#include <pthread.h>
#include <unistd.h>

namespace mproc::detail {
namespace {

thread_local pid_t t_tid = 0;
pid_t g_pid = 0;

// Clears the caches in the child of a fork. It writes only what was set, so that a child of a
// process that never used them touches none of the pages it shares with its parent.
void reset_after_fork() noexcept {
  if (t_tid != 0) t_tid = 0;
  if (__atomic_load_n(&g_pid, __ATOMIC_RELAXED) != 0) __atomic_store_n(&g_pid, 0, __ATOMIC_RELAXED);
}

// Registered on first use, so that a program that never asks pays nothing on its forks.
void register_reset_once() noexcept {
  static const int kRegistered = pthread_atfork(nullptr, nullptr, &reset_after_fork);
  (void)kRegistered;
}

}  // namespace

pid_t this_thread_id() noexcept {
  if (t_tid == 0) {
    register_reset_once();
    t_tid = gettid();
  }
  return t_tid;
}

pid_t this_process_id() noexcept {
  pid_t p = __atomic_load_n(&g_pid, __ATOMIC_RELAXED);
  if (p == 0) {
    register_reset_once();
    p = getpid();
    __atomic_store_n(&g_pid, p, __ATOMIC_RELAXED);
  }
  return p;
}

}  // namespace mproc::detail
