// The zygote launcher of Pool workers (see pool_launcher.hpp).
//
// Protocol: the Pool sends 8-byte commands (kind, slot) over a stream socket pair.
// The zygote is single-threaded: it polls the socket and one pidfd per live worker, forks a worker
// for each Spawn command, reaps each worker that ends and reports it through `report`. EOF on the
// socket (the Pool's process died or dropped the launcher) counts as Kill.
//
// Start: the zygote first forks one worker per slot, then answers with one `StartStatus` over the
// same socket: all started, or which worker (or the zygote's own setup) failed, with the errno and
// the system call. On a failure it has already killed and reaped the workers it had started, so
// the constructor that throws leaves no process behind.
//
// Reports never wait: one that finds the result queue full (or its producer side held, e.g. by a
// worker streaming a large result while the Pool's result thread is busy in a callback) is kept
// and tried again every kReportRetryMs while the zygote goes on polling its commands, so a Kill
// is obeyed at once even then.
#include "pool_launcher.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mproc/process.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "posix/error.hpp"
#include "posix/launch.hpp"
#include "posix/pidfd.hpp"

namespace mproc::detail {
namespace {

enum : std::int32_t { kCmdSpawn = 1, kCmdQuit = 2, kCmdKill = 3 };

struct Cmd {
  std::int32_t kind;
  std::int32_t slot;
};

// The zygote's answer to start(): error 0 when every worker exists; otherwise the errno of the
// system call `call` that failed for worker `slot` (-1: the zygote's own setup).
struct StartStatus {
  std::int32_t slot = -1;
  std::int32_t error = 0;
  char call[24] = {};
};

// How long a quitting zygote waits for its workers to leave before it kills them.
constexpr auto kQuitGrace = std::chrono::seconds(10);
// How often the zygote tries again to deliver exit reports that found the result queue full.
constexpr int kReportRetryMs = 5;

// The system call behind a failed Process::start(): fork never fails with EMFILE/ENFILE, the
// pidfd_open that follows it does.
const char* start_call(const std::error_code& ec) noexcept {
  const int e = ec.value();
  return e == EMFILE || e == ENFILE ? "pidfd_open" : "fork";
}

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
      throw_errno(errno, "mproc::Pool: cannot create the zygote's command channel: socketpair");
    cmd_rd_ = fds[0];
    cmd_wr_ = fds[1];
    try {
      zygote_.emplace(ProcessOptions{.name = "PoolZygote", .daemon = true}, [this] { run(); });
      zygote_->start();
    } catch (...) {
      close_fd(cmd_rd_);
      close_fd(cmd_wr_);
      cmd_rd_ = cmd_wr_ = -1;
      zygote_.reset();
      try {
        throw;
      } catch (const std::system_error& e) {
        throw_system_error(e.code(), std::string("mproc::Pool: cannot start the zygote process: ") +
                                         start_call(e.code()));
      }
    }
    close_fd(cmd_rd_);
    cmd_rd_ = -1;
    // Wait until the zygote has forked every worker and watches this process rather than this
    // thread: from then on the thread may end without taking the Pool with it.
    StartStatus st;
    std::size_t got = 0;
    while (got < sizeof st) {
      const ssize_t n = ::recv(cmd_wr_, reinterpret_cast<char*>(&st) + got, sizeof st - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    if (got != sizeof st) {
      force_end();
      throw ProcessError("mproc::Pool: the pool's zygote process ended before it was ready");
    }
    if (st.error != 0) {
      // The zygote has killed and reaped the workers it had started; it is leaving.
      force_end();
      st.call[sizeof st.call - 1] = 0;
      const std::string what =
          st.slot < 0
              ? std::string("mproc::Pool: the zygote process cannot watch the pool's process")
              : "mproc::Pool: cannot start worker " + std::to_string(st.slot + 1) + " of " +
                    std::to_string(slots_);
      throw_errno(st.error, what + ": " + st.call);
    }
  }

  void spawn(int slot) noexcept override { send(kCmdSpawn, slot); }
  void quit() noexcept override { send(kCmdQuit, -1); }
  void kill_all() noexcept override { send(kCmdKill, -1); }

  bool wait(const Expiry& deadline) noexcept override {
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
    if (std::error_code ec = open_pidfd(parent, parent_fd_)) {
      answer_start(-1, ec.value(), "pidfd_open");
      leave(0);
    }
    if (getppid() != parent) kill_and_leave();
    (void)prctl(PR_SET_PDEATHSIG, 0);
    if (getppid() != parent) kill_and_leave();  // it died before the pidfd could tell
    workers_.assign(static_cast<std::size_t>(slots_), Worker{});
    for (int s = 0; s < slots_; ++s) {
      const char* call = nullptr;
      if (std::error_code ec = fork_worker(s, call)) {
        kill_workers();  // nothing of this Pool may outlive the constructor that throws
        answer_start(s, ec.value(), call);
        leave(0);
      }
    }
    // Tell start() that every worker exists and that the zygote no longer depends on the
    // creating thread.
    if (!answer_start(-1, 0, "")) kill_and_leave();
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
      if (!flush_reports())
        timeout_ms = timeout_ms < 0 ? kReportRetryMs : std::min(timeout_ms, kReportRetryMs);
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
        send_report(Report{fd_slot[i], static_cast<int>(pid), code, 0, nullptr});
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
            workers_[static_cast<std::size_t>(c.slot)].pidfd < 0) {
          const char* call = nullptr;
          if (std::error_code ec = fork_worker(c.slot, call))
            send_report(Report{c.slot, 0, kSpawnFailed, ec.value(), call});
        }
      }
    }
  }

  // Sends start()'s answer; false if the Pool's end is gone.
  bool answer_start(int slot, int error, const char* call) noexcept {
    StartStatus st;
    st.slot = slot;
    st.error = error;
    std::strncpy(st.call, call ? call : "", sizeof st.call - 1);
    ssize_t n;
    do {
      n = ::send(cmd_rd_, &st, sizeof st, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == static_cast<ssize_t>(sizeof st);
  }

  struct Report {
    int slot;
    int pid;
    int code;
    int error;
    const char* call;  // a string literal, or nullptr
  };

  // Delivers `r` after the reports still waiting, or keeps it for later.
  void send_report(const Report& r) noexcept {
    try {
      unsent_.push_back(r);
    } catch (...) {
      return;  // no memory in the zygote: the report is lost, as when the zygote dies
    }
    (void)flush_reports();
  }
  // True when no report is left waiting.
  bool flush_reports() noexcept {
    while (!unsent_.empty()) {
      const Report& r = unsent_.front();
      if (!report_(report_ctx_, r.slot, r.pid, r.code, r.error, r.call)) return false;
      unsent_.pop_front();
    }
    return true;
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

  // Forks the worker of `slot`; on failure returns the errno and sets `call` to the system call.
  std::error_code fork_worker(int slot, const char*& call) noexcept {
    zygote_pid_ = getpid();
    spawning_slot_ = slot;
    LaunchedChild child;
    std::error_code ec = launch_fork(ChildEntry{&ZygoteLauncher::worker_entry, this}, child);
    if (ec) {
      call = child.failed_call ? child.failed_call : "fork";
      return ec;
    }
    if (child.pidfd < 0) {  // ended and reaped before it could be watched (SIGCHLD ignored)
      call = "pidfd_open";
      return std::make_error_code(std::errc::no_such_process);
    }
    workers_[static_cast<std::size_t>(slot)] = Worker{child.pid, child.pidfd};
    return {};
  }

  // Kills every worker and reaps it.
  void kill_workers() noexcept {
    for (Worker& w : workers_)
      if (w.pidfd >= 0) (void)send_signal(w.pidfd, SIGKILL);
    for (Worker& w : workers_) {
      if (w.pid <= 0) continue;
      int status = 0;
      while (waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
      }
      close_fd(w.pidfd);
      w = Worker{};
    }
  }

  [[noreturn]] void kill_and_leave() noexcept {
    kill_workers();
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
  std::deque<Report> unsent_;          // exit reports that found the result queue full
};

}  // namespace

std::unique_ptr<WorkerLauncher> make_zygote_launcher(int slots, WorkerMain main, void* main_ctx,
                                                     ExitReport report, void* report_ctx) {
  return std::make_unique<ZygoteLauncher>(slots, main, main_ctx, report, report_ctx);
}

}  // namespace mproc::detail
