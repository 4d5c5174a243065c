// The boot channel (see start/boot.hpp).
#include "start/boot.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <exception>
#include <mproc/codec.hpp>
#include <mproc/process.hpp>

#include "posix/error.hpp"
#include "posix/fd_passing.hpp"

namespace mproc::detail {
namespace {

constexpr std::uint32_t kMagic = 0x6d70626f;  // "mpbo"
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kChunk = std::size_t{64} << 10;

struct Header {
  std::uint32_t magic = kMagic;
  std::uint32_t version = kVersion;
  std::uint64_t body = 0;
  std::uint64_t fds = 0;
};

}  // namespace

std::error_code send_boot(int sock, const BootMessage& m, const std::vector<int>& fds) noexcept {
  std::vector<std::byte> body;
  try {
    body = mproc::to_bytes(m);
  } catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  Header h;
  h.body = body.size();
  h.fds = fds.size();
  std::size_t sent = std::min(fds.size(), kMaxFdsPerMessage);
  if (auto ec = send_message(sock, &h, sizeof h, fds.data(), sent)) return ec;
  while (sent < fds.size()) {
    const std::size_t n = std::min(fds.size() - sent, kMaxFdsPerMessage);
    const char one = 0;
    if (auto ec = send_message(sock, &one, 1, fds.data() + sent, n)) return ec;
    sent += n;
  }
  for (std::size_t off = 0; off < body.size(); off += kChunk) {
    const std::size_t n = std::min(kChunk, body.size() - off);
    if (auto ec = send_message(sock, body.data() + off, n, nullptr, 0)) return ec;
  }
  return {};
}

bool recv_boot(int sock, BootMessage& m, Descriptors& fds, std::string& why) noexcept {
  try {
    Header h;
    std::size_t got = 0;
    std::size_t nfds = 0;
    int batch[kMaxFdsPerMessage];
    std::error_code ec = recv_message(sock, &h, sizeof h, got, batch, kMaxFdsPerMessage, nfds);
    for (std::size_t i = 0; i < nfds; ++i) fds.adopt(batch[i]);
    if (ec) {
      why = "cannot receive the boot header: " + ec.message();
      return false;
    }
    if (got != sizeof h || h.magic != kMagic || h.version != kVersion || h.body > kMaxBootBody ||
        h.fds > kMaxBootFds || nfds > h.fds) {
      why = got == 0 ? "the starting process closed the boot channel"
                     : "what arrived on the boot channel is not a boot header";
      return false;
    }
    while (fds.size() < h.fds) {
      char one = 0;
      ec = recv_message(sock, &one, 1, got, batch, kMaxFdsPerMessage, nfds);
      for (std::size_t i = 0; i < nfds; ++i) fds.adopt(batch[i]);
      if (ec || got != 1 || nfds == 0 || fds.size() > h.fds) {
        why = ec ? "cannot receive the descriptors: " + ec.message()
                 : "the boot channel broke while descriptors were sent";
        return false;
      }
    }
    std::vector<std::byte> body(static_cast<std::size_t>(h.body));
    for (std::size_t off = 0; off < body.size();) {
      const std::size_t want = std::min(kChunk, body.size() - off);
      ec = recv_message(sock, body.data() + off, want, got, batch, 0, nfds);
      if (ec || got == 0) {
        why = ec ? "cannot receive the boot message: " + ec.message()
                 : "the starting process closed the boot channel";
        return false;
      }
      off += got;
    }
    m = mproc::from_bytes<BootMessage>(body);
    return true;
  } catch (const std::exception& e) {
    why = std::string("the boot message does not decode: ") + e.what();
    return false;
  }
}

void send_boot_ack(int sock, bool ok, const std::string& error) noexcept {
  if (ok) {
    char msg[1 + sizeof(std::int32_t)];
    msg[0] = static_cast<char>(kBootOk);
    const std::int32_t pid = ::getpid();
    std::memcpy(msg + 1, &pid, sizeof pid);
    (void)send_message(sock, msg, sizeof msg, nullptr, 0);
    return;
  }
  std::string msg(1, static_cast<char>(kBootFailed));
  try {
    msg += error.substr(0, 4000);
  } catch (...) {
  }
  (void)send_message(sock, msg.data(), msg.size(), nullptr, 0);
}

void send_boot_fork_failed(int sock, int err) noexcept {
  char msg[1 + sizeof(int)];
  msg[0] = static_cast<char>(kBootForkFailed);
  std::memcpy(msg + 1, &err, sizeof err);
  (void)::send(sock, msg, sizeof msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

bool recv_boot_ack(int sock, std::string& error, bool& gone, int& exitcode, int& pid,
                   int& fork_errno) noexcept {
  char buf[4096];
  std::size_t got = 0;
  std::size_t nfds = 0;
  int none[1];
  gone = false;
  exitcode = kExitCodeUnknown;
  fork_errno = 0;
  std::error_code ec = recv_message(sock, buf, sizeof buf, got, none, 0, nfds);
  try {
    if (ec == std::errc::connection_reset || (!ec && got == 0)) {
      gone = true;
      return false;
    }
    if (ec) {
      error = "cannot read its acknowledgement: " + ec.message();
      return false;
    }
    if (static_cast<std::uint8_t>(buf[0]) == kBootOk && got == 1 + sizeof(std::int32_t)) {
      std::int32_t p = 0;
      std::memcpy(&p, buf + 1, sizeof p);
      pid = p;
      return p > 0;
    }
    if (static_cast<std::uint8_t>(buf[0]) == kBootForkFailed && got == 1 + sizeof(int)) {
      std::memcpy(&fork_errno, buf + 1, sizeof(int));
      if (fork_errno <= 0) fork_errno = EPROTO;
      return false;
    }
    if (static_cast<std::uint8_t>(buf[0]) == kBootFailed) {
      error.assign(buf + 1, got - 1);
      return false;
    }
    if (static_cast<std::uint8_t>(buf[0]) == kBootStatus) {
      gone = true;
      if (got == 1 + 2 * sizeof(int)) {
        std::memcpy(&exitcode, buf + 1, sizeof(int));
        std::memcpy(&pid, buf + 1 + sizeof(int), sizeof(int));
      }
      return false;
    }
    error = "its acknowledgement is garbled";
  } catch (...) {
  }
  return false;
}

void send_boot_status(int sock, int exitcode, int pid) noexcept {
  char msg[1 + 2 * sizeof(int)];
  msg[0] = static_cast<char>(kBootStatus);
  std::memcpy(msg + 1, &exitcode, sizeof exitcode);
  std::memcpy(msg + 1 + sizeof(int), &pid, sizeof pid);
  (void)::send(sock, msg, sizeof msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

bool try_recv_boot_status(int sock, int& exitcode) noexcept {
  char msg[64];
  const ssize_t r = retry_on_eintr([&] { return ::recv(sock, msg, sizeof msg, MSG_DONTWAIT); });
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    exitcode = kExitCodeUnknown;
    return true;
  }
  if (r == 1 + 2 * static_cast<ssize_t>(sizeof(int)) &&
      static_cast<std::uint8_t>(msg[0]) == kBootStatus) {
    std::memcpy(&exitcode, msg + 1, sizeof exitcode);
    return true;
  }
  exitcode = kExitCodeUnknown;  // EOF: the server ended before it reported; or garbage
  return true;
}

}  // namespace mproc::detail
