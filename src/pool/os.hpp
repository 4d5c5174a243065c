// pool/os.hpp — the Pool's raw system calls that src/posix does not offer (yet), in one place.
//
// The Pool speaks to the OS through src/posix (socket pairs, reads and writes, fd passing, pidfds,
// fork, polling with a deadline, reaping, regions, thread ids, demangling) and, for the few calls
// below, through these wrappers. They follow src/posix's convention (noexcept, a std::error_code
// from errno, EINTR retried in retry_on_eintr) so that each can move there unchanged; no other file
// of src/pool/ makes a system call itself.
#pragma once

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <system_error>

#include "posix/error.hpp"

namespace mproc::detail::pool_os {

// Anonymous shared memory, inherited by forked children; MAP_NORESERVE: pages are committed as
// they are touched.
inline std::error_code map_shared_anonymous(std::size_t bytes, void*& at) noexcept {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return last_error();
  at = p;
  return {};
}
inline void unmap(void* at, std::size_t bytes) noexcept { (void)::munmap(at, bytes); }

// SIGCHLD to its default disposition; the previous one in `saved`.
inline void default_sigchld(struct sigaction& saved) noexcept {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  (void)sigemptyset(&dfl.sa_mask);
  (void)sigaction(SIGCHLD, &dfl, &saved);
}
inline void restore_sigchld(const struct sigaction& saved) noexcept {
  (void)sigaction(SIGCHLD, &saved, nullptr);
}

// The calling process's death signal (sent when its parent *thread* ends); 0 clears it.
inline void set_parent_death_signal(int sig) noexcept {
  (void)::prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(sig));
}
inline pid_t parent_pid() noexcept { return ::getppid(); }

// Ends the process at once: no atexit handlers, no stdio flush.
[[noreturn]] inline void exit_group(int code) noexcept {
  for (;;) ::syscall(SYS_exit_group, code);
}

}  // namespace mproc::detail::pool_os
