#include "posix/launch.hpp"

#include <signal.h>
#include <unistd.h>

#include "posix/error.hpp"
#include "posix/exit_status.hpp"
#include "posix/pidfd.hpp"

namespace mproc::detail {

std::error_code launch_fork(const ChildEntry& entry, LaunchedChild& out) noexcept {
  pid_t pid = fork();
  if (pid < 0) {
    const std::error_code ec = last_error();
    out.failed_call = "fork";
    return ec;
  }
  if (pid == 0) {
    entry.run(entry.arg);
    _exit(127);  // not reached: the entry ends the process itself
  }
  // Only this process can reap the child, so the pid still names it here (unless another thread
  // reaps every child with wait()/waitpid(-1), which the documentation rules out).
  int fd = -1;
  std::error_code ec = open_pidfd(pid, fd);
  if (ec == std::errc::no_such_process) {
    // The child has already ended and the kernel has reaped it (a zombie would still have its
    // pid): only a program that ignores SIGCHLD (or set SA_NOCLDWAIT) gets there, and its status
    // is gone. Started, and already over.
    out.pid = pid;
    out.pidfd = -1;
    return {};
  }
  if (ec) {
    out.failed_call = "pidfd_open";
    ::kill(pid, SIGKILL);
    int code = 0;
    (void)reap_blocking(pid, code);
    return ec;
  }
  out.pid = pid;
  out.pidfd = fd;
  return {};
}

}  // namespace mproc::detail
