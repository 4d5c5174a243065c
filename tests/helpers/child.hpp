// helpers/child.hpp — test helpers: run code in a raw forked child with a deadline (the watchdog
// that bounds a whole test is in helpers/watchdog.hpp).
//
// `run_in_child` does not use mproc::Process on purpose: tests of the primitives stay independent
// of the Process implementation. The result is encoded like Process::exitcode(): the exit status,
// or -N when the child was killed by signal N. A child still running at the deadline is SIGKILLed
// and the result is kTimedOut.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

namespace mproc_test {

inline constexpr int kTimedOut = 1000;

// A forked child that is killed if the test process dies, and that the caller must wait() for.
class Child {
 public:
  explicit Child(const std::function<int()>& fn) {
    std::fflush(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int rc = 99;
      try {
        rc = fn();
      } catch (...) {
        rc = 98;
      }
      std::fflush(nullptr);
      _exit(rc);
    }
    pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      (void)wait(std::chrono::seconds(30));
    }
    if (pidfd_ >= 0) close(pidfd_);
  }
  pid_t pid() const { return pid_; }
  void kill(int sig = SIGKILL) { ::kill(pid_, sig); }

  // Waits for the child to exit; returns its exitcode, or kTimedOut (after killing it).
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    if (reaped_) return result_;
    pollfd p{pidfd_, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(timeout.count()));
    bool timed_out = (r == 0);
    if (timed_out) ::kill(pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    result_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    if (timed_out) result_ = kTimedOut;
    return result_;
  }

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool reaped_ = false;
  int result_ = 0;
};

inline int run_in_child(const std::function<int()>& fn,
                        std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  Child c(fn);
  return c.wait(timeout);
}

}  // namespace mproc_test
