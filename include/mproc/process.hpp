// mproc/process.hpp — child processes: `Process`, `SystemExit`, `exit`, and the process queries
// `current_process`, `parent_process`, `active_children`, `cpu_count`, `process_cpu_count`.
//
// Mirrors multiprocessing.Process and the module functions of the same names.
//
//   mproc::Process p([](int n) { return n + 1; }, 41);   // "Process-1"
//   p.start();
//   p.join();
//   assert(p.exitcode() == 42);
//
// Start methods (mproc/start_method.hpp has the rules; `ProcessOptions::start_method` chooses per
// Process, set_start_method for the program): with fork, the child is a copy of the parent made
// when `start()` runs, with only the thread that called `start()`; as with any fork in a
// multithreaded program, a lock another thread of the parent held at that instant stays held in
// the child. With spawn and forkserver the child is a fresh image of the program (main's
// `mproc::init(argc, argv)` turns it into the child) that receives the target and its arguments
// encoded: the target must then travel (a function, a lambda without captures, a function object
// with serialize(), or mproc::partial), every argument must be encodable or an mproc handle, and
// `start()` returns once the child has decoded them (a failure there, such as a library whose file
// was replaced, is a ProcessError from `start()` carrying the child's message). The default rule
// forks while the program is single-threaded. Buffered standard output is flushed before a fork or
// spawn so that it is not written twice. A forkserver child is the server's child, not the
// caller's: its exit code reaches the caller through the server (`sentinel()` is then the channel
// it arrives on), and is kExitCodeUnknown if the server was killed first.
//
// Exit codes, once for all (`Process::exitcode()`):
//   * empty while the child runs (or before `start()`);
//   * the target's return value (0 for a target returning void); the operating system keeps only
//     the low 8 bits, so `return 256` reads as 0 and `return -1` as 255;
//   * `n` after `mproc::exit(n)` (or an uncaught `mproc::SystemExit(n)`);
//   * 1 after an uncaught exception, whose type and `what()` are printed to the child's stderr as
//     two lines: `Process <name>:` and `<type>: <what>` (a type not derived from std::exception
//     prints its type name alone);
//   * -N when signal N ended the child (`kill()` gives -9, `terminate()` -15, `interrupt()` -2);
//   * `kExitCodeUnknown` when the program ignores SIGCHLD (or set SA_NOCLDWAIT): the kernel then
//     reaps every child itself as it ends and its status is lost (Python's exitcode stays None).
//
// Timeouts: `join` comes in the forms of mproc/timeout.hpp, which states their semantics once:
// `join()` waits as long as it takes, `join(Timeout)` at most a duration, `join_until(Deadline)` at
// most until a time point of any clock; the timed forms return false when the time passed first.
// A zero timeout or a past deadline still reports an exit that already happened. Waits poll the
// child's pidfd on CLOCK_MONOTONIC.
//
// Lifetime and reaping:
//   * Destroying a `Process` never kills and never blocks. A child that is still running is kept in
//     an internal registry and reaped (no zombie remains) by the next `start()`,
//     `active_children()` or at exit; its exit code is then discarded.
//   * At normal exit of the process that started children (`return` from `main` or `std::exit`),
//     an `std::atexit` handler (registered by the first `start()`) sends SIGTERM to the daemon
//     children, waits for them (SIGKILL after a grace period of one second if SIGTERM did not end
//     them), then joins the non-daemon children, waiting as long as they run (Python's rule).
//     A child does the same for its own children when its target returns.
//   * The child leaves with `_exit` (exit_group) after flushing the standard streams (stdout,
//     stderr, and `std::cout`/`cerr`/`clog` when not synced with stdio), so the parent's `atexit`
//     handlers and static destructors never run in it. As in Python, other `FILE*` streams the
//     target opened are its own to flush or close (`std::ofstream` does so in its destructor).
//   * A child never outlives a parent that dies abruptly (SIGKILL, crash, `_exit`): it is started
//     with `prctl(PR_SET_PDEATHSIG, SIGKILL)`, daemon or not. Caveat: Linux ties this death signal
//     to the *thread* that called `start()`, not to the parent process: if that thread ends while
//     the parent goes on, the child is killed (exit code -9). Start long-lived processes from the
//     main thread or from a thread that lives as long as they do.
//   * The parent reaps its children through their pidfds. Do not reap them behind mproc's back:
//     a thread calling `wait()`/`waitpid(-1, ...)`, or SIGCHLD set to SIG_IGN, makes joins fail
//     with std::system_error (ECHILD), as it breaks Python's multiprocessing.
//
// Differences from Python:
//   * The target is a C++ callable; its `int` return value becomes the exit code (Python ignores
//     the return value). Arguments are decay-copied at construction (as `std::thread`), moved into
//     the target in the child; the parent drops its copies after a successful `start()`.
//   * Non-daemon children are also killed if the parent dies abruptly (see above); Python orphans
//     them.
//   * `mproc::exit(n)` plays `sys.exit(n)`: in a child's target it throws `SystemExit`, which is
//   not
//     a std::exception, so `catch (const std::exception&)` does not swallow it (`catch (...)`
//     does).
//   * At exit, daemon children that ignore SIGTERM are killed after a grace period instead of
//     being waited for forever.
//
// Headers: a Process holds its state through `detail::Ref` and hands its target over in a
// `detail::Box` (mproc/detail/ref.hpp) rather than std::shared_ptr / std::unique_ptr, so that this
// header does not bring <memory> into every file that includes it (docs/design.md, "Header cost").
#pragma once

#include <climits>
#include <cstddef>
#include <mproc/detail/expiry.hpp>
#include <mproc/detail/ref.hpp>
#include <mproc/detail/std_light.hpp>
#include <mproc/errors.hpp>
#include <mproc/export.hpp>
#include <mproc/partial.hpp>
#include <mproc/timeout.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace mproc {

// The exit code of a child whose status the kernel discarded (the program ignores SIGCHLD): no
// exit status or signal number can have this value.
inline constexpr int kExitCodeUnknown = INT_MIN;

// Thrown by `mproc::exit(code)` inside a child's target; the child's bootstrap turns it into exit
// code `code()` after the stack has unwound (destructors run). Deliberately not derived from
// std::exception, so that handlers for ordinary errors do not swallow it.
// Mirrors Python's SystemExit.
class MPROC_API SystemExit {
 public:
  explicit SystemExit(int code) noexcept : code_(code) {}
  [[nodiscard]] int code() const noexcept { return code_; }

 private:
  int code_;
};

// Ends the calling process with exit code `code`. Mirrors sys.exit(code).
//   * In a child started by `Process`, on the thread running the target: throws `SystemExit(code)`;
//     the stack unwinds (RAII runs), then the child finishes as if the target had returned `code`.
//   * In such a child on any other thread: joins/terminates the child's own children as at exit,
//     flushes stdio and calls `_exit(code)` (the parent's atexit handlers never run in a child).
//   * Anywhere else: flushes stdio and calls `std::exit(code)`.
[[noreturn]] MPROC_API void exit(int code);

// How a new process comes to exist (Python's start methods; mproc/start_method.hpp has the
// functions that choose one and the rules of each):
//   * fork: a copy of the calling process (fast; lambdas and globals come along). Safe while the
//     caller is single-threaded.
//   * spawn: the program re-executed (/proc/self/exe, posix_spawn), made into the child by
//     `mproc::init(argc, argv)` at the top of main. Safe in a threaded program.
//   * forkserver: a fork of a single-threaded server process (itself spawned once), made into the
//     child the same way. Safe in a threaded program; nearly as cheap as fork.
enum class StartMethod : unsigned char { fork, spawn, forkserver };

// How a process is created. `name` empty means the default name ("Process-N", see `Process`).
// `start_method` empty means the program's choice (set_start_method, or the safe default of
// mproc/start_method.hpp). Every member has a default initializer, so designated initializers may
// name any alone (`{.daemon = true}`) without -Wmissing-field-initializers.
struct ProcessOptions {
  std::string name{};
  bool daemon = false;
  std::optional<StartMethod> start_method{};
};

namespace detail {
struct ProcessImpl;

// A type-erased target with its arguments; runs once, in the child.
class MPROC_API ProcessTarget {
 public:
  virtual ~ProcessTarget();
  virtual int run() = 0;

  // For a start method that runs the target in a fresh program image (spawn, forkserver).
  // Why it cannot travel: 0 if it can, -1 when the callable cannot (a lambda with captures...),
  // k > 0 when argument k (from 1) cannot be encoded; `type` then names the culprit's type.
  virtual int cannot_travel(const std::type_info*& type) const noexcept = 0;
  // The function that rebuilds this target from its encoding in the new image (a `Decoder`), and
  // the encoding: the callable, then the arguments. Handles among the arguments add their
  // descriptors to the calling thread's TravelOut scope (mproc/detail/travel.hpp).
  virtual const void* decoder() const noexcept = 0;
  virtual std::vector<std::byte> encode() const = 0;
  using Decoder = ProcessTarget* (*)(Reader& r);
};

// A target that can be called with its arguments as lvalues but not as the rvalues `Process`
// passes (the child's copies, moved in): one of its parameters is a non-const lvalue reference
// (`Queue<T>&`, `auto&`). Such a constructor call is caught by an overload that explains, rather
// than left to a list of unsatisfied constraints.
template <class F, class... Args>
concept invocable_only_with_lvalues =
    !std::is_invocable_v<F, Args...> && std::is_invocable_v<F, Args&...>;

// The position (from 1) of the first argument that the target cannot take as an rvalue (the
// others passed as lvalues); 0 if none alone.
template <class F, class... Args>
constexpr int first_lvalue_only_argument() {
  return []<std::size_t... I>(std::index_sequence<I...>) {
    int found = 0;
    auto check = [&]<std::size_t K>(std::integral_constant<std::size_t, K>) {
      constexpr bool ok = std::is_invocable_v<
          F, std::conditional_t<I == K, std::tuple_element_t<I, std::tuple<Args...>>,
                                std::tuple_element_t<I, std::tuple<Args...>>&>...>;
      if (!ok && found == 0) found = static_cast<int>(K) + 1;
    };
    (check(std::integral_constant<std::size_t, I>{}), ...);
    return found;
  }(std::index_sequence_for<Args...>{});
}

// False: named so that the failed assertion shows the parameter's position (from 1) and the type
// of its argument.
template <int Position, class Arg>
inline constexpr bool target_takes_argument_by_value_or_const_ref_v = false;

template <int Position, class Arg>
constexpr void reject_reference_parameter_at() {
  static_assert(target_takes_argument_by_value_or_const_ref_v<Position, Arg>,
                "mproc::Process: the target takes a parameter by non-const reference (T&), which "
                "cannot bind: the child gets its own copies of the arguments, moved into the "
                "target. Take mproc handles (Queue, JoinableQueue, Lock, Event, Value, ...) by "
                "value: a copy shares the same object (move-only ones, Connection and "
                "SharedMemory, passed with std::move); `const T&` binds too, for const use. The "
                "failed condition names the parameter's position (from 1) and its argument's "
                "type.");
}

template <class F, class... Args>
constexpr void reject_reference_parameter() {
  constexpr int kPosition = first_lvalue_only_argument<F, Args...>();
  reject_reference_parameter_at<
      kPosition, std::tuple_element_t<(kPosition > 0 ? kPosition - 1 : 0), std::tuple<Args...>>>();
}

// The position (from 1) of the first of `Args` that the codec cannot encode; 0 if none.
template <class... Args>
constexpr int first_unencodable_argument() {
  int k = 0;
  int found = 0;
  ((++k, found = (found == 0 && !is_encodable_v<Args>) ? k : found), ...);
  return found;
}

template <class F, class... Args>
class ProcessTargetFor final : public ProcessTarget {
  static constexpr int kBadArgument = first_unencodable_argument<Args...>();
  static constexpr bool kTravels = travel_codec<F>::ok && kBadArgument == 0;

 public:
  template <class G, class... A>
  explicit ProcessTargetFor(G&& f, A&&... args)
      : f_(std::forward<G>(f)), args_(std::forward<A>(args)...) {}
  int run() override {
    using R = std::invoke_result_t<F, Args...>;
    if constexpr (std::is_void_v<R>) {
      std::apply(std::move(f_), std::move(args_));
      return 0;
    } else {
      return static_cast<int>(std::apply(std::move(f_), std::move(args_)));
    }
  }

  int cannot_travel(const std::type_info*& type) const noexcept override {
    if constexpr (!travel_codec<F>::ok) {
      type = &typeid(F);
      return -1;
    } else if constexpr (kBadArgument != 0) {
      type = &typeid(std::tuple_element_t<kBadArgument - 1, std::tuple<Args...>>);
      return kBadArgument;
    } else {
      type = nullptr;
      return 0;
    }
  }
  const void* decoder() const noexcept override {
    if constexpr (kTravels) {
      return reinterpret_cast<const void*>(&decode_target);
    } else {
      return nullptr;
    }
  }
  std::vector<std::byte> encode() const override {
    if constexpr (kTravels) {
      std::size_t n = travel_codec<F>::size(f_) + mproc::encoded_size(args_);
      std::vector<std::byte> out(n);
      Writer w(out.data(), out.data() + n);
      travel_codec<F>::write(w, f_);
      mproc::encode(w, args_);
      return out;
    } else {
      return {};
    }
  }

 private:
  static ProcessTarget* decode_target(Reader& r) {
    if constexpr (kTravels) {
      F f = travel_codec<F>::read(r);
      auto args = mproc::decode<std::tuple<Args...>>(r);
      return std::apply(
          [&](Args&... a) { return new ProcessTargetFor(std::move(f), std::move(a)...); }, args);
    } else {
      return nullptr;
    }
  }

  F f_;
  std::tuple<Args...> args_;
};
}  // namespace detail

// A child process running a callable: the handle to start, wait for, signal and query it.
//
// The target is any callable (function pointer, lambda, functor) invocable with the decay-copied
// arguments, returning void or a value convertible to int (the exit code). The arguments are copied
// (or moved) into the Process at construction, like `std::thread`, and moved into the target in
// the child; so a target taking a `const&` (or `&&`) gets the child's copy (use `std::ref` only for
// objects that live in shared memory). A parameter taken by non-const lvalue reference cannot bind
// to that copy: `void stage(mproc::Queue<int>& in)` is a compile-time error that says so in one
// message, naming the parameter's position. Take handles (Queue, Lock, Event, Value, ...) by value:
// copies share the same object, as Python's arguments refer to the same queue.
//
//   void stage(mproc::Queue<int> in, mproc::Queue<int> out) { out.put(in.get() + 1); }
//   mproc::Process p(stage, q1, q2);   // the child's copies use q1's and q2's queues
//
// Names: a Process gets an identity number from a per-process counter at construction; the
// default name is "Process-<n>" in the main process, "Process-<parent's numbers>:<n>" in a child
// (so the first process created by "Process-1" is "Process-1:1"), as in Python.
//
// Handle: move-only (like std::thread); a moved-from Process throws ValueError from every method.
// Handles returned by `active_children()` refer to the same child as the handle that started it.
//
// Thread safety: safe — every method may be called concurrently on the same Process (two threads
// joining the same child both see it exit; it is reaped exactly once), except that destroying or
// assigning a Process must not race with other calls on it.
// Process safety: the Process object belongs to the process that started it. Copied into a child
// by fork, `join()`, `is_alive()` and `exitcode()` throw ProcessError there; the signalling
// methods work from anywhere (they go through the pidfd).
//
// Mirrors multiprocessing.Process.
class MPROC_API Process {
 public:
  // Creates (does not start) a process that will run `f(args...)`. The default name is taken here.
  // Mirrors Process(target=f, args=args).
  template <class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
  explicit Process(F&& f, Args&&... args)
      : Process(ProcessOptions{}, std::forward<F>(f), std::forward<Args>(args)...) {}

  // As above, with a name and the daemon flag. Mirrors Process(name=..., daemon=..., target=...).
  //   mproc::Process p({.name = "worker", .daemon = true}, work, 3);
  template <class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
  Process(ProcessOptions options, F&& f, Args&&... args)
      : Process(std::move(options), make_target(std::forward<F>(f), std::forward<Args>(args)...)) {}

  // A target with a parameter taken by non-const lvalue reference (`void stage(Queue<int>& q)`,
  // the Python habit) cannot receive its argument, which the child gets as its own copy: these
  // two overloads exist only to say so in one compile-time error, naming the parameter's
  // position and its argument's type. Take handles by value (copies share the object).
  template <class F, class... Args>
    requires detail::invocable_only_with_lvalues<std::decay_t<F>, std::decay_t<Args>...>
  explicit Process(F&&, Args&&...) {
    detail::reject_reference_parameter<std::decay_t<F>, std::decay_t<Args>...>();
  }
  template <class F, class... Args>
    requires detail::invocable_only_with_lvalues<std::decay_t<F>, std::decay_t<Args>...>
  Process(ProcessOptions, F&&, Args&&...) {
    detail::reject_reference_parameter<std::decay_t<F>, std::decay_t<Args>...>();
  }

  Process(Process&&) noexcept;
  // Releases the current child (by the destructor's policy), then takes over `other`'s.
  Process& operator=(Process&&) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Never kills and never blocks. A child that has exited is reaped now; one still running is
  // reaped later (next `start()`, `active_children()`, or at exit) and is still joined at exit if
  // it is not a daemon, or terminated if it is. The pidfd (`sentinel()`) is closed once the
  // child is reaped and no handle refers to it.
  ~Process();

  // Starts the child: forks, and runs the target in the child. Returns once the child exists (it
  // may not have run anything yet). Reaps finished children first (as Python's `_cleanup`).
  // Throws ValueError if closed; ProcessError if already started ("cannot start a process twice"),
  // if this Process was created by another process, or if the calling process is a daemon
  // ("daemonic processes are not allowed to have children"); std::system_error when the child
  // cannot be created (fork: EAGAIN at RLIMIT_NPROC, ENOMEM) or no descriptor is left for a pidfd
  // (EMFILE), its what() naming the step, the system call and the errno:
  //   "mproc::Process::start: cannot create the process: fork: Resource temporarily unavailable
  //   (EAGAIN)"
  // std::bad_alloc when memory runs out. After any of these nothing is left behind (no child, no
  // zombie, no descriptor) and the Process can be started again. Mirrors Process.start().
  void start();

  // Blocks until the child exits, and reaps it. Returns at once if it already has.
  // Throws ValueError if closed; ProcessError before `start()` ("can only join a started
  // process") or from another process than the parent ("can only join a child process");
  // std::system_error if waiting fails (ECHILD: the child was reaped behind mproc's back).
  // Mirrors Process.join().
  void join() { (void)join_at(detail::Expiry()); }
  // Blocks at most a duration / until a time point (timeout.hpp); true when the child has exited
  // (and was reaped), false when the time passed first. A zero timeout or a past deadline only
  // checks. Throws as join(). Mirrors Process.join(timeout) followed by a test of
  // `exitcode is not None`.
  [[nodiscard]] bool join(Timeout timeout) { return join_at(timeout.when()); }
  [[nodiscard]] bool join_until(Deadline deadline) { return join_at(deadline.when()); }

  // True from `start()` until the child has exited; false before `start()`. Does not block; reaps
  // the child if it has exited. Throws ValueError if closed; ProcessError from another process
  // than the parent ("can only test a child process"). Mirrors Process.is_alive().
  [[nodiscard]] bool is_alive();

  // The exit code (see the header comment), or empty while the child runs or before `start()`.
  // Does not block; reaps the child if it has exited. Throws as is_alive().
  // Mirrors Process.exitcode.
  [[nodiscard]] std::optional<int> exitcode();

  // The child's pid; empty before `start()` (never 0, so it cannot be passed to kill(0, ...) by
  // mistake). The pid may be reused by the system once the child is reaped; `sentinel()` and the
  // signalling methods are immune to that. Throws ValueError if closed. Mirrors Process.pid.
  [[nodiscard]] std::optional<int> pid() const;

  // A pidfd for the child: poll it for POLLIN, which it reports once the child has exited (and
  // still after the child is reaped). Owned by the Process: do not close it; it stays valid until
  // `close()` or until the last handle is destroyed. Throws ValueError if closed or not started
  // ("process not started"). Mirrors Process.sentinel.
  [[nodiscard]] int sentinel() const;

  // Send SIGTERM / SIGKILL / SIGINT to the child through its pidfd (so never to a process that
  // reused its pid). Do not block and do not reap: join() afterwards. Signalling a child that has
  // exited does nothing. Throw ValueError if closed; ProcessError before `start()` ("can only
  // terminate a started process", "... kill ...", "... interrupt ..."); std::system_error if the
  // signal cannot be sent. Mirror Process.terminate(), Process.kill(), Process.interrupt().
  void terminate();
  void kill();
  void interrupt();

  // Releases the pidfd; afterwards every method but `close()` throws ValueError("process object
  // is closed"). Closing again does nothing. Throws ValueError if the child is still running
  // ("Cannot close a process while it is still running. ..."). Reaps a child that has exited.
  // Mirrors Process.close().
  void close();

  // The name. Any time (a rename after `start()` does not reach the child, which keeps the name it
  // had when it started). Throws ValueError if closed. Mirrors Process.name.
  [[nodiscard]] std::string name() const;
  void set_name(std::string name);

  // The daemon flag: a daemon child is terminated when its parent exits, and may not start
  // children of its own. Throws ValueError if closed; `set_daemon` after `start()` throws
  // ProcessError("process has already started"). Mirrors Process.daemon.
  [[nodiscard]] bool daemon() const;
  void set_daemon(bool daemon);

 private:
  friend std::vector<Process> active_children();

  // The one implementation of every join form (nullopt: no limit).
  bool join_at(const detail::Expiry& deadline);

  template <class F, class... Args>
  static detail::Box<detail::ProcessTarget> make_target(F&& f, Args&&... args) {
    using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
    static_assert(std::is_void_v<R> || std::is_convertible_v<R, int>,
                  "mproc::Process: the target must return void or a value convertible to int "
                  "(the exit code)");
    return detail::make_box<detail::ProcessTargetFor<std::decay_t<F>, std::decay_t<Args>...>>(
        std::forward<F>(f), std::forward<Args>(args)...);
  }
  Process(ProcessOptions options, detail::Box<detail::ProcessTarget> target);
  explicit Process(detail::Ref<detail::ProcessImpl> impl) noexcept;
  detail::ProcessImpl& impl() const;
  void signal(int sig, const char* what);

  detail::Ref<detail::ProcessImpl> impl_;
};

// The calling process as seen from itself (a snapshot). Mirrors multiprocessing.current_process().
class MPROC_API CurrentProcess {
 public:
  // "MainProcess" in a process not started by mproc; the Process's name in a child.
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  // getpid().
  [[nodiscard]] int pid() const noexcept { return pid_; }
  // Whether this process is a daemon child.
  [[nodiscard]] bool daemon() const noexcept { return daemon_; }

 private:
  friend CurrentProcess current_process();
  CurrentProcess(std::string name, int pid, bool daemon)
      : name_(std::move(name)), pid_(pid), daemon_(daemon) {}
  std::string name_;
  int pid_;
  bool daemon_;
};

// The parent of a child started by mproc, seen from the child. The sentinel is a pidfd opened
// before the fork, so it names the parent even if it dies and its pid is reused. Thread safety:
// safe. Mirrors the object multiprocessing.parent_process() returns.
class MPROC_API ParentProcess {
 public:
  // The parent's name when it started this child ("MainProcess", "Process-1", ...).
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] int pid() const noexcept { return pid_; }
  // True while the parent runs (polls the sentinel; never blocks).
  [[nodiscard]] bool is_alive() const;
  // A pidfd for the parent, readable once it has exited. Owned by mproc: do not close it.
  [[nodiscard]] int sentinel() const noexcept { return sentinel_; }
  // Blocks until the parent exits; the timed forms (timeout.hpp) return true when it has exited,
  // false when the time passed first. Throws std::system_error if polling fails.
  void join() const { (void)join_at(detail::Expiry()); }
  [[nodiscard]] bool join(Timeout timeout) const { return join_at(timeout.when()); }
  [[nodiscard]] bool join_until(Deadline deadline) const { return join_at(deadline.when()); }

 private:
  bool join_at(const detail::Expiry& deadline) const;  // nullopt: no limit

  friend std::optional<ParentProcess> parent_process();
  ParentProcess(std::string name, int pid, int sentinel)
      : name_(std::move(name)), pid_(pid), sentinel_(sentinel) {}
  std::string name_;
  int pid_;
  int sentinel_;
};

// The calling process's name, pid and daemon flag. Never throws except std::bad_alloc.
// Mirrors multiprocessing.current_process().
[[nodiscard]] MPROC_API CurrentProcess current_process();

// The parent of the calling process if it was started by `Process::start()`; empty in the main
// process (also in a child made by a plain fork()). Mirrors multiprocessing.parent_process().
[[nodiscard]] MPROC_API std::optional<ParentProcess> parent_process();

// The children started by the calling process that are still running, in start order. Reaps the
// children that have exited first (also those whose handle was destroyed). Each returned handle
// shares its child with the handle that started it (joining either reaps it for both).
// Throws std::system_error if reaping fails. Mirrors multiprocessing.active_children().
[[nodiscard]] MPROC_API std::vector<Process> active_children();

// The number of online CPUs of the system (sysconf(_SC_NPROCESSORS_ONLN)), at least 1.
// Mirrors multiprocessing.cpu_count().
[[nodiscard]] MPROC_API int cpu_count() noexcept;

// The number of CPUs the calling thread may run on (its sched_getaffinity mask), at least 1; falls
// back to cpu_count() if the mask cannot be read. Mirrors os.process_cpu_count().
[[nodiscard]] MPROC_API int process_cpu_count() noexcept;

}  // namespace mproc
