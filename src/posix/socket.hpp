// posix/socket.hpp — connected pairs of Unix sockets.
#pragma once

#include <cstddef>
#include <system_error>

namespace mproc::detail {

// socketpair(AF_UNIX, type | SOCK_CLOEXEC): `type` is SOCK_STREAM (Pipe, the zygote's command
// channel) or SOCK_SEQPACKET (descriptor passing, where each message keeps its boundary). On
// failure `fds` is left as it was.
std::error_code socket_pair(int type, int (&fds)[2]) noexcept;

// shutdown(2) of one direction (SHUT_RD, SHUT_WR) or both (SHUT_RDWR).
std::error_code shutdown_socket(int fd, int how) noexcept;

// Sends `n` bytes in one send (MSG_NOSIGNAL: a peer that has gone is EPIPE, not SIGPIPE; EINTR
// retried); a short send is EPIPE too. For small fixed-size messages on a stream socket.
std::error_code send_all(int sock, const void* data, std::size_t n) noexcept;

// Receives exactly `n` bytes (EINTR retried); `got` tells how many came before EOF or an error.
void recv_all(int sock, void* data, std::size_t n, std::size_t& got) noexcept;

}  // namespace mproc::detail
