// mproc/worker.hpp — what a Pool's worker knows about itself, and what the parent learns about
// its workers: `worker_id()`, the exit hook `WorkerExit` (PoolOptions::worker_exit, collected by
// Pool::exit_results), and `Insights` (Pool::insights()).
//
//   int slot_of_task(int) { return mproc::worker_id().value_or(-1); }
//   long report() { return rows_written; }                      // runs as each worker leaves
//   mproc::Pool pool({.processes = 4, .worker_exit = report});
//   ...
//   pool.close();
//   pool.join();
//   std::vector<long> rows = pool.exit_results<long>();         // one per worker that left
//   std::cout << pool.insights().to_string();                   // mpire's print_insights
#pragma once

#include <cstddef>
#include <cstdint>
#include <mproc/codec.hpp>
#include <mproc/detail/ref.hpp>
#include <mproc/detail/std_light.hpp>  // std::chrono (without <chrono>'s weight)
#include <mproc/export.hpp>
#include <mproc/partial.hpp>
#include <mproc/process.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace mproc {

// The worker slot of the calling process when it is a Pool's worker: 0 .. processes - 1, the same
// for a worker that replaces another (after a death, a kill, maxtasksperchild). Empty in any other
// process: the Pool's own process, a plain Process, a child that a task started (unless it is
// itself a worker of a pool of its own). Never blocks, never throws.
// Python has no counterpart; mpire passes worker_id to tasks when asked to (pass_worker_id).
[[nodiscard]] MPROC_API std::optional<int> worker_id() noexcept;

namespace detail {

// In a worker leaving normally: the encoded value its exit hook returned (empty optional: the
// hook returns void). Set by ExitHookCall, read by the worker loop (src/pool/worker.cpp).
MPROC_API std::optional<std::vector<std::byte>>& exit_hook_value() noexcept;

// The user's exit hook, run as a Process target would be, storing its encoded result.
template <class F>
struct ExitHookCall {
  F f;
  void operator()() {
    using R = std::invoke_result_t<F&>;
    if constexpr (std::is_void_v<R>) {
      f();
      exit_hook_value().reset();
    } else {
      exit_hook_value() = mproc::to_bytes(f());
    }
  }
};

// An exit hook travels to a fresh image as its callable does.
template <class F>
struct travel_codec<ExitHookCall<F>> {
  static constexpr bool ok = travel_codec<F>::ok;
  static std::size_t size(const ExitHookCall<F>& c) { return travel_codec<F>::size(c.f); }
  static void write(Writer& w, const ExitHookCall<F>& c) { travel_codec<F>::write(w, c.f); }
  static ExitHookCall<F> read(Reader& r) { return ExitHookCall<F>{travel_codec<F>::read(r)}; }
};

}  // namespace detail

// What a Pool runs in each worker that leaves normally (PoolOptions::worker_exit): a callable
// without arguments whose result, when it has one, must be encodable by mproc::codec; the parent
// collects the results with Pool::exit_results<T>(). Copyable; empty by default. What it may be
// under each start method is what PoolInitializer says (fork: anything; spawn, forkserver: a
// callable that travels, e.g. mproc::partial). Mirrors mpire's worker_exit.
//
// "Leaves normally": after maxtasksperchild tasks, or when join() (after close() or shutdown())
// stops the pool. It does not run in a worker that is killed (terminate(), a cancelled or timed
// out task, a signal), that dies, or whose initializer failed. It runs after the worker's last
// task, in the worker's process; the pool's quit grace (10 s, then the worker is killed) bounds it.
class WorkerExit {
 public:
  WorkerExit() = default;
  template <class F>
    requires(!std::is_same_v<std::decay_t<F>, WorkerExit> && std::is_invocable_v<std::decay_t<F>&>)
  WorkerExit(F&& f)  // NOLINT: implicit, as std::function's
      : target_(make_target(std::forward<F>(f))) {}
  WorkerExit(std::nullptr_t) noexcept {}  // NOLINT: implicit, as std::function's

  [[nodiscard]] explicit operator bool() const noexcept { return static_cast<bool>(target_); }
  // The type-erased callable (library use).
  [[nodiscard]] const detail::Ref<detail::ProcessTarget>& target() const noexcept {
    return target_;
  }

 private:
  template <class F>
  static detail::Ref<detail::ProcessTarget> make_target(F&& f) {
    using G = std::decay_t<F>;
    using R = std::invoke_result_t<G&>;
    static_assert(std::is_void_v<R> || is_encodable_v<std::decay_t<R>>,
                  "mproc::WorkerExit: the exit hook's result must be encodable by mproc::codec");
    if constexpr (std::is_pointer_v<std::remove_reference_t<F>> ||
                  (std::is_class_v<G> && requires(const G& g) { g == nullptr; })) {
      if (f == nullptr) return {};  // a null function pointer, an empty std::function
    }
    return detail::make_ref<detail::ProcessTargetFor<detail::ExitHookCall<G>>>(
        detail::ExitHookCall<G>{std::forward<F>(f)});
  }
  detail::Ref<detail::ProcessTarget> target_;
};

// The figures of one worker slot (all the workers that ran in it, replacements included), or of
// the whole pool (Insights::total). Durations are measured in the workers on CLOCK_MONOTONIC.
// For each worker: start_up + working + waiting + sending <= wall.
struct WorkerInsights {
  int slot = -1;                    // -1 in Insights::total
  std::uint64_t workers = 0;        // workers that ran in the slot (alive now, or ended)
  std::uint64_t tasks = 0;          // tasks run (a chunk of map/imap is one task)
  std::uint64_t lost = 0;           // tasks (or chunk elements) failed by their worker's end:
                                    // WorkerLost, TaskTimeout, a running task cancelled by a kill
  std::chrono::nanoseconds wall{};  // each worker: from its start until now or its end report
  std::chrono::nanoseconds start_up{};  // from the worker's start until its initializer finished
  std::chrono::nanoseconds working{};   // running tasks: decoding arguments, the call, encoding
  std::chrono::nanoseconds waiting{};   // waiting for a task, and taking it from the mailbox
  std::chrono::nanoseconds sending{};   // putting results (and pieces of chunks) on the result
                                        // queue: the event's encoding and the copy into the queue
  std::chrono::nanoseconds coding{};    // the part of `working` spent decoding tasks' arguments
                                        // and encoding their results (a chunk: decoding its
                                        // elements; each element's result encoding is working)
};

// What Pool::insights() returns: a snapshot. Mirrors mpire's get_insights / print_insights.
struct MPROC_API Insights {
  std::vector<WorkerInsights> workers;  // one per slot, by slot
  WorkerInsights total;                 // the slots added up
  // In the parent: tasks (a chunk is one) encoded at submit, and the time their encoding took
  // (the callable and the arguments, through the codec).
  std::uint64_t encoded = 0;
  std::chrono::nanoseconds encoding{};
  // In the parent: outcomes delivered (a task, or a piece of a chunk), and the time the result
  // thread spent delivering them (decoding results, running callbacks, waking waiters).
  std::uint64_t delivered = 0;
  std::chrono::nanoseconds delivering{};
  // A printable summary: one line per slot and the total, with the share of each worker's wall
  // time spent working, waiting and sending.
  [[nodiscard]] std::string to_string() const;
};

}  // namespace mproc
