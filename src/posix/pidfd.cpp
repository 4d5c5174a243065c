#include "posix/pidfd.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "posix/error.hpp"

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

std::error_code wait_readable(int fd, const Expiry& deadline, bool& ready) noexcept {
  ready = false;
  for (;;) {
    timespec ts{};
    timespec* tsp = nullptr;
    if (deadline && *deadline != Clock::time_point::max()) {
      auto left = *deadline - Clock::now();
      if (left < Clock::duration::zero()) left = Clock::duration::zero();
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      ts.tv_sec = static_cast<time_t>(ns / 1000000000);
      ts.tv_nsec = static_cast<long>(ns % 1000000000);
      tsp = &ts;
    }
    pollfd p{fd, POLLIN, 0};
    int r = ppoll(&p, 1, tsp, nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    if (r == 0) return {};  // deadline passed
    if (p.revents & POLLNVAL) return std::make_error_code(std::errc::bad_file_descriptor);
    ready = true;
    return {};
  }
}

std::error_code try_reap(int pidfd, bool& exited, int& exitcode) noexcept {
  exited = false;
  siginfo_t info{};
  info.si_pid = 0;
  int r;
  do {
    r = waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return last_error();
  if (info.si_pid == 0) return {};  // still running
  exited = true;
  exitcode = info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
  return {};
}

void close_fd(int fd) noexcept {
  if (fd >= 0) (void)::close(fd);
}

}  // namespace mproc::detail
