// posix/fd_passing.hpp — file descriptors sent between processes over a Unix socket (SCM_RIGHTS),
// each with a 64-bit tag that says what it is for.
//
// Use a SOCK_SEQPACKET socket pair so that every descriptor arrives with its own tag. Every
// function here is noexcept and returns a std::error_code; interrupted calls (EINTR) are retried.
#pragma once

#include <cstddef>
#include <cstdint>
#include <system_error>

namespace mproc::detail {

// Sends a duplicate of `fd` with `tag` (blocking; MSG_NOSIGNAL: a closed peer gives EPIPE).
std::error_code send_fd(int sock, std::uint64_t tag, int fd) noexcept;

// Receives one descriptor (close-on-exec) and its tag (blocking). A message without a descriptor
// is an error (EBADMSG); EOF is ECONNRESET.
std::error_code recv_fd(int sock, std::uint64_t& tag, int& fd) noexcept;

// The most descriptors one message carries (the kernel's SCM_MAX_FD is 253).
inline constexpr std::size_t kMaxFdsPerMessage = 250;

// Sends one message of `len` (>= 1) bytes carrying `n` (<= kMaxFdsPerMessage, may be 0) descriptors
// (blocking; MSG_NOSIGNAL). For SOCK_SEQPACKET sockets: the message keeps its boundary.
std::error_code send_message(int sock, const void* data, std::size_t len, const int* fds,
                             std::size_t n) noexcept;

// Receives one message of at most `cap` bytes (`got`: its length; 0 with no error is EOF) and its
// descriptors (close-on-exec) into `fds` (room for `max`; `nfds`: how many came). A message whose
// descriptors did not all arrive (MSG_CTRUNC: the receiver has no descriptor left, or more than
// `max` were sent) is EMFILE, and those that did arrive are closed; a longer message than `cap`
// (MSG_TRUNC) is EMSGSIZE.
std::error_code recv_message(int sock, void* data, std::size_t cap, std::size_t& got, int* fds,
                             std::size_t max, std::size_t& nfds) noexcept;

}  // namespace mproc::detail
