// helpers/travel_pipe.hpp — a value and the descriptors of its handles, sent to another process
// over a SOCK_SEQPACKET socket pair, as a start method hands them over (see
// <mproc/detail/travel.hpp>). Lets a test give a handle to a process that did not inherit it (one
// forked before the handle existed, or a freshly executed program).
//
// Wire: one message with the encoded bytes (at most 200 KiB), then one message per descriptor
// (SCM_RIGHTS, tagged with its index). Blocking; every failure is a gtest-visible exception.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mproc/codec.hpp>
#include <mproc/detail/travel.hpp>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "posix/fd_passing.hpp"

namespace mproc_test {

// Encodes `v` under a TravelOut scope and sends its bytes, then its descriptors.
template <class T>
void send_value(int sock, const T& v) {
  mproc::detail::Descriptors fds;
  std::vector<std::byte> bytes;
  {
    mproc::detail::TravelOut scope(fds);
    bytes = mproc::to_bytes(v);
  }
  const std::uint64_t count = fds.size();
  std::vector<std::byte> msg(sizeof count + bytes.size());
  std::memcpy(msg.data(), &count, sizeof count);
  if (!bytes.empty()) std::memcpy(msg.data() + sizeof count, bytes.data(), bytes.size());
  if (::send(sock, msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size()))
    throw std::runtime_error("send_value: send failed");
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if (mproc::detail::send_fd(sock, i, fds.fds()[i]))
      throw std::runtime_error("send_value: send_fd failed");
  }
}

// Receives what send_value sent and decodes it under a TravelIn scope.
template <class T>
T recv_value(int sock) {
  std::vector<std::byte> msg(200 * 1024);
  const ssize_t n = ::recv(sock, msg.data(), msg.size(), 0);
  if (n < static_cast<ssize_t>(sizeof(std::uint64_t)))
    throw std::runtime_error("recv_value: recv failed");
  std::uint64_t count = 0;
  std::memcpy(&count, msg.data(), sizeof count);
  mproc::detail::Descriptors fds;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t tag = 0;
    int fd = -1;
    if (mproc::detail::recv_fd(sock, tag, fd) || tag != i)
      throw std::runtime_error("recv_value: recv_fd failed");
    fds.adopt(fd);
  }
  mproc::detail::TravelIn scope(fds);
  return mproc::from_bytes<T>(std::span<const std::byte>(
      msg.data() + sizeof count, static_cast<std::size_t>(n) - sizeof count));
}

}  // namespace mproc_test
