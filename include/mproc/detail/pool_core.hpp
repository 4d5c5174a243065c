// mproc/detail/pool_core.hpp — the machinery behind mproc::Pool (see mproc/pool.hpp): how a task
// is encoded and run, the non-template core (src/pool/), and where each task's outcome goes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mproc/byte_stream.hpp>
#include <mproc/codec.hpp>
#include <mproc/detail/expiry.hpp>
#include <mproc/detail/progress.hpp>
#include <mproc/detail/std_light.hpp>
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

// Elements [begin, end) of a chunk of map/imap (indices in the chunk).
struct Span {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  template <class A>
  void serialize(A& a) {
    a(begin, end);
  }
};
using Spans = std::vector<Span>;

// The number of elements in `spans`.
inline std::uint64_t span_count(const Spans& spans) noexcept {
  std::uint64_t n = 0;
  for (const Span& s : spans) n += s.end - s.begin;
  return n;
}

// What the code that runs a task in a worker sees of it (made by the worker loop,
// src/pool/worker.cpp; its non-inline members are in src/pool/task_context.cpp).
//
// A chunk of map/imap records its elements' outcomes as it runs them, in a staging area of shared
// memory that the parent reads if the worker dies: so a death loses no finished work and runs
// nothing twice. Per element: begin_element(i) (the parent then knows which element was running:
// that one alone fails with WorkerLost), then its outcome is staged: a value's encoding appended
// to the values area (stage_value()), or an error record (index, type name, what()) to the errors
// area (stage_error()); one store of a shared word publishes it. The staged outcomes travel to
// the parent as one *piece* when an area is full, when the chunk has run for a while since the
// last piece (flush_due(), a few milliseconds: progress and imap_unordered see them early), and at
// the end (the task's result). A piece's bytes: the errors area's size (uint64), its error records,
// then the values of the covered elements that did not fail, in order (so a piece of trivially
// copyable values decodes as one block). See "Pool" in docs/design.md.
//
// The layouts that cross the process boundary here — the staged word and a piece — are defined by
// the static members below and nowhere else: the worker writes them (inline, on the per-element
// path), the parent's dispatcher reads the staged word of a dead worker and re-forms its piece
// (src/pool/protocol.hpp, which holds the rest of the wire protocol), and decode_piece reads a
// piece.
class MPROC_API TaskContext {
 public:
  // The staged word: the count of staged records (bits 0-23), the bytes of their values (24-47)
  // and of their error records (48-63), published with one store.
  struct Staged {
    std::uint64_t records = 0;
    std::uint64_t value_bytes = 0;
    std::uint64_t error_bytes = 0;
  };
  static constexpr std::uint64_t pack_staged(std::uint64_t records, std::uint64_t value_bytes,
                                             std::uint64_t error_bytes) noexcept {
    return records | (value_bytes << 24) | (error_bytes << 48);
  }
  static constexpr Staged unpack_staged(std::uint64_t word) noexcept {
    return Staged{word & 0xffffff, (word >> 24) & 0xffffff, word >> 48};
  }
  // A piece: the bytes of its error records (uint64), the error records, then the values.
  static constexpr std::size_t piece_bytes(std::size_t error_bytes,
                                           std::size_t value_bytes) noexcept {
    return sizeof(std::uint64_t) + error_bytes + value_bytes;
  }
  static void write_piece(Writer& w, const std::byte* errors, std::size_t error_bytes,
                          const std::byte* values, std::size_t value_bytes);
  // Reads a piece's header: the bytes of its error records, which follow. Throws DecodeError when
  // there are fewer bytes left.
  static std::uint64_t read_piece_header(Reader& r);
  // An error record: the element's index in the chunk, its exception's type name and what().
  static std::size_t error_record_bytes(const std::string& type, const std::string& what);
  static void write_error_record(Writer& w, std::uint64_t index, const std::string& type,
                                 const std::string& what);
  static void read_error_record(Reader& r, std::uint64_t& index, std::string& type,
                                std::string& what);

  // Sends a piece: the outcomes of the elements `covered` (errors and values as above).
  using EmitFn = void (*)(void* owner, const Spans& covered, const std::byte* errors,
                          std::size_t error_bytes, const std::byte* values,
                          std::size_t value_bytes);
  // `shared`: the worker slot's record and staging areas (SlotShared, src/pool/protocol.hpp).
  TaskContext(Spans run, void* shared, EmitFn emit_fn, void* owner) noexcept;

  // Chunks: the elements to run, in order (empty: all of them).
  [[nodiscard]] const Spans& run() const noexcept { return run_; }
  // Tasks of apply/submit: the encoded result.
  std::vector<std::byte>& out() noexcept { return out_; }

  // Chunks: element `index` begins (one relaxed store).
  void begin_element(std::uint64_t index) noexcept {
    element_->store(index + 1, std::memory_order_relaxed);
  }
  // Chunks: element `index` returned `v`. Throws what encoding `v` throws (nothing is staged then).
  template <class R>
  void stage_value(std::uint64_t index, const R& v) {
    const std::size_t bytes = mproc::encoded_size(v);
    if (bytes > value_cap_ - value_bytes_ || records_ == kMaxRecords) [[unlikely]] {
      if (!make_room(bytes)) {  // larger than the values area: it travels alone
        std::vector<std::byte> alone(bytes);
        Writer w(alone.data(), alone.data() + bytes);
        mproc::encode(w, v);
        send_alone(index, nullptr, 0, alone.data(), bytes);
        return;
      }
    }
    if constexpr (bitwise_v<R>) {  // its encoding is its object bytes
      std::memcpy(values_ + value_bytes_, &v, sizeof(R));
    } else {
      Writer w(values_ + value_bytes_, values_ + value_bytes_ + bytes);
      mproc::encode(w, v);
    }
    value_bytes_ += bytes;
    commit(index);
  }
  // Chunks: element `index` threw (type name and what()).
  void stage_error(std::uint64_t index, const std::string& type, const std::string& what);
  // Chunks: true when the staged outcomes should be sent now. Reads the clock only every so many
  // elements (fewer as elements get shorter).
  bool flush_due() noexcept {
    if (--countdown_ != 0) return false;
    return check_clock();
  }
  // Chunks: sends the staged outcomes (if any) now.
  void flush();
  // Chunks: every element has run; what is staged is the task's result.
  void end_chunk() noexcept { chunk_ = true; }
  [[nodiscard]] bool chunk() const noexcept { return chunk_; }
  // Chunks, after end_chunk(): hands what is staged to `final_emit` (the task's result).
  void finish(EmitFn final_emit, void* owner);

 private:
  static constexpr std::uint64_t kMaxRecords = (std::uint64_t{1} << 24) - 1;
  void commit(std::uint64_t index) {
    if (records_ == 0) staged_first_->store(index, std::memory_order_relaxed);
    ++records_;
    publish();
    if (!covered_.empty() && covered_.back().end == index) [[likely]]
      ++covered_.back().end;
    else
      covered_.push_back(Span{index, index + 1});
  }
  // One store: the staged records, their value and error bytes (pack_staged).
  void publish() noexcept {
    staged_->store(pack_staged(records_, value_bytes_, error_bytes_), std::memory_order_relaxed);
  }
  bool make_room(std::size_t value_bytes);
  void send_alone(std::uint64_t index, const std::byte* errors, std::size_t error_bytes,
                  const std::byte* values, std::size_t value_bytes);
  bool check_clock() noexcept;

  Spans run_;
  std::vector<std::byte> out_;
  Spans covered_;  // of the staged records
  std::atomic<std::uint64_t>* element_;
  std::atomic<std::uint64_t>* staged_;
  std::atomic<std::uint64_t>* staged_first_;
  std::byte* values_;
  std::byte* errors_;
  std::size_t value_cap_;
  std::size_t error_cap_;
  EmitFn emit_;
  void* owner_;
  std::size_t value_bytes_ = 0;
  std::size_t error_bytes_ = 0;
  std::uint64_t records_ = 0;
  std::uint64_t countdown_ = 1;
  std::uint64_t stride_ = 1;
  std::int64_t last_check_ns_ = 0;
  std::int64_t last_emit_ns_ = 0;
  bool chunk_ = false;
};

// Runs a task in a worker: reads the callable and the arguments from `in`, writes the encoded
// result to ctx.out(). Throws whatever the task throws.
using Invoker = void (*)(Reader& in, TaskContext& ctx);

// Where a task's outcome goes; called on the pool's result thread (or, for failures, on the thread
// that calls terminate()). `part` is the index the submitter gave the task. A task of
// apply/submit gets on_ok or on_error once; a chunk of map/imap gets on_elements and
// on_elements_error for disjoint sets of its elements until each has exactly one outcome.
class MPROC_API TaskSink {
 public:
  virtual ~TaskSink();
  // Decodes the result; may throw (the core then calls on_error with that exception if it is a
  // DecodeError, and otherwise with a DecodeError naming it: std::bad_alloc from a result too
  // large for this process is a result that cannot be decoded here).
  virtual void on_ok(std::uint64_t part, Reader& result);
  virtual void on_error(std::uint64_t part, std::exception_ptr error) noexcept;
  // Chunks: the outcomes of the elements `covered` (indices in the chunk, whose element 0 is the
  // input's element `first`), as staged by invoke_chunk in worker `pid` in `ns` nanoseconds (0:
  // unknown). May throw as on_ok (the core then calls on_elements_error for the same elements).
  virtual void on_elements(std::uint64_t part, std::uint64_t first, const Spans& covered,
                           std::int32_t pid, std::uint64_t ns, Reader& result);
  // Chunks: the elements `covered` fail with `error`.
  virtual void on_elements_error(std::uint64_t part, std::uint64_t first, const Spans& covered,
                                 std::exception_ptr error) noexcept;
};

// A task to submit. `elements` is 0 for a task of apply/submit, and the number of elements of a
// chunk of map/imap, whose element 0 is the input's element `first`.
struct TaskSpec {
  Invoker invoker;
  std::vector<std::byte> payload;
  std::uint64_t part;
  std::uint64_t first = 0;
  std::uint64_t elements = 0;
};

// The non-template part of Pool: a facade over the parent's dispatcher, the worker launcher and
// the channels between them (src/pool/core.cpp; the parts are described in docs/design.md, "Pool").
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
  // The encoded size an automatic chunk of map/imap aims at (at most): its elements are taken
  // while their encoded sizes add up to no more than this (a single larger element is a chunk of
  // its own). Well inside a mailbox message, so a chunk is encoded once and never split.
  [[nodiscard]] static std::size_t chunk_bytes() noexcept;
  [[nodiscard]] int processes() const noexcept;
  void close();
  void terminate();
  void join();
  // Tasks accepted whose outcome has not been delivered yet (a snapshot).
  [[nodiscard]] std::size_t unfinished() const;

 private:
  struct Impl;
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

// A chunk's payload: the callable, then elements [b, e) of `items` encoded as a std::vector of
// them (what invoke_chunk decodes), straight from `items`: each byte is written once.
// `bytes`: the elements' encoded sizes added up.
template <class F, class Items>
std::vector<std::byte> make_chunk_payload(const F& f, const Items& items, std::size_t b,
                                          std::size_t e, std::size_t bytes) {
  using E = std::ranges::range_value_t<Items>;
  const std::size_t fn = callable_codec<F>::size(f);
  std::vector<std::byte> out(fn + kCountBytes + bytes);
  Writer w(out.data(), out.data() + out.size());
  callable_codec<F>::write(w, f);
  write_count(w, e - b);
  if constexpr (bitwise_v<E> && requires { items.data(); }) {
    w.write(items.data() + b, (e - b) * sizeof(E));
  } else {
    for (std::size_t i = b; i < e; ++i) codec<E>::encode(w, items[i]);
  }
  return out;
}

template <class R>
using stored_t = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

template <class F, class Tuple>
void invoke_apply(Reader& in, TaskContext& ctx) {
  F f = callable_codec<F>::read(in);
  Tuple args = mproc::decode<Tuple>(in);
  using R = decltype(std::apply(f, std::move(args)));
  if constexpr (std::is_void_v<R>) {
    std::apply(f, std::move(args));
    ctx.out() = mproc::to_bytes(std::monostate{});
  } else {
    ctx.out() = mproc::to_bytes(std::apply(f, std::move(args)));
  }
}

// The demangled type name and what() of the exception being handled (in a catch block).
MPROC_API void describe_current_exception(std::string& type, std::string& what) noexcept;
// The error a task's exception becomes in the caller: RemoteError, or, for a type registered with
// register_remote_exception, that type with the RemoteError nested (std::throw_with_nested).
MPROC_API std::exception_ptr remote_error(const std::string& type, const std::string& what,
                                          std::int32_t pid, TaskOrigin origin = {});
// Makes tasks' exceptions whose demangled type name is `type_name` come back from `make`.
using RemoteFactory = std::exception_ptr (*)(const std::string& what, const RemoteError& info);
MPROC_API void register_remote_exception(const std::type_info& type, RemoteFactory make);

// getpid(), without <unistd.h> in a public header.
MPROC_API std::int32_t current_process_id() noexcept;

// An element of a chunk that threw: its index in the chunk, type name and what().
using ElementError = std::tuple<std::uint64_t, std::string, std::string>;

// A chunk of map/imap (Star: the elements are argument tuples, as starmap). Runs the elements the
// context names, in order, staging each one's outcome (see TaskContext); an element that throws
// does not stop the chunk. A value that cannot be encoded (its codec throws) is that element's
// error. The worker loop sends what is staged at the end.
template <class F, class E, bool Star, class R>
void invoke_chunk(Reader& in, TaskContext& ctx) {
  F f = callable_codec<F>::read(in);
  auto items = mproc::decode<std::vector<E>>(in);
  Spans run = ctx.run();
  if (run.empty()) run.push_back(Span{0, items.size()});
  for (const Span& s : run)
    if (s.begin >= s.end || s.end > items.size())
      throw DecodeError("mproc::Pool: a chunk's list of elements to run is out of range");
  std::uint64_t left = span_count(run);
  for (const Span& s : run) {
    for (std::uint64_t i = s.begin; i < s.end; ++i) {
      ctx.begin_element(i);
      try {
        if constexpr (Star) {
          ctx.stage_value(i, std::apply(f, std::move(items[i])));
        } else {
          ctx.stage_value(i, std::invoke(f, std::move(items[i])));
        }
      } catch (...) {
        std::string type, what;
        describe_current_exception(type, what);
        ctx.stage_error(i, type, what);
      }
      if (--left != 0 && ctx.flush_due()) ctx.flush();
    }
  }
  ctx.end_chunk();
}

// The outcomes of some elements of a chunk, as one piece of a worker's result: the values of the
// covered elements that succeeded, in order, and the errors by index in the chunk (ascending).
template <class R>
struct Piece {
  std::vector<R> values;
  std::vector<std::pair<std::uint64_t, std::exception_ptr>> errors;
};

// Decodes a piece (see TaskContext) of the elements `covered`, sent by worker `pid`; the errors
// name their position (first + index). Throws DecodeError when it does not match the covered
// elements.
template <class R>
Piece<R> decode_piece(Reader& r, std::uint64_t first, const Spans& covered, std::int32_t pid) {
  Piece<R> p;
  const auto error_bytes = TaskContext::read_piece_header(r);
  if (error_bytes != 0) {
    std::vector<std::byte> buf(static_cast<std::size_t>(error_bytes));
    r.read(buf.data(), buf.size());
    Reader er(buf.data(), buf.size());
    std::size_t c = 0;  // the span of `covered` that holds the next error
    while (er.remaining() != 0) {
      std::uint64_t index = 0;
      std::string type, what;
      TaskContext::read_error_record(er, index, type, what);
      while (c < covered.size() && covered[c].end <= index) ++c;
      if (c == covered.size() || index < covered[c].begin ||
          (!p.errors.empty() && index <= p.errors.back().first))
        throw DecodeError("mproc::Pool: a chunk's result does not match its elements");
      p.errors.emplace_back(
          index, remote_error(type, what, pid,
                              TaskOrigin{.position = static_cast<std::size_t>(first + index)}));
    }
  }
  const std::uint64_t n = span_count(covered) - p.errors.size();
  if constexpr (bitwise_v<R> && std::is_default_constructible_v<R>) {
    if (r.remaining() != n * sizeof(R))
      throw DecodeError("mproc::Pool: a chunk's result does not match its elements");
    read_block(r, p.values, static_cast<std::size_t>(n));
  } else {
    p.values.reserve(
        static_cast<std::size_t>(std::min<std::uint64_t>(n, r.remaining() / min_size_v<R> + 1)));
    for (std::uint64_t i = 0; i < n; ++i) p.values.push_back(mproc::decode<R>(r));
  }
  if (r.remaining() != 0)
    throw DecodeError("mproc::Pool: a chunk's result does not match its elements");
  return p;
}

// True when `covered` is the whole of a chunk of `size` elements.
inline bool covers_chunk(const Spans& covered, std::uint64_t size) noexcept {
  return covered.size() == 1 && covered[0].begin == 0 && covered[0].end == size;
}

// What a consumer of a map/imap takes: outcomes in order. `values` holds those that succeeded;
// `element_errors` the others, by ordinal (their place among all the outcomes of the part).
template <class R>
struct Outcomes {
  std::vector<R> values;
  std::vector<std::pair<std::uint64_t, std::exception_ptr>> element_errors;
  std::exception_ptr error;  // imap: the chunk could not be submitted (the sequence ends)
  bool completes_chunk = true;
};

// A piece as outcomes in its own order (imap_unordered takes them as they come).
template <class R>
Outcomes<R> piece_outcomes(const Spans& covered, Piece<R>&& p) {
  Outcomes<R> o;
  o.values = std::move(p.values);
  std::uint64_t before = 0;  // covered elements before covered[c]
  std::size_t c = 0;
  for (auto& [index, e] : p.errors) {
    while (covered[c].end <= index) before += covered[c].end - covered[c].begin, ++c;
    o.element_errors.emplace_back(before + (index - covered[c].begin), std::move(e));
  }
  return o;
}

// The outcomes of one chunk, gathered piece by piece (in any order) until each of its `size`
// elements has exactly one; then taken in index order. The common case, pieces that follow each
// other from element 0, is appended as it comes; any other order is kept by index.
template <class R>
class ChunkOutcomes {
 public:
  explicit ChunkOutcomes(std::uint64_t size) : size_(size) {}

  void add(const Spans& covered, Piece<R>&& p) {
    if (!spread_ && covered.size() == 1 && covered[0].begin == got_) {
      if (values_.empty())
        values_ = std::move(p.values);
      else
        values_.insert(values_.end(), std::make_move_iterator(p.values.begin()),
                       std::make_move_iterator(p.values.end()));
      for (auto& e : p.errors) errors_.push_back(std::move(e));  // index == ordinal here
      got_ = covered[0].end;
      return;
    }
    spread();
    std::size_t v = 0, e = 0;
    for (const Span& s : covered) {
      for (std::uint64_t i = s.begin; i < s.end; ++i) {
        if (e < p.errors.size() && p.errors[e].first == i)
          by_index_errors_[i] = std::move(p.errors[e++].second);
        else
          by_index_values_[i].emplace(std::move(p.values[v++]));
        ++got_;
      }
    }
  }
  void add_error(const Spans& covered, const std::exception_ptr& error) {
    if (!spread_ && covered.size() == 1 && covered[0].begin == got_) {
      for (std::uint64_t i = covered[0].begin; i < covered[0].end; ++i)
        errors_.emplace_back(i, error);
      got_ = covered[0].end;
      return;
    }
    spread();
    for (const Span& s : covered)
      for (std::uint64_t i = s.begin; i < s.end; ++i) by_index_errors_[i] = error, ++got_;
  }
  [[nodiscard]] bool complete() const noexcept { return got_ >= size_; }
  // Once complete.
  Outcomes<R> take() {
    Outcomes<R> o;
    if (!spread_) {
      o.values = std::move(values_);
      o.element_errors = std::move(errors_);
      return o;
    }
    o.values.reserve(static_cast<std::size_t>(size_));
    for (std::uint64_t i = 0; i < size_; ++i) {
      if (by_index_errors_[i])
        o.element_errors.emplace_back(i, std::move(by_index_errors_[i]));
      else
        o.values.push_back(std::move(*by_index_values_[i]));
    }
    return o;
  }

 private:
  // From here on outcomes are kept by index (those appended so far move there).
  void spread() {
    if (spread_) return;
    spread_ = true;
    by_index_values_.resize(static_cast<std::size_t>(size_));
    by_index_errors_.resize(static_cast<std::size_t>(size_));
    std::size_t v = 0, e = 0;
    for (std::uint64_t i = 0; i < got_; ++i) {
      if (e < errors_.size() && errors_[e].first == i)
        by_index_errors_[i] = std::move(errors_[e++].second);
      else
        by_index_values_[i].emplace(std::move(values_[v++]));
    }
    values_.clear();
    errors_.clear();
  }

  std::uint64_t size_;
  std::uint64_t got_ = 0;  // outcomes so far (before spread: elements [0, got_))
  bool spread_ = false;
  std::vector<R> values_;
  std::vector<std::pair<std::uint64_t, std::exception_ptr>> errors_;
  std::vector<std::optional<R>> by_index_values_;
  std::vector<std::exception_ptr> by_index_errors_;
};

// A mutex, a condition variable, and the one wait that every timeout form of AsyncResult and
// IMapResult comes down to (src/pool_result.cpp): the forms of the public headers convert their
// Timeout or Deadline to an Expiry and call it.
class MPROC_API Waitable {
 public:
  Waitable() = default;
  Waitable(const Waitable&) = delete;
  Waitable& operator=(const Waitable&) = delete;

 protected:
  ~Waitable() = default;
  // With `lk` holding mu_: waits until `ready(arg)` is true or `expiry` passes (nullopt, or the
  // largest time point: never), re-waiting after spurious wake-ups; returns `ready(arg)`.
  bool wait_locked(std::unique_lock<std::mutex>& lk, const Expiry& expiry,
                   bool (*ready)(const void* arg), const void* arg) const;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
};

// The readiness of an AsyncResult: set once, waited for by any number of threads.
class MPROC_API ResultWait : protected Waitable {
 public:
  // Blocks until the result is ready or `expiry` passes; true when it is ready.
  bool wait(const Expiry& expiry) const;
  // True once the result is ready (its callback has run). Never blocks.
  [[nodiscard]] bool ready() const;

 protected:
  ~ResultWait() = default;
  // Makes the result ready and wakes every waiter.
  void finish() noexcept;

 private:
  bool done_ = false;
};

// The shared state behind an AsyncResult. V is the stored value type (std::monostate for void).
template <class V>
class ResultState final : public ResultWait {
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

  bool set_ = false;
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

// Gathers the chunks of a map into one vector; the first element that fails fails the whole map
// (and makes it ready at once, as in Python) with its error, which names the element's position.
// `sizes[part]`: the elements of each chunk.
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
  void on_elements(std::uint64_t part, std::uint64_t first, const Spans& covered, std::int32_t pid,
                   std::uint64_t, Reader& r) override {
    auto p = decode_piece<R>(r, first, covered, pid);
    if (!p.errors.empty()) {  // the element's error fails the map, as in Python
      fail(covered, std::move(p.errors.front().second));
      return;
    }
    std::vector<R> all;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (failed_) return;
      if (progress_) progress_->add(static_cast<std::size_t>(span_count(covered)));
      const auto i = static_cast<std::size_t>(part);
      auto it = pending_.find(part);
      if (it == pending_.end() && covers_chunk(covered, sizes_[i])) {
        parts_[i] = std::move(p.values);  // the common case: the chunk in one piece
      } else {
        if (it == pending_.end()) it = pending_.emplace(part, ChunkOutcomes<R>(sizes_[i])).first;
        it->second.add(covered, std::move(p));
        if (!it->second.complete()) return;
        parts_[i] = it->second.take().values;
        pending_.erase(it);
      }
      if (--left_ != 0) return;
      std::size_t n = 0;
      for (auto& chunk : parts_) n += chunk.size();
      all.reserve(n);
      for (auto& chunk : parts_)
        for (auto& x : chunk) all.push_back(std::move(x));
      parts_.clear();
    }
    if (progress_) progress_->finish();
    st_->set_value(std::move(all));
  }
  void on_elements_error(std::uint64_t, std::uint64_t, const Spans& covered,
                         std::exception_ptr e) noexcept override {
    fail(covered, std::move(e));
  }

 private:
  void fail(const Spans& covered, std::exception_ptr e) noexcept {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (failed_) return;
      failed_ = true;
      parts_.clear();
      pending_.clear();
      if (progress_) progress_->add(static_cast<std::size_t>(span_count(covered)));
    }
    if (progress_) progress_->finish();
    st_->set_error(std::move(e));
  }

  std::shared_ptr<ResultState<std::vector<R>>> st_;
  std::mutex mu_;
  const std::vector<std::size_t> sizes_;               // elements of each chunk
  std::vector<std::vector<R>> parts_;                  // the results of each chunk, once complete
  std::map<std::uint64_t, ChunkOutcomes<R>> pending_;  // chunks that came in several pieces
  std::size_t left_;
  bool failed_ = false;
  std::shared_ptr<ProgressTracker> progress_;
};

// Collects the outcomes of an imap as they come, and measures how long its elements take in the
// workers (for adaptive chunking). Ordered (imap): a chunk is taken whole, once each of its
// elements has its outcome. Unordered (imap_unordered): pieces are taken as they come.
template <class R>
class IMapSink final : public TaskSink, private Waitable {
 public:
  using Part = Outcomes<R>;
  IMapSink(bool ordered, std::shared_ptr<ProgressTracker> progress)
      : ordered_(ordered), progress_(std::move(progress)) {}

  // Called before the chunk `part` of `items` elements is submitted (parts are numbered 0, 1, 2,
  // ... in submission order).
  void expect(std::uint64_t part, std::size_t items) {
    std::lock_guard<std::mutex> g(mu_);
    if (ordered_)
      sizes_.push_back(items);  // part == sizes_base_ + sizes_.size()
    else
      left_.emplace(part, items);
  }
  void on_elements(std::uint64_t part, std::uint64_t first, const Spans& covered, std::int32_t pid,
                   std::uint64_t ns, Reader& r) override {
    auto p = decode_piece<R>(r, first, covered, pid);
    const std::uint64_t items = span_count(covered);
    {
      std::lock_guard<std::mutex> g(mu_);
      if (ns != 0) {
        busy_ns_ += static_cast<double>(ns);
        busy_items_ += items;
      }
      if (ordered_) {
        auto it = pending_locked(part, covered);
        if (it == pending_.end()) {  // the whole chunk in one piece: as it came
          done_.emplace(part, piece_outcomes(covered, std::move(p)));
        } else {
          it->second.add(covered, std::move(p));
          complete_locked(it);
        }
      } else {
        ready_.push_back(piece_outcomes(covered, std::move(p)));
        ready_.back().completes_chunk = count_locked(part, items);
      }
    }
    if (progress_) progress_->add(static_cast<std::size_t>(items));
    cv_.notify_all();
  }
  void on_elements_error(std::uint64_t part, std::uint64_t, const Spans& covered,
                         std::exception_ptr e) noexcept override {
    const std::uint64_t items = span_count(covered);
    try {
      std::lock_guard<std::mutex> g(mu_);
      if (ordered_) {
        auto it = pending_locked(part, covered);
        if (it == pending_.end()) {
          Part o;
          for (std::uint64_t i = 0; i < items; ++i) o.element_errors.emplace_back(i, e);
          done_.emplace(part, std::move(o));
        } else {
          it->second.add_error(covered, e);
          complete_locked(it);
        }
      } else {
        Part o;
        for (std::uint64_t i = 0; i < items; ++i) o.element_errors.emplace_back(i, e);
        o.completes_chunk = count_locked(part, items);
        ready_.push_back(std::move(o));
      }
    } catch (...) {
      // No memory to record the outcomes: nothing better can be done for this consumer.
    }
    if (progress_) progress_->add(static_cast<std::size_t>(items));
    cv_.notify_all();
  }
  // The chunk `part` could not be submitted: it ends the sequence with `e`.
  void on_error(std::uint64_t part, std::exception_ptr e) noexcept override {
    try {
      std::lock_guard<std::mutex> g(mu_);
      Part o;
      o.error = std::move(e);
      if (ordered_) {
        pending_.erase(part);
        done_.emplace(part, std::move(o));
      } else {
        left_.erase(part);
        ready_.push_back(std::move(o));
      }
    } catch (...) {
    }
    cv_.notify_all();
  }
  // Takes the chunk `part` (ordered sinks) or the oldest piece (part empty, unordered sinks);
  // nullopt when the deadline passed first.
  std::optional<Part> take(std::optional<std::uint64_t> part, const Expiry& expiry) {
    std::unique_lock<std::mutex> lk(mu_);
    const std::pair<const IMapSink*, const std::optional<std::uint64_t>*> want(this, &part);
    auto have = [](const void* arg) {
      const auto* w = static_cast<const decltype(want)*>(arg);
      return *w->second ? w->first->done_.count(**w->second) != 0 : !w->first->ready_.empty();
    };
    if (!wait_locked(lk, expiry, have, &want)) return std::nullopt;
    if (!part) {
      Part p = std::move(ready_.front());
      ready_.pop_front();
      return p;
    }
    auto it = done_.find(*part);
    Part p = std::move(it->second);
    done_.erase(it);
    while (!sizes_.empty() && sizes_base_ <= *part) {  // taken in order: its size is not needed
      sizes_.pop_front();
      ++sizes_base_;
    }
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
  using PendingIt = typename std::map<std::uint64_t, ChunkOutcomes<R>>::iterator;
  // Ordered: where the outcomes of chunk `part` gather; end() when the piece `covered` is the
  // whole chunk and nothing came before it (it then goes to done_ as it is).
  PendingIt pending_locked(std::uint64_t part, const Spans& covered) {
    auto it = pending_.find(part);
    if (it != pending_.end()) return it;
    const std::uint64_t n =
        part >= sizes_base_ && part - sizes_base_ < sizes_.size() ? sizes_[part - sizes_base_] : 0;
    if (covers_chunk(covered, n)) return it;
    return pending_.emplace(part, ChunkOutcomes<R>(n)).first;
  }
  void complete_locked(PendingIt it) {
    if (!it->second.complete()) return;
    done_.emplace(it->first, it->second.take());
    pending_.erase(it);
  }
  // Unordered: `items` more outcomes of chunk `part`; true when that completes it.
  bool count_locked(std::uint64_t part, std::uint64_t items) {
    auto it = left_.find(part);
    if (it == left_.end()) return true;
    if (it->second > items) {
      it->second -= items;
      return false;
    }
    left_.erase(it);
    return true;
  }

  const bool ordered_;
  std::deque<std::uint64_t> sizes_;  // ordered: elements of the chunks from sizes_base_ on
  std::uint64_t sizes_base_ = 0;
  std::map<std::uint64_t, ChunkOutcomes<R>> pending_;  // ordered: chunks not complete yet
  std::map<std::uint64_t, Part> done_;                 // ordered: complete chunks
  std::map<std::uint64_t, std::uint64_t> left_;        // unordered: outcomes still to come
  std::deque<Part> ready_;                             // unordered: pieces in completion order
  double busy_ns_ = 0;
  std::size_t busy_items_ = 0;
  std::shared_ptr<ProgressTracker> progress_;
};

}  // namespace detail
}  // namespace mproc
