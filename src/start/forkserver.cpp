// The forkserver start method: a single-threaded server process, spawned (a fresh image of the
// program, see launch_spawn) the first time a process of this program asks for it, that forks
// children on request.
//
// Why a spawned server rather than one forked at init: a spawned server is single-threaded and
// holds no lock of the program whatever the program was doing when it started, so it can start
// lazily from any thread at any time, and init() costs nothing to a program that never uses it.
// Its children are forks of that fresh image: they never inherit the requesting program's threads,
// locks or memory, only what the program's static initialisers and init() built.
//
// Protocol (SOCK_SEQPACKET control socket, descriptor 3 in the server):
//   request: 1 byte 'f' with one descriptor, the child's end of its boot channel (start/boot.hpp).
//   No reply: the child acknowledges on its boot channel with its pid, and a fork that failed is
//   reported there (kBootForkFailed), so a start waits for one message. A server that dies after
//   it took a request closes that channel: the start sees it end and fails with ProcessError.
//
// Lifetime and failure:
//   * The server ends when the requesting process ends (its pidfd polls readable) or closes the
//     control socket; it then SIGKILLs and reaps the children it still has. Its children have
//     PR_SET_PDEATHSIG(SIGKILL) towards it (single-threaded, so the death signal is reliable): a
//     killed server takes its children with it. Nothing is orphaned. One exception, on purpose: a
//     Pool's zygote clears that death signal and watches the Pool's process instead (as every
//     zygote does, src/pool/launcher.cpp), so a forkserver Pool outlives a killed server and goes
//     on (start_method_kill_test); it still ends with the Pool's process.
//   * The children are the server's: it reaps them and reports each exit code on the child's boot
//     channel (kBootStatus), which is the requesting Process's sentinel. A server killed before
//     it reported leaves that Process's exit code unknown (kExitCodeUnknown).
//   * A server found dead by a request is reaped and started again once; a second failure is the
//     request's error.
//   * The server resets SIGCHLD to its default disposition (a program that ignores SIGCHLD would
//     otherwise make the kernel reap the children before their status could be read).
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <mproc/detail/travel.hpp>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "posix/error.hpp"
#include "posix/exit_status.hpp"
#include "posix/fd_passing.hpp"
#include "posix/launch.hpp"
#include "posix/pidfd.hpp"
#include "posix/process_self.hpp"
#include "posix/socket.hpp"
#include "start/boot.hpp"
#include "start/start.hpp"

namespace mproc::detail {
namespace {

// ---- the server --------------------------------------------------------------------------------

[[noreturn]] void end_server(std::unordered_map<pid_t, int>& kids) noexcept {
  for (auto& [pid, fd] : kids) ::kill(pid, SIGKILL);
  for (auto& [pid, fd] : kids) {
    int code = 0;
    (void)reap_blocking(pid, code);
  }
  exit_group(0);
}

void reap_kids(std::unordered_map<pid_t, int>& kids) noexcept {
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG) != 0 || info.si_pid == 0) return;
    auto it = kids.find(info.si_pid);
    if (it == kids.end()) continue;
    send_boot_status(it->second, exitcode_from_siginfo(info), static_cast<int>(info.si_pid));
    close_fd(it->second);
    kids.erase(it);
  }
}

[[noreturn]] void become_child(int boot, const sigset_t& mask, pid_t server) noexcept {
  if (boot != 3) {
    if (::dup2(boot, 3) < 0) exit_group(1);
  }
  (void)::syscall(SYS_close_range, 4U, ~0U, 0U);
  (void)::sigprocmask(SIG_SETMASK, &mask, nullptr);
  set_parent_death_signal(SIGKILL);
  if (parent_pid() != server) exit_group(1);
  run_fresh_child(3, false);
}

}  // namespace

void run_forkserver(int ctl, bool bind_now_added) noexcept {
  if (bind_now_added) (void)::unsetenv("LD_BIND_NOW");
  // What every child would otherwise do anew: find the program's images (resolve_code).
  snapshot_loaded_images();
  const pid_t starter = parent_pid();
  if (starter == 1) exit_group(0);
  int starter_fd = -1;
  if (open_pidfd(starter, starter_fd)) exit_group(1);
  if (parent_pid() != starter) exit_group(0);
  struct sigaction dfl_chld {};
  default_sigchld(dfl_chld);
  sigset_t chld;
  sigset_t old;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  (void)::sigprocmask(SIG_BLOCK, &chld, &old);
  const int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) exit_group(1);
  const pid_t self = ::getpid();
  std::unordered_map<pid_t, int> kids;
  for (;;) {
    pollfd fds[3] = {{ctl, POLLIN, 0}, {sfd, POLLIN, 0}, {starter_fd, POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      end_server(kids);
    }
    if (fds[2].revents != 0) end_server(kids);
    if (fds[1].revents != 0) {
      signalfd_siginfo si[16];
      while (::read(sfd, si, sizeof si) > 0) {
      }
      reap_kids(kids);
    }
    if (fds[0].revents == 0) continue;
    char req = 0;
    std::size_t got = 0;
    std::size_t n = 0;
    int boot = -1;
    std::error_code ec = recv_message(ctl, &req, 1, got, &boot, 1, n);
    if (ec || got == 0) end_server(kids);
    if (req != 'f' || n != 1) {  // not a request: dropped
      if (n == 1) close_fd(boot);
      continue;
    }
    // No answer on the control socket: the child acknowledges on its boot channel with its pid,
    // and a failure to fork is told there too, so the starter waits for one message, not two.
    try {
      kids.reserve(kids.size() + 1);
    } catch (...) {
      send_boot_fork_failed(boot, ENOMEM);
      close_fd(boot);
      continue;
    }
    const pid_t pid = ::fork();
    if (pid == 0) become_child(boot, old, self);
    if (pid < 0) {
      send_boot_fork_failed(boot, errno);
      close_fd(boot);
    } else {
      kids.emplace(pid, boot);
    }
  }
}

// ---- the client --------------------------------------------------------------------------------

namespace {

struct Client {
  std::mutex mu;
  int ctl = -1;
  int pidfd = -1;
  pid_t pid = 0;
};

// Constant-initialised (std::mutex's constructor is constexpr) and trivially destroyed, so usable
// from any static destructor or atexit handler, and in a fork child before anything runs.
constinit Client g_client;

Client& client() noexcept { return g_client; }

void stop_locked(Client& c) noexcept {
  if (c.pid <= 0) return;
  close_fd(c.ctl);
  c.ctl = -1;
  // The server ends on the control socket's EOF; if it does not within a moment, kill it.
  pollfd p{c.pidfd, POLLIN, 0};
  if (c.pidfd >= 0 && ::poll(&p, 1, 2000) == 0) (void)send_signal(c.pidfd, SIGKILL);
  int code = 0;
  (void)reap_blocking(c.pid, code);
  close_fd(c.pidfd);
  c.pidfd = -1;
  c.pid = 0;
}

std::error_code start_server_locked(Client& c, std::string& why);

std::error_code start_locked(Client& c, std::string& why) noexcept {
  try {
    return start_server_locked(c, why);
  } catch (...) {  // no memory for the program's name or the environment
    why = "posix_spawn";
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::error_code start_server_locked(Client& c, std::string& why) {
  int s[2] = {-1, -1};
  if (auto ec = socket_pair(SOCK_SEQPACKET, s)) {
    why = "socketpair";
    return ec;
  }
  const std::string argv0 = program_argv0();
  char flag[] = "--mproc-forkserver";
  char bind[] = "bind";
  // The server binds every symbol at load (LD_BIND_NOW), once, so that its children do not each
  // resolve lazily bound calls anew (measured: 5% of a child's start). A program that set
  // LD_BIND_NOW itself keeps its own value.
  bool add_bind = ::getenv("LD_BIND_NOW") == nullptr;
  std::vector<char*> env;
  char bind_now[] = "LD_BIND_NOW=1";
  if (add_bind) {
    try {
      for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
      env.push_back(bind_now);
      env.push_back(nullptr);
    } catch (...) {  // no memory: the server binds lazily
      add_bind = false;
    }
  }
  char* argv[] = {const_cast<char*>(argv0.c_str()), flag, add_bind ? bind : nullptr, nullptr};
  LaunchedChild out;
  std::error_code ec = launch_spawn(argv, s[1], out, add_bind ? env.data() : nullptr);
  close_fd(s[1]);
  if (ec || out.pidfd < 0) {
    close_fd(s[0]);
    why = out.failed_call ? out.failed_call : "posix_spawn";
    return ec ? ec : std::make_error_code(std::errc::no_child_process);
  }
  c.ctl = s[0];
  c.pid = out.pid;
  c.pidfd = out.pidfd;
  return {};
}

}  // namespace

std::error_code forkserver_fork(int boot_end, std::string& why) noexcept {
  Client& c = client();
  std::lock_guard<std::mutex> lock(c.mu);
  std::error_code last;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (c.ctl < 0) {
      if (auto ec = start_locked(c, why)) return ec;
    }
    const char req = 'f';
    const std::error_code ec = send_message(c.ctl, &req, 1, &boot_end, 1);
    if (!ec) return {};
    // The server is gone (killed, or it failed): reap it and start another, once.
    last = ec;
    stop_locked(c);
  }
  why = "the forkserver ended while serving the request";
  return last;
}

pid_t forkserver_pid() noexcept {
  Client& c = client();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.pid;
}

void forkserver_fds(int& control, int& pidfd) noexcept {
  Client& c = client();
  std::lock_guard<std::mutex> lock(c.mu);
  control = c.ctl;
  pidfd = c.pidfd;
}

bool forkserver_reap_if_dead() noexcept {
  Client& c = client();
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.pid <= 0 || c.pidfd < 0) return false;
  // The channel ended without a status because the server is exiting: its descriptors close
  // before its pidfd reports the exit, so give it a moment. Short: the server that ended may be
  // an earlier one, already replaced by the live server this waits on (the caller may hold locks).
  pollfd p{c.pidfd, POLLIN, 0};
  if (::poll(&p, 1, 20) != 1) return false;
  stop_locked(c);
  return true;
}

void forkserver_stop() noexcept {
  Client& c = client();
  std::lock_guard<std::mutex> lock(c.mu);
  stop_locked(c);
}

void forkserver_forget_after_fork() noexcept {
  Client& c = client();
  // Another thread may have held the mutex at the fork: the child's copy is made anew.
  ::new (&c.mu) std::mutex();
  close_fd(c.ctl);
  close_fd(c.pidfd);
  c.ctl = -1;
  c.pidfd = -1;
  c.pid = 0;
}

}  // namespace mproc::detail
