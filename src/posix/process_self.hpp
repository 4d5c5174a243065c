// posix/process_self.hpp — what a process asks or sets about itself: its parent, its death signal,
// its end, its fork handlers, its CPUs, its SIGCHLD disposition.
//
// The one-line calls are inline: a freshly forked child makes them before anything else, and
// Process binds their PLT slots once in the parent (bind_child_calls in process.cpp), so that no
// child resolves them anew. Same convention as the rest of src/posix: noexcept, errno never left
// for the caller.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <system_error>

namespace mproc::detail {

// The signal the kernel sends the calling process when its parent *thread* ends (prctl
// PR_SET_PDEATHSIG); 0 clears it. Cleared by fork in the child, so a child sets its own.
inline void set_parent_death_signal(int sig) noexcept {
  (void)::prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(sig));
}

// The current death signal (0: none).
inline int parent_death_signal() noexcept {
  int sig = 0;
  (void)::prctl(PR_GET_PDEATHSIG, &sig);
  return sig;
}

// getppid(): 1 or a subreaper once the parent has died.
inline pid_t parent_pid() noexcept { return ::getppid(); }

// Ends the process at once, every thread: no atexit handlers, no stdio flush (exit_group directly,
// as _exit does, without a PLT slot to resolve in each child).
[[noreturn]] inline void exit_group(int code) noexcept {
  for (;;) ::syscall(SYS_exit_group, code);
}

// SIGCHLD to its default disposition; the previous one in `saved`, for restore_sigchld.
inline void default_sigchld(struct sigaction& saved) noexcept {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  (void)sigemptyset(&dfl.sa_mask);
  (void)::sigaction(SIGCHLD, &dfl, &saved);
}
inline void restore_sigchld(const struct sigaction& saved) noexcept {
  (void)::sigaction(SIGCHLD, &saved, nullptr);
}

// pthread_atfork(prepare, parent, child).
std::error_code register_fork_handlers(void (*prepare)(), void (*parent)(),
                                       void (*child)()) noexcept;

// The CPUs online (sysconf(_SC_NPROCESSORS_ONLN)), at least 1.
int online_cpu_count() noexcept;

// The CPUs the calling thread may run on (sched_getaffinity, with a mask grown until the kernel
// takes it: machines with more than 1024 CPUs). Throws std::bad_alloc only.
std::error_code affinity_cpu_count(int& n);

}  // namespace mproc::detail
