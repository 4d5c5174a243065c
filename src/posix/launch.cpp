#include "posix/launch.hpp"

#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include "posix/error.hpp"
#include "posix/exit_status.hpp"
#include "posix/pidfd.hpp"

namespace mproc::detail {

namespace {

// The new child `pid` into `out` with a pidfd for it. Only this process can reap the child, so the
// pid still names it here (unless another thread reaps every child with wait()/waitpid(-1), which
// the documentation rules out). A child that cannot be held (no descriptor for its pidfd) is killed
// and reaped, and the errno returned with `out.failed_call` "pidfd_open".
std::error_code hold_child(pid_t pid, LaunchedChild& out) noexcept {
  int fd = -1;
  std::error_code ec = open_pidfd(pid, fd);
  if (ec == std::errc::no_such_process) {
    // The child has already ended and the kernel has reaped it (a zombie would still have its
    // pid): only a program that ignores SIGCHLD (or set SA_NOCLDWAIT) gets there, and its status
    // is gone. Started, and already over.
    out.pid = pid;
    out.pidfd = -1;
    out.failed_call = nullptr;
    return {};
  }
  if (ec) {
    out.failed_call = "pidfd_open";
    ::kill(pid, SIGKILL);
    int code = 0;
    (void)reap_blocking(pid, code);
    return ec;
  }
  out.pid = pid;
  out.pidfd = fd;
  out.failed_call = nullptr;
  return {};
}

}  // namespace

std::error_code launch_fork(const ChildEntry& entry, LaunchedChild& out) noexcept {
  pid_t pid = fork();
  if (pid < 0) {
    const std::error_code ec = last_error();
    out.failed_call = "fork";
    return ec;
  }
  if (pid == 0) {
    entry.run(entry.arg);
    _exit(127);  // not reached: the entry ends the process itself
  }
  return hold_child(pid, out);
}

namespace {
// Holds the file actions of one posix_spawn.
struct SpawnActions {
  posix_spawn_file_actions_t a;
  int err;
  SpawnActions() noexcept : err(posix_spawn_file_actions_init(&a)) {}
  ~SpawnActions() {
    if (err == 0) posix_spawn_file_actions_destroy(&a);
  }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
};
}  // namespace

std::error_code launch_spawn(char* const argv[], int fd, LaunchedChild& out,
                             char* const* envp) noexcept {
  out.failed_call = "posix_spawn";
  SpawnActions actions;
  if (actions.err != 0) return errno_code(actions.err);
  // dup2 onto 3 clears close-on-exec (also when fd is already 3: glibc >= 2.29 clears it then).
  int err = posix_spawn_file_actions_adddup2(&actions.a, fd, 3);
  if (err == 0) err = posix_spawn_file_actions_addclosefrom_np(&actions.a, 4);
  if (err != 0) return errno_code(err);
  pid_t pid = -1;
  err = posix_spawn(&pid, "/proc/self/exe", &actions.a, nullptr, argv, envp ? envp : environ);
  if (err != 0) return errno_code(err);
  return hold_child(pid, out);
}

}  // namespace mproc::detail
