#include "posix/poll.hpp"

#include <time.h>

#include <cerrno>
#include <mproc/interrupt.hpp>

#include "posix/error.hpp"
#include "posix/timespec.hpp"

namespace mproc::detail {

std::error_code poll_until(pollfd* fds, std::size_t n, const Expiry& deadline,
                           int& ready) noexcept {
  ready = 0;
  for (;;) {
    timespec storage{};
    const int r = ::ppoll(fds, static_cast<nfds_t>(n), timeout_left(deadline, storage), nullptr);
    if (r >= 0) {
      ready = r;
      return {};
    }
    if (errno != EINTR) return last_error();
  }
}

std::error_code poll_until_interruptible(pollfd* fds, std::size_t n, const Expiry& deadline,
                                         int& ready) noexcept {
  if (!interrupts_armed()) return poll_until(fds, n, deadline, ready);
  ready = 0;
  for (;;) {
    // With a request pending, one look without waiting: descriptors already ready win.
    const bool pending = interrupt_pending();
    const Expiry until = pending ? Expiry(Clock::now()) : interruptible_until(deadline);
    timespec storage{};
    const int r = ::ppoll(fds, static_cast<nfds_t>(n), timeout_left(until, storage), nullptr);
    if (r < 0 && errno != EINTR) return last_error();
    if (r > 0 || (r == 0 && !pending && expired(deadline))) {
      ready = r;
      return {};
    }
    if (pending) return std::make_error_code(std::errc::interrupted);
    // A slice ended, or a signal came (perhaps the request itself): look again.
  }
}

namespace {

std::error_code wait_readable_with(int fd, const Expiry& deadline, bool& ready,
                                   bool interruptible) noexcept {
  ready = false;
  pollfd p{fd, POLLIN, 0};
  int count = 0;
  if (auto ec = interruptible ? poll_until_interruptible(&p, 1, deadline, count)
                              : poll_until(&p, 1, deadline, count))
    return ec;
  if (count == 0) return {};  // deadline passed
  if (p.revents & POLLNVAL) return std::make_error_code(std::errc::bad_file_descriptor);
  ready = true;
  return {};
}

}  // namespace

std::error_code wait_readable(int fd, const Expiry& deadline, bool& ready) noexcept {
  return wait_readable_with(fd, deadline, ready, false);
}

std::error_code wait_readable_interruptible(int fd, const Expiry& deadline, bool& ready) noexcept {
  return wait_readable_with(fd, deadline, ready, true);
}

std::error_code await_fd(int fd, short events) noexcept {
  pollfd p{fd, events, 0};
  if (retry_on_eintr([&] { return ::poll(&p, 1, -1); }) < 0) return last_error();
  return {};
}

}  // namespace mproc::detail
