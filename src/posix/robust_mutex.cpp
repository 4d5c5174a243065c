#include "posix/robust_mutex.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "posix/thread_id.hpp"

namespace mproc::detail {

void robust_mutex_init(pthread_mutex_t& m) noexcept {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_init(&m, &attr);
  pthread_mutexattr_destroy(&attr);
}

bool thread_alive_in_this_process(pid_t tid) noexcept {
  return syscall(SYS_tgkill, this_process_id(), tid, 0) == 0;
}

}  // namespace mproc::detail
