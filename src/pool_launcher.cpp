// The zygote launcher of Pool workers (see pool_launcher.hpp).
//
// Protocol: the Pool sends 8-byte commands (kind, slot) over a stream socket pair.
// The zygote is single-threaded: it polls the socket and one pidfd per live worker, forks a worker
// for each Spawn command, reaps each worker that ends and reports it through `report`. EOF on the
// socket (the Pool's process died or dropped the launcher) counts as Kill.
#include "pool_launcher.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mproc/process.hpp>
#include <optional>
#include <vector>

#include "posix/launch.hpp"
#include "posix/pidfd.hpp"

namespace mproc::detail {
namespace {

enum : std::int32_t { kCmdSpawn = 1, kCmdQuit = 2, kCmdKill = 3 };

struct Cmd {
  std::int32_t kind;
  std::int32_t slot;
};

// How long a quitting zygote waits for its workers to leave before it kills them.
constexpr auto kQuitGrace = std::chrono::seconds(10);

// Ends the zygote (or a worker whose main returned). No stdio flush: the zygote writes nothing, and
// the buffers it inherited were flushed by the parent before it forked.
[[noreturn]] void leave(int code) noexcept {
  for (;;) syscall(SYS_exit_group, code);
}

class ZygoteLauncher final : public WorkerLauncher {
 public:
  ZygoteLauncher(int slots, WorkerMain main, void* main_ctx, ExitReport report, void* report_ctx)
      : slots_(slots), main_(main), main_ctx_(main_ctx), report_(report), report_ctx_(report_ctx) {}
  ZygoteLauncher(const ZygoteLauncher&) = delete;
  ZygoteLauncher& operator=(const ZygoteLauncher&) = delete;
  ~ZygoteLauncher() override {
    close_fd(cmd_wr_);
    if (zygote_) force_end();
  }

  void start() override {
    // A socket rather than a pipe: send(MSG_NOSIGNAL) to a zygote that has gone raises no SIGPIPE.
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
      throw std::system_error(errno, std::generic_category(), "mproc::Pool: socketpair failed");
    cmd_rd_ = fds[0];
    cmd_wr_ = fds[1];
    zygote_.emplace(ProcessOptions{.name = "PoolZygote", .daemon = true}, [this] { run(); });
    try {
      zygote_->start();
    } catch (...) {
      close_fd(cmd_rd_);
      close_fd(cmd_wr_);
      cmd_rd_ = cmd_wr_ = -1;
      zygote_.reset();
      throw;
    }
    close_fd(cmd_rd_);
    cmd_rd_ = -1;
    // Wait until the zygote watches this process rather than this thread: from then on the thread
    // may end without taking the Pool with it.
    char ready = 0;
    ssize_t n;
    do {
      n = ::recv(cmd_wr_, &ready, 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
      force_end();
      throw ProcessError("mproc::Pool: the pool's zygote process ended before it was ready");
    }
  }

  void spawn(int slot) noexcept override { send(kCmdSpawn, slot); }
  void quit() noexcept override { send(kCmdQuit, -1); }
  void kill_all() noexcept override { send(kCmdKill, -1); }

  bool wait(const Deadline& deadline) noexcept override {
    if (!zygote_) return true;
    try {
      return zygote_->join_until(deadline);
    } catch (...) {
      return true;
    }
  }

  void force_end() noexcept override {
    if (!zygote_) return;
    try {
      if (!zygote_->join(std::chrono::seconds(0))) {
        zygote_->kill();
        zygote_->join();
      }
    } catch (...) {
    }
  }

  bool alive() noexcept override {
    if (!zygote_) return false;
    try {
      return zygote_->is_alive();
    } catch (...) {
      return false;
    }
  }

 private:
  struct Worker {
    pid_t pid = -1;
    int pidfd = -1;
  };

  void send(std::int32_t kind, std::int32_t slot) noexcept {
    if (cmd_wr_ < 0) return;
    Cmd c{kind, slot};
    while (::send(cmd_wr_, &c, sizeof c, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
  }

  // --- in the zygote -----------------------------------------------------------------------
  [[noreturn]] void run() noexcept {
    close_fd(cmd_wr_);
    cmd_wr_ = -1;
    // The zygote must reap its workers itself: with SIGCHLD ignored (or handled by a waitpid(-1)
    // inherited from the program) the kernel would take their exit status away. The workers get
    // the program's setting back.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    (void)sigemptyset(&dfl.sa_mask);
    (void)sigaction(SIGCHLD, &dfl, &saved_sigchld_);
    // Live as long as the Pool's *process*, not the thread that created it (the death signal an
    // mproc::Process arms fires when the creating thread ends): watch the parent through a pidfd.
    const pid_t parent = getppid();
    if (open_pidfd(parent, parent_fd_) || getppid() != parent) kill_and_leave();
    (void)prctl(PR_SET_PDEATHSIG, 0);
    if (getppid() != parent) kill_and_leave();  // it died before the pidfd could tell
    // Tell start() that the zygote no longer depends on the creating thread.
    const char ready = 1;
    if (::send(cmd_rd_, &ready, 1, MSG_NOSIGNAL) != 1) kill_and_leave();
    workers_.assign(static_cast<std::size_t>(slots_), Worker{});
    for (int s = 0; s < slots_; ++s) start_worker(s);
    bool quitting = false;
    Clock::time_point quit_deadline{};
    std::vector<pollfd> fds;
    std::vector<int> fd_slot;
    for (;;) {
      fds.clear();
      fd_slot.clear();
      fds.push_back(pollfd{cmd_rd_, POLLIN, 0});
      fd_slot.push_back(-1);
      fds.push_back(pollfd{parent_fd_, POLLIN, 0});
      fd_slot.push_back(-2);
      for (int s = 0; s < slots_; ++s) {
        const Worker& w = workers_[static_cast<std::size_t>(s)];
        if (w.pidfd >= 0) {
          fds.push_back(pollfd{w.pidfd, POLLIN, 0});
          fd_slot.push_back(s);
        }
      }
      if (quitting && fds.size() == 2) leave(0);
      int timeout_ms = -1;
      if (quitting) {
        auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(quit_deadline - Clock::now());
        if (left.count() <= 0) kill_and_leave();
        timeout_ms = static_cast<int>(left.count()) + 1;
      }
      int r = ::poll(fds.data(), fds.size(), timeout_ms);
      if (r < 0) {
        if (errno == EINTR) continue;
        kill_and_leave();
      }
      if (fds[1].revents != 0) kill_and_leave();  // the Pool's process is gone
      for (std::size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Worker& w = workers_[static_cast<std::size_t>(fd_slot[i])];
        bool exited = false;
        int code = 0;
        if (try_reap(w.pidfd, exited, code)) {
          exited = true;  // gone, but its status was taken by someone else
          code = kExitUnknown;
        }
        if (!exited) continue;
        close_fd(w.pidfd);
        pid_t pid = w.pid;
        w = Worker{};
        report_(report_ctx_, fd_slot[i], static_cast<int>(pid), code);
      }
      if (fds[0].revents != 0) {
        Cmd c{};
        ssize_t n = ::read(cmd_rd_, &c, sizeof c);
        if (n < 0 && errno == EINTR) continue;
        if (n != static_cast<ssize_t>(sizeof c)) kill_and_leave();  // EOF: the Pool is gone
        if (c.kind == kCmdKill) kill_and_leave();
        if (c.kind == kCmdQuit && !quitting) {
          quitting = true;
          quit_deadline = Clock::now() + kQuitGrace;
        }
        if (c.kind == kCmdSpawn && !quitting && c.slot >= 0 && c.slot < slots_ &&
            workers_[static_cast<std::size_t>(c.slot)].pidfd < 0)
          start_worker(c.slot);
      }
    }
  }

  static void worker_entry(void* arg) noexcept {
    auto* self = static_cast<ZygoteLauncher*>(arg);
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != self->zygote_pid_) leave(0);  // the zygote died before prctl
    (void)sigaction(SIGCHLD, &self->saved_sigchld_, nullptr);
    close_fd(self->cmd_rd_);
    close_fd(self->parent_fd_);
    for (Worker& w : self->workers_) close_fd(w.pidfd);
    self->main_(self->main_ctx_, self->spawning_slot_);
    leave(0);
  }

  void start_worker(int slot) noexcept {
    zygote_pid_ = getpid();
    spawning_slot_ = slot;
    LaunchedChild child;
    std::error_code ec = launch_fork(ChildEntry{&ZygoteLauncher::worker_entry, this}, child);
    if (ec) {
      report_(report_ctx_, slot, 0, kSpawnFailed);
      return;
    }
    workers_[static_cast<std::size_t>(slot)] = Worker{child.pid, child.pidfd};
  }

  [[noreturn]] void kill_and_leave() noexcept {
    for (Worker& w : workers_)
      if (w.pidfd >= 0) (void)send_signal(w.pidfd, SIGKILL);
    for (Worker& w : workers_) {
      if (w.pid <= 0) continue;
      int status = 0;
      while (waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
    leave(0);
  }

  int slots_;
  WorkerMain main_;
  void* main_ctx_;
  ExitReport report_;
  void* report_ctx_;
  int cmd_rd_ = -1;
  int cmd_wr_ = -1;
  std::optional<Process> zygote_;
  // Zygote-side state.
  std::vector<Worker> workers_;
  pid_t zygote_pid_ = -1;
  int parent_fd_ = -1;  // a pidfd of the Pool's process
  int spawning_slot_ = -1;
  struct sigaction saved_sigchld_ {};  // the program's SIGCHLD disposition, for the workers
};

}  // namespace

std::unique_ptr<WorkerLauncher> make_zygote_launcher(int slots, WorkerMain main, void* main_ctx,
                                                     ExitReport report, void* report_ctx) {
  return std::make_unique<ZygoteLauncher>(slots, main, main_ctx, report, report_ctx);
}

}  // namespace mproc::detail
