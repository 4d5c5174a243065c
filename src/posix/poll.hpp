// posix/poll.hpp — waiting for descriptors with a deadline: the one ppoll loop.
#pragma once

#include <poll.h>

#include <cstddef>
#include <mproc/detail/expiry.hpp>
#include <system_error>

namespace mproc::detail {

// ppoll over `fds` until one is ready or `deadline` passes (nullopt: no deadline; a deadline that
// has passed polls once without waiting). `ready` is ppoll's count, 0 when the deadline passed.
// Interrupted waits (EINTR) resume with the time left on CLOCK_MONOTONIC, so a signal handler that
// runs during the wait neither ends it nor stretches it. Entries with fd -1 are ignored.
std::error_code poll_until(pollfd* fds, std::size_t n, const Expiry& deadline, int& ready) noexcept;

// Blocks until `fd` polls readable or `deadline` passes. `ready` tells which. A descriptor that is
// not open is EBADF.
std::error_code wait_readable(int fd, const Expiry& deadline, bool& ready) noexcept;

// As poll_until and wait_readable, for a wait that an interruption request (mproc::interrupt(),
// <mproc/interrupt.hpp>) may end: std::errc::interrupted (EINTR, which the plain forms never
// return) when a request is pending and nothing is ready. Not armed (see interrupts_armed()):
// exactly the plain forms. Armed: ppoll sleeps at most kInterruptSlice at a time, and a request is
// looked for before each sleep; descriptors found ready win over the request.
std::error_code poll_until_interruptible(pollfd* fds, std::size_t n, const Expiry& deadline,
                                         int& ready) noexcept;
std::error_code wait_readable_interruptible(int fd, const Expiry& deadline, bool& ready) noexcept;

// Blocks without limit until `fd` is ready for `events` (for a descriptor the user made
// non-blocking). EINTR is retried.
std::error_code await_fd(int fd, short events) noexcept;

}  // namespace mproc::detail
