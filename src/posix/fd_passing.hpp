// posix/fd_passing.hpp — file descriptors sent between processes over a Unix socket (SCM_RIGHTS),
// each with a 64-bit tag that says what it is for.
//
// Use a SOCK_SEQPACKET socket pair so that every descriptor arrives with its own tag. Every
// function here is noexcept and returns a std::error_code; interrupted calls (EINTR) are retried.
#pragma once

#include <cstdint>
#include <system_error>

namespace mproc::detail {

// Sends a duplicate of `fd` with `tag` (blocking; MSG_NOSIGNAL: a closed peer gives EPIPE).
std::error_code send_fd(int sock, std::uint64_t tag, int fd) noexcept;

// Receives one descriptor (close-on-exec) and its tag (blocking). A message without a descriptor
// is an error (EBADMSG); EOF is ECONNRESET.
std::error_code recv_fd(int sock, std::uint64_t& tag, int& fd) noexcept;

}  // namespace mproc::detail
