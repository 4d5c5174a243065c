// The zygote launcher of Pool workers (see launcher.hpp). Runs in the parent (start and the
// commands) and in the zygote (run() and what it calls); workers leave it through worker_entry.
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
// and tried again every kReportRetry while the zygote goes on polling its commands, so a Kill
// is obeyed at once even then.
#include "pool/launcher.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <mproc/detail/travel.hpp>
#include <mproc/process.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "pool/channels.hpp"
#include "pool/protocol.hpp"
#include "pool/worker.hpp"
#include "posix/error.hpp"
#include "posix/exit_status.hpp"
#include "posix/fd_io.hpp"
#include "posix/launch.hpp"
#include "posix/memfd.hpp"
#include "posix/pidfd.hpp"
#include "posix/poll.hpp"
#include "posix/process_self.hpp"
#include "posix/socket.hpp"
#include "posix/thread_id.hpp"
#include "start/start.hpp"

namespace mproc::detail {
namespace {

enum : std::int32_t { kCmdSpawn = 1, kCmdQuit = 2, kCmdKill = 3, kCmdKillWorker = 4 };

struct Cmd {
  std::int32_t kind;
  std::int32_t slot;
  std::int32_t pid = 0;  // kCmdKillWorker: the worker meant
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
constexpr auto kReportRetry = std::chrono::milliseconds(5);

// The system call behind a failed Process::start(): fork never fails with EMFILE/ENFILE, the
// pidfd_open that follows it does.
const char* start_call(const std::error_code& ec) noexcept {
  const int e = ec.value();
  return e == EMFILE || e == ENFILE ? "pidfd_open" : "fork";
}

// Ends the zygote (or a worker whose main returned). No stdio flush: the zygote writes nothing, and
// the buffers it inherited were flushed by the parent before it forked.
[[noreturn]] void leave(int code) noexcept { exit_group(code); }

// A descriptor as a Process argument: its index among the descriptors that travel (travel.hpp).
// The receiver gets a close-on-exec duplicate it owns.
struct TravellingFd {
  int fd = -1;
};

// A type-erased callable as a Process argument: the code reference of its decoder, then its
// encoding (made inside the start's TravelOut scope, so handles it binds travel too).
struct TravellingTarget {
  Ref<ProcessTarget> target;
};

// What a zygote in a fresh image needs: the Pool's channels and the initializer.
struct ZygoteSetup {
  std::int32_t slots = 0;
  std::int32_t maxtasks = 0;
  TravellingFd cmd;                       // the zygote's end of the command socket
  std::optional<Queue<EventMsg>> events;  // optional: a Queue's default constructor makes one
  std::vector<Queue<TaskMsg>> mailboxes;
  std::vector<TravellingFd> fd_worker;
  TravellingFd staging;
  std::uint64_t staging_bytes = 0;
  std::optional<TravellingTarget> initializer;
  std::optional<TravellingTarget> exit_hook;
  bool daemon = true;
  bool insights = false;
  template <class A>
  void serialize(A& a) {
    a(slots, maxtasks, cmd, events, mailboxes, fd_worker, staging, staging_bytes, initializer,
      exit_hook, daemon, insights);
  }
};

}  // namespace
}  // namespace mproc::detail

template <>
struct mproc::codec<mproc::detail::TravellingFd> {
  using T = mproc::detail::TravellingFd;
  static constexpr std::size_t min_size = sizeof(std::uint32_t);
  static std::size_t size(const T&) { return sizeof(std::uint32_t); }
  static void encode(Writer& w, const T& v) {
    mproc::detail::Descriptors* out = mproc::detail::travel_out();
    if (out == nullptr) throw ValueError("mproc::Pool: a descriptor travels only to a new process");
    w.write_value(out->add_dup(v.fd));
  }
  static T decode(Reader& r) {
    const mproc::detail::Descriptors* in = mproc::detail::travel_in();
    if (in == nullptr) throw DecodeError("mproc::Pool: a descriptor arrived outside a start");
    int fd = -1;
    if (mproc::detail::dup_cloexec(in->at(r.read_value<std::uint32_t>()), fd))
      throw DecodeError("mproc::Pool: cannot keep a descriptor that arrived: fcntl");
    return T{fd};
  }
};

template <>
struct mproc::codec<mproc::detail::TravellingTarget> {
  using T = mproc::detail::TravellingTarget;
  static std::size_t size(const T& v) {
    return mproc::encoded_size(mproc::detail::CodeRef{}) + kCountBytesOf(v);
  }
  static void encode(Writer& w, const T& v) {
    mproc::encode(w, mproc::detail::code_ref_of(v.target->decoder()));
    mproc::encode(w, v.target->encode());
  }
  static T decode(Reader& r) {
    const auto ref = mproc::decode<mproc::detail::CodeRef>(r);
    const auto bytes = mproc::decode<std::vector<std::byte>>(r);
    auto decoder = reinterpret_cast<mproc::detail::ProcessTarget::Decoder>(
        const_cast<void*>(mproc::detail::resolve_code(ref)));
    Reader in(bytes.data(), bytes.size());
    T t{mproc::detail::Ref<mproc::detail::ProcessTarget>(decoder(in))};
    if (in.remaining() != 0) throw DecodeError("mproc::Pool: trailing bytes after the initializer");
    return t;
  }

 private:
  // The size pass encodes once (a target has no cheaper size); encode() encodes again.
  static std::size_t kCountBytesOf(const T& v) { return mproc::encoded_size(v.target->encode()); }
};

namespace mproc::detail {
namespace {

// The zygote's state in a fresh image: what it decoded, for its workers (never freed: the zygote
// and its workers end with exit_group).
struct FreshWorld {
  ZygoteSetup setup;
  SlotShared* staging = nullptr;
  std::function<void()> initializer;
};

void fresh_worker_main(void* ctx, int slot) noexcept;
bool fresh_report_exit(void* ctx, int slot, int pid, int code, int error,
                       const char* call) noexcept;

class ZygoteLauncher final : public WorkerLauncher {
 public:
  ZygoteLauncher(int slots, WorkerMain main, void* main_ctx, ExitReport report, void* report_ctx,
                 const FreshZygoteInputs* fresh)
      : slots_(slots), main_(main), main_ctx_(main_ctx), report_(report), report_ctx_(report_ctx) {
    if (fresh) fresh_ = *fresh;
  }

  // In a fresh zygote: runs the zygote's loop on the command socket `cmd` (never returns).
  [[noreturn]] void run_fresh(int cmd) noexcept {
    cmd_rd_ = cmd;
    watch_parent_sentinel_ = true;
    run();
  }
  ZygoteLauncher(const ZygoteLauncher&) = delete;
  ZygoteLauncher& operator=(const ZygoteLauncher&) = delete;
  ~ZygoteLauncher() override {
    close_fd(cmd_wr_);
    if (zygote_) force_end();
  }

  void start() override {
    // A socket rather than a pipe: send(MSG_NOSIGNAL) to a zygote that has gone raises no SIGPIPE.
    int fds[2];
    if (std::error_code ec = socket_pair(SOCK_STREAM, fds))
      throw_system_error(ec, "mproc::Pool: cannot create the zygote's command channel: socketpair");
    cmd_rd_ = fds[0];
    cmd_wr_ = fds[1];
    try {
      if (fresh_) {
        try {
          start_fresh_zygote();
        } catch (const ProcessError& e) {
          throw ProcessError(std::string("mproc::Pool: cannot start the zygote process (") +
                             method_name(fresh_->method) + "): " + e.what());
        }
      } else {
        // fork: the Pool chose it already (and warned if the program has threads).
        zygote_.emplace(
            ProcessOptions{.name = "PoolZygote", .daemon = true, .start_method = StartMethod::fork},
            [this] { run(); });
        zygote_->start();
      }
    } catch (...) {
      close_fd(cmd_rd_);
      close_fd(cmd_wr_);
      cmd_rd_ = cmd_wr_ = -1;
      zygote_.reset();
      try {
        throw;
      } catch (const std::system_error& e) {
        if (fresh_) throw;  // its message names the start method's step
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
    recv_all(cmd_wr_, &st, sizeof st, got);
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
  void kill_worker(int slot, int pid) noexcept override { send(kCmdKillWorker, slot, pid); }

  bool wait(const Expiry& deadline) noexcept override {
    if (!zygote_) return true;
    try {
      if (!deadline) {
        zygote_->join();
        return true;
      }
      return zygote_->join_until(*deadline);
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

  void send(std::int32_t kind, std::int32_t slot, std::int32_t pid = 0) noexcept {
    if (cmd_wr_ < 0) return;
    Cmd c{kind, slot, pid};
    (void)send_all(cmd_wr_, &c, sizeof c);
  }

  // --- in the zygote -----------------------------------------------------------------------
  [[noreturn]] void run() noexcept {
    close_fd(cmd_wr_);
    cmd_wr_ = -1;
    set_up();
    std::vector<pollfd> fds;
    std::vector<int> fd_slot;
    for (;;) {
      watch_list(fds, fd_slot);
      if (quitting_ && fds.size() == 2) leave(0);
      Expiry until;
      if (quitting_) {
        if (Clock::now() >= quit_deadline_) kill_and_leave();
        until = quit_deadline_;
      }
      if (!flush_reports()) {
        const auto retry = Clock::now() + kReportRetry;
        if (!until || retry < *until) until = retry;
      }
      int ready = 0;
      if (poll_until(fds.data(), fds.size(), until, ready)) kill_and_leave();
      if (fds[1].revents != 0) kill_and_leave();  // the Pool's process is gone
      for (std::size_t i = 2; i < fds.size(); ++i)
        if (fds[i].revents != 0) reap_worker(fd_slot[i]);
      if (fds[0].revents != 0) obey_command();
    }
  }

  // Before the loop: the zygote's own setup and the first workers, then start()'s answer.
  void set_up() noexcept {
    // The zygote must reap its workers itself: with SIGCHLD ignored (or handled by a waitpid(-1)
    // inherited from the program) the kernel would take their exit status away. The workers get
    // the program's setting back.
    default_sigchld(saved_sigchld_);
    // Live as long as the Pool's *process*, not the thread that created it (the death signal an
    // mproc::Process arms fires when the creating thread ends): watch the parent through a pidfd.
    // A fresh zygote made by the forkserver is the server's child: it watches the Pool's process
    // through the sentinel its boot gave it (parent_process()).
    if (watch_parent_sentinel_) {
      std::optional<ParentProcess> parent;
      try {
        parent = parent_process();
      } catch (...) {
      }
      if (!parent || dup_cloexec(parent->sentinel(), parent_fd_)) {
        answer_start(-1, EBADF, "pidfd");
        leave(0);
      }
      set_parent_death_signal(0);
      bool gone = false;
      (void)wait_readable(parent_fd_, Clock::now(), gone);
      if (gone) kill_and_leave();
    } else {
      const pid_t parent = parent_pid();
      if (std::error_code ec = open_pidfd(parent, parent_fd_)) {
        answer_start(-1, ec.value(), "pidfd_open");
        leave(0);
      }
      if (parent_pid() != parent) kill_and_leave();
      set_parent_death_signal(0);
      if (parent_pid() != parent) kill_and_leave();  // it died before the pidfd could tell
    }
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
  }

  // What the zygote polls: the command socket, the Pool's process, then each live worker (its
  // slot in `fd_slot`).
  void watch_list(std::vector<pollfd>& fds, std::vector<int>& fd_slot) const {
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
  }

  // The worker of `slot` polled readable: reaps it if it has ended, and reports its exit.
  void reap_worker(int slot) noexcept {
    Worker& w = workers_[static_cast<std::size_t>(slot)];
    bool exited = false;
    int code = 0;
    if (try_reap(w.pidfd, exited, code)) {
      exited = true;  // gone, but its status was taken by someone else
      code = kExitUnknown;
    }
    if (!exited) return;
    close_fd(w.pidfd);
    const pid_t pid = w.pid;
    w = Worker{};
    send_report(Report{slot, static_cast<int>(pid), code, 0, nullptr});
  }

  // Reads one command and obeys it. EOF (the Pool is gone) counts as Kill.
  void obey_command() noexcept {
    Cmd c{};
    std::size_t got = 0;
    recv_all(cmd_rd_, &c, sizeof c, got);
    if (got != sizeof c) kill_and_leave();
    if (c.kind == kCmdKill) kill_and_leave();
    if (c.kind == kCmdQuit && !quitting_) {
      quitting_ = true;
      quit_deadline_ = Clock::now() + kQuitGrace;
    }
    if (c.kind == kCmdKillWorker && c.slot >= 0 && c.slot < slots_) {
      // The zygote has not reaped it (it would have reported it), so the pid is still its own.
      const Worker& w = workers_[static_cast<std::size_t>(c.slot)];
      if (w.pidfd >= 0 && w.pid == c.pid) (void)send_signal(w.pidfd, SIGKILL);
    }
    if (c.kind == kCmdSpawn && !quitting_ && c.slot >= 0 && c.slot < slots_ &&
        workers_[static_cast<std::size_t>(c.slot)].pidfd < 0) {
      const char* call = nullptr;
      if (std::error_code ec = fork_worker(c.slot, call))
        send_report(Report{c.slot, 0, kSpawnFailed, ec.value(), call});
    }
  }

  // Sends start()'s answer; false if the Pool's end is gone.
  bool answer_start(int slot, int error, const char* call) noexcept {
    StartStatus st;
    st.slot = slot;
    st.error = error;
    std::strncpy(st.call, call ? call : "", sizeof st.call - 1);
    return !send_all(cmd_rd_, &st, sizeof st);
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
    set_parent_death_signal(SIGKILL);
    if (parent_pid() != self->zygote_pid_) leave(0);  // the zygote died before prctl
    restore_sigchld(self->saved_sigchld_);
    close_fd(self->cmd_rd_);
    close_fd(self->parent_fd_);
    for (Worker& w : self->workers_) close_fd(w.pidfd);
    self->main_(self->main_ctx_, self->spawning_slot_);
    leave(0);
  }

  // Forks the worker of `slot`; on failure returns the errno and sets `call` to the system call.
  std::error_code fork_worker(int slot, const char*& call) noexcept {
    zygote_pid_ = this_process_id();
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
      int code = 0;
      (void)reap_blocking(w.pid, code);
      close_fd(w.pidfd);
      w = Worker{};
    }
  }

  [[noreturn]] void kill_and_leave() noexcept {
    kill_workers();
    leave(0);
  }

  // Parent side, fresh: starts the zygote as a Process of the method, its arguments the channels.
  void start_fresh_zygote() {
    PoolChannels& ch = *fresh_->channels;
    ZygoteSetup s;
    s.slots = slots_;
    s.maxtasks = fresh_->maxtasks;
    s.cmd = TravellingFd{cmd_rd_};
    s.events = ch.events;
    s.mailboxes = ch.mailboxes;
    for (int fd : ch.fd_worker) s.fd_worker.push_back(TravellingFd{fd});
    s.staging = TravellingFd{ch.slot_shared_fd};
    s.staging_bytes = ch.slot_shared_bytes;
    if (fresh_->initializer) s.initializer = TravellingTarget{fresh_->initializer};
    if (fresh_->exit_hook) s.exit_hook = TravellingTarget{fresh_->exit_hook};
    s.daemon = fresh_->daemon;
    s.insights = fresh_->insights;
    zygote_.emplace(
        ProcessOptions{.name = "PoolZygote", .daemon = true, .start_method = fresh_->method},
        &fresh_zygote_main, std::move(s));
    zygote_->start();
  }

  static void fresh_zygote_main(ZygoteSetup s);

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
  bool quitting_ = false;              // told to quit: no more spawns, leave once workers are gone
  std::optional<FreshZygoteInputs> fresh_;  // parent side: start the zygote in a fresh image
  bool watch_parent_sentinel_ = false;      // zygote side: a fresh zygote
  Clock::time_point quit_deadline_{};       // then kill the workers that are left
};

}  // namespace

void ZygoteLauncher::fresh_zygote_main(ZygoteSetup s) {
  auto* world = new FreshWorld{std::move(s), nullptr, {}};
  void* at = nullptr;
  if (map_memfd(world->setup.staging.fd, static_cast<std::size_t>(world->setup.staging_bytes), at))
    leave(1);
  world->staging = static_cast<SlotShared*>(at);
  if (world->setup.initializer) {
    Ref<ProcessTarget> init = world->setup.initializer->target;
    world->initializer = [init] { (void)init->run(); };
  }
  auto* z = new ZygoteLauncher(world->setup.slots, &fresh_worker_main, world, &fresh_report_exit,
                               &*world->setup.events, nullptr);
  z->run_fresh(world->setup.cmd.fd);
}

namespace {

void fresh_worker_main(void* ctx, int slot) noexcept {
  auto& w = *static_cast<FreshWorld*>(ctx);
  const auto s = static_cast<std::size_t>(slot);
  WorkerInputs in;
  in.slot = slot;
  in.tasks = &w.setup.mailboxes[s];
  in.results = &*w.setup.events;
  in.descriptors = w.setup.fd_worker[s].fd;
  in.shared = &w.staging[s];
  in.initializer = &w.initializer;
  in.maxtasks = w.setup.maxtasks;
  in.fresh = true;
  if (w.setup.exit_hook) in.exit_hook = w.setup.exit_hook->target.get();
  in.daemon = w.setup.daemon;
  in.insights = w.setup.insights;
  run_worker(in);
}

bool fresh_report_exit(void* ctx, int slot, int pid, int code, int error,
                       const char* call) noexcept {
  try {
    return static_cast<Queue<EventMsg>*>(ctx)->try_put(
        EventMsg::exited(slot, pid, code, error, call));
  } catch (...) {
    return true;
  }
}

}  // namespace

std::unique_ptr<WorkerLauncher> make_zygote_launcher(int slots, WorkerMain main, void* main_ctx,
                                                     ExitReport report, void* report_ctx,
                                                     const FreshZygoteInputs* fresh) {
  return std::make_unique<ZygoteLauncher>(slots, main, main_ctx, report, report_ctx, fresh);
}

}  // namespace mproc::detail
