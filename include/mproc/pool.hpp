// mproc/pool.hpp — a pool of worker processes: `Pool`, `PoolOptions`, `MapOptions`,
// `AsyncResult<R>`, `IMapResult<...>`.
//
// Mirrors multiprocessing.Pool (and the submit/future style of
// concurrent.futures.ProcessPoolExecutor).
//
//   int square(int x) { return x * x; }
//   mproc::Pool pool({.processes = 4});
//   std::vector<int> xs = {1, 2, 3};
//   std::vector<int> v = pool.map(square, xs);                         // 1, 4, 9
//   mproc::AsyncResult<int> r = pool.apply_async(square, 7);
//   int x = r.get();                                                   // 49
//   for (int y : pool.imap(square, naturals)) { ... }                  // lazy: endless input works
//   pool.map(square, xs, {.progress_bar = true});                      // a bar on a terminal
//
// Tasks never serialise code. A task is three things: the address of an "invoker" (a function
// instantiated for the callable's type and the arguments' types), the callable object, and the
// arguments encoded with `mproc::codec`. The workers are forks of the calling program, so the
// invoker's address and a function pointer mean the same thing there. Which callables can travel
// (functions, lambdas with trivially copyable captures, function objects with serialize(), and
// `mproc::partial(f, args...)` for anything else) is spelled out in mproc/partial.hpp; any other
// callable is a compile-time error. Arguments and results must be encodable by `mproc::codec` (a
// compile-time error otherwise).
//
// What a task sees of the parent's memory depends on the start method (PoolOptions::start_method,
// mproc/start_method.hpp). With fork, the workers are forked from a "zygote" process that the Pool
// forks in its constructor, so a task sees the program's state *as it was when the Pool was
// created* (copy-on-write, like mpire's shared objects). A pointer or reference captured by a
// lambda works only for objects that existed, with the contents they had, at that moment; later
// changes and later objects do not reach the workers. Send them as arguments. The same holds for
// code: a callable from a library loaded (dlopen) after the Pool was created is not mapped in the
// workers, and its task fails with WorkerLost (SIGSEGV); create the Pool after loading plugins.
// With spawn and forkserver the zygote is itself a fresh image of the program, so a task sees
// only what the program's static initialisers built: callables must travel (functions, lambdas
// without captures, function objects with serialize(), partial; anything else is a ValueError at
// submit), and their code travels as (library, offset): a library loaded with dlopen before or
// after the Pool started is loaded by the worker from the same file, checked by build-id (a
// replaced file fails the task with an error naming it). Under every method a task's arguments
// may be mproc handles (Queue, Lock, Event, Value, SharedMemory, Connection, ...): their
// descriptors travel beside the task.
//
// Chunking: `map` cuts its input into ceil(n / (4 * processes)) elements per task, as Python does,
// and, by default, also ends a chunk before its encoded elements pass 64 KiB (so a map of large
// elements gets several chunks per worker, each travelling in one mailbox message). `imap`/
// `imap_unordered` size their chunks as they go (unless given a chunksize): the first chunks hold
// one element, so the first result comes quickly; then each chunk aims at about 1 ms of work in a
// worker, judged by how long the elements took so far, growing at most twofold from one chunk to
// the next, up to 8192 elements and 64 KiB of encoded elements; with an input of known size a
// chunk never exceeds ceil(remaining / (4 * processes)), so the tail stays balanced. Long tasks
// keep chunks of one; tiny ones get chunks that make the per-task overhead negligible. A given
// chunksize is kept, except that a chunk also ends before its encoded elements pass a mailbox
// message (about 256 KiB). Every chunk is encoded once, straight from the input.
//
// Progress: `MapOptions::progress` is called with (elements done, total) as chunks complete, and
// `MapOptions::progress_bar` draws a bar on stderr when stderr is a terminal (tqdm's format; off
// by default, never drawn into a file or a pipe).
//
// Design (details in docs/design.md, "Pool"):
//   * Workers: the zygote is small and single-threaded; it forks the workers and their
//     replacements on request, so no worker is ever forked from the parent while the Pool's own
//     thread (or any other) runs. Workers die with the zygote (PR_SET_PDEATHSIG), the zygote with
//     the process that created the Pool (it watches it through a pidfd), so a Pool may be created
//     on any thread, also one that ends before the Pool does.
//   * Transport: each worker has a small mailbox (an mproc::Queue) that a dispatcher in the
//     parent keeps at most two tasks deep, least-loaded worker first; all results, and the zygote's
//     reports of worker exits, come back through one shared mproc::Queue read by one parent thread
//     (the "result thread").
//   * Exactly-once failure: a worker takes one task at a time from its FIFO mailbox and puts its
//     result before it takes the next; the zygote reports a worker's exit on the result queue only
//     after reaping it, so every result the worker delivered comes before that report. When the
//     report arrives, the parent drains the dead worker's mailbox (tasks still there never started:
//     they are dispatched again) and, of the tasks it had dispatched to that worker, at most one
//     is neither answered nor in the mailbox: the one the worker was running. That task alone
//     fails with `WorkerLost` (naming the signal or exit code, and the task's number); a
//     replacement worker is started; every other task completes. No task is lost silently and
//     none runs twice.
//   * The same, per element, for a chunk of map/imap: the worker records which element it runs
//     and stages each element's outcome in shared memory as it finishes (sending them every few
//     milliseconds and at the end). If it dies, the parent delivers the outcomes it staged, fails
//     the element it was running with `WorkerLost` naming the element's position in the input (the
//     element it began last: one that dies between two elements, or while sending, is charged to
//     the last one it began; one that dies before its first element, to the chunk's first
//     element waiting), and runs the chunk's remaining elements in another worker. Each element
//     has exactly one outcome; none runs twice. A map fails as a whole, as in Python, with the
//     first element error to arrive, which names the element.
//   * A worker that dies before its initializer has finished (initializer threw or crashed)
//     breaks the Pool instead of being respawned forever: every unfinished task fails with
//     `BrokenPool` naming the initializer's failure, and later submissions throw `BrokenPool`.
//
// Timeouts, once for all (mproc/timeout.hpp is the contract): `AsyncResult::get`/`wait` and
// `IMapResult::next` each come in three forms, x() (blocks until done), x(Timeout) (any
// std::chrono duration, integer or floating-point: `r.get(2s)`, `it.next(1.5s)`) and
// x_until(Deadline) (a time point of any clock: `r.get_until(system_clock::now() + 2s)`); a bare
// number does not compile. A negative or zero timeout, or a past deadline, makes the call look
// once without blocking (it still succeeds if the result is there); huge ones mean "never". A
// deadline of another clock than steady_clock is converted by the time left when the call starts.
// Waits run on CLOCK_MONOTONIC. On expiry `get` and `next` throw TimeoutError (nothing is lost:
// call again), `wait` returns false. The Pool's other blocking calls (apply, map, starmap, join)
// have no timeout, as in Python.
//
// Errors a task's result can carry (thrown by `get()`, `map()`, `next()`):
//   * `RemoteError` — the task threw; type name, what(), the worker's pid and traceback() (the
//     worker's stack at the throw, symbolised, as Python prints it) (or the original type, for
//     types registered with register_remote_exception, with the RemoteError nested).
//   * `WorkerLost` — the worker died while running the task.
//   * `TaskTimeout` (a TimeoutError) — the task ran past its time limit (PoolOptions::task_timeout,
//     SubmitOptions/MapOptions::timeout); its worker was killed and replaced.
//   * `CancelledError` — the task was cancelled (AsyncResult::cancel, shutdown(cancel_futures)).
//   * `Interrupted` — not a task's outcome: a wait (get, map, next, join) ended by an interruption
//     request (mproc/interrupt.hpp); the task goes on.
//   RemoteError and WorkerLost name their origin: `position()`, the element's index in the input
//   of map/starmap/imap/imap_unordered, or `task()`, the number of an apply/submit task in its
//   pool; what() says it too ("... (in worker pid 4711, input element 537)", "... while running
//   input element 537", "... task 12").
//   * `BrokenPool` — the pool's initializer failed, the zygote died, a replacement worker could
//     not be started, or `terminate()` ran first.
//   * `DecodeError` — the result's bytes did not decode in the caller's process: a result too large
//     for its memory (the message names the size and std::bad_alloc), or a codec mismatch. Only
//     that task fails; the pool goes on.
//   * `std::system_error` — arguments larger than a mailbox message (about 256 KiB) travel in a
//     memfd, made when the task is dispatched; if it cannot be made (descriptors or memory
//     exhausted) that task fails with the errno ("mproc::Pool: cannot create a memfd of N bytes for
//     a task's arguments: Too many open files (EMFILE)"). Such memfds exist only for the tasks in
//     the workers' mailboxes (two per worker at most), however many large tasks are submitted.
//
// Lifetime: the destructor calls `close()` then `join()`: it waits for every submitted task to
// finish (a C++ user expects submitted work to be done, as with std::jthread). Python's
// `with Pool() as p:` calls terminate() on exit instead; call `terminate()` for that behaviour.
// Destroying the last handle from one of the pool's own callbacks terminates it instead (a join
// there would wait for the callback itself).
// Nothing is left behind after join(), terminate() or destruction: no zombie, no orphan.
//
// Thread safety: every method may be called from several threads at once, except that an
// `IMapResult` belongs to one consumer thread. Callbacks (result callbacks and progress) run on
// the pool's result thread: they must be quick and must not wait for results of the same pool.
// Process safety: a Pool belongs to the process that created it: in any other process (a worker, a
// plain fork of the program) its methods throw ProcessError and its destructor leaves the
// creator's workers alone. Workers cannot create pools of their own (as in Python: they are
// daemonic) unless PoolOptions::daemon is false. join() from a callback throws ValueError (it would
// wait for the callback's own task); terminate() from a callback works.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <mproc/codec.hpp>
#include <mproc/detail/expiry.hpp>
#include <mproc/detail/pool_core.hpp>
#include <mproc/detail/pool_schedule.hpp>
#include <mproc/detail/ref.hpp>
#include <mproc/detail/std_light.hpp>
#include <mproc/errors.hpp>
#include <mproc/export.hpp>
#include <mproc/partial.hpp>
#include <mproc/process.hpp>
#include <mproc/timeout.hpp>
#include <mproc/worker.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace mproc {

// What a Pool runs once in each worker before it takes tasks: any callable without arguments (its
// result, if any, is ignored). Copyable; empty by default. With the fork start method it may
// capture anything; with spawn or forkserver it must travel like a task's callable (a function, a
// lambda without captures, a function object with serialize(), or mproc::partial(f, args...), whose
// bound arguments may be handles): otherwise the Pool's constructor throws ValueError naming
// partial. Mirrors Pool(initializer, initargs): bind the arguments with partial.
class PoolInitializer {
 public:
  PoolInitializer() = default;
  template <class F>
    requires(!std::is_same_v<std::decay_t<F>, PoolInitializer> &&
             std::is_invocable_v<std::decay_t<F>&>)
  PoolInitializer(F&& f)  // NOLINT: implicit, as std::function's
      : target_(make_target(std::forward<F>(f))) {}
  PoolInitializer(std::nullptr_t) noexcept {}  // NOLINT: implicit, as std::function's

  [[nodiscard]] explicit operator bool() const noexcept { return static_cast<bool>(target_); }
  // The type-erased callable (library use).
  [[nodiscard]] const detail::Ref<detail::ProcessTarget>& target() const noexcept {
    return target_;
  }

 private:
  template <class F>
  static detail::Ref<detail::ProcessTarget> make_target(F&& f) {
    using G = std::decay_t<F>;
    if constexpr (std::is_pointer_v<std::remove_reference_t<F>> ||
                  (std::is_class_v<G> && requires(const G& g) { g == nullptr; })) {
      if (f == nullptr) return {};  // a null function pointer, an empty std::function
    }
    return detail::make_ref<detail::ProcessTargetFor<G>>(std::forward<F>(f));
  }
  detail::Ref<detail::ProcessTarget> target_;
};

// How a Pool is made. Every member has a default, so designated initializers may name any subset.
struct PoolOptions {
  // Number of workers; empty: process_cpu_count(). Zero or negative throws ValueError.
  // Mirrors Pool(processes).
  std::optional<int> processes{};
  // Runs once in each worker before it takes tasks (e.g. to open a file or seed a generator); see
  // PoolInitializer for what it may be under each start method. If it throws or kills its worker,
  // the Pool is broken (see the header comment). Mirrors Pool(initializer, initargs).
  PoolInitializer initializer{};
  // A worker leaves after this many tasks (a chunk of map/imap counts as one task) and is
  // replaced; empty: never. Zero or negative throws ValueError. Mirrors Pool(maxtasksperchild).
  std::optional<int> maxtasksperchild{};
  // How the workers are started (mproc/start_method.hpp); empty: the program's choice, by the same
  // rule as Process. With spawn or forkserver the workers are fresh images of the program (forked
  // by a zygote that is itself spawned, or made by the forkserver): tasks' callables must travel
  // (mproc/partial.hpp), and a task whose callable cannot is a ValueError at submit.
  std::optional<StartMethod> start_method{};
  // The longest a task of apply/apply_async/submit, or an element of map/imap, may run; empty:
  // no limit. A task past it has its worker killed and replaced, and fails alone with
  // TaskTimeout naming it and the limit (an element of a chunk: that element; the chunk's other
  // elements run on). Measured in the worker from the moment it begins the task or element, and
  // enforced by the parent within a few milliseconds. Zero or negative throws ValueError. A call
  // may set its own (SubmitOptions::timeout, MapOptions::timeout). pebble's timeout; Python's Pool
  // has none.
  std::optional<std::chrono::duration<double>> task_timeout{};
  // The longest a worker's initializer may run; empty: no limit. Past it the pool is broken (every
  // unfinished task fails with BrokenPool naming the limit), instead of hanging. Zero or negative
  // throws ValueError.
  std::optional<std::chrono::duration<double>> initializer_timeout{};
  // Runs in each worker that leaves normally (maxtasksperchild, or join() stopping the pool; not
  // in one that is killed or dies); its results are Pool::exit_results(). See WorkerExit
  // (mproc/worker.hpp). Mirrors mpire's worker_exit.
  WorkerExit worker_exit{};
  // true (the default, as in Python): a worker is daemonic, and a task that starts a Process or
  // creates a Pool gets ProcessError. false: tasks may start processes and pools of their own
  // (nested pools). Their children die with the worker that started them — when it is killed,
  // dies, or leaves (each mproc child has a parent-death signal; a nested Pool's zygote watches
  // its creator), so terminate() leaves none behind; join what a task starts before it returns.
  // A child started otherwise (std::system, popen, posix_spawn, fork) may outlive its worker.
  // Mirrors Process.daemon (Python's Pool has no such option; its workers are always daemonic).
  bool daemon = true;
  // Off by default: Pool::insights() has the figures of each worker (tasks, time working,
  // waiting, sending results, start-up, tasks lost). On, each task costs two more clock reads in
  // its worker (about 40 ns, 2-4% of a no-op task) and the parent two per batch of results it
  // delivers (see "Insights" in docs/design.md).
  bool insights = false;
};

// How one apply_async/submit call runs (the overloads that take it first).
struct SubmitOptions {
  // The longest the task may run (see PoolOptions::task_timeout, which it replaces for this
  // task). Zero or negative throws ValueError.
  std::optional<std::chrono::duration<double>> timeout{};
};

// How a map/starmap/imap/imap_unordered call runs. Every member has a default.
struct MapOptions {
  // Elements per task. 0: automatic — map: ceil(n / (4 * processes)) as Python; imap: adaptive
  // (see the header comment). Python's imap defaults to 1: pass 1 for its behaviour.
  std::size_t chunksize = 0;
  // imap only: the most chunks submitted and not yet consumed. 0: automatic (64 per worker while
  // chunks hold one element, fewer as they grow, never under 4 per worker). Either way the window
  // opens gradually: 2 chunks per worker at first, 2 more for each chunk consumed.
  std::size_t max_in_flight = 0;
  // Called on the pool's result thread each time a chunk completes (successfully or not) with the
  // number of elements done so far and the input's size (empty for an imap over an input without
  // size). Its exceptions are dropped. mpire's progress callbacks; Python has none.
  std::function<void(std::size_t done, std::optional<std::size_t> total)> progress{};
  // Draws a progress bar on stderr while the call runs — only when stderr is a terminal. mpire's
  // progress_bar=True.
  bool progress_bar = false;
  // The longest each element may run (see PoolOptions::task_timeout, which it replaces for this
  // call): an element past it fails alone with TaskTimeout naming its position and the limit; the
  // chunk's other elements run on in a new worker. Zero or negative throws ValueError.
  std::optional<std::chrono::duration<double>> timeout{};
};

// How AsyncResult::cancel treats a task that a worker has begun: leaves it (Python's behaviour,
// cancel() returns false) or kills its worker (the task fails with CancelledError; the worker is
// replaced).
enum class CancelMode : unsigned char { queued, kill_running };

// The result of a task submitted with `apply_async`/`submit` (or of a whole `map_async`): a handle
// shared with the pool, cheap to copy. Made by the Pool only. Mirrors
// multiprocessing.pool.AsyncResult (and, for submit, concurrent.futures.Future).
//
// Waiting (timeout.hpp states the rules for every blocking call of mproc): `get()`/`wait()` block
// until the task is done; `get(timeout)`/`wait(timeout)` wait at most a duration (`2s`, `1.5s`,
// `500ms`; a negative or zero one only looks), `get_until(deadline)`/`wait_until(deadline)` at
// most until a time point of any clock (a `system_clock` one is converted by the time left when
// the call starts). The waits run on CLOCK_MONOTONIC. On expiry `get` throws TimeoutError (as
// Python's does) and `wait` returns false (Python's returns None: call ready()).
//
// Thread safety: safe (several threads may wait on copies of one AsyncResult). A default-
// constructed AsyncResult is empty: every method but `valid()` throws ValueError.
template <class R>
class AsyncResult {
  using V = detail::stored_t<R>;

 public:
  AsyncResult() = default;

  [[nodiscard]] bool valid() const noexcept { return st_ != nullptr; }

  // Waits for the task, then returns its result (a copy; get() may be called again) or throws its
  // error (RemoteError, WorkerLost, BrokenPool, DecodeError). Mirrors AsyncResult.get().
  R get() const { return get_at(std::nullopt); }
  // As get(), waiting at most `timeout`; throws TimeoutError if the task is not done by then
  // (the task goes on: call again). Mirrors AsyncResult.get(timeout).
  R get(Timeout timeout) const { return get_at(timeout.when()); }
  // As get(), waiting at most until `deadline`; throws TimeoutError if the task is not done by
  // then. Python has no deadline form: get(deadline - now()).
  R get_until(Deadline deadline) const { return get_at(deadline.when()); }

  // Blocks until the task is done. Mirrors AsyncResult.wait().
  void wait() const { (void)state().wait(std::nullopt); }
  // Blocks at most `timeout`; true when the task is done. Mirrors AsyncResult.wait(timeout)
  // followed by ready().
  bool wait(Timeout timeout) const { return state().wait(timeout.when()); }
  // Blocks at most until `deadline`; true when the task is done.
  bool wait_until(Deadline deadline) const { return state().wait(deadline.when()); }

  // True once the task is done (successfully or not; its callback has run). Never blocks.
  // Mirrors AsyncResult.ready().
  [[nodiscard]] bool ready() const { return state().ready(); }
  // True when the task is done and did not fail. Throws InvalidStateError (a ValueError) if it
  // is not done yet. Mirrors AsyncResult.successful().
  [[nodiscard]] bool successful() const {
    if (!state().ready()) throw InvalidStateError("mproc::AsyncResult: the result is not ready");
    return !state().error();
  }

  // --- concurrent.futures.Future -------------------------------------------------------------

  // Cancels the task unless it has started: a task still queued in the parent or waiting in a
  // worker's mailbox is withdrawn and never runs; the result is ready with CancelledError when
  // cancel() returns (its error callback and done callbacks run on this thread or on the pool's
  // result thread, whichever sets the error first). Returns true when
  // the result is cancelled (also when it was before), false when the task is running or done.
  // With CancelMode::kill_running a running task is cancelled too: its worker is killed and
  // replaced, and only that task fails with CancelledError (other tasks, also those waiting in
  // the same worker's mailbox, go on elsewhere). A task that finishes at the very moment it is
  // killed may have run to its end; its result is then discarded. For a map_async result: every
  // chunk not started is withdrawn (and, with kill_running, every running one killed); true when
  // that made the map's result CancelledError; chunks left running finish and are discarded.
  // Never blocks on a task. Mirrors Future.cancel().
  bool cancel(CancelMode mode = CancelMode::queued) {
    detail::ResultState<V>& st = state();
    if (st.ready()) return st.cancelled();
    detail::PoolLink* link = st.link();
    if (link == nullptr || !detail::cancel_tasks(*link, st.first_task(), st.task_count(),
                                                 mode == CancelMode::kill_running))
      return st.ready() && st.cancelled();
    // The result thread may be delivering the same CancelledError: whoever claims the result
    // sets it; the wait is for the other one to finish (never long, and never ourselves).
    st.set_error(detail::cancelled_error());
    st.wait_uninterrupted();
    return st.cancelled();
  }
  // True when the result is CancelledError. Never blocks. Mirrors Future.cancelled().
  [[nodiscard]] bool cancelled() const {
    const detail::ResultState<V>& st = state();
    return st.ready() && st.cancelled();
  }
  // True while a worker runs the task (for a map_async result: one of its chunks); false once it
  // is done. Never blocks. Mirrors Future.running().
  [[nodiscard]] bool running() const {
    const detail::ResultState<V>& st = state();
    if (st.ready() || st.link() == nullptr) return false;
    return detail::tasks_running(*st.link(), st.first_task(), st.task_count()) && !st.ready();
  }
  // True once the task is done, failed or cancelled: ready(). Mirrors Future.done().
  [[nodiscard]] bool done() const { return ready(); }
  // As get(): the result, or the error thrown. Mirrors Future.result(timeout).
  R result() const { return get(); }
  R result(Timeout timeout) const { return get(timeout); }
  // Waits for the task, then returns its error (nullptr when it succeeded); throws CancelledError
  // if it was cancelled, TimeoutError if it is not done in time. Mirrors Future.exception(timeout).
  std::exception_ptr exception() const { return exception_at(std::nullopt); }
  std::exception_ptr exception(Timeout timeout) const { return exception_at(timeout.when()); }
  std::exception_ptr exception_until(Deadline deadline) const {
    return exception_at(deadline.when());
  }
  // Calls `fn(*this)` (or `fn()`) once the task is done: at once on this thread if it is done
  // already, otherwise on the thread that completes it (the pool's result thread, or the thread
  // that cancels it), after the result's own callbacks. Any number may be added; they run in the
  // order added. An exception `fn` throws is dropped. Mirrors Future.add_done_callback(fn).
  template <class F>
    requires std::is_invocable_v<F&, const AsyncResult&> || std::is_invocable_v<F&>
  void add_done_callback(F fn) const {
    auto call = [self = *this, f = std::move(fn)]() mutable {
      if constexpr (std::is_invocable_v<F&, const AsyncResult&>)
        f(static_cast<const AsyncResult&>(self));
      else
        f();
    };
    // The hook holds a copy of this result: it lives until it has run.
    if (state().add_hook(call) != 0) return;
    try {
      call();
    } catch (...) {
    }
  }

  // The shared state (library use: as_completed, wait).
  [[nodiscard]] detail::ResultWait& wait_state() const { return state(); }

 private:
  friend class Pool;
  explicit AsyncResult(detail::Ref<detail::ResultState<V>> st) : st_(std::move(st)) {}

  detail::ResultState<V>& state() const {
    if (!st_) throw ValueError("mproc::AsyncResult: empty result handle");
    return *st_;
  }
  std::exception_ptr exception_at(const detail::Expiry& expiry) const {
    if (!state().wait(expiry))
      throw TimeoutError("mproc::AsyncResult::exception: the result is not ready");
    if (st_->cancelled()) std::rethrow_exception(st_->error());
    return st_->error();
  }
  R get_at(const detail::Expiry& expiry) const {
    if (!state().wait(expiry))
      throw TimeoutError("mproc::AsyncResult::get: the result is not ready");
    if (st_->error()) std::rethrow_exception(st_->error());
    if constexpr (!std::is_void_v<R>) return st_->value();
  }
  // Waits, then moves the value out (Pool::map: no copy of the vector).
  V take() {
    (void)state().wait(std::nullopt);
    if (state().error()) std::rethrow_exception(state().error());
    return std::move(state().value());
  }

  detail::Ref<detail::ResultState<V>> st_;
};

// Makes a task's exception of type T reach the caller as a T (constructed from the original
// what()) instead of RemoteError, for every Pool of this process; the RemoteError (type name,
// what(), worker pid) is nested in it: `std::rethrow_if_nested(e)` throws it. The type is matched
// by its demangled name, so T must be the exception's exact (most derived) type, and T must be
// constructible from a std::string, as std::runtime_error and the other standard exceptions are.
// Registering a type twice is harmless. Thread-safe; call it before the tasks
// fail (e.g. at startup). Python re-raises the original exception type by pickling it; C++ cannot
// rebuild an arbitrary exception from another process, hence the opt-in.
//
//   mproc::register_remote_exception<std::invalid_argument>();
//   try { pool.apply(parse, "x"); } catch (const std::invalid_argument& e) { ... }
template <class T>
void register_remote_exception() {
  static_assert(std::is_constructible_v<T, const std::string&>,
                "mproc::register_remote_exception<T>: T must be constructible from a std::string");
  static_assert(std::is_class_v<T> && !std::is_final_v<T>,
                "mproc::register_remote_exception<T>: T must be a non-final class (it is "
                "rethrown with std::throw_with_nested, which derives from it)");
  detail::register_remote_exception(
      typeid(T), [](const std::string& what, const RemoteError& info) -> std::exception_ptr {
        try {
          throw info;
        } catch (...) {
          try {
            std::throw_with_nested(T(what));
          } catch (...) {
            return std::current_exception();
          }
        }
      });
}

// concurrent.futures' name for the same thing.
template <class R>
using Future = AsyncResult<R>;

// A lazy sequence of results from `Pool::imap` (Ordered) or `Pool::imap_unordered`.
//
// Input is read, and tasks submitted, only as results are consumed: at most `max_in_flight()`
// chunks are submitted and not yet consumed at any time, so an infinite input runs in bounded
// memory (Python's imap reads its whole input eagerly). The input range must outlive this object
// when it was passed as an lvalue; an rvalue range (a temporary container or view) is kept inside.
// Chunk sizes are adaptive unless a chunksize was given (see the header comment).
//
// An exception thrown by the input range (its iterator) is rethrown by `next()` at its position:
// after every result of the elements before it (ordered), or after every submitted result
// (unordered); the sequence then ends. An element whose call threw gives RemoteError from the
// `next()` that reaches its position, and the other elements of its chunk are unaffected (Python
// loses the whole chunk); iteration may go on after it. Every input element yields exactly one
// outcome, at its own position (imap) or once (imap_unordered), whatever the chunking: a worker
// that dies fails only the element it was running (WorkerLost, naming the position); the other
// elements of its chunk are delivered (finished ones) or run in another worker (the rest). A
// pool that breaks or is terminated fails each element not done with BrokenPool. Errors name the
// element's position in the input (`position()`, and in what()).
//
// close() does not stop an imap started before it: its remaining input is still submitted. join()
// (and the Pool's destructor) waits only for tasks already submitted, then stops the workers; an
// imap whose input was not used up by then ends with a ValueError at the first element it could not
// submit (on a broken pool, with BrokenPool).
//
// Usable in range-for (`for (R r : pool.imap(f, input))`): the iterator's increment calls next(),
// so errors surface from the loop's `++`/begin(). Thread safety: one consumer thread.
// Destroying it before the end leaves the chunks in flight to finish in the pool (their results
// are discarded). Mirrors multiprocessing.pool.IMapIterator / IMapUnorderedIterator.
//
// `Src` is the input as passed to imap: `T&` (the range is referred to) or `T` (it is kept here,
// on the heap, so that moving an IMapResult never invalidates the input's iterator).
template <class R, class Src, class Fn, bool Ordered, bool Star>
class IMapResult {
  using Range = std::remove_cvref_t<Src>;
  using Elem = std::ranges::range_value_t<Range>;
  using Holder = std::conditional_t<std::is_lvalue_reference_v<Src>, std::remove_reference_t<Src>*,
                                    detail::Box<Range>>;

 public:
  IMapResult(IMapResult&&) noexcept = default;
  IMapResult& operator=(IMapResult&&) noexcept = default;
  IMapResult(const IMapResult&) = delete;
  IMapResult& operator=(const IMapResult&) = delete;
  ~IMapResult() {
    if (sink_) sink_->finish_progress();
  }

  // The next result; empty at the end of the input. Blocks until it is available. Throws the
  // task's error, or the input range's exception at its position. Mirrors IMapIterator.next().
  std::optional<R> next() { return next_at(std::nullopt); }
  // As next(), waiting at most `timeout` for a result; throws TimeoutError if none came in time
  // (nothing is lost: call again). Mirrors IMapIterator.next(timeout).
  std::optional<R> next(Timeout timeout) { return next_at(timeout.when()); }
  // As next(), waiting at most until `deadline` (any clock); throws TimeoutError if no result came
  // by then. Python has no deadline form.
  std::optional<R> next_until(Deadline deadline) { return next_at(deadline.when()); }

  // Chunks submitted whose results have not been taken by next() yet (never above the window
  // that was current when they were submitted).
  [[nodiscard]] std::size_t in_flight() const noexcept { return submitted_ - taken_; }
  // The current window: chunks that may be in flight at once. Automatic: 64 elements per worker
  // while chunks are small, at least 4 chunks per worker; so an adaptive imap holds at most
  // max(64, 4 x 8192) elements per worker between its input and its consumer.
  [[nodiscard]] std::size_t max_in_flight() const noexcept { return schedule_.window(); }
  // Elements in the chunk submitted last (for tests and tuning).
  [[nodiscard]] std::size_t last_chunksize() const noexcept { return schedule_.last_chunk(); }

  class iterator {
   public:
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(IMapResult* owner) : owner_(owner) { cur_ = owner_->next(); }
    const R& operator*() const { return *cur_; }
    R& operator*() { return *cur_; }
    iterator& operator++() {
      cur_ = owner_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return !it.cur_; }

   private:
    IMapResult* owner_ = nullptr;
    std::optional<R> cur_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  friend class Pool;
  IMapResult(detail::Ref<detail::PoolCore> core, Fn f, Src&& src, const MapOptions& options)
      : core_(std::move(core)),
        f_(std::move(f)),
        range_(hold(std::forward<Src>(src))),
        schedule_(static_cast<std::size_t>(core_->processes()), options.chunksize,
                  options.max_in_flight, size_of(range()), core_->max_task_bytes()),
        limit_(detail::limit_ns(options.timeout)) {
    sink_ = detail::make_ref<detail::IMapSink<R>>(
        Ordered, detail::make_progress(options.progress, options.progress_bar, size_of(range())));
  }

  std::optional<R> next_at(const detail::Expiry& deadline) {
    for (;;) {
      top_up();
      if (error_pos_ < element_errors_.size() && element_errors_[error_pos_].first == index_) {
        auto e = std::move(element_errors_[error_pos_++].second);
        ++index_;
        std::rethrow_exception(e);
      }
      if (pos_ < current_.size()) {
        ++index_;
        return std::move(current_[pos_++]);
      }
      if (taken_ == submitted_) {
        if (input_error_) {
          exhausted_ = true;  // the sequence ends after the input's exception
          auto e = std::exchange(input_error_, nullptr);
          std::rethrow_exception(e);
        }
        sink_->finish_progress();
        return std::nullopt;
      }
      std::optional<std::uint64_t> want;
      if constexpr (Ordered) want = taken_;
      detail::Box<detail::OutcomesBase> taken = sink_->take(want, deadline);
      if (!taken) throw TimeoutError("mproc::IMapResult::next: no result came in time");
      auto& part = static_cast<detail::Outcomes<R>&>(*taken);  // made by piece_ops<R>
      if (part.completes_chunk) ++taken_;
      current_ = std::move(part.values);
      element_errors_ = std::move(part.element_errors);
      error_pos_ = 0;
      pos_ = 0;
      index_ = 0;
      if (part.error) std::rethrow_exception(part.error);
    }
  }

  static Holder hold(Src&& src) {
    if constexpr (std::is_lvalue_reference_v<Src>) {
      return &src;
    } else {
      return detail::make_box<Range>(std::move(src));
    }
  }
  auto& range() { return *range_; }

  // The input's size, when it has one.
  template <class T>
  static std::optional<std::size_t> size_of(T& r) {
    if constexpr (std::ranges::sized_range<Range>) {
      return static_cast<std::size_t>(std::ranges::size(r));
    } else {
      return std::nullopt;
    }
  }

  // Submits chunks while the schedule's window has room and input remains. Each chunk takes
  // elements by the schedule's limit (detail::ChunkLimit): it is encoded once, never split.
  void top_up() {
    if (!it_) it_.emplace(std::ranges::begin(range()));  // the input is first read here
    while (!exhausted_ && !input_error_ && submitted_ - taken_ < schedule_.window_now(taken_)) {
      // Only an adaptive schedule needs the time per element (it takes the sink's lock, which the
      // result thread holds as it delivers).
      const detail::ChunkLimit limit =
          schedule_.next_chunk(schedule_.adaptive() ? sink_->ns_per_item() : std::nullopt);
      std::vector<Elem> chunk;
      chunk.reserve(std::min<std::size_t>(limit.elements, 4096));
      std::size_t bytes = 0;
      try {
        if constexpr (detail::bitwise_v<Elem>) {  // all of one size: no need to look at each
          const std::size_t most = limit.uniform(sizeof(Elem));
          while (chunk.size() < most && *it_ != std::ranges::end(range())) {
            chunk.push_back(**it_);
            ++*it_;
          }
        }
        while (!detail::bitwise_v<Elem> && !limit.full(chunk.size())) {
          if (!carry_) {  // each input element is read (dereferenced) once
            if (*it_ == std::ranges::end(range())) break;
            carry_.emplace(**it_);
            carry_bytes_ = mproc::encoded_size(*carry_);
            try {
              ++*it_;
            } catch (...) {
              input_error_ = std::current_exception();  // after this element, which goes now
              chunk.push_back(std::move(*carry_));
              bytes += carry_bytes_;
              carry_.reset();
              break;
            }
          }
          if (!limit.fits(chunk.size(), bytes, carry_bytes_)) break;  // the next chunk's first
          chunk.push_back(std::move(*carry_));
          bytes += carry_bytes_;
          carry_.reset();
        }
        if (!carry_ && !input_error_ && *it_ == std::ranges::end(range())) exhausted_ = true;
      } catch (...) {
        // The input threw (or an element cannot be encoded): the error comes at its position.
        carry_.reset();
        input_error_ = std::current_exception();
      }
      if constexpr (detail::bitwise_v<Elem>) bytes = chunk.size() * sizeof(Elem);
      if (chunk.empty()) break;
      schedule_.submitted(chunk.size(), bytes);
      submit_chunk(std::move(chunk), bytes);
    }
  }

  // Submits one chunk (`bytes`: its elements' encoded sizes added up).
  void submit_chunk(std::vector<Elem>&& chunk, std::size_t bytes) {
    const std::size_t n = chunk.size();
    std::vector<detail::TaskSpec> spec;
    sink_->expect(submitted_, n);
    try {
      const std::int64_t t0 = core_->insights_on() ? detail::monotonic_ns() : 0;
      spec.push_back(detail::chunk_spec<Fn, Elem, Star, R>(core_->fresh_image(), f_, chunk, 0, n,
                                                           bytes, submitted_, elements_));
      if (t0 != 0) core_->note_encoding(1, detail::monotonic_ns() - t0);
      spec.back().limit_ns = limit_;
      core_->submit(std::move(spec), sink_, /*continuation=*/true);
    } catch (...) {
      // The pool stopped (joined, terminated, broken) or is out of memory: the chunk's elements
      // fail at their position, and the sequence ends after this error.
      sink_->on_error(submitted_, std::current_exception());
      exhausted_ = true;
    }
    ++submitted_;
    elements_ += n;
  }

  detail::Ref<detail::PoolCore> core_;
  Fn f_;
  Holder range_;
  detail::ImapSchedule schedule_;
  std::int64_t limit_;  // per element, in nanoseconds (0: the pool's)
  std::optional<std::ranges::iterator_t<std::remove_reference_t<Src>>> it_;
  std::optional<Elem> carry_;    // read from the input, for the next chunk (it did not fit)
  std::size_t carry_bytes_ = 0;  // its encoded size
  bool exhausted_ = false;
  std::exception_ptr input_error_;
  std::uint64_t submitted_ = 0;  // chunks
  std::uint64_t elements_ = 0;   // elements in them
  std::uint64_t taken_ = 0;
  std::vector<R> current_;                // the results of the chunk being handed out
  std::size_t pos_ = 0;                   // the next of current_
  detail::IndexedErrors element_errors_;  // of that chunk
  std::size_t error_pos_ = 0;             // the next of element_errors_
  std::uint64_t index_ = 0;               // the next element of that chunk (result or error)
  detail::Ref<detail::IMapSink<R>> sink_;
};

// A pool of worker processes. See the header comment for the design, the accepted callables and
// the failure behaviour. Move-only handle. Mirrors multiprocessing.Pool.
class MPROC_API Pool {
 public:
  // Starts the zygote and `options.processes` workers, and returns once they exist. Throws
  // ValueError for processes <= 0 or maxtasksperchild <= 0; ProcessError if called in a daemonic
  // process (a pool worker), or if the zygote ends (e.g. is killed) before it is ready;
  // std::system_error when a process, the result thread, a queue's shared
  // memory or a descriptor cannot be created, naming it, the system call and the errno
  // ("mproc::Pool: cannot start worker 3 of 4: fork: Resource temporarily unavailable (EAGAIN)").
  // A constructor that throws leaves no process and no descriptor behind. Mirrors
  // Pool(processes, initializer, initargs, maxtasksperchild).
  explicit Pool(PoolOptions options = {});
  explicit Pool(int processes) : Pool(PoolOptions{.processes = processes}) {}
  Pool(Pool&&) noexcept = default;
  Pool& operator=(Pool&&) noexcept;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  // close() then join(): waits for every submitted task (see the header comment).
  ~Pool();

  // The number of worker slots.
  [[nodiscard]] int processes() const;
  // How the workers were started: PoolOptions::start_method, or what the default rule chose when
  // the Pool was made (mproc/start_method.hpp).
  [[nodiscard]] StartMethod start_method() const;

  // Runs `f(args...)` in a worker and returns its result (blocks). Throws the task's error.
  // Mirrors Pool.apply(func, args).
  template <class F, class... Args>
    requires std::is_invocable_v<F&, std::decay_t<Args>...>
  auto apply(F f, Args&&... args) {
    return apply_async(f, std::forward<Args>(args)...).get();
  }

  // Submits `f(args...)`; returns at once. Throws ValueError after close()/terminate(),
  // BrokenPool on a broken pool. Mirrors Pool.apply_async(func, args).
  template <class F, class... Args>
    requires std::is_invocable_v<F&, std::decay_t<Args>...>
  auto apply_async(F f, Args&&... args) {
    using R = std::invoke_result_t<F&, std::decay_t<Args>...>;
    return submit_one<std::decay_t<R>>(
        f, std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...), nullptr, nullptr);
  }

  // As apply_async, with Python's callbacks: `callback(const R&)` (or `callback()` for void)
  // runs with the result, `error_callback(const std::exception_ptr&)` with the error, on the
  // pool's result thread (on the thread calling terminate() for tasks it cancels), before the
  // result becomes ready. A callback must be quick and must not wait for other results of the
  // pool; an exception it throws is dropped. Pass `nullptr` for no callback.
  // Mirrors Pool.apply_async(func, args, callback=..., error_callback=...).
  template <class F, class... Args, class CB, class ECB = std::nullptr_t>
    requires std::is_invocable_v<F&, Args...>
  auto apply_async(F f, std::tuple<Args...> args, CB callback, ECB error_callback = nullptr) {
    using R = std::decay_t<std::invoke_result_t<F&, Args...>>;
    return submit_one<R>(f, std::move(args), std::move(callback), std::move(error_callback));
  }

  // As apply_async(f, args...), with `options` for this task (a time limit).
  template <class F, class... Args>
    requires std::is_invocable_v<F&, std::decay_t<Args>...>
  auto apply_async(const SubmitOptions& options, F f, Args&&... args) {
    using R = std::invoke_result_t<F&, std::decay_t<Args>...>;
    return submit_one<std::decay_t<R>>(
        f, std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...), nullptr, nullptr,
        detail::limit_ns(options.timeout));
  }
  template <class F, class... Args>
    requires std::is_invocable_v<F&, std::decay_t<Args>...>
  auto submit(const SubmitOptions& options, F f, Args&&... args) {
    return apply_async(options, f, std::forward<Args>(args)...);
  }

  // Executor style: the same as apply_async(f, args...). Mirrors Executor.submit(fn, *args).
  template <class F, class... Args>
    requires std::is_invocable_v<F&, std::decay_t<Args>...>
  auto submit(F f, Args&&... args) {
    return apply_async(f, std::forward<Args>(args)...);
  }

  // Applies `f` to every element of `range` in the workers; returns the results in input order.
  // Reads the whole input first (an exception from the input range propagates from here, before
  // anything is submitted). Chunks: see MapOptions::chunksize; chunks whose encoded arguments
  // exceed a mailbox message are split. The first failing chunk's error is thrown. `f` must
  // return a value. Mirrors Pool.map(func, iterable, chunksize).
  template <class F, std::ranges::input_range Range>
  auto map(F f, Range&& range, const MapOptions& options = {}) {
    return map_async(f, std::forward<Range>(range), options).take();
  }
  template <class F, std::ranges::input_range Range>
  auto map(F f, Range&& range, std::size_t chunksize) {
    return map(f, std::forward<Range>(range), MapOptions{.chunksize = chunksize});
  }
  // One AsyncResult for the whole vector; `callback(const std::vector<R>&)` and
  // `error_callback(const std::exception_ptr&)` as for apply_async (nullptr: none).
  // Mirrors Pool.map_async(func, iterable, chunksize, callback, error_callback).
  template <class F, std::ranges::input_range Range, class CB = std::nullptr_t,
            class ECB = std::nullptr_t>
  auto map_async(F f, Range&& range, const MapOptions& options = {}, CB callback = nullptr,
                 ECB error_callback = nullptr) {
    return map_impl<false>(f, std::forward<Range>(range), options, std::move(callback),
                           std::move(error_callback));
  }
  template <class F, std::ranges::input_range Range>
  auto map_async(F f, Range&& range, std::size_t chunksize) {
    return map_async(f, std::forward<Range>(range), MapOptions{.chunksize = chunksize});
  }
  // As map, each element being a tuple (or pair) of arguments. Mirrors Pool.starmap.
  template <class F, std::ranges::input_range Range>
  auto starmap(F f, Range&& range, const MapOptions& options = {}) {
    return starmap_async(f, std::forward<Range>(range), options).take();
  }
  template <class F, std::ranges::input_range Range>
  auto starmap(F f, Range&& range, std::size_t chunksize) {
    return starmap(f, std::forward<Range>(range), MapOptions{.chunksize = chunksize});
  }
  // Mirrors Pool.starmap_async(func, iterable, chunksize, callback, error_callback).
  template <class F, std::ranges::input_range Range, class CB = std::nullptr_t,
            class ECB = std::nullptr_t>
  auto starmap_async(F f, Range&& range, const MapOptions& options = {}, CB callback = nullptr,
                     ECB error_callback = nullptr) {
    return map_impl<true>(f, std::forward<Range>(range), options, std::move(callback),
                          std::move(error_callback));
  }
  template <class F, std::ranges::input_range Range>
  auto starmap_async(F f, Range&& range, std::size_t chunksize) {
    return starmap_async(f, std::forward<Range>(range), MapOptions{.chunksize = chunksize});
  }

  // Lazy, ordered: see IMapResult. Adaptive chunks unless options.chunksize is set (Python's
  // default is 1). Mirrors Pool.imap(func, iterable, chunksize).
  template <class F, std::ranges::input_range Range>
  auto imap(F f, Range&& range, const MapOptions& options = {}) {
    return imap_impl<true, false>(f, std::forward<Range>(range), options);
  }
  // `chunksize` elements per task (0: adaptive); `max_in_flight` chunks at most (0: automatic).
  template <class F, std::ranges::input_range Range>
  auto imap(F f, Range&& range, std::size_t chunksize, std::size_t max_in_flight = 0) {
    return imap(f, std::forward<Range>(range),
                MapOptions{.chunksize = chunksize, .max_in_flight = max_in_flight});
  }
  // As imap, results in completion order. Mirrors Pool.imap_unordered.
  template <class F, std::ranges::input_range Range>
  auto imap_unordered(F f, Range&& range, const MapOptions& options = {}) {
    return imap_impl<false, false>(f, std::forward<Range>(range), options);
  }
  template <class F, std::ranges::input_range Range>
  auto imap_unordered(F f, Range&& range, std::size_t chunksize, std::size_t max_in_flight = 0) {
    return imap_unordered(f, std::forward<Range>(range),
                          MapOptions{.chunksize = chunksize, .max_in_flight = max_in_flight});
  }

  // No more tasks may be submitted (they throw ValueError); tasks already submitted still run.
  // Never blocks. Mirrors Pool.close().
  void close();
  // Kills the workers now, without waiting for running tasks; every unfinished task fails with
  // BrokenPool. Returns once the workers and the zygote are gone (promptly), also when another
  // thread is blocked in join() (which then returns). May be called from a callback.
  // Mirrors Pool.terminate().
  void terminate();
  // Waits until every submitted task is done, then stops the workers and waits for them. Throws
  // ValueError if neither close() nor terminate() was called, or when called from a callback.
  // Mirrors Pool.join().
  void join();

  // Executor style: close(); with `cancel_futures`, every task not started yet is cancelled
  // (withdrawn; its result is CancelledError); with `wait`, join() (waits for the tasks left).
  // Without `wait` it returns at once and the destructor joins. Mirrors
  // Executor.shutdown(wait, cancel_futures).
  void shutdown(bool wait = true, bool cancel_futures = false);

  // Tasks (chunks) accepted and not yet done: a snapshot. A task counts until its outcome has
  // been delivered and its callbacks have run (join() waits for 0), so the count can lag a result
  // that get() or next() already returned.
  [[nodiscard]] std::size_t unfinished() const;

  // The figures of each worker slot and of the pool (see Insights in mproc/worker.hpp): a
  // snapshot, also after join() or terminate(). With PoolOptions::insights off, only `workers`,
  // `tasks` and `lost` are counted; the durations stay 0. ProcessError in another process than
  // the Pool's creator (as exit_results). Mirrors mpire's get_insights.
  [[nodiscard]] Insights insights() const;
  // The values returned by PoolOptions::worker_exit in the workers that have left so far, in the
  // order they arrived (after join(): one per worker that left normally), decoded as T (the hook's
  // result type). Throws RemoteError (with the worker's traceback) when a hook threw, DecodeError
  // when a value does not decode as T. Mirrors mpire's get_exit_results.
  template <class T>
  [[nodiscard]] std::vector<T> exit_results() const {
    std::vector<T> out;
    for (const std::vector<std::byte>& bytes : exit_result_bytes())
      out.push_back(mproc::from_bytes<T>(bytes));
    return out;
  }

 protected:
  // A Pool over another engine's core (mproc::mpi::Pool).
  explicit Pool(detail::Ref<detail::PoolCore> core) noexcept : core_(std::move(core)) {}

 private:
  detail::PoolCore& core() const;
  std::vector<std::vector<std::byte>> exit_result_bytes() const;

  template <class R, class F, class Tuple, class CB, class ECB>
  AsyncResult<R> submit_one(F f, Tuple args, CB callback, ECB error_callback,
                            std::int64_t limit = 0) {
    static_assert(detail::check_callable<F>());
    using V = detail::stored_t<R>;
    auto st = detail::make_ref<detail::ResultState<V>>();
    detail::set_callbacks<R>(*st, std::move(callback), std::move(error_callback));
    std::vector<detail::TaskSpec> spec;
    const std::int64_t t0 = core().insights_on() ? detail::monotonic_ns() : 0;
    spec.push_back(detail::apply_spec(core().fresh_image(), f, args));
    if (t0 != 0) core().note_encoding(1, detail::monotonic_ns() - t0);
    spec.back().limit_ns = limit;
    const std::uint64_t id =
        core().submit(std::move(spec), detail::make_ref<detail::ApplySink<V>>(st));
    st->bind(core().link(), id, 1);
    return AsyncResult<R>(std::move(st));
  }

  template <bool Star, class F, class Range, class CB, class ECB>
  auto map_impl(F f, Range&& range, const MapOptions& options, CB callback, ECB error_callback) {
    static_assert(detail::check_callable<F>());
    using Elem = std::ranges::range_value_t<Range>;
    using R0 = decltype(call_elem<Star>(f, std::declval<Elem>()));
    static_assert(!std::is_void_v<R0>, "mproc::Pool::map: the function must return a value");
    using R = std::decay_t<R0>;
    std::vector<Elem> items;
    if constexpr (std::ranges::sized_range<Range>) items.reserve(std::ranges::size(range));
    for (auto&& e : range) items.push_back(std::forward<decltype(e)>(e));
    auto st = detail::make_ref<detail::ResultState<std::vector<R>>>();
    detail::set_callbacks<std::vector<R>>(*st, std::move(callback), std::move(error_callback));
    const std::size_t n = items.size();
    const std::int64_t time_limit = detail::limit_ns(options.timeout);
    auto progress = detail::make_progress(options.progress, options.progress_bar, n);
    if (items.empty()) {
      detail::finish_progress(progress.get());
      st->set_value({});
      return AsyncResult<std::vector<R>>(std::move(st));
    }
    // Chunks end by the rule of detail::ChunkLimit (elements, encoded bytes); each is then encoded
    // once, straight from `items`.
    const std::size_t workers = static_cast<std::size_t>(core().processes());
    const detail::ChunkLimit limit = detail::chunk_limit(
        options.chunksize != 0 ? options.chunksize : detail::share_chunksize(n, workers),
        options.chunksize != 0, core().max_task_bytes());
    std::vector<detail::TaskSpec> spec;
    std::vector<std::size_t> sizes;
    const std::int64_t t0 = core().insights_on() ? detail::monotonic_ns() : 0;
    for (std::size_t b = 0; b < n;) {
      std::size_t e = b, bytes = 0;
      if constexpr (detail::bitwise_v<Elem>) {
        e = b + std::min(n - b, limit.uniform(sizeof(Elem)));
        bytes = (e - b) * sizeof(Elem);
      } else {
        while (e < n && !limit.full(e - b)) {
          const std::size_t size = mproc::encoded_size(items[e]);
          if (!limit.fits(e - b, bytes, size)) break;
          bytes += size;
          ++e;
        }
      }
      spec.push_back(detail::chunk_spec<F, Elem, Star, R>(core().fresh_image(), f, items, b, e,
                                                          bytes, spec.size(), b));
      spec.back().limit_ns = time_limit;
      sizes.push_back(e - b);
      b = e;
    }
    if (t0 != 0) core().note_encoding(spec.size(), detail::monotonic_ns() - t0);
    auto sink = detail::make_ref<detail::MapSink<R>>(st, std::move(sizes), std::move(progress));
    const std::uint64_t chunks = spec.size();
    const std::uint64_t first = core().submit(std::move(spec), sink);
    st->bind(core().link(), first, chunks);
    return AsyncResult<std::vector<R>>(std::move(st));
  }

  template <bool Star, class F, class E>
  static auto call_elem(F& f, E&& e) {
    if constexpr (Star) {
      return std::apply(f, std::forward<E>(e));
    } else {
      return detail::invoke(f, std::forward<E>(e));
    }
  }

  template <bool Ordered, bool Star, class F, class Range>
  auto imap_impl(F f, Range&& range, const MapOptions& options) {
    static_assert(detail::check_callable<F>());
    using Elem = std::ranges::range_value_t<std::remove_cvref_t<Range>>;
    using R0 = decltype(call_elem<Star>(f, std::declval<Elem>()));
    static_assert(!std::is_void_v<R0>, "mproc::Pool::imap: the function must return a value");
    using R = std::decay_t<R0>;
    if (!core_) throw ValueError("mproc::Pool: moved-from pool");
    return IMapResult<R, Range, F, Ordered, Star>(core_, f, std::forward<Range>(range), options);
  }

  detail::Ref<detail::PoolCore> core_;
};

}  // namespace mproc
