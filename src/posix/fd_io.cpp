#include "posix/fd_io.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "posix/error.hpp"

namespace mproc::detail {

std::error_code read_some(int fd, void* buf, std::size_t n, std::size_t& got) noexcept {
  got = 0;
  const ssize_t r = retry_on_eintr([&] { return ::read(fd, buf, n); });
  if (r < 0) return last_error();
  got = static_cast<std::size_t>(r);
  return {};
}

std::error_code write_some(int fd, bool socket, const iovec* v, int count,
                           std::size_t& done) noexcept {
  done = 0;
  const ssize_t r = retry_on_eintr([&] {
    if (!socket) return ::writev(fd, v, count);
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(v);
    m.msg_iovlen = static_cast<std::size_t>(count);
    return ::sendmsg(fd, &m, MSG_NOSIGNAL);
  });
  if (r < 0) return last_error();
  done = static_cast<std::size_t>(r);
  return {};
}

std::error_code write_all(int fd, const void* data, std::size_t n) noexcept {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = retry_on_eintr([&] { return ::write(fd, p, n); });
    if (w < 0) return last_error();
    if (w == 0) return errno_code(EIO);
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return {};
}

bool is_terminal(int fd) noexcept { return ::isatty(fd) == 1; }

bool terminal_columns(int fd, std::size_t& columns) noexcept {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return false;
  columns = ws.ws_col;
  return true;
}

std::error_code is_socket(int fd, bool& socket) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return last_error();
  socket = S_ISSOCK(st.st_mode);
  return {};
}

std::error_code file_mode(int fd, mode_t& mode) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return last_error();
  mode = st.st_mode;
  return {};
}

std::error_code dup_cloexec(int fd, int& out, int at_least) noexcept {
  const int r = ::fcntl(fd, F_DUPFD_CLOEXEC, at_least);
  if (r < 0) return last_error();
  out = r;
  return {};
}

std::error_code make_eventfd(int& fd) noexcept {
  const int r = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r < 0) return last_error();
  fd = r;
  return {};
}

void eventfd_post(int fd) noexcept {
  const std::uint64_t one = 1;
  (void)!::write(fd, &one, sizeof one);
}

SigpipeGuard::SigpipeGuard() noexcept {
  sigemptyset(&set_);
  sigaddset(&set_, SIGPIPE);
  sigset_t pending;
  sigemptyset(&pending);
  was_pending_ = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &set_, &old_);
}

SigpipeGuard::~SigpipeGuard() {
  const int saved = errno;
  if (raised_ && !was_pending_) {
    timespec zero{};
    (void)retry_on_eintr([&] { return sigtimedwait(&set_, nullptr, &zero); });
  }
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  errno = saved;
}

AllSignalsBlocked::AllSignalsBlocked() noexcept {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old_);
}

AllSignalsBlocked::~AllSignalsBlocked() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

}  // namespace mproc::detail
