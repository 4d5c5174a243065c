#include "posix/poll.hpp"

#include <time.h>

#include <cerrno>

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

std::error_code wait_readable(int fd, const Expiry& deadline, bool& ready) noexcept {
  ready = false;
  pollfd p{fd, POLLIN, 0};
  int count = 0;
  if (auto ec = poll_until(&p, 1, deadline, count)) return ec;
  if (count == 0) return {};  // deadline passed
  if (p.revents & POLLNVAL) return std::make_error_code(std::errc::bad_file_descriptor);
  ready = true;
  return {};
}

std::error_code await_fd(int fd, short events) noexcept {
  pollfd p{fd, events, 0};
  if (retry_on_eintr([&] { return ::poll(&p, 1, -1); }) < 0) return last_error();
  return {};
}

}  // namespace mproc::detail
