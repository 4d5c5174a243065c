// posix/socket.hpp — connected pairs of Unix sockets.
#pragma once

#include <system_error>

namespace mproc::detail {

// socketpair(AF_UNIX, type | SOCK_CLOEXEC): `type` is SOCK_STREAM (Pipe, the zygote's command
// channel) or SOCK_SEQPACKET (descriptor passing, where each message keeps its boundary). On
// failure `fds` is left as it was.
std::error_code socket_pair(int type, int (&fds)[2]) noexcept;

// shutdown(2) of one direction (SHUT_RD, SHUT_WR) or both (SHUT_RDWR).
std::error_code shutdown_socket(int fd, int how) noexcept;

}  // namespace mproc::detail
