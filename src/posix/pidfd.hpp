// posix/pidfd.hpp — process file descriptors: open, signal, wait for exit, reap.
//
// A pidfd names one process for as long as the descriptor is open, so signalling or waiting through
// it can never hit a different process that reused the pid. It polls readable when the process has
// exited. Every function here is noexcept, returns a std::error_code, and is safe right after fork.
#pragma once

#include <sys/types.h>

#include <system_error>

#include "posix/poll.hpp"  // wait_readable, for a pidfd as for any descriptor

namespace mproc::detail {

// Opens a pidfd (close-on-exec) for the live process `pid` into `fd`.
std::error_code open_pidfd(pid_t pid, int& fd) noexcept;

// Sends `sig` to the process behind `pidfd`. A process that has already exited (ESRCH) is not an
// error: signalling it does nothing.
std::error_code send_signal(int pidfd, int sig) noexcept;

// Reaps the child behind `pidfd` if it has exited, without blocking (waitid(P_PIDFD, WNOHANG)).
// On success `exited` says whether it was reaped; if so `exitcode` is its exit status, or -N when
// signal N killed it (the encoding of Process::exitcode()).
std::error_code try_reap(int pidfd, bool& exited, int& exitcode) noexcept;

// close(2) that ignores EINTR and negative descriptors.
void close_fd(int fd) noexcept;

}  // namespace mproc::detail
