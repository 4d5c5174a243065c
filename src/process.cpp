// Process, the child bootstrap, the registry of children, and the process queries.
//
// One mutex (`g_mu`) guards the registry, the calling process's identity and the mutable state of
// every Process. It is held only for short bookkeeping and non-blocking system calls; waiting for
// a child happens outside it (poll on the pidfd), and reaping happens under it, so a child is
// reaped exactly once however many threads wait for it. A pthread_atfork handler holds `g_mu`
// across every fork of the process, so the child never inherits it locked.
#include <signal.h>      // SIGTERM, SIGKILL
#include <stdio_ext.h>   // __fpending
#include <sys/socket.h>  // SOCK_SEQPACKET

#include <cstdio>  // before the test below: a standard header defines __GLIBCXX__

#if defined(__GLIBCXX__)
#include <ext/stdio_sync_filebuf.h>
#endif

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mproc/detail/travel.hpp>
#include <mproc/interrupt.hpp>
#include <mproc/process.hpp>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include "pool/worker.hpp"  // set_daemonic
#include "posix/demangle.hpp"
#include "posix/error.hpp"
#include "posix/exit_status.hpp"
#include "posix/fd_io.hpp"
#include "posix/fd_passing.hpp"
#include "posix/launch.hpp"
#include "posix/pidfd.hpp"
#include "posix/poll.hpp"
#include "posix/process_self.hpp"
#include "posix/socket.hpp"
#include "posix/thread_id.hpp"
#include "stacktrace.hpp"
#include "start/boot.hpp"
#include "start/start.hpp"
#include "thread_annotations.hpp"

namespace mproc {
namespace detail {

ProcessTarget::~ProcessTarget() = default;

namespace {

Mutex g_mu;

// How long daemon children get between SIGTERM and SIGKILL when their parent exits.
constexpr auto kDaemonGrace = std::chrono::seconds(1);

enum class Phase { kCreated, kStarting, kStarted, kClosed };

}  // namespace

struct ProcessImpl {
  ProcessImpl() = default;
  ProcessImpl(const ProcessImpl&) = delete;
  ProcessImpl& operator=(const ProcessImpl&) = delete;
  ~ProcessImpl() MPROC_NO_THREAD_SAFETY_ANALYSIS {
    close_fd(pidfd);
    close_fd(status_fd);
  }

  // Set at construction, then only read.
  std::string identity;  // "3", or "1:3" in the child "Process-1"
  pid_t creator_pid = -1;
  std::optional<StartMethod> method;  // ProcessOptions::start_method

  // Owned by the thread that moved the phase to kStarting (and by the child after fork).
  Box<ProcessTarget> target;

  std::string name MPROC_GUARDED_BY(g_mu);
  bool daemon MPROC_GUARDED_BY(g_mu) = false;
  Phase phase MPROC_GUARDED_BY(g_mu) = Phase::kCreated;
  pid_t pid MPROC_GUARDED_BY(g_mu) = -1;
  int pidfd MPROC_GUARDED_BY(g_mu) = -1;
  // A forkserver's child is the server's, not ours: its exit code arrives on its boot channel
  // (start/boot.hpp), which is then its sentinel; `pidfd` only signals it. -1 for other methods.
  int status_fd MPROC_GUARDED_BY(g_mu) = -1;
  std::optional<int> exitcode MPROC_GUARDED_BY(g_mu);  // set once, when reaped
  int waiters MPROC_GUARDED_BY(g_mu) = 0;              // threads polling `pidfd` outside the lock
};

namespace {

struct ParentInfo {
  std::string name;
  pid_t pid;
  int sentinel;
};

// What the calling process knows about itself and its children.
struct ProcessState {
  // Started children not yet reaped, in start order (Python's `_children`).
  std::vector<detail::Ref<ProcessImpl>> children MPROC_GUARDED_BY(g_mu);
  std::string name MPROC_GUARDED_BY(g_mu) = "MainProcess";
  std::string identity MPROC_GUARDED_BY(g_mu);  // empty in the main process
  bool daemon MPROC_GUARDED_BY(g_mu) = false;
  bool is_child MPROC_GUARDED_BY(g_mu) = false;  // started by Process::start()
  long counter MPROC_GUARDED_BY(g_mu) = 0;       // last identity number handed out
  std::optional<ParentInfo> parent MPROC_GUARDED_BY(g_mu);
  // A pidfd for this process, opened by the first start(); children inherit it as their
  // parent's sentinel.
  int self_pidfd MPROC_GUARDED_BY(g_mu) = -1;
  // In a freshly forked child: the parent's `self_pidfd`, until the bootstrap adopts it.
  int forker_pidfd MPROC_GUARDED_BY(g_mu) = -1;
  bool atexit_registered MPROC_GUARDED_BY(g_mu) = false;
};

// Never destroyed, so that it outlives every static destructor and atexit handler.
ProcessState& state() {
  static auto* s = new ProcessState;
  return *s;
}

// True on the thread that runs a child's target, while it runs.
thread_local bool t_in_target = false;

void atfork_prepare() MPROC_NO_THREAD_SAFETY_ANALYSIS { g_mu.lock(); }
void atfork_parent() MPROC_NO_THREAD_SAFETY_ANALYSIS { g_mu.unlock(); }
void atfork_child() MPROC_NO_THREAD_SAFETY_ANALYSIS {
  g_mu.unlock();
  ProcessState& s = state();
  // A new process has no children. The inherited registry is abandoned, not cleared: clearing
  // would write to every child's reference count, copying those pages for nothing.
  using Children = decltype(s.children);
  ::new (&s.children) Children();
  close_fd(s.forker_pidfd);
  s.forker_pidfd = s.self_pidfd;  // the parent's pidfd: the bootstrap adopts it
  s.self_pidfd = -1;
  forkserver_forget_after_fork();
}

// Registered by the first start(), not at load time: a program that links mproc but never starts
// a Process pays nothing on its own forks. Called without `g_mu` held (fork takes glibc's atfork
// lock, then `g_mu` in the prepare handler). A registration that fails (ENOMEM) is tried again by
// the next start().
std::atomic<bool> g_atfork_registered{false};

void register_atfork_once() {
  if (g_atfork_registered.load(std::memory_order_acquire)) return;
  static std::mutex once_mu;  // taken before glibc's atfork lock, never inside a fork
  std::lock_guard<std::mutex> once(once_mu);
  if (g_atfork_registered.load(std::memory_order_relaxed)) return;
  state();
  if (auto ec = register_fork_handlers(&atfork_prepare, &atfork_parent, &atfork_child)) {
    throw_system_error(ec,
                       "mproc::Process::start: cannot register the fork handlers: pthread_atfork");
  }
  g_atfork_registered.store(true, std::memory_order_release);
}

void flush_stdio() noexcept {
  try {
    std::cout.flush();
    std::cerr.flush();
    std::clog.flush();
  } catch (...) {
  }
  std::fflush(nullptr);
}

// What a child flushes on its way out: the standard streams, and only those with pending output,
// so that a child that printed nothing writes to none of the pages it shares with its parent
// (each such write costs a copy-on-write fault). Like Python's child, which flushes sys.stdout
// and sys.stderr, streams the target opened itself are its own to flush or close.
void flush_child_stdio() noexcept {
  for (std::ostream* os : {&std::cout, &std::cerr, &std::clog}) {
    std::streambuf* buf = os->rdbuf();
#if defined(__GLIBCXX__)
    // With sync_with_stdio (the default) the C++ stream writes straight into C's FILE.
    if (dynamic_cast<__gnu_cxx::stdio_sync_filebuf<char>*>(buf) != nullptr) continue;
#endif
    try {
      if (buf) os->flush();
    } catch (...) {
    }
  }
  if (__fpending(stdout) > 0) std::fflush(stdout);
  if (__fpending(stderr) > 0) std::fflush(stderr);
}

// Calls made only by children are made once in the parent before its first fork, so that their
// lazily bound PLT slots are resolved once, not in every child.
void bind_child_calls() noexcept {
  (void)parent_death_signal();
  (void)parent_pid();
  (void)__fpending(stdout);
}

// Ends a child. exit_group directly rather than through `_exit`, whose lazily bound PLT slot
// would be resolved anew (and its page copied) in every child.
[[noreturn]] void child_exit(int code) noexcept { exit_group(code); }

// Reaps `p` if it has exited. The caller keeps a reference to `p`; it is not removed from the
// registry here.
std::error_code reap_locked(ProcessImpl& p) MPROC_REQUIRES(g_mu) {
  if (p.exitcode || p.phase != Phase::kStarted || p.creator_pid != this_process_id()) return {};
  if (p.status_fd >= 0) {
    int code = 0;
    if (try_recv_boot_status(p.status_fd, code)) {
      p.exitcode = code;
      if (code == kExitCodeUnknown) forkserver_reap_if_dead();  // the server died first
    }
    return {};
  }
  bool exited = false;
  int code = 0;
  std::error_code ec = try_reap(p.pidfd, exited, code);
  if (ec == std::errc::no_child_process) {
    // Our child, yet not waitable: the program ignores SIGCHLD (or set SA_NOCLDWAIT), so the
    // kernel reaped it itself when it ended and its status is gone.
    p.exitcode = kExitCodeUnknown;
    return {};
  }
  if (!ec && exited) p.exitcode = code;
  return ec;
}

void unregister_locked(const ProcessImpl& p) MPROC_REQUIRES(g_mu) {
  auto& kids = state().children;
  for (auto it = kids.begin(); it != kids.end(); ++it) {
    if (it->get() == &p) {
      kids.erase(it);
      return;
    }
  }
}

// Reaps `p` if it has exited and drops it from the registry then. The caller keeps a reference.
std::error_code reap_one_locked(ProcessImpl& p) MPROC_REQUIRES(g_mu) {
  std::error_code ec = reap_locked(p);
  if (p.exitcode) unregister_locked(p);
  return ec;
}

// Reaps every registered child that has exited (Python's `_cleanup`). A child whose reaping fails
// stays registered.
void sweep_locked() MPROC_REQUIRES(g_mu) {
  auto& kids = state().children;
  std::size_t keep = 0;
  for (std::size_t i = 0; i < kids.size(); ++i) {
    (void)reap_locked(*kids[i]);
    if (!kids[i]->exitcode) {
      if (keep != i) kids[keep] = std::move(kids[i]);
      ++keep;
    }
  }
  kids.resize(keep);
}

// Throws std::system_error for a failed system call `call` on the child `p`:
// "<op> the child process <pid>: <call>: <message> (<errno name>)".
[[noreturn]] void throw_child_error(std::error_code ec, const char* op, const ProcessImpl& p,
                                    const char* call) MPROC_REQUIRES(g_mu) {
  throw_system_error(ec,
                     std::string(op) + " the child process " + std::to_string(p.pid) + ": " + call);
}

// Waits for `p` to exit until `deadline`, and reaps it; true when it has exited. Throws
// std::system_error if polling or reaping fails, and Interrupted when `interruptible` and an
// interruption request (<mproc/interrupt.hpp>) ends the wait (the child is left as it was: join
// again to reap it). The caller has checked that `p` is a started child of this process.
bool wait_child(ProcessImpl& p, const Expiry& deadline, bool interruptible = false)
    MPROC_EXCLUDES(g_mu) {
  for (;;) {
    int fd;
    {
      Guard g(g_mu);
      if (p.exitcode) return true;
      ++p.waiters;
      fd = p.status_fd >= 0 ? p.status_fd : p.pidfd;
    }
    bool ready = false;
    std::error_code ec = interruptible ? wait_readable_interruptible(fd, deadline, ready)
                                       : wait_readable(fd, deadline, ready);
    const char* call = "ppoll";
    {
      Guard g(g_mu);
      --p.waiters;
      if (p.phase == Phase::kClosed && p.waiters == 0 && (p.pidfd >= 0 || p.status_fd >= 0)) {
        close_fd(p.pidfd);  // close() left it to the last waiter
        close_fd(p.status_fd);
        p.pidfd = -1;
        p.status_fd = -1;
      }
      if (p.exitcode) return true;
      if (ec == std::errc::interrupted) throw_interrupted("mproc::Process::join");
      if (!ec && ready) {
        call = "waitid";
        ec = reap_one_locked(p);
      }
      if (ec) throw_child_error(ec, "mproc::Process::join: cannot wait for", p, call);
      if (p.exitcode) return true;
      if (!ready) return false;  // deadline passed
    }
    // Readable but not yet waitable (the kernel reports the exit of the thread-group leader a
    // moment before the last thread is gone): try again shortly.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void signal_child(ProcessImpl& p, int sig) MPROC_EXCLUDES(g_mu) {
  Guard g(g_mu);
  if (p.exitcode || p.pidfd < 0) return;
  (void)send_signal(p.pidfd, sig);
}

// Python's exit rule, for the calling process's own children: SIGTERM the daemons (SIGKILL after a
// grace period), then join everyone. Runs at exit of a parent and at the end of a child.
void finish_children() noexcept {
  std::vector<detail::Ref<ProcessImpl>> kids;
  try {
    Guard g(g_mu);
    sweep_locked();
    kids = state().children;
  } catch (...) {
    return;
  }
  std::vector<ProcessImpl*> daemons;
  std::vector<ProcessImpl*> others;
  {
    Guard g(g_mu);
    for (auto& k : kids) {
      if (k->phase != Phase::kStarted) continue;  // being started by another thread
      if (k->daemon) {
        daemons.push_back(k.get());
        if (!k->exitcode && k->pidfd >= 0) (void)send_signal(k->pidfd, SIGTERM);
      } else {
        others.push_back(k.get());
      }
    }
  }
  if (daemons.empty() && others.empty()) return;
  const Clock::time_point grace_end = Clock::now() + kDaemonGrace;
  for (ProcessImpl* d : daemons) {
    try {
      if (!wait_child(*d, grace_end)) {
        signal_child(*d, SIGKILL);
        (void)wait_child(*d, std::nullopt);
      }
    } catch (...) {
    }
  }
  for (ProcessImpl* o : others) {
    try {
      (void)wait_child(*o, std::nullopt);
    } catch (...) {
    }
  }
}

void at_exit() { finish_children(); }

// Prints an escaping exception the way Python prints a child's traceback: the header, the stack
// at the throw (stacktrace.hpp; none when it is unknown), then the type and what().
void report_exception(const std::string& name, const char* what) noexcept {
  std::string type_name;
  try {
    type_name = current_exception_type_name();
  } catch (...) {  // no memory for the name
  }
  const std::string trace = current_exception_trace();
  const char* type = type_name.empty() ? "unknown exception" : type_name.c_str();
  if (what) {
    std::fprintf(stderr, "Process %s:\n%s%s: %s\n", name.c_str(), trace.c_str(), type, what);
  } else {
    std::fprintf(stderr, "Process %s:\n%s%s\n", name.c_str(), trace.c_str(), type);
  }
}

int run_target(ProcessTarget& target, const std::string& name) noexcept {
  int code = 1;
  t_in_target = true;
  try {
    code = target.run();
  } catch (const SystemExit& e) {
    code = e.code();
  } catch (const std::exception& e) {
    report_exception(name, e.what());
    code = 1;
  } catch (...) {
    report_exception(name, nullptr);
    code = 1;
  }
  t_in_target = false;
  return code;
}

struct ChildBoot {
  ProcessImpl* impl;
  pid_t parent_pid;
};

// The first thing a child runs. Never throws, never returns.
[[noreturn]] void child_main(void* arg) noexcept {
  const ChildBoot& boot = *static_cast<const ChildBoot*>(arg);
  // Die with the parent. If it died before the death signal was armed, we were reparented: leave.
  set_parent_death_signal(SIGKILL);
  if (parent_pid() != boot.parent_pid) child_exit(1);

  int code = 1;
  try {
    ProcessImpl& p = *boot.impl;
    std::string name;
    {
      Guard g(g_mu);
      ProcessState& s = state();
      s.parent = ParentInfo{s.name, boot.parent_pid, s.forker_pidfd};
      s.forker_pidfd = -1;
      s.name = p.name;
      s.identity = p.identity;
      s.daemon = p.daemon;
      s.is_child = true;
      s.counter = 0;
      s.children.clear();
      name = s.name;
    }
    code = p.target ? run_target(*p.target, name) : 0;
  } catch (...) {
    code = 1;
  }
  finish_children();
  flush_child_stdio();
  child_exit(code);
}

// Throws ValueError when the target of `p` cannot travel to a fresh program image.
void check_travels(const ProcessImpl& p, StartMethod method) {
  const std::type_info* type = nullptr;
  const int why = p.target ? p.target->cannot_travel(type) : 0;
  if (why == 0) return;
  const std::string culprit = type ? demangle(type->name()) : std::string("?");
  const std::string how =
      std::string("mproc::Process::start (start method ") + method_name(method) + "): ";
  if (why < 0) {
    throw ValueError(how + "the target (" + culprit +
                     ") cannot travel to a fresh program image: it is a lambda with captures or a "
                     "function object without serialize(), whose bytes may hold addresses of this "
                     "process. Use a function, a lambda without captures, a function object with "
                     "serialize(), or bind the data with mproc::partial(f, args...)");
  }
  throw ValueError(how + "argument " + std::to_string(why) + " (" + culprit +
                   ") cannot travel to a fresh program image: mproc::codec cannot encode it "
                   "(see mproc/codec.hpp; handles such as Queue, Lock and SharedMemory travel "
                   "with their descriptors)");
}

// Starts `p` with spawn or forkserver: the child is a fresh image of this program, told what to
// run over its boot channel (start/boot.hpp). Returns once the child has acknowledged (its target
// decoded); throws ProcessError with the child's reason when it could not, std::system_error when
// the child cannot be created, ValueError when the target cannot travel. On any throw nothing is
// left behind (the child, if any, is killed and reaped) and the caller rolls the phase back.
void start_fresh(ProcessImpl& p, StartMethod method, pid_t me) {
  check_travels(p, method);
  BootMessage m;
  Descriptors fds;
  {
    TravelOut scope(fds);
    m.target = p.target->encode();
  }
  m.decoder = code_ref_of(p.target->decoder());
  m.images = image_records(0);
  int self_pidfd;
  {
    Guard g(g_mu);
    ProcessState& s = state();
    m.parent_pid = me;
    m.parent_name = s.name;
    m.name = p.name;
    m.identity = p.identity;
    m.daemon = p.daemon;
    self_pidfd = s.self_pidfd;
  }
  (void)fds.add_dup(self_pidfd);  // the child's parent_process() sentinel, last

  int boot[2] = {-1, -1};
  LaunchedChild child;
  int status_fd = -1;
  for (int attempt = 0;; ++attempt) {
    boot[0] = boot[1] = -1;
    if (std::error_code ec = socket_pair(SOCK_SEQPACKET, boot)) {
      throw_system_error(ec, "mproc::Process::start: cannot create the boot channel: socketpair");
    }
    // A small boot message is queued on the channel before the child exists (the socket buffer
    // holds it), so the child finds it at once instead of the starter waiting for the child's pid
    // first: one round trip less per start (the forkserver's reply). A large one would block with
    // no reader yet: it is sent once the child exists.
    constexpr std::size_t kEarlyBoot = std::size_t{48} << 10;
    const bool early = fds.size() <= kMaxFdsPerMessage && mproc::encoded_size(m) <= kEarlyBoot;
    std::error_code boot_ec;
    if (early) {
      boot_ec = send_boot(boot[0], m, fds.fds());
    }
    child = LaunchedChild{};
    status_fd = -1;
    std::error_code ec;
    std::string why;
    if (method == StartMethod::spawn) {
      const std::string argv0 = program_argv0();
      char flag[] = "--mproc-spawn";
      std::string title = m.name;
      char* argv[] = {const_cast<char*>(argv0.c_str()), flag, title.data(), nullptr};
      flush_stdio();
      ec = launch_spawn(argv, boot[1], child);
      if (ec) why = child.failed_call ? child.failed_call : "posix_spawn";
    } else {
      ec = forkserver_fork(boot[1], why);
      if (!ec) status_fd = boot[0];  // the pid comes with the acknowledgement
    }
    close_fd(boot[1]);
    if (ec) {
      close_fd(boot[0]);
      throw_system_error(ec, std::string("mproc::Process::start: cannot create the process (") +
                                 method_name(method) + "): " + why);
    }
    // From here a child exists: any failure ends and reaps it before throwing. A child that is gone
    // already (it closed its end) is reaped as it ended, so the message can say how.
    ec = early ? boot_ec : send_boot(boot[0], m, fds.fds());
    std::string error;
    bool gone = ec == std::errc::broken_pipe || ec == std::errc::connection_reset;
    int code = kExitCodeUnknown;
    int acked_pid = -1;
    int fork_errno = 0;
    const bool acked = !ec && recv_boot_ack(boot[0], error, gone, code, acked_pid, fork_errno);
    if (!acked && status_fd >= 0 && acked_pid > 0) child.pid = acked_pid;  // from its status
    if (acked && status_fd >= 0) {
      child.pid = acked_pid;
      // A forkserver's child is not ours: a pidfd still signals it. Gone already: its status says.
      if (open_pidfd(acked_pid, child.pidfd)) child.pidfd = -1;
    }
    if (fork_errno != 0) {
      close_fd(boot[0]);
      throw_system_error(errno_code(fork_errno),
                         "mproc::Process::start: cannot create the process (forkserver): fork (in "
                         "the forkserver)");
    }
    if (!acked) {
      if (!gone && child.pidfd >= 0) (void)send_signal(child.pidfd, SIGKILL);
      // A forkserver's child waiting for the rest of its boot message sees it end and leaves.
      if (!gone) (void)shutdown_socket(boot[0], SHUT_WR);
      if (code != kExitCodeUnknown) {
        // The forkserver reported the child's end instead of an acknowledgement.
      } else if (status_fd >= 0) {
        bool ready = false;
        (void)wait_readable(status_fd, Clock::now() + std::chrono::seconds(5), ready);
        if (!ready && child.pidfd >= 0) (void)send_signal(child.pidfd, SIGKILL);
        (void)try_recv_boot_status(status_fd, code);
      } else if (child.pidfd >= 0) {
        (void)reap_blocking(child.pid, code);
      }
      close_fd(child.pidfd);
      close_fd(boot[0]);
      // The forkserver died with the request (killed just before or while it took it): once, a new
      // server and the start again, as a request to a server already dead is retried.
      if (method == StartMethod::forkserver && gone && child.pid <= 0 && code == kExitCodeUnknown &&
          attempt == 0 && forkserver_reap_if_dead()) {
        continue;
      }
      if (gone) {
        error = "it ended before it could run its target (" +
                (code == kExitCodeUnknown ? std::string("its exit status is unknown")
                                          : describe_exitcode(code)) +
                ")";
      } else if (ec) {
        error = "cannot send it its target: " + ec.message();
      }
      throw ProcessError("mproc::Process::start: the new process (" +
                         std::string(method_name(method)) +
                         (child.pid > 0 ? ", pid " + std::to_string(child.pid) : std::string()) +
                         ") could not start its target: " + error);
    }
    break;
  }
  fds.clear();
  if (status_fd < 0) close_fd(boot[0]);
  Guard g(g_mu);
  p.pid = child.pid;
  p.pidfd = child.pidfd;
  p.status_fd = status_fd;
  p.phase = Phase::kStarted;
  if (child.pidfd < 0 && status_fd < 0) {  // already ended, reaped by the kernel
    p.exitcode = kExitCodeUnknown;
    unregister_locked(p);
  }
}

[[noreturn]] void throw_closed() { throw ValueError("process object is closed"); }

void check_open(const ProcessImpl& p) MPROC_REQUIRES(g_mu) {
  if (p.phase == Phase::kClosed) throw_closed();
}

}  // namespace

void run_fresh_child(int boot_fd, bool spawned) noexcept {
  // Spawn: our parent is the starting process (checked against the boot message below); die with
  // it. Forkserver: the server set this towards itself and checked it before calling here.
  if (spawned) set_parent_death_signal(SIGKILL);
  int code = 1;
  ProcessTarget* target = nullptr;
  std::string name;
  try {
    BootMessage m;
    Descriptors fds;
    std::string why;
    if (!recv_boot(boot_fd, m, fds, why)) {
      std::fprintf(stderr, "mproc: a process started by spawn or forkserver: %s\n", why.c_str());
      send_boot_ack(boot_fd, false, why);
      child_exit(1);
    }
    // If the parent died before the death signal was armed, we were reparented: leave.
    if (spawned && parent_pid() != m.parent_pid) child_exit(1);
    try {
      if (fds.size() == 0) throw ProcessError("the parent's pidfd did not arrive");
      int sentinel = -1;
      if (dup_cloexec(fds.at(static_cast<std::uint32_t>(fds.size() - 1)), sentinel)) {
        throw ProcessError("cannot keep the parent's pidfd: fcntl");
      }
      {
        Guard g(g_mu);
        ProcessState& s = state();
        s.parent = ParentInfo{m.parent_name, m.parent_pid, sentinel};
        s.name = m.name;
        s.identity = m.identity;
        s.daemon = m.daemon;
        s.is_child = true;
        s.counter = 0;
        name = s.name;
      }
      learn_images(m.images);
      auto decode =
          reinterpret_cast<ProcessTarget::Decoder>(const_cast<void*>(resolve_code(m.decoder)));
      {
        TravelIn scope(fds);
        Reader r(m.target.data(), m.target.size());
        target = decode(r);
        if (r.remaining() != 0) throw DecodeError("trailing bytes after the target's arguments");
      }
    } catch (const std::exception& e) {
      std::string type;
      try {
        type = current_exception_type_name();
      } catch (...) {
      }
      send_boot_ack(boot_fd, false, type + ": " + e.what());
      child_exit(1);
    }
    send_boot_ack(boot_fd, true, {});
    close_fd(boot_fd);
  } catch (...) {
    send_boot_ack(boot_fd, false, "std::bad_alloc");
    child_exit(1);
  }
  code = target ? run_target(*target, name) : 0;
  finish_children();
  flush_child_stdio();
  child_exit(code);
}

// A Pool's worker that may have children (PoolOptions::daemon = false; src/pool/worker.hpp).
void set_daemonic(bool daemon) noexcept {
  Guard g(g_mu);
  state().daemon = daemon;
}

}  // namespace detail

using detail::g_mu;
using detail::Guard;
using detail::Phase;
using detail::ProcessImpl;
using detail::this_process_id;

// ---------------------------------------------------------------------------------------------
// Process

Process::Process(ProcessOptions options, detail::Box<detail::ProcessTarget> target) {
  auto impl = detail::make_ref<ProcessImpl>();
  impl->target = std::move(target);
  impl->creator_pid = this_process_id();
  {
    Guard g(g_mu);
    auto& s = detail::state();
    const std::string n = std::to_string(++s.counter);
    impl->identity = s.identity.empty() ? n : s.identity + ":" + n;
    impl->name = options.name.empty() ? "Process-" + impl->identity : std::move(options.name);
    impl->daemon = options.daemon;
    impl->method = options.start_method;
  }
  impl_ = std::move(impl);
}

Process::Process(detail::Ref<ProcessImpl> impl) noexcept : impl_(std::move(impl)) {}

Process::Process(Process&& other) noexcept = default;

namespace {
// The destructor's policy: reap the child if it has exited; otherwise the registry keeps it.
void release(detail::Ref<ProcessImpl>& impl) noexcept {
  if (!impl) return;
  {
    Guard g(g_mu);
    (void)detail::reap_one_locked(*impl);
  }
  impl.reset();  // a never-started target is destroyed here, outside the lock
}
}  // namespace

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    release(impl_);
    impl_ = std::move(other.impl_);
  }
  return *this;
}

Process::~Process() { release(impl_); }

ProcessImpl& Process::impl() const {
  if (!impl_) throw ValueError("process object was moved from");
  return *impl_;
}

void Process::start() {
  ProcessImpl& p = impl();
  bool travels = false;
  {
    const std::type_info* type = nullptr;
    Guard g(g_mu);
    travels = p.phase == Phase::kCreated && p.target && p.target->cannot_travel(type) == 0;
  }
  const StartMethod method =
      detail::choose_start_method(p.method, travels, "mproc::Process::start");
  if (method != StartMethod::fork) {
    detail::require_init(method, "mproc::Process::start");
  }
  detail::register_atfork_once();
  auto& s = detail::state();
  const pid_t me = this_process_id();
  {
    Guard g(g_mu);
    detail::check_open(p);
    if (p.phase != Phase::kCreated) throw ProcessError("cannot start a process twice");
    if (p.creator_pid != me) {
      throw ProcessError("can only start a process object created by current process");
    }
    if (s.daemon) throw ProcessError("daemonic processes are not allowed to have children");
    detail::sweep_locked();
    if (s.self_pidfd < 0) {
      std::error_code ec = detail::open_pidfd(me, s.self_pidfd);
      if (ec) {
        detail::throw_system_error(
            ec, "mproc::Process::start: cannot open a pidfd for the calling process: pidfd_open");
      }
      detail::bind_child_calls();
    }
    if (!s.atexit_registered) {
      if (std::atexit(&detail::at_exit) != 0) {
        detail::throw_errno(ENOMEM,
                            "mproc::Process::start: cannot register the exit handler: atexit");
      }
      s.atexit_registered = true;
    }
    // Registered before the fork, so that the parent writes as little as possible while the child
    // shares its pages (each write then costs a copy-on-write fault). If this throws
    // (std::bad_alloc), nothing has changed: the Process may be started again.
    s.children.push_back(impl_);
    p.phase = Phase::kStarting;
  }
  if (method != StartMethod::fork) {
    try {
      detail::start_fresh(p, method, me);
    } catch (...) {
      Guard g(g_mu);
      p.phase = Phase::kCreated;  // may be started again
      detail::unregister_locked(p);
      throw;
    }
    p.target.reset();
    return;
  }
  detail::flush_stdio();
  detail::ChildBoot boot{&p, me};
  detail::LaunchedChild child;
  const std::error_code ec =
      detail::launch_fork(detail::ChildEntry{&detail::child_main, &boot}, child);
  {
    Guard g(g_mu);
    if (ec) {
      p.phase = Phase::kCreated;  // may be started again
      detail::unregister_locked(p);
    } else {
      p.pid = child.pid;
      p.pidfd = child.pidfd;
      p.phase = Phase::kStarted;
      if (child.pidfd < 0) {  // already ended, reaped by the kernel (SIGCHLD ignored)
        p.exitcode = kExitCodeUnknown;
        detail::unregister_locked(p);
      }
    }
  }
  if (ec) {
    // Nothing is left behind: no child (launch_fork kills and reaps one it cannot hold a pidfd
    // for), no descriptor, no registry entry.
    const char* call = child.failed_call ? child.failed_call : "fork";
    const bool forked = std::string_view(call) != "fork";
    detail::throw_system_error(ec, std::string("mproc::Process::start: ") +
                                       (forked ? "cannot open a pidfd for the new process: "
                                               : "cannot create the process: ") +
                                       call);
  }
  p.target.reset();  // the parent's copies of the target and arguments are no longer needed
}

bool Process::join_at(const detail::Expiry& deadline) {
  ProcessImpl& p = impl();
  {
    Guard g(g_mu);
    detail::check_open(p);
    if (p.creator_pid != this_process_id()) throw ProcessError("can only join a child process");
    if (p.phase != Phase::kStarted) throw ProcessError("can only join a started process");
  }
  return detail::wait_child(p, deadline, /*interruptible=*/true);
}

bool Process::is_alive() {
  ProcessImpl& p = impl();
  Guard g(g_mu);
  detail::check_open(p);
  if (p.creator_pid != this_process_id()) throw ProcessError("can only test a child process");
  if (p.phase != Phase::kStarted) return false;
  std::error_code ec = detail::reap_one_locked(p);
  if (ec) detail::throw_child_error(ec, "mproc::Process::is_alive: cannot poll", p, "waitid");
  return !p.exitcode;
}

std::optional<int> Process::exitcode() {
  ProcessImpl& p = impl();
  Guard g(g_mu);
  detail::check_open(p);
  if (p.creator_pid != this_process_id()) throw ProcessError("can only test a child process");
  if (p.phase != Phase::kStarted) return std::nullopt;
  std::error_code ec = detail::reap_one_locked(p);
  if (ec) detail::throw_child_error(ec, "mproc::Process::exitcode: cannot poll", p, "waitid");
  return p.exitcode;
}

std::optional<int> Process::pid() const {
  ProcessImpl& p = impl();
  Guard g(g_mu);
  detail::check_open(p);
  if (p.phase != Phase::kStarted) return std::nullopt;
  return p.pid;
}

int Process::sentinel() const {
  ProcessImpl& p = impl();
  Guard g(g_mu);
  detail::check_open(p);
  if (p.phase != Phase::kStarted) throw ValueError("process not started");
  return p.status_fd >= 0 ? p.status_fd : p.pidfd;
}

void Process::signal(int sig, const char* what) {
  ProcessImpl& p = impl();
  Guard g(g_mu);
  detail::check_open(p);
  if (p.phase != Phase::kStarted) throw ProcessError(what);
  if (p.exitcode || p.pidfd < 0) return;
  std::error_code ec = detail::send_signal(p.pidfd, sig);
  if (ec) {
    const std::string op = "mproc::Process: cannot send signal " + std::to_string(sig) + " to";
    detail::throw_child_error(ec, op.c_str(), p, "pidfd_send_signal");
  }
}

void Process::terminate() { signal(SIGTERM, "can only terminate a started process"); }
void Process::kill() { signal(SIGKILL, "can only kill a started process"); }
void Process::interrupt() { signal(SIGINT, "can only interrupt a started process"); }

void Process::close() {
  ProcessImpl& p = impl();
  detail::Box<detail::ProcessTarget> drop;
  {
    Guard g(g_mu);
    if (p.phase == Phase::kClosed) return;
    if (p.phase == Phase::kStarting || p.phase == Phase::kStarted) {
      std::error_code ec = detail::reap_one_locked(p);
      if (ec) detail::throw_child_error(ec, "mproc::Process::close: cannot poll", p, "waitid");
      if (!p.exitcode) {
        throw ValueError(
            "Cannot close a process while it is still running. You should first call join() or "
            "terminate().");
      }
      if (p.waiters == 0) {
        detail::close_fd(p.pidfd);
        detail::close_fd(p.status_fd);
        p.pidfd = -1;
        p.status_fd = -1;
      }
    } else {
      drop = std::move(p.target);
    }
    p.phase = Phase::kClosed;
  }
}

std::string Process::name() const {
  ProcessImpl& p = impl();
  Guard g(g_mu);
  detail::check_open(p);
  return p.name;
}

void Process::set_name(std::string name) {
  ProcessImpl& p = impl();
  Guard g(g_mu);
  detail::check_open(p);
  p.name = std::move(name);
}

bool Process::daemon() const {
  ProcessImpl& p = impl();
  Guard g(g_mu);
  detail::check_open(p);
  return p.daemon;
}

void Process::set_daemon(bool daemon) {
  ProcessImpl& p = impl();
  Guard g(g_mu);
  detail::check_open(p);
  if (p.phase != Phase::kCreated) throw ProcessError("process has already started");
  p.daemon = daemon;
}

// ---------------------------------------------------------------------------------------------
// Free functions

void exit(int code) {
  if (detail::t_in_target) throw SystemExit(code);
  bool child;
  {
    Guard g(g_mu);
    child = detail::state().is_child;
  }
  detail::flush_stdio();
  if (child) {
    detail::finish_children();
    detail::flush_stdio();
    detail::exit_group(code);
  }
  std::exit(code);
}

CurrentProcess current_process() {
  Guard g(g_mu);
  const auto& s = detail::state();
  return CurrentProcess(s.name, this_process_id(), s.daemon);
}

std::optional<ParentProcess> parent_process() {
  Guard g(g_mu);
  const auto& s = detail::state();
  if (!s.parent) return std::nullopt;
  return ParentProcess(s.parent->name, s.parent->pid, s.parent->sentinel);
}

bool ParentProcess::is_alive() const { return !join_at(detail::Clock::now()); }

bool ParentProcess::join_at(const detail::Expiry& deadline) const {
  bool ready = false;
  std::error_code ec = detail::wait_readable(sentinel_, deadline, ready);
  if (ec) {
    detail::throw_system_error(ec, "mproc::ParentProcess::join: cannot poll the parent process " +
                                       std::to_string(pid_) + ": ppoll");
  }
  return ready;
}

std::vector<Process> active_children() {
  std::vector<detail::Ref<ProcessImpl>> live;
  {
    Guard g(g_mu);
    detail::sweep_locked();
    for (const auto& k : detail::state().children)
      if (k->phase == Phase::kStarted) live.push_back(k);  // not one another thread is forking
  }
  std::vector<Process> out;
  out.reserve(live.size());
  for (auto& k : live) out.push_back(Process(std::move(k)));
  return out;
}

int cpu_count() noexcept { return detail::online_cpu_count(); }

int process_cpu_count() noexcept {
  try {
    int n = 0;
    if (!detail::affinity_cpu_count(n)) return n < 1 ? 1 : n;
  } catch (...) {  // no memory for the mask
  }
  return cpu_count();
}

}  // namespace mproc
