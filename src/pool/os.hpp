// pool/os.hpp — every raw system call of the Pool's files, in one place.
//
// The Pool speaks to the OS through src/posix (fd passing, pidfds, fork, regions, thread ids) and,
// for the few calls src/posix does not offer yet, through these wrappers. They follow src/posix's
// convention (noexcept, a std::error_code from errno, EINTR retried) so that each can move there
// unchanged; nothing else in src/pool/ includes a system header.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <system_error>

#include "posix/error.hpp"

namespace mproc::detail::pool_os {

// A close-on-exec SOCK_SEQPACKET pair (each message keeps its own descriptor and tag).
inline std::error_code seqpacket_pair(int (&fds)[2]) noexcept {
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return last_error();
  return {};
}

// A close-on-exec SOCK_STREAM pair (the launcher's command channel: send(MSG_NOSIGNAL) to a peer
// that has gone raises no SIGPIPE, unlike a pipe).
inline std::error_code stream_pair(int (&fds)[2]) noexcept {
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return last_error();
  return {};
}

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

// Sends all `n` bytes (MSG_NOSIGNAL), retrying EINTR; a short send is EPIPE.
inline std::error_code send_all(int sock, const void* data, std::size_t n) noexcept {
  ssize_t r;
  do {
    r = ::send(sock, data, n, MSG_NOSIGNAL);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return last_error();
  return r == static_cast<ssize_t>(n) ? std::error_code()
                                      : std::make_error_code(std::errc::broken_pipe);
}

// Receives exactly `n` bytes, retrying EINTR; `got` tells how many came before EOF or an error.
inline void recv_all(int sock, void* data, std::size_t n, std::size_t& got) noexcept {
  got = 0;
  while (got < n) {
    const ssize_t r = ::recv(sock, static_cast<char*>(data) + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    got += static_cast<std::size_t>(r);
  }
}

// One read(2); EINTR is reported as such (the zygote's loop polls again).
inline ssize_t read_some(int fd, void* data, std::size_t n, int& err) noexcept {
  const ssize_t r = ::read(fd, data, n);
  err = r < 0 ? errno : 0;
  return r;
}

// poll(2) for `timeout_ms` (-1: no limit); EINTR is reported, not retried (the caller recomputes
// its timeout).
inline int poll_ms(pollfd* fds, std::size_t n, int timeout_ms, int& err) noexcept {
  const int r = ::poll(fds, n, timeout_ms);
  err = r < 0 ? errno : 0;
  return r;
}

// Waits for the child `pid` to end and reaps it (its status is not needed).
inline void reap(pid_t pid) noexcept {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

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
