#include "posix/fd_passing.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "posix/error.hpp"

namespace mproc::detail {

namespace {

// One message: the 8-byte tag, and room for one descriptor in the control data.
struct FdMessage {
  explicit FdMessage(std::uint64_t* tag) : iov{tag, sizeof *tag} {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
  }
  FdMessage(const FdMessage&) = delete;
  FdMessage& operator=(const FdMessage&) = delete;
  iovec iov;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
};

}  // namespace

std::error_code send_fd(int sock, std::uint64_t tag, int fd) noexcept {
  FdMessage m(&tag);
  cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  ssize_t n;
  do {
    n = ::sendmsg(sock, &m.msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return last_error();
  return {};
}

std::error_code recv_fd(int sock, std::uint64_t& tag, int& fd) noexcept {
  fd = -1;
  FdMessage m(&tag);
  ssize_t n;
  do {
    n = ::recvmsg(sock, &m.msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return last_error();
  if (n == 0) return std::make_error_code(std::errc::connection_reset);
  cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
  const bool has_fd = c != nullptr && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
                      c->cmsg_len == CMSG_LEN(sizeof(int));
  if (has_fd) std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
  if (n != sizeof tag || !has_fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
    return std::make_error_code(std::errc::bad_message);
  }
  return {};
}

}  // namespace mproc::detail
