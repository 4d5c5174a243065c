// helpers/pty.hpp — a pseudo-terminal, and stderr pointed at it, for tests of what is drawn only
// on terminals.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <string>

namespace mproc_test {

// A pseudo-terminal in raw mode (no "\n" -> "\r\n"); ok() is false where none can be opened.
class Pty {
 public:
  Pty() {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0) return;
    const char* name = ::ptsname(master_);
    if (name == nullptr) return;
    slave_ = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave_ < 0) return;
    termios t{};
    ::tcgetattr(slave_, &t);
    ::cfmakeraw(&t);
    ::tcsetattr(slave_, TCSANOW, &t);
  }
  ~Pty() {
    if (slave_ >= 0) ::close(slave_);
    if (master_ >= 0) ::close(master_);
  }
  Pty(const Pty&) = delete;
  Pty& operator=(const Pty&) = delete;
  bool ok() const { return slave_ >= 0; }
  int slave() const { return slave_; }
  void set_columns(unsigned short cols) const {
    winsize ws{};
    ws.ws_row = 24;
    ws.ws_col = cols;
    ::ioctl(slave_, TIOCSWINSZ, &ws);
  }
  // What the terminal shows up to and including the first "\n" (waits 10 s at most).
  std::string read_line() const {
    std::string out;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (out.find('\n') == std::string::npos && std::chrono::steady_clock::now() < until) {
      pollfd p{master_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char b[4096];
      ssize_t n = ::read(master_, b, sizeof b);
      if (n > 0) out.append(b, static_cast<std::size_t>(n));
    }
    return out;
  }

 private:
  int master_ = -1;
  int slave_ = -1;
};

// Points fd 2 at another descriptor until destroyed.
class StderrTo {
 public:
  explicit StderrTo(int fd) : saved_(::dup(STDERR_FILENO)) { ::dup2(fd, STDERR_FILENO); }
  ~StderrTo() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
  }
  StderrTo(const StderrTo&) = delete;
  StderrTo& operator=(const StderrTo&) = delete;

 private:
  int saved_;
};

}  // namespace mproc_test
