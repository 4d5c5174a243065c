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

std::error_code send_message(int sock, const void* data, std::size_t len, const int* fds,
                             std::size_t n) noexcept {
  if (n > kMaxFdsPerMessage) return std::make_error_code(std::errc::invalid_argument);
  iovec iov{const_cast<void*>(data), len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (n > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
  }
  const ssize_t r = retry_on_eintr([&] { return ::sendmsg(sock, &msg, MSG_NOSIGNAL); });
  if (r < 0) return last_error();
  if (static_cast<std::size_t>(r) != len) return std::make_error_code(std::errc::broken_pipe);
  return {};
}

std::error_code recv_message(int sock, void* data, std::size_t cap, std::size_t& got, int* fds,
                             std::size_t max, std::size_t& nfds) noexcept {
  got = 0;
  nfds = 0;
  iovec iov{data, cap};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t r = retry_on_eintr([&] { return ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); });
  if (r < 0) return last_error();
  std::size_t arrived = 0;
  int received[kMaxFdsPerMessage];
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < k && arrived < kMaxFdsPerMessage; ++i) {
      std::memcpy(&received[arrived++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
  }
  const bool truncated = (msg.msg_flags & MSG_CTRUNC) != 0 || arrived > max;
  if (truncated || (msg.msg_flags & MSG_TRUNC) != 0) {
    for (std::size_t i = 0; i < arrived; ++i) ::close(received[i]);
    return std::make_error_code(truncated ? std::errc::too_many_files_open
                                          : std::errc::message_size);
  }
  std::memcpy(fds, received, arrived * sizeof(int));
  nfds = arrived;
  got = static_cast<std::size_t>(r);
  return {};
}

}  // namespace mproc::detail
