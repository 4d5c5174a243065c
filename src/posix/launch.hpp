// posix/launch.hpp — start methods: how a new child process comes to run its bootstrap.
//
// A launcher creates a child that calls `entry.run(entry.arg)` (which never returns) and hands the
// parent the child's pid and a pidfd for it. Process::start() only ever talks to a `Launcher`, so a
// start method other than fork (spawn, forkserver) plugs in as another function of the same shape.
#pragma once

#include <sys/types.h>

#include <system_error>

namespace mproc::detail {

struct ChildEntry {
  // Runs in the child and must end the process (`_exit`); returning is treated as a crash.
  void (*run)(void* arg) noexcept;
  void* arg;
};

struct LaunchedChild {
  pid_t pid = -1;
  // Close-on-exec; owned by the caller on success. -1 on success when the child had already ended
  // and been reaped by the kernel before its pidfd could be opened (the program ignores SIGCHLD).
  int pidfd = -1;
  // On failure: the system call that failed ("fork", "pidfd_open"), for the caller's message.
  const char* failed_call = nullptr;
};

using Launcher = std::error_code (*)(const ChildEntry& entry, LaunchedChild& out) noexcept;

// The fork start method. The child is a copy of the calling process with only the calling thread;
// pthread_atfork handlers run as for any fork(). On failure no child is left behind: a child whose
// pidfd cannot be opened (EMFILE) is killed and reaped before this returns.
std::error_code launch_fork(const ChildEntry& entry, LaunchedChild& out) noexcept;

// The spawn start method's first half: runs this program's file again (/proc/self/exe, the very
// file the calling process runs even if its path was replaced) with `argv` (null-terminated) and
// the calling process's environment, through posix_spawn (glibc: clone(CLONE_VM | CLONE_VFORK) and
// exec, so safe in a threaded process and as cheap for a large process as for a small one). The new
// program holds descriptors 0, 1 and 2 as the caller has them, `fd` as descriptor 3, and no other
// (every other descriptor is closed, close-on-exec or not). Its parent is the calling thread (as
// for fork). On success `out` holds the pid and a pidfd (same contract as launch_fork); on failure
// `out.failed_call` names the step ("posix_spawn", "pidfd_open") and nothing is left behind.
// `envp`: the environment (null: the calling process's).
std::error_code launch_spawn(char* const argv[], int fd, LaunchedChild& out,
                             char* const* envp = nullptr) noexcept;

}  // namespace mproc::detail
