// posix/fd_io.hpp — reads and writes on descriptors (Connection's frames, mproc::wait's eventfd),
// and the signal masks they need.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <system_error>

namespace mproc::detail {

// read(2) of up to `n` bytes into `buf` (EINTR retried). `got` is the count, 0 at EOF. A
// non-blocking descriptor with nothing to read gives EAGAIN.
std::error_code read_some(int fd, void* buf, std::size_t n, std::size_t& got) noexcept;

// One gathered write of `count` buffers (EINTR retried): sendmsg with MSG_NOSIGNAL on a socket (a
// closed peer is EPIPE, not SIGPIPE), writev otherwise (see SigpipeGuard). `done` is the count.
std::error_code write_some(int fd, bool socket, const iovec* v, int count,
                           std::size_t& done) noexcept;

// Writes all `n` bytes (EINTR retried, partial writes continued); stops at the first error, which
// it returns (a write of 0 bytes is EIO).
std::error_code write_all(int fd, const void* data, std::size_t n) noexcept;

// Whether `fd` is a terminal (isatty), and its width in columns (TIOCGWINSZ; false when it has
// none, e.g. not a terminal or a width of 0).
bool is_terminal(int fd) noexcept;
bool terminal_columns(int fd, std::size_t& columns) noexcept;

// Whether `fd` is a socket (fstat); EBADF when it is not open.
std::error_code is_socket(int fd, bool& socket) noexcept;

// The file type and mode bits of `fd` (fstat's st_mode; test it with S_ISSOCK, S_ISFIFO, ...).
std::error_code file_mode(int fd, mode_t& mode) noexcept;

// A close-on-exec duplicate of `fd` (F_DUPFD_CLOEXEC), numbered `at_least` or above.
std::error_code dup_cloexec(int fd, int& out, int at_least = 0) noexcept;

// An eventfd (non-blocking, close-on-exec) with count 0, and adding 1 to one.
std::error_code make_eventfd(int& fd) noexcept;
void eventfd_post(int fd) noexcept;

// Blocks SIGPIPE in the calling thread while a write to a descriptor that is not a socket runs
// (sockets use MSG_NOSIGNAL instead), then discards the SIGPIPE that write raised, so a pipe whose
// reader is gone gives EPIPE rather than a signal. The process's signal dispositions are not
// touched; a SIGPIPE that was already pending for the thread is left pending. errno is kept.
class SigpipeGuard {
 public:
  SigpipeGuard() noexcept;
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;
  ~SigpipeGuard();
  // Call when the write failed with EPIPE: the SIGPIPE it raised is then consumed.
  void raised() noexcept { raised_ = true; }

 private:
  sigset_t set_;
  sigset_t old_;
  bool was_pending_ = false;
  bool raised_ = false;
};

// Blocks every signal in the calling thread for its lifetime (so that a thread started meanwhile
// inherits the full mask and never runs a handler meant for the program).
class AllSignalsBlocked {
 public:
  AllSignalsBlocked() noexcept;
  AllSignalsBlocked(const AllSignalsBlocked&) = delete;
  AllSignalsBlocked& operator=(const AllSignalsBlocked&) = delete;
  ~AllSignalsBlocked();

 private:
  sigset_t old_;
};

}  // namespace mproc::detail
