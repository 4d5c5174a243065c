#include "posix/socket.hpp"

#include <sys/socket.h>

#include "posix/error.hpp"

namespace mproc::detail {

std::error_code socket_pair(int type, int (&fds)[2]) noexcept {
  int out[2];
  if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, out) != 0) return last_error();
  fds[0] = out[0];
  fds[1] = out[1];
  return {};
}

std::error_code shutdown_socket(int fd, int how) noexcept {
  if (::shutdown(fd, how) != 0) return last_error();
  return {};
}

}  // namespace mproc::detail
