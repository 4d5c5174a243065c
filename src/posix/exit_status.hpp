// posix/exit_status.hpp — how a child's end is decoded and described: the one encoding of
// Process::exitcode() (and of a Pool worker's exit): N >= 0 is exit(N), -N is death by signal N.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <system_error>

namespace mproc::detail {

// From waitid(2)'s siginfo (si_code CLD_EXITED: si_status is the exit code; CLD_KILLED or
// CLD_DUMPED: si_status is the signal).
int exitcode_from_siginfo(const siginfo_t& info) noexcept;

// From a wait(2)/waitpid(2) status word.
int exitcode_from_wait_status(int status) noexcept;

// "exited with code 3", "killed by signal 9 (SIGKILL)" (the name where the C library knows it).
std::string describe_exitcode(int exitcode);

// Waits for the child `pid` to end and reaps it (waitpid, EINTR retried); `exitcode` is its exit
// in the encoding above. Blocks without limit: for a child that has been killed or is known to end.
std::error_code reap_blocking(pid_t pid, int& exitcode) noexcept;

}  // namespace mproc::detail
