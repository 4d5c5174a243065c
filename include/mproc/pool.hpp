// mproc/pool.hpp — a pool of worker processes: `Pool`, `PoolOptions`, `AsyncResult<R>`,
// `IMapResult<...>`.
//
// Mirrors multiprocessing.Pool (and the submit/future style of
// concurrent.futures.ProcessPoolExecutor).
//
//   int square(int x) { return x * x; }
//   mproc::Pool pool({.processes = 4});
//   std::vector<int> v = pool.map(square, std::views::iota(0, 100));  // 0, 1, 4, ...
//   mproc::AsyncResult<int> r = pool.apply_async(square, 7);
//   int x = r.get();                                                   // 49
//   for (int y : pool.imap(square, std::views::iota(0))) { ... }      // lazy, unbounded input
//
// Tasks never serialise code. A task is three things: the address of an "invoker" (a function
// instantiated for the callable's type and the arguments' types), the callable's object bytes,
// and the arguments encoded with `mproc::codec`. The workers are forks of the calling program, so
// the invoker's address and a function pointer mean the same thing there. Accepted callables:
// function pointers and functions, lambdas without captures, and lambdas (or function objects)
// whose captures are trivially copyable; anything else (a `std::function`, a lambda capturing a
// `std::string`) is a compile-time error — pass such data as an argument instead. Arguments and
// results must be encodable by `mproc::codec` (a compile-time error otherwise).
//
// What a task sees of the parent's memory: the workers are forked from a "zygote" process that
// the Pool forks in its constructor, so a task sees the program's state *as it was when the Pool
// was created* (copy-on-write, like mpire's shared objects). A pointer or reference captured by a
// lambda works only for objects that existed, with the contents they had, at that moment; later
// changes and later objects do not reach the workers. Send them as arguments.
//
// Design (details in docs/design.md, "Pool"):
//   * Workers: the zygote is small and single-threaded; it forks the workers and their
//     replacements on request, so no worker is ever forked from the parent while the Pool's own
//     thread (or any other) runs. Workers die with the zygote (PR_SET_PDEATHSIG), the zygote with
//     the thread that created the Pool (it is an mproc::Process: create the Pool on a thread that
//     lives as long as it, e.g. the main thread).
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
//     fails with `WorkerLost` (naming the signal or exit code); a replacement worker is started;
//     every other task completes. No task is lost silently and none runs twice.
//   * A worker that dies before its initializer has finished (initializer threw or crashed)
//     breaks the Pool instead of being respawned forever: every unfinished task fails with
//     `BrokenPool` naming the initializer's failure, and later submissions throw `BrokenPool`.
//
// Timeouts, once for all: `get`, `wait` and `next` have a form without timeout (blocks) and a
// `std::chrono` duration form. Negative timeouts are equivalent to zero (the call still succeeds
// if it can without waiting). Waits run on CLOCK_MONOTONIC.
//
// Errors a task's result can carry (thrown by `get()`, `map()`, `next()`):
//   * `RemoteError` — the task threw; type name, what() and the worker's pid.
//   * `WorkerLost` — the worker died while running the task.
//   * `BrokenPool` — the pool's initializer failed, the zygote died, or `terminate()` ran first.
//   * `DecodeError` — the result's bytes did not decode (should not happen with matching codecs).
//
// Lifetime: the destructor calls `close()` then `join()`: it waits for every submitted task to
// finish (a C++ user expects submitted work to be done, as with std::jthread). Python's
// `with Pool() as p:` calls terminate() on exit instead; call `terminate()` for that behaviour.
// Nothing is left behind after join(), terminate() or destruction: no zombie, no orphan.
//
// Thread safety: every method may be called from several threads at once, except that an
// `IMapResult` belongs to one consumer thread. Process safety: a Pool belongs to the process that
// created it; do not use it from a worker (workers cannot create pools of their own either, as in
// Python: they are daemonic).
#pragma once

#include <array>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mproc/codec.hpp>
#include <mproc/detail/deadline.hpp>
#include <mproc/errors.hpp>
#include <mproc/export.hpp>
#include <mproc/process.hpp>
#include <mutex>
#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace mproc {

// How a Pool is made. Every member has a default, so designated initializers may name any subset.
struct PoolOptions {
  // Number of workers; empty: process_cpu_count(). Zero or negative throws ValueError.
  // Mirrors Pool(processes).
  std::optional<int> processes{};
  // Runs once in each worker before it takes tasks (e.g. to open a file or seed a generator).
  // It runs in the worker, a fork of the calling program, so it may capture anything. If it throws
  // or kills its worker, the Pool is broken (see the header comment).
  // Mirrors Pool(initializer, initargs): capture the arguments.
  std::function<void()> initializer{};
  // A worker leaves after this many tasks (a chunk of map/imap counts as one task) and is
  // replaced; empty: never. Zero or negative throws ValueError. Mirrors Pool(maxtasksperchild).
  std::optional<int> maxtasksperchild{};
};

namespace detail {

// Runs a task in a worker: reads the callable and the arguments from `in`, writes the encoded
// result to `out`. Throws whatever the task throws.
using Invoker = void (*)(Reader& in, std::vector<std::byte>& out);

// Where a task's outcome goes; called on the pool's result thread (or, for failures, on the thread
// that calls terminate()). `part` is the index the submitter gave the task.
class MPROC_API TaskSink {
 public:
  virtual ~TaskSink();
  // Decodes the result; may throw (the core then calls on_error with that exception).
  virtual void on_ok(std::uint32_t part, Reader& result) = 0;
  virtual void on_error(std::uint32_t part, std::exception_ptr error) noexcept = 0;
};

struct TaskSpec {
  Invoker invoker;
  std::vector<std::byte> payload;
  std::uint32_t part;
};

// The non-template part of Pool (src/pool.cpp).
class MPROC_API PoolCore {
 public:
  explicit PoolCore(PoolOptions options);
  ~PoolCore();
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  // Queues the tasks, all or none. Throws ValueError if the pool is not running or a payload is
  // larger than max_task_bytes(); BrokenPool if it is broken.
  void submit(std::vector<TaskSpec> tasks, const std::shared_ptr<TaskSink>& sink);
  [[nodiscard]] std::size_t max_task_bytes() const noexcept;
  [[nodiscard]] int processes() const noexcept;
  void close();
  void terminate();
  void join();
  // Tasks accepted whose outcome has not been delivered yet (a snapshot; for tests and progress).
  [[nodiscard]] std::size_t unfinished() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

template <class F>
constexpr bool check_callable() {
  static_assert(std::is_trivially_copyable_v<F>,
                "mproc::Pool: the callable must be trivially copyable: a function, a function "
                "pointer, a lambda without captures or one whose captures are trivially copyable. "
                "Pass other data (std::string, std::vector, ...) as task arguments instead.");
  return std::is_trivially_copyable_v<F>;
}

template <class F>
F read_callable(Reader& r) {
  std::array<std::byte, sizeof(F)> raw;
  r.read(raw.data(), sizeof(F));
  return std::bit_cast<F>(raw);
}

template <class F, class Args>
std::vector<std::byte> make_payload(const F& f, const Args& args) {
  std::vector<std::byte> out(sizeof(F) + mproc::encoded_size(args));
  std::memcpy(out.data(), &f, sizeof(F));
  Writer w(out.data() + sizeof(F), out.data() + out.size());
  mproc::encode(w, args);
  return out;
}

template <class R>
using stored_t = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

template <class F, class Tuple>
void invoke_apply(Reader& in, std::vector<std::byte>& out) {
  F f = read_callable<F>(in);
  Tuple args = mproc::decode<Tuple>(in);
  using R = decltype(std::apply(f, std::move(args)));
  if constexpr (std::is_void_v<R>) {
    std::apply(f, std::move(args));
    out = mproc::to_bytes(std::monostate{});
  } else {
    out = mproc::to_bytes(std::apply(f, std::move(args)));
  }
}

// A chunk of map (Star: the elements are argument tuples, as starmap).
template <class F, class E, bool Star, class R>
void invoke_map(Reader& in, std::vector<std::byte>& out) {
  F f = read_callable<F>(in);
  auto items = mproc::decode<std::vector<E>>(in);
  std::vector<R> results;
  results.reserve(items.size());
  for (auto& e : items) {
    if constexpr (Star) {
      results.push_back(std::apply(f, std::move(e)));
    } else {
      results.push_back(std::invoke(f, std::move(e)));
    }
  }
  out = mproc::to_bytes(results);
}

// The shared state behind an AsyncResult. V is the stored value type (std::monostate for void).
template <class V>
class ResultState {
 public:
  std::function<void(const V&)> callback;
  std::function<void(const std::exception_ptr&)> error_callback;

  void set_value(V&& v) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (set_) return;
      set_ = true;
      value_.emplace(std::move(v));
    }
    if (callback) run_callback([&] { callback(*value_); });
    finish();
  }
  void set_error(std::exception_ptr e) noexcept {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (set_) return;
      set_ = true;
      error_ = std::move(e);
    }
    if (error_callback) run_callback([&] { error_callback(error_); });
    finish();
  }
  bool wait_until(const Deadline& deadline) {
    std::unique_lock<std::mutex> lk(mu_);
    if (!deadline) {
      cv_.wait(lk, [&] { return done_; });
      return true;
    }
    return cv_.wait_until(lk, *deadline, [&] { return done_; });
  }
  bool ready() const {
    std::lock_guard<std::mutex> g(mu_);
    return done_;
  }
  // Only once ready.
  const std::exception_ptr& error() const noexcept { return error_; }
  V& value() noexcept { return *value_; }

 private:
  template <class Fn>
  static void run_callback(Fn&& fn) noexcept {
    try {
      fn();
    } catch (...) {
      // A callback's exception cannot reach anyone: it is dropped (Python logs it).
    }
  }
  void finish() noexcept {
    {
      std::lock_guard<std::mutex> g(mu_);
      done_ = true;
    }
    cv_.notify_all();
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
  bool done_ = false;
  std::optional<V> value_;
  std::exception_ptr error_;
};

template <class V>
class ApplySink final : public TaskSink {
 public:
  explicit ApplySink(std::shared_ptr<ResultState<V>> st) : st_(std::move(st)) {}
  void on_ok(std::uint32_t, Reader& r) override { st_->set_value(mproc::decode<V>(r)); }
  void on_error(std::uint32_t, std::exception_ptr e) noexcept override {
    st_->set_error(std::move(e));
  }

 private:
  std::shared_ptr<ResultState<V>> st_;
};

// Gathers the chunks of a map into one vector; the first failing chunk fails the whole map (and
// makes it ready at once, as in Python).
template <class R>
class MapSink final : public TaskSink {
 public:
  MapSink(std::shared_ptr<ResultState<std::vector<R>>> st, std::size_t parts)
      : st_(std::move(st)), parts_(parts), left_(parts) {}
  void on_ok(std::uint32_t part, Reader& r) override {
    auto v = mproc::decode<std::vector<R>>(r);
    std::vector<R> all;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (failed_) return;
      parts_[part] = std::move(v);
      if (--left_ != 0) return;
      std::size_t n = 0;
      for (auto& p : parts_) n += p.size();
      all.reserve(n);
      for (auto& p : parts_)
        for (auto& x : p) all.push_back(std::move(x));
      parts_.clear();
    }
    st_->set_value(std::move(all));
  }
  void on_error(std::uint32_t, std::exception_ptr e) noexcept override {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (failed_) return;
      failed_ = true;
      parts_.clear();
    }
    st_->set_error(std::move(e));
  }

 private:
  std::shared_ptr<ResultState<std::vector<R>>> st_;
  std::mutex mu_;
  std::vector<std::vector<R>> parts_;
  std::size_t left_;
  bool failed_ = false;
};

// Collects the chunks of an imap as they complete.
template <class R>
class IMapSink final : public TaskSink {
 public:
  struct Part {
    std::vector<R> values;
    std::exception_ptr error;
  };
  void on_ok(std::uint32_t part, Reader& r) override {
    auto v = mproc::decode<std::vector<R>>(r);
    {
      std::lock_guard<std::mutex> g(mu_);
      done_.emplace(part, Part{std::move(v), nullptr});
      order_.push_back(part);
    }
    cv_.notify_all();
  }
  void on_error(std::uint32_t part, std::exception_ptr e) noexcept override {
    {
      std::lock_guard<std::mutex> g(mu_);
      done_.emplace(part, Part{{}, std::move(e)});
      order_.push_back(part);
    }
    cv_.notify_all();
  }
  // Takes the chunk `part` (ordered) or the oldest completed one (part empty); nullopt when the
  // deadline passed first.
  std::optional<Part> take(std::optional<std::uint64_t> part, const Deadline& deadline) {
    std::unique_lock<std::mutex> lk(mu_);
    auto have = [&] { return part ? done_.count(*part) != 0 : !order_.empty(); };
    if (!deadline) {
      cv_.wait(lk, have);
    } else if (!cv_.wait_until(lk, *deadline, have)) {
      return std::nullopt;
    }
    std::uint64_t key = part ? *part : order_.front();
    if (!part) order_.pop_front();
    auto it = done_.find(key);
    Part p = std::move(it->second);
    done_.erase(it);
    if (part) std::erase(order_, key);
    return p;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::uint64_t, Part> done_;
  std::deque<std::uint64_t> order_;
};

template <class R, class P>
Deadline timeout_deadline(std::chrono::duration<R, P> timeout) {
  return Deadline(deadline_after(timeout));
}

}  // namespace detail

// The result of a task submitted with `apply_async`/`submit` (or of a whole `map_async`): a handle
// shared with the pool, cheap to copy. Mirrors multiprocessing.pool.AsyncResult (and, for submit,
// concurrent.futures.Future).
//
// Thread safety: safe (several threads may wait on copies of one AsyncResult). A default-
// constructed AsyncResult is empty: every method but `valid()` throws ValueError.
template <class R>
class AsyncResult {
  using V = detail::stored_t<R>;

 public:
  AsyncResult() = default;
  explicit AsyncResult(std::shared_ptr<detail::ResultState<V>> st) : st_(std::move(st)) {}

  [[nodiscard]] bool valid() const noexcept { return st_ != nullptr; }

  // Waits for the task, then returns its result (a copy; get() may be called again) or throws its
  // error (RemoteError, WorkerLost, BrokenPool, DecodeError). Mirrors AsyncResult.get().
  R get() const {
    state().wait_until(detail::Deadline());
    return result();
  }
  // As get(), waiting at most `timeout`; throws TimeoutError if the task is not done by then.
  // Mirrors AsyncResult.get(timeout).
  template <class Rep, class Per>
  R get(std::chrono::duration<Rep, Per> timeout) const {
    if (!state().wait_until(detail::timeout_deadline(timeout)))
      throw TimeoutError("mproc::AsyncResult::get: the result is not ready");
    return result();
  }
  // Blocks until the task is done. Mirrors AsyncResult.wait().
  void wait() const { state().wait_until(detail::Deadline()); }
  // Blocks at most `timeout`; true when the task is done. Mirrors AsyncResult.wait(timeout)
  // followed by ready().
  template <class Rep, class Per>
  bool wait(std::chrono::duration<Rep, Per> timeout) const {
    return state().wait_until(detail::timeout_deadline(timeout));
  }
  // True once the task is done (successfully or not; its callback has run). Never blocks.
  // Mirrors AsyncResult.ready().
  [[nodiscard]] bool ready() const { return state().ready(); }
  // True when the task is done and did not fail. Throws ValueError if it is not done yet.
  // Mirrors AsyncResult.successful().
  [[nodiscard]] bool successful() const {
    if (!state().ready()) throw ValueError("mproc::AsyncResult: the result is not ready");
    return !state().error();
  }

  // Moves the value out (internal: Pool::map uses it to avoid a copy).
  V take() {
    state().wait_until(detail::Deadline());
    if (state().error()) std::rethrow_exception(state().error());
    return std::move(state().value());
  }

 private:
  detail::ResultState<V>& state() const {
    if (!st_) throw ValueError("mproc::AsyncResult: empty result handle");
    return *st_;
  }
  R result() const {
    if (st_->error()) std::rethrow_exception(st_->error());
    if constexpr (!std::is_void_v<R>) return st_->value();
  }
  std::shared_ptr<detail::ResultState<V>> st_;
};

// concurrent.futures' name for the same thing.
template <class R>
using Future = AsyncResult<R>;

// A lazy sequence of results from `Pool::imap` (Ordered) or `Pool::imap_unordered`.
//
// Input is read, and tasks submitted, only as results are consumed: at most `max_in_flight()`
// chunks are submitted and not yet consumed at any time, so an infinite input runs in bounded
// memory (Python's imap reads its whole input eagerly). The input range must outlive this object
// when it was passed as an lvalue; an rvalue range (a temporary container or view) is kept inside.
//
// An exception thrown by the input range (its iterator) is rethrown by `next()` at its position:
// after every result of the elements before it (ordered), or after every submitted result
// (unordered); the sequence then ends. A task's error is thrown by the `next()` that reaches its
// chunk (with chunksize > 1 the other results of that chunk are lost, as in Python); iteration may
// go on after it.
//
// Usable in range-for (`for (R r : pool.imap(f, input))`): the iterator's increment calls next(),
// so errors surface from the loop's `++`/begin(). Thread safety: one consumer thread.
// Mirrors multiprocessing.pool.IMapIterator / IMapUnorderedIterator.
//
// `Src` is the input as passed to imap: `T&` (the range is referred to) or `T` (it is kept here,
// on the heap, so that moving an IMapResult never invalidates the input's iterator).
template <class R, class Src, class Fn, bool Ordered, bool Star>
class IMapResult {
  using Range = std::remove_cvref_t<Src>;
  using Elem = std::ranges::range_value_t<Range>;
  using Holder = std::conditional_t<std::is_lvalue_reference_v<Src>, std::remove_reference_t<Src>*,
                                    std::unique_ptr<Range>>;

 public:
  IMapResult(std::shared_ptr<detail::PoolCore> core, Fn f, Src&& src, std::size_t chunksize,
             std::size_t max_in_flight)
      : core_(std::move(core)),
        f_(f),
        range_(hold(std::forward<Src>(src))),
        chunksize_(chunksize == 0 ? 1 : chunksize),
        max_in_flight_(max_in_flight == 0 ? 1 : max_in_flight),
        sink_(std::make_shared<detail::IMapSink<R>>()) {}
  IMapResult(IMapResult&&) = default;
  IMapResult& operator=(IMapResult&&) = default;
  IMapResult(const IMapResult&) = delete;
  IMapResult& operator=(const IMapResult&) = delete;

  // The next result; empty at the end of the input. Blocks until it is available. Throws the
  // task's error, or the input range's exception at its position. Mirrors IMapIterator.next().
  std::optional<R> next() { return next_at(detail::Deadline()); }
  // As next(), waiting at most `timeout`; throws TimeoutError if no result came in time (nothing is
  // lost: call again). Mirrors IMapIterator.next(timeout).
  template <class Rep, class Per>
  std::optional<R> next(std::chrono::duration<Rep, Per> timeout) {
    return next_at(detail::timeout_deadline(timeout));
  }

  // Chunks submitted whose results have not been taken by next() yet (never above
  // max_in_flight()).
  [[nodiscard]] std::size_t in_flight() const noexcept { return submitted_ - taken_; }
  [[nodiscard]] std::size_t max_in_flight() const noexcept { return max_in_flight_; }

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
  std::optional<R> next_at(const detail::Deadline& deadline) {
    for (;;) {
      if (!buffer_.empty()) {
        R v = std::move(buffer_.front());
        buffer_.pop_front();
        return v;
      }
      top_up();
      if (taken_ == submitted_) {
        if (input_error_) {
          exhausted_ = true;  // the sequence ends after the input's exception
          auto e = std::exchange(input_error_, nullptr);
          std::rethrow_exception(e);
        }
        return std::nullopt;
      }
      std::optional<std::uint64_t> want;
      if constexpr (Ordered) want = taken_;
      auto part = sink_->take(want, deadline);
      if (!part) throw TimeoutError("mproc::IMapResult::next: no result came in time");
      ++taken_;
      if (part->error) std::rethrow_exception(part->error);
      for (auto& v : part->values) buffer_.push_back(std::move(v));
    }
  }

  static Holder hold(Src&& src) {
    if constexpr (std::is_lvalue_reference_v<Src>) {
      return &src;
    } else {
      return std::make_unique<Range>(std::move(src));
    }
  }
  auto& range() { return *range_; }

  // Submits chunks while fewer than max_in_flight_ are in flight and input remains.
  void top_up() {
    if (!started_) {
      it_.emplace(std::ranges::begin(range()));
      started_ = true;
    }
    while (!exhausted_ && !input_error_ && submitted_ - taken_ < max_in_flight_) {
      std::vector<Elem> chunk;
      try {
        while (chunk.size() < chunksize_ && *it_ != std::ranges::end(range())) {
          chunk.push_back(**it_);
          ++*it_;
        }
        if (*it_ == std::ranges::end(range())) exhausted_ = true;
      } catch (...) {
        input_error_ = std::current_exception();
      }
      if (chunk.empty()) break;
      std::vector<detail::TaskSpec> spec;
      spec.push_back(detail::TaskSpec{&detail::invoke_map<Fn, Elem, Star, R>,
                                      detail::make_payload(f_, chunk),
                                      static_cast<std::uint32_t>(submitted_)});
      core_->submit(std::move(spec), sink_);
      ++submitted_;
    }
  }

  std::shared_ptr<detail::PoolCore> core_;
  Fn f_;
  Holder range_;
  std::optional<std::ranges::iterator_t<std::remove_reference_t<Src>>> it_;
  bool started_ = false;
  bool exhausted_ = false;
  std::exception_ptr input_error_;
  std::size_t chunksize_;
  std::size_t max_in_flight_;
  std::uint64_t submitted_ = 0;
  std::uint64_t taken_ = 0;
  std::deque<R> buffer_;
  std::shared_ptr<detail::IMapSink<R>> sink_;
};

// A pool of worker processes. See the header comment for the design, the accepted callables and
// the failure behaviour. Move-only handle. Mirrors multiprocessing.Pool.
class MPROC_API Pool {
 public:
  // Starts the zygote and `options.processes` workers. Throws ValueError for processes <= 0 or
  // maxtasksperchild <= 0; ProcessError if called in a daemonic process (a pool worker);
  // std::system_error if a process cannot be created. Mirrors Pool(processes, initializer,
  // initargs, maxtasksperchild).
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

  // Runs `f(args...)` in a worker and returns its result (blocks). Throws the task's error.
  // Mirrors Pool.apply(func, args).
  template <class F, class... Args>
  requires std::is_invocable_v<F&, std::decay_t<Args>...>
  auto apply(F f, Args&&... args) { return apply_async(f, std::forward<Args>(args)...).get(); }

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

  // Executor style: the same as apply_async(f, args...). Mirrors Executor.submit(fn, *args).
  template <class F, class... Args>
  requires std::is_invocable_v<F&, std::decay_t<Args>...>
  auto submit(F f, Args&&... args) { return apply_async(f, std::forward<Args>(args)...); }

  // Applies `f` to every element of `range` in the workers; returns the results in input order.
  // Reads the whole input first (an exception from the input range propagates from here, before
  // anything is awaited). `chunksize` 0 chooses ceil(n / (4 * processes)) as Python does; chunks
  // whose encoded arguments exceed the mailbox limit are split. The first failing chunk's error is
  // thrown. `f` must return a value. Mirrors Pool.map(func, iterable, chunksize).
  template <class F, std::ranges::input_range Range>
  auto map(F f, Range&& range, std::size_t chunksize = 0) {
    return map_async(f, std::forward<Range>(range), chunksize).take();
  }
  // Mirrors Pool.map_async(func, iterable, chunksize): one AsyncResult for the whole vector.
  template <class F, std::ranges::input_range Range>
  auto map_async(F f, Range&& range, std::size_t chunksize = 0) {
    return map_impl<false>(f, std::forward<Range>(range), chunksize);
  }
  // As map, each element being a tuple (or pair) of arguments. Mirrors Pool.starmap.
  template <class F, std::ranges::input_range Range>
  auto starmap(F f, Range&& range, std::size_t chunksize = 0) {
    return starmap_async(f, std::forward<Range>(range), chunksize).take();
  }
  template <class F, std::ranges::input_range Range>
  auto starmap_async(F f, Range&& range, std::size_t chunksize = 0) {
    return map_impl<true>(f, std::forward<Range>(range), chunksize);
  }

  // Lazy, ordered: see IMapResult. `chunksize` elements per task (default 1, as Python);
  // `max_in_flight` chunks at most in flight (0: 64 per worker). Mirrors Pool.imap.
  template <class F, std::ranges::input_range Range>
  auto imap(F f, Range&& range, std::size_t chunksize = 1, std::size_t max_in_flight = 0) {
    return imap_impl<true, false>(f, std::forward<Range>(range), chunksize, max_in_flight);
  }
  // As imap, results in completion order. Mirrors Pool.imap_unordered.
  template <class F, std::ranges::input_range Range>
  auto imap_unordered(F f, Range&& range, std::size_t chunksize = 1,
                      std::size_t max_in_flight = 0) {
    return imap_impl<false, false>(f, std::forward<Range>(range), chunksize, max_in_flight);
  }

  // No more tasks may be submitted (they throw ValueError); tasks already submitted still run.
  // Never blocks. Mirrors Pool.close().
  void close();
  // Kills the workers now, without waiting for running tasks; every unfinished task fails with
  // BrokenPool. Returns once the workers and the zygote are gone (promptly). Must not be called
  // from a callback. Mirrors Pool.terminate().
  void terminate();
  // Waits until every submitted task is done, then stops the workers and waits for them. Throws
  // ValueError if neither close() nor terminate() was called. Must not be called from a callback.
  // Mirrors Pool.join().
  void join();

  // Tasks (chunks) accepted and not yet done: a snapshot.
  [[nodiscard]] std::size_t unfinished() const;

 private:
  detail::PoolCore& core() const;

  template <class R, class F, class Tuple, class CB, class ECB>
  AsyncResult<R> submit_one(F f, Tuple args, CB callback, ECB error_callback) {
    static_assert(detail::check_callable<F>());
    using V = detail::stored_t<R>;
    auto st = std::make_shared<detail::ResultState<V>>();
    if constexpr (!std::is_same_v<CB, std::nullptr_t>) {
      if constexpr (std::is_void_v<R>) {
        st->callback = [cb = std::move(callback)](const V&) { cb(); };
      } else {
        st->callback = std::move(callback);
      }
    }
    if constexpr (!std::is_same_v<ECB, std::nullptr_t>)
      st->error_callback = std::move(error_callback);
    std::vector<detail::TaskSpec> spec;
    spec.push_back(
        detail::TaskSpec{&detail::invoke_apply<F, Tuple>, detail::make_payload(f, args), 0});
    core().submit(std::move(spec), std::make_shared<detail::ApplySink<V>>(st));
    return AsyncResult<R>(std::move(st));
  }

  template <bool Star, class F, class Range>
  auto map_impl(F f, Range&& range, std::size_t chunksize) {
    static_assert(detail::check_callable<F>());
    using Elem = std::ranges::range_value_t<Range>;
    using R0 = decltype(call_elem<Star>(f, std::declval<Elem>()));
    static_assert(!std::is_void_v<R0>, "mproc::Pool::map: the function must return a value");
    using R = std::decay_t<R0>;
    std::vector<Elem> items;
    if constexpr (std::ranges::sized_range<Range>) items.reserve(std::ranges::size(range));
    for (auto&& e : range) items.push_back(std::forward<decltype(e)>(e));
    auto st = std::make_shared<detail::ResultState<std::vector<R>>>();
    if (items.empty()) {
      st->set_value({});
      return AsyncResult<std::vector<R>>(std::move(st));
    }
    const std::size_t n = items.size();
    const std::size_t workers = static_cast<std::size_t>(core().processes());
    if (chunksize == 0) chunksize = (n + 4 * workers - 1) / (4 * workers);
    std::vector<detail::TaskSpec> spec;
    const std::size_t limit = core().max_task_bytes();
    // Encodes items[b, e) as one task, splitting it in halves while it is too large.
    auto add = [&](auto&& self, std::size_t b, std::size_t e) -> void {
      std::vector<Elem> chunk(
          std::make_move_iterator(items.begin() + static_cast<std::ptrdiff_t>(b)),
          std::make_move_iterator(items.begin() + static_cast<std::ptrdiff_t>(e)));
      auto payload = detail::make_payload(f, chunk);
      if (payload.size() > limit && e - b > 1) {
        for (std::size_t i = b; i < e; ++i) items[i] = std::move(chunk[i - b]);
        std::size_t mid = b + (e - b) / 2;
        self(self, b, mid);
        self(self, mid, e);
        return;
      }
      spec.push_back(detail::TaskSpec{&detail::invoke_map<F, Elem, Star, R>, std::move(payload),
                                      static_cast<std::uint32_t>(spec.size())});
    };
    for (std::size_t b = 0; b < n; b += chunksize) add(add, b, std::min(n, b + chunksize));
    auto sink = std::make_shared<detail::MapSink<R>>(st, spec.size());
    core().submit(std::move(spec), sink);
    return AsyncResult<std::vector<R>>(std::move(st));
  }

  template <bool Star, class F, class E>
  static auto call_elem(F& f, E&& e) {
    if constexpr (Star) {
      return std::apply(f, std::forward<E>(e));
    } else {
      return std::invoke(f, std::forward<E>(e));
    }
  }

  // Default imap window, in chunks per worker: deep enough that workers never wait for the
  // parent to hand out the next item (measured with chunksize 1 on 2 workers: 4 per worker gave
  // 11-14 us per item, 16 gave about 4 us, 64 about 1.7 us), small enough to stay bounded.
  static constexpr std::size_t kInFlightPerWorker = 64;

  template <bool Ordered, bool Star, class F, class Range>
  auto imap_impl(F f, Range&& range, std::size_t chunksize, std::size_t max_in_flight) {
    static_assert(detail::check_callable<F>());
    using Elem = std::ranges::range_value_t<std::remove_cvref_t<Range>>;
    using R0 = decltype(call_elem<Star>(f, std::declval<Elem>()));
    static_assert(!std::is_void_v<R0>, "mproc::Pool::imap: the function must return a value");
    using R = std::decay_t<R0>;
    if (max_in_flight == 0)
      max_in_flight = kInFlightPerWorker * static_cast<std::size_t>(core().processes());
    return IMapResult<R, Range, F, Ordered, Star>(core_, f, std::forward<Range>(range), chunksize,
                                                  max_in_flight);
  }

  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace mproc
