#include "posix/pidfd.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "posix/error.hpp"
#include "posix/exit_status.hpp"

namespace mproc::detail {

std::error_code open_pidfd(pid_t pid, int& fd) noexcept {
  long r = syscall(SYS_pidfd_open, pid, 0);
  if (r < 0) return last_error();
  fd = static_cast<int>(r);
  return {};
}

std::error_code send_signal(int pidfd, int sig) noexcept {
  if (syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0) return {};
  if (errno == ESRCH) return {};
  return last_error();
}

std::error_code try_reap(int pidfd, bool& exited, int& exitcode) noexcept {
  exited = false;
  siginfo_t info{};
  info.si_pid = 0;
  if (retry_on_eintr([&] {
        return ::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG);
      }) < 0)
    return last_error();
  if (info.si_pid == 0) return {};  // still running
  exited = true;
  exitcode = exitcode_from_siginfo(info);
  return {};
}

void close_fd(int fd) noexcept {
  if (fd >= 0) (void)::close(fd);
}

}  // namespace mproc::detail
