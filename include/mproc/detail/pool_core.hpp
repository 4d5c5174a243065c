// mproc/detail/pool_core.hpp — the machinery behind mproc::Pool (see mproc/pool.hpp): how a task
// is encoded and run, the non-template core (src/pool.cpp), and where each task's outcome goes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mproc/byte_stream.hpp>
#include <mproc/codec.hpp>
#include <mproc/detail/deadline.hpp>
#include <mproc/detail/progress.hpp>
#include <mproc/errors.hpp>
#include <mproc/export.hpp>
#include <mproc/partial.hpp>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

namespace mproc {

struct PoolOptions;

namespace detail {

// Runs a task in a worker: reads the callable and the arguments from `in`, writes the encoded
// result to `out`. Throws whatever the task throws.
using Invoker = void (*)(Reader& in, std::vector<std::byte>& out);

// Where a task's outcome goes; called on the pool's result thread (or, for failures, on the thread
// that calls terminate()). `part` is the index the submitter gave the task.
class MPROC_API TaskSink {
 public:
  virtual ~TaskSink();
  // Decodes the result; may throw (the core then calls on_error with that exception if it is a
  // DecodeError, and otherwise with a DecodeError naming it: std::bad_alloc from a result too
  // large for this process is a result that cannot be decoded here).
  virtual void on_ok(std::uint64_t part, Reader& result) = 0;
  virtual void on_error(std::uint64_t part, std::exception_ptr error) noexcept = 0;
};

struct TaskSpec {
  Invoker invoker;
  std::vector<std::byte> payload;
  std::uint64_t part;
};

// The non-template part of Pool (src/pool.cpp).
class MPROC_API PoolCore {
 public:
  explicit PoolCore(PoolOptions options);
  ~PoolCore();
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  // Queues the tasks, all or none. Throws ValueError if the pool is not running; BrokenPool if it
  // is broken; ProcessError in another process than the creator. A payload larger than
  // max_task_bytes() gets its memfd when the task is dispatched; if that fails, the task fails
  // (through its sink, on the result thread) with std::system_error. A `continuation` (more
  // chunks of an imap started earlier) is accepted after close(), until join() or terminate()
  // stops the workers.
  void submit(std::vector<TaskSpec> tasks, const std::shared_ptr<TaskSink>& sink,
              bool continuation = false);
  // The largest payload that travels inside a worker's mailbox (about 256 KiB); a larger one is
  // copied into a memfd whose descriptor is passed to the worker, which maps it.
  [[nodiscard]] std::size_t max_task_bytes() const noexcept;
  [[nodiscard]] int processes() const noexcept;
  void close();
  void terminate();
  void join();
  // Tasks accepted whose outcome has not been delivered yet (a snapshot).
  [[nodiscard]] std::size_t unfinished() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// A task's payload: the callable, then the encoded arguments.
template <class F, class Args>
std::vector<std::byte> make_payload(const F& f, const Args& args) {
  const std::size_t fn = callable_codec<F>::size(f);
  std::vector<std::byte> out(fn + mproc::encoded_size(args));
  Writer w(out.data(), out.data() + out.size());
  callable_codec<F>::write(w, f);
  mproc::encode(w, args);
  return out;
}

template <class R>
using stored_t = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

template <class F, class Tuple>
void invoke_apply(Reader& in, std::vector<std::byte>& out) {
  F f = callable_codec<F>::read(in);
  Tuple args = mproc::decode<Tuple>(in);
  using R = decltype(std::apply(f, std::move(args)));
  if constexpr (std::is_void_v<R>) {
    std::apply(f, std::move(args));
    out = mproc::to_bytes(std::monostate{});
  } else {
    out = mproc::to_bytes(std::apply(f, std::move(args)));
  }
}

// The demangled type name and what() of the exception being handled (in a catch block).
MPROC_API void describe_current_exception(std::string& type, std::string& what) noexcept;
// The error a task's exception becomes in the caller: RemoteError, or, for a type registered with
// register_remote_exception, that type with the RemoteError nested (std::throw_with_nested).
MPROC_API std::exception_ptr remote_error(const std::string& type, const std::string& what,
                                          std::int32_t pid);
// Makes tasks' exceptions whose demangled type name is `type_name` come back from `make`.
using RemoteFactory = std::exception_ptr (*)(const std::string& what, const RemoteError& info);
MPROC_API void register_remote_exception(const std::type_info& type, RemoteFactory make);

// getpid(), without <unistd.h> in a public header.
MPROC_API std::int32_t current_process_id() noexcept;

// An element of an imap chunk that threw: its index in the chunk, type name and what().
using ElementError = std::tuple<std::uint64_t, std::string, std::string>;

// A chunk of map/imap (Star: the elements are argument tuples, as starmap). An element that throws
// does not stop the chunk: its error is recorded with its index, and the other elements go on. The
// result is the chunk's duration in the worker (nanoseconds; imap sizes its chunks with it), the
// worker's pid, the results of the elements that succeeded, and the errors.
template <class F, class E, bool Star, class R>
void invoke_chunk(Reader& in, std::vector<std::byte>& out) {
  const auto start = std::chrono::steady_clock::now();
  F f = callable_codec<F>::read(in);
  auto items = mproc::decode<std::vector<E>>(in);
  std::vector<R> results;
  results.reserve(items.size());
  std::vector<ElementError> errors;
  for (std::size_t i = 0; i < items.size(); ++i) {
    try {
      if constexpr (Star) {
        results.push_back(std::apply(f, std::move(items[i])));
      } else {
        results.push_back(std::invoke(f, std::move(items[i])));
      }
    } catch (...) {
      std::string type, what;
      describe_current_exception(type, what);
      errors.emplace_back(i, std::move(type), std::move(what));
    }
  }
  const auto ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
  const std::int32_t pid = current_process_id();
  out.resize(sizeof(ns) + sizeof(pid) + mproc::encoded_size(results) + mproc::encoded_size(errors));
  Writer w(out.data(), out.data() + out.size());
  w.write_value(ns);
  w.write_value(pid);
  mproc::encode(w, results);
  mproc::encode(w, errors);
}

// The progress of one map/imap: a user callback and/or a bar on stderr. add() runs on the pool's
// result thread; finish() on that thread or the consumer's.
class ProgressTracker {
 public:
  using Callback = std::function<void(std::size_t done, std::optional<std::size_t> total)>;

  // nullptr when there is nothing to report to (no callback, and no bar or stderr is no terminal).
  static std::shared_ptr<ProgressTracker> make(const Callback& cb, bool bar,
                                               std::optional<std::size_t> total) {
    std::unique_ptr<ProgressBar> b = bar ? ProgressBar::on_stderr("") : nullptr;
    if (!cb && !b) return nullptr;
    return std::make_shared<ProgressTracker>(cb, std::move(b), total);
  }
  ProgressTracker(Callback cb, std::unique_ptr<ProgressBar> bar, std::optional<std::size_t> total)
      : cb_(std::move(cb)), bar_(std::move(bar)), total_(total) {}
  ~ProgressTracker() { finish(); }
  ProgressTracker(const ProgressTracker&) = delete;
  ProgressTracker& operator=(const ProgressTracker&) = delete;

  // `items` more elements are done (successfully or not). A callback's exception is dropped.
  void add(std::size_t items) noexcept {
    const std::size_t done = done_.fetch_add(items, std::memory_order_relaxed) + items;
    if (cb_) {
      try {
        cb_(done, total_);
      } catch (...) {
      }
    }
    if (bar_) bar_->update(done, total_);
  }
  // The bar's last line (once).
  void finish() noexcept {
    if (bar_) bar_->finish(done_.load(std::memory_order_relaxed), total_);
  }

 private:
  Callback cb_;
  std::unique_ptr<ProgressBar> bar_;
  std::optional<std::size_t> total_;
  std::atomic<std::size_t> done_{0};
};

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

// Installs Python-style callbacks on a result state: `callback(const R&)` (or `callback()` when R
// is void) and `error_callback(const std::exception_ptr&)`; nullptr means none.
template <class R, class V, class CB, class ECB>
void set_callbacks(ResultState<V>& st, CB callback, ECB error_callback) {
  if constexpr (!std::is_same_v<CB, std::nullptr_t>) {
    if constexpr (std::is_void_v<R>) {
      st.callback = [cb = std::move(callback)](const V&) { cb(); };
    } else {
      st.callback = std::move(callback);
    }
  }
  if constexpr (!std::is_same_v<ECB, std::nullptr_t>) st.error_callback = std::move(error_callback);
}

template <class V>
class ApplySink final : public TaskSink {
 public:
  explicit ApplySink(std::shared_ptr<ResultState<V>> st) : st_(std::move(st)) {}
  void on_ok(std::uint64_t, Reader& r) override { st_->set_value(mproc::decode<V>(r)); }
  void on_error(std::uint64_t, std::exception_ptr e) noexcept override {
    st_->set_error(std::move(e));
  }

 private:
  std::shared_ptr<ResultState<V>> st_;
};

// Gathers the chunks of a map into one vector; the first failing chunk fails the whole map (and
// makes it ready at once, as in Python). `sizes[part]`: the elements of each chunk (for progress).
template <class R>
class MapSink final : public TaskSink {
 public:
  MapSink(std::shared_ptr<ResultState<std::vector<R>>> st, std::vector<std::size_t> sizes,
          std::shared_ptr<ProgressTracker> progress)
      : st_(std::move(st)),
        sizes_(std::move(sizes)),
        parts_(sizes_.size()),
        left_(sizes_.size()),
        progress_(std::move(progress)) {}
  void on_ok(std::uint64_t part, Reader& r) override {
    (void)r.read_value<std::uint64_t>();  // the chunk's duration
    const auto pid = r.read_value<std::int32_t>();
    auto v = mproc::decode<std::vector<R>>(r);
    auto errors = mproc::decode<std::vector<ElementError>>(r);
    if (!errors.empty()) {  // the first error of the chunk fails the map, as in Python
      auto& first = errors.front();
      on_error(part, remote_error(std::get<1>(first), std::get<2>(first), pid));
      return;
    }
    std::vector<R> all;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (failed_) return;
      if (progress_) progress_->add(sizes_[part]);
      parts_[part] = std::move(v);
      if (--left_ != 0) return;
      std::size_t n = 0;
      for (auto& p : parts_) n += p.size();
      all.reserve(n);
      for (auto& p : parts_)
        for (auto& x : p) all.push_back(std::move(x));
      parts_.clear();
    }
    if (progress_) progress_->finish();
    st_->set_value(std::move(all));
  }
  void on_error(std::uint64_t part, std::exception_ptr e) noexcept override {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (failed_) return;
      failed_ = true;
      parts_.clear();
      if (progress_) progress_->add(sizes_[part]);
    }
    if (progress_) progress_->finish();
    st_->set_error(std::move(e));
  }

 private:
  std::shared_ptr<ResultState<std::vector<R>>> st_;
  std::mutex mu_;
  std::vector<std::size_t> sizes_;
  std::vector<std::vector<R>> parts_;
  std::size_t left_;
  bool failed_ = false;
  std::shared_ptr<ProgressTracker> progress_;
};

// Collects the chunks of an imap as they complete, and measures how long their elements take in
// the workers (for adaptive chunking).
template <class R>
class IMapSink final : public TaskSink {
 public:
  struct Part {
    std::vector<R> values;     // of the elements that succeeded, in order
    std::exception_ptr error;  // the whole chunk failed (worker lost, pool broken, ...)
    // By index; a vector, not a deque: an empty one allocates nothing (every chunk has one).
    std::vector<std::pair<std::uint64_t, std::exception_ptr>> element_errors;
  };
  // `ordered`: take() will ask for chunks by number (imap), so the completion order (what
  // imap_unordered takes from) need not be kept.
  IMapSink(bool ordered, std::shared_ptr<ProgressTracker> progress)
      : ordered_(ordered), progress_(std::move(progress)) {}

  // Called before the chunk `part` of `items` elements is submitted (only progress needs it: a
  // chunk that fails as a whole counts its elements as done).
  void expect(std::uint64_t part, std::size_t items) {
    if (!progress_) return;
    std::lock_guard<std::mutex> g(mu_);
    sizes_.emplace(part, items);
  }
  void on_ok(std::uint64_t part, Reader& r) override {
    const auto ns = r.read_value<std::uint64_t>();
    const auto pid = r.read_value<std::int32_t>();
    Part p{mproc::decode<std::vector<R>>(r), nullptr, {}};
    for (auto& [index, type, what] : mproc::decode<std::vector<ElementError>>(r))
      p.element_errors.emplace_back(index, remote_error(type, what, pid));
    const std::size_t items = p.values.size() + p.element_errors.size();
    {
      std::lock_guard<std::mutex> g(mu_);
      if (progress_) sizes_.erase(part);
      busy_ns_ += static_cast<double>(ns);
      busy_items_ += items;
      done_.emplace(part, std::move(p));
      if (!ordered_) order_.push_back(part);
    }
    if (progress_) progress_->add(items);
    cv_.notify_all();
  }
  void on_error(std::uint64_t part, std::exception_ptr e) noexcept override {
    std::size_t items = 0;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (auto it = sizes_.find(part); it != sizes_.end()) {
        items = it->second;
        sizes_.erase(it);
      }
      done_.emplace(part, Part{{}, std::move(e), {}});
      if (!ordered_) order_.push_back(part);
    }
    if (progress_) progress_->add(items);
    cv_.notify_all();
  }
  // Takes the chunk `part` (ordered sinks) or the oldest completed one (part empty, unordered
  // sinks); nullopt when the deadline passed first.
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
    return p;
  }
  // Mean time of one element in a worker so far, in nanoseconds; empty before any chunk succeeded.
  std::optional<double> ns_per_item() const {
    std::lock_guard<std::mutex> g(mu_);
    if (busy_items_ == 0) return std::nullopt;
    return busy_ns_ / static_cast<double>(busy_items_);
  }
  void finish_progress() noexcept {
    if (progress_) progress_->finish();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::uint64_t, Part> done_;
  const bool ordered_;
  std::deque<std::uint64_t> order_;  // completed chunks in completion order (unordered only)
  std::map<std::uint64_t, std::size_t> sizes_;
  double busy_ns_ = 0;
  std::size_t busy_items_ = 0;
  std::shared_ptr<ProgressTracker> progress_;
};

template <class R, class P>
Deadline timeout_deadline(std::chrono::duration<R, P> timeout) {
  return Deadline(deadline_after(timeout));
}

}  // namespace detail
}  // namespace mproc
