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

std::error_code send_all(int sock, const void* data, std::size_t n) noexcept {
  const ssize_t r = retry_on_eintr([&] { return ::send(sock, data, n, MSG_NOSIGNAL); });
  if (r < 0) return last_error();
  return static_cast<std::size_t>(r) == n ? std::error_code()
                                          : std::make_error_code(std::errc::broken_pipe);
}

void recv_all(int sock, void* data, std::size_t n, std::size_t& got) noexcept {
  got = 0;
  while (got < n) {
    const ssize_t r =
        retry_on_eintr([&] { return ::recv(sock, static_cast<char*>(data) + got, n - got, 0); });
    if (r <= 0) return;
    got += static_cast<std::size_t>(r);
  }
}

}  // namespace mproc::detail
