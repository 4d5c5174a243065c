// mproc/detail/pool_core.hpp — the machinery behind mproc::Pool (see mproc/pool.hpp): how a task
// is encoded and run, the non-template core (src/pool/), and where each task's outcome goes.
//
// No stability promise. Decided for the compile time of every file that includes mproc ("Header
// cost" in docs/design.md): this header and pool.hpp include none of <memory>, <atomic>,
// <functional>, <mutex>, <condition_variable>, <map>, <deque>, <variant>. Ownership is
// detail::Ref/Box, the words a worker shares are detail::Atomic, std::invoke is detail::invoke,
// AsyncResult<void> stores NoValue, and the sinks' bookkeeping (locks, waits, containers, counts)
// is non-template code in src/ behind the classes below (see "Where the outcomes of a task go").
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mproc/byte_stream.hpp>
#include <mproc/codec.hpp>
#include <mproc/detail/atomic.hpp>
#include <mproc/detail/expiry.hpp>
#include <mproc/detail/ref.hpp>
#include <mproc/detail/std_light.hpp>
#include <mproc/errors.hpp>
#include <mproc/export.hpp>
#include <mproc/partial.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace mproc {

struct PoolOptions;
struct Insights;                         // mproc/worker.hpp
enum class StartMethod : unsigned char;  // mproc/process.hpp

namespace detail {

class PoolLink;    // src/pool/cancel.cpp
class PoolEngine;  // src/pool/engine.hpp

// CLOCK_MONOTONIC now, in nanoseconds (the same clock in every process of the machine).
MPROC_API std::int64_t monotonic_ns() noexcept;

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
  // Chunks: the elements to run of a chunk of `elements` (all of them when run() is empty). Throws
  // DecodeError when run() names an element outside the chunk.
  [[nodiscard]] Spans checked_run(std::uint64_t elements) const;
  // Tasks of apply/submit: the encoded result.
  std::vector<std::byte>& out() noexcept { return out_; }

  // Chunks: element `index` begins (one relaxed store; and its start time when the chunk's
  // elements have a time limit).
  void begin_element(std::uint64_t index) noexcept {
    if (element_clock_ != nullptr) [[unlikely]]
      element_clock_->store(monotonic_ns(), order::relaxed);
    element_->store(index + 1, order::relaxed);
  }
  // Chunks: record each element's start time in `*clock` (a limit per element).
  void set_element_clock(Atomic<std::int64_t>* clock) noexcept { element_clock_ = clock; }
  // Insights: add the time spent decoding arguments and encoding results to `*total` (the
  // worker's figure). Without it code_mark() is 0 and add_code() does nothing: no clock read.
  void set_code_clock(Atomic<std::int64_t>* total) noexcept { code_total_ = total; }
  [[nodiscard]] std::int64_t code_mark() const noexcept {
    return code_total_ != nullptr ? monotonic_ns() : 0;
  }
  void add_code(std::int64_t ns) noexcept {
    if (code_total_ != nullptr)
      code_total_->store(code_total_->load(order::relaxed) + ns, order::relaxed);
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
    if (records_ == 0) staged_first_->store(index, order::relaxed);
    ++records_;
    publish();
    if (!covered_.empty() && covered_.back().end == index) [[likely]]
      ++covered_.back().end;
    else
      covered_.push_back(Span{index, index + 1});
  }
  // One store: the staged records, their value and error bytes (pack_staged).
  void publish() noexcept {
    staged_->store(pack_staged(records_, value_bytes_, error_bytes_), order::relaxed);
  }
  bool make_room(std::size_t value_bytes);
  void send_alone(std::uint64_t index, const std::byte* errors, std::size_t error_bytes,
                  const std::byte* values, std::size_t value_bytes);
  bool check_clock() noexcept;

  Spans run_;
  Atomic<std::int64_t>* element_clock_ = nullptr;
  Atomic<std::int64_t>* code_total_ = nullptr;
  std::vector<std::byte> out_;
  Spans covered_;  // of the staged records
  Atomic<std::uint64_t>* element_;
  Atomic<std::uint64_t>* staged_;
  Atomic<std::uint64_t>* staged_first_;
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

// Hands one outcome to `sink` as a pool's result thread does (the local dispatcher, mproc::mpi's
// engine): the error, or the result (`chunk`: the piece of the elements `covered`), which the sink
// decodes; a DecodeError it throws fails the task (or those elements) with that error, anything
// else with a DecodeError naming the result's size.
MPROC_API void deliver_outcome(TaskSink& sink, std::uint64_t part, bool chunk, std::uint64_t first,
                               const Spans& covered, std::int32_t pid, std::uint64_t ns,
                               const std::vector<std::byte>& payload,
                               const std::exception_ptr& error) noexcept;

// A task to submit. `elements` is 0 for a task of apply/submit, and the number of elements of a
// chunk of map/imap, whose element 0 is the input's element `first`.
// `fds`: the descriptors of the handles among the arguments (mproc/detail/travel.hpp), sent to the
// worker beside the task.
struct TaskSpec {
  Invoker invoker;
  std::vector<std::byte> payload;
  std::uint64_t part;
  std::uint64_t first = 0;
  std::uint64_t elements = 0;
  Descriptors fds{};
  // The time limit of the task (a chunk: of each of its elements), in nanoseconds; 0: the pool's.
  std::int64_t limit_ns = 0;
};

// A time limit as TaskSpec::limit_ns: 0 for none; nanoseconds, saturated, otherwise. Throws
// ValueError for a zero, negative or NaN one.
MPROC_API std::int64_t limit_ns_of(double seconds);
inline std::int64_t limit_ns(const std::optional<std::chrono::duration<double>>& limit) {
  return limit ? limit_ns_of(limit->count()) : 0;
}

// The non-template part of Pool: a facade over the parent's dispatcher, the worker launcher and
// the channels between them (src/pool/core.cpp; the parts are described in docs/design.md, "Pool").
class MPROC_API PoolCore {
 public:
  explicit PoolCore(PoolOptions options);
  // A core over another engine (mproc::mpi): every call below goes to `engine`, whose workers
  // number `processes` (the chunk sizes of map/imap follow it). Its tasks travel as to a fresh
  // image (fresh_image() is true, start_method() is spawn).
  PoolCore(Box<PoolEngine> engine, int processes);
  ~PoolCore();
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  // Queues the tasks, all or none. Throws ValueError if the pool is not running; BrokenPool if it
  // is broken; ProcessError in another process than the creator. A payload larger than
  // max_task_bytes() gets its memfd when the task is dispatched; if that fails, the task fails
  // (through its sink, on the result thread) with std::system_error. A `continuation` (more
  // chunks of an imap started earlier) is accepted after close(), until join() or terminate()
  // stops the workers.
  // Returns the id of the first task; the others have the ids that follow, in order.
  std::uint64_t submit(std::vector<TaskSpec> tasks, const Ref<TaskSink>& sink,
                       bool continuation = false);
  // What results use to reach the pool's tasks (cancel, running).
  [[nodiscard]] const Ref<PoolLink>& link() const noexcept;
  // Python's Executor.shutdown: close(); with `cancel_futures`, every task not started yet is
  // withdrawn (CancelledError); with `wait`, join().
  void shutdown(bool wait, bool cancel_futures);
  // The largest payload that travels inside a worker's mailbox (about 256 KiB); a larger one is
  // copied into a memfd whose descriptor is passed to the worker, which maps it.
  [[nodiscard]] std::size_t max_task_bytes() const noexcept;
  // The encoded size an automatic chunk of map/imap aims at (at most): its elements are taken
  // while their encoded sizes add up to no more than this (a single larger element is a chunk of
  // its own). Well inside a mailbox message, so a chunk is encoded once and never split.
  [[nodiscard]] static std::size_t chunk_bytes() noexcept;
  [[nodiscard]] int processes() const noexcept;
  // True when the workers are fresh images of the program (start method spawn or forkserver):
  // tasks then carry their code as relocatable references (travel_codec), not as addresses.
  [[nodiscard]] bool fresh_image() const noexcept;
  [[nodiscard]] StartMethod start_method() const noexcept;
  void close();
  void terminate();
  void join();
  // Tasks accepted whose outcome has not been delivered yet (a snapshot).
  [[nodiscard]] std::size_t unfinished() const;
  // PoolOptions::insights: the Pool's templates then time their encoding of tasks at submit and
  // report it (note_encoding: `tasks` encoded in `ns`).
  [[nodiscard]] bool insights_on() const noexcept;
  void note_encoding(std::uint64_t tasks, std::int64_t ns) noexcept;
  // Pool::insights() and the encoded values of Pool::exit_results(). ProcessError in another
  // process than the creator.
  [[nodiscard]] Insights insights() const;
  [[nodiscard]] std::vector<std::vector<std::byte>> exit_result_bytes() const;

 private:
  struct Impl;
  Box<Impl> impl_;            // the local dispatcher, its workers and channels; or null
  Box<PoolEngine> engine_;    // or another engine
  int engine_processes_ = 0;  // its workers
};

// How the callable of a task travels: to a worker forked from this program (its bytes, which mean
// the same there) or to a fresh image of it (travel_codec: code as relocatable references).
template <class F, bool Fresh>
using task_callable_codec = std::conditional_t<Fresh, travel_codec<F>, callable_codec<F>>;

// Thrown at submit for a callable that cannot travel to a pool's fresh-image workers: ValueError
// naming `type` and mproc::partial.
[[noreturn]] MPROC_API void throw_task_cannot_travel(const std::type_info& type);

// A task's payload: the callable, then the encoded arguments.
template <bool Fresh, class F, class Args>
std::vector<std::byte> make_payload(const F& f, const Args& args) {
  using C = task_callable_codec<F, Fresh>;
  const std::size_t fn = C::size(f);
  std::vector<std::byte> out(fn + mproc::encoded_size(args));
  Writer w(out.data(), out.data() + out.size());
  C::write(w, f);
  mproc::encode(w, args);
  return out;
}

// A chunk's payload: the callable, then elements [b, e) of `items` encoded as a std::vector of
// them (what invoke_chunk decodes), straight from `items`: each byte is written once.
// `bytes`: the elements' encoded sizes added up.
template <bool Fresh, class F, class Items>
std::vector<std::byte> make_chunk_payload(const F& f, const Items& items, std::size_t b,
                                          std::size_t e, std::size_t bytes) {
  using E = std::ranges::range_value_t<Items>;
  using C = task_callable_codec<F, Fresh>;
  const std::size_t fn = C::size(f);
  std::vector<std::byte> out(fn + kCountBytes + bytes);
  Writer w(out.data(), out.data() + out.size());
  C::write(w, f);
  write_count(w, e - b);
  if constexpr (bitwise_v<E> && requires { items.data(); }) {
    w.write(items.data() + b, (e - b) * sizeof(E));
  } else {
    for (std::size_t i = b; i < e; ++i) codec<E>::encode(w, items[i]);
  }
  return out;
}

// What an AsyncResult<void> stores and its task's worker sends back: nothing (one byte on the wire,
// as the codec encodes an empty trivially copyable class). Not std::monostate: that is in
// <variant>.
struct NoValue {};

template <class R>
using stored_t = std::conditional_t<std::is_void_v<R>, NoValue, R>;

template <class F, class Tuple, bool Fresh>
void invoke_apply(Reader& in, TaskContext& ctx) {
  const std::int64_t t0 = ctx.code_mark();
  F f = task_callable_codec<F, Fresh>::read(in);
  Tuple args = mproc::decode<Tuple>(in);
  const std::int64_t decoded = ctx.code_mark() - t0;
  using R = decltype(std::apply(f, std::move(args)));
  if constexpr (std::is_void_v<R>) {
    std::apply(f, std::move(args));
    const std::int64_t t1 = ctx.code_mark();
    ctx.out() = mproc::to_bytes(NoValue{});
    ctx.add_code(decoded + (ctx.code_mark() - t1));
  } else {
    decltype(auto) r = std::apply(f, std::move(args));
    const std::int64_t t1 = ctx.code_mark();
    ctx.out() = mproc::to_bytes(r);
    ctx.add_code(decoded + (ctx.code_mark() - t1));
  }
}

// The demangled type name and what() of the exception being handled (in a catch block).
MPROC_API void describe_current_exception(std::string& type, std::string& what) noexcept;
// The error a task's exception becomes in the caller: RemoteError, or, for a type registered with
// register_remote_exception, that type with the RemoteError nested (std::throw_with_nested).
MPROC_API std::exception_ptr remote_error(const std::string& type, const std::string& what,
                                          std::int32_t pid, TaskOrigin origin = {});
// The same with the worker's traceback (remote tracebacks: mproc::mpi rebuilds a remote rank's
// RemoteError with it).
MPROC_API std::exception_ptr remote_error(const std::string& type, const std::string& what,
                                          const std::string& trace, std::int32_t pid,
                                          TaskOrigin origin);
// Where the outcomes being delivered on the calling thread come from, when their pool's workers
// are on another machine (mproc::mpi sets it around each delivery): the RemoteErrors of a chunk's
// elements then name that rank and host (TaskOrigin::rank, host). Null: this machine.
struct DeliveryPlace {
  int rank = 0;
  std::string host;
};
MPROC_API void set_delivery_place(const DeliveryPlace* place) noexcept;
MPROC_API const DeliveryPlace* delivery_place() noexcept;
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
template <class F, class E, bool Star, class R, bool Fresh>
void invoke_chunk(Reader& in, TaskContext& ctx) {
  const std::int64_t t0 = ctx.code_mark();
  F f = task_callable_codec<F, Fresh>::read(in);
  auto items = mproc::decode<std::vector<E>>(in);
  ctx.add_code(ctx.code_mark() - t0);
  const Spans run = ctx.checked_run(items.size());
  std::uint64_t left = span_count(run);
  for (const Span& s : run) {
    for (std::uint64_t i = s.begin; i < s.end; ++i) {
      ctx.begin_element(i);
      try {
        if constexpr (Star) {
          ctx.stage_value(i, std::apply(f, std::move(items[i])));
        } else {
          ctx.stage_value(i, detail::invoke(f, std::move(items[i])));
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

// The task of apply/submit for a pool whose workers are fresh images or not: its invoker and its
// payload, encoded with the handles' descriptors collected in the spec.
template <class F, class Tuple>
TaskSpec apply_spec(bool fresh, const F& f, const Tuple& args) {
  TaskSpec s{nullptr, {}, 0, 0, 0};
  TravelOut scope(s.fds);
  if (fresh) {
    if constexpr (travel_codec<F>::ok) {
      s.invoker = &invoke_apply<F, Tuple, true>;
      s.payload = make_payload<true>(f, args);
    } else {
      throw_task_cannot_travel(typeid(F));
    }
  } else {
    s.invoker = &invoke_apply<F, Tuple, false>;
    s.payload = make_payload<false>(f, args);
  }
  return s;
}

// A chunk of map/imap: elements [b, e) of `items` (`bytes`: their encoded sizes added up), the
// chunk `part` whose element 0 is the input's element `first`.
template <class F, class E, bool Star, class R, class Items>
TaskSpec chunk_spec(bool fresh, const F& f, const Items& items, std::size_t b, std::size_t e,
                    std::size_t bytes, std::uint64_t part, std::uint64_t first) {
  TaskSpec s{nullptr, {}, part, first, e - b};
  TravelOut scope(s.fds);
  if (fresh) {
    if constexpr (travel_codec<F>::ok) {
      s.invoker = &invoke_chunk<F, E, Star, R, true>;
      s.payload = make_chunk_payload<true>(f, items, b, e, bytes);
    } else {
      throw_task_cannot_travel(typeid(F));
    }
  } else {
    s.invoker = &invoke_chunk<F, E, Star, R, false>;
    s.payload = make_chunk_payload<false>(f, items, b, e, bytes);
  }
  return s;
}

// ---- Where the outcomes of a task go
// -------------------------------------------------------------
//
// The sinks below are split in two: the templates keep what depends on the result type R (decoding
// a piece, the values of a part, the shared state of an AsyncResult), and non-template classes
// defined in src/ keep the bookkeeping (the lock and the condition variable, which chunks are
// pending, complete or ready, the counts, the progress): Monitor and ResultWait in
// src/pool_result.cpp, MapBook and ImapBook in src/pool_sinks.cpp. The books hold the R-typed
// parts through the erased bases below (PieceBase, OutcomesBase, ChunkGather) and call back into
// the templates through a table of functions per R (PieceOps), so no std container, mutex or atomic
// of the bookkeeping appears in this header (see "Header cost" in docs/design.md).

// Errors of elements by index (in a chunk, or among the outcomes of a part).
using IndexedErrors = std::vector<std::pair<std::uint64_t, std::exception_ptr>>;

// The outcomes of some elements of a chunk, as one piece of a worker's result: the errors by index
// in the chunk (ascending) here, the values of the covered elements that succeeded, in order, in
// Piece<R>.
struct PieceBase {
  IndexedErrors errors;
};
template <class R>
struct Piece final : PieceBase {
  std::vector<R> values;
};

// Reads a piece's header and error records (see TaskContext) for the elements `covered`, sent by
// worker `pid`, into `errors` (by index in the chunk; each names its position, first + index):
// the non-template half of decode_piece (src/pool_sinks.cpp). Throws DecodeError when they do not
// match the covered elements.
MPROC_API void decode_piece_errors(Reader& r, std::uint64_t first, const Spans& covered,
                                   std::int32_t pid, IndexedErrors& errors);

// Decodes a piece (see TaskContext) of the elements `covered`, sent by worker `pid`; the errors
// name their position (first + index). Throws DecodeError when it does not match the covered
// elements.
template <class R>
Piece<R> decode_piece(Reader& r, std::uint64_t first, const Spans& covered, std::int32_t pid) {
  Piece<R> p;
  decode_piece_errors(r, first, covered, pid, p.errors);
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

// What a consumer of an imap takes: outcomes in order. `element_errors` holds those that failed,
// by ordinal (their place among all the outcomes of the part); Outcomes<R>::values those that
// succeeded. Owned by ImapBook, through this base, until the consumer takes it.
struct MPROC_API OutcomesBase {
  OutcomesBase() = default;
  OutcomesBase(const OutcomesBase&) = delete;
  OutcomesBase& operator=(const OutcomesBase&) = delete;
  virtual ~OutcomesBase();

  IndexedErrors element_errors;
  std::exception_ptr error;  // imap: the chunk could not be submitted (the sequence ends)
  bool completes_chunk = true;
  OutcomesBase* next = nullptr;  // ImapBook's queue of ready pieces (imap_unordered)
};
template <class R>
struct Outcomes final : OutcomesBase {
  std::vector<R> values;
};

// The outcomes of one chunk that come in several pieces, counted; ChunkOutcomes<R> keeps them.
class MPROC_API ChunkGather {
 public:
  explicit ChunkGather(std::uint64_t size) noexcept : size_(size) {}
  ChunkGather(const ChunkGather&) = delete;
  ChunkGather& operator=(const ChunkGather&) = delete;
  virtual ~ChunkGather();
  // True once each element has its outcome.
  [[nodiscard]] bool complete() const noexcept { return got_ >= size_; }

 protected:
  std::uint64_t size_;
  std::uint64_t got_ = 0;  // outcomes so far
};

// The outcomes of one chunk, gathered piece by piece (in any order) until each of its `size`
// elements has exactly one; then taken in index order. The common case, pieces that follow each
// other from element 0, is appended as it comes; any other order is kept by index.
template <class R>
class ChunkOutcomes final : public ChunkGather {
 public:
  explicit ChunkOutcomes(std::uint64_t size) : ChunkGather(size) {}

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
  // Once complete.
  void take(Outcomes<R>& o) {
    if (!spread_) {
      o.values = std::move(values_);
      o.element_errors = std::move(errors_);
      return;
    }
    o.values.reserve(static_cast<std::size_t>(size_));
    for (std::uint64_t i = 0; i < size_; ++i) {
      if (by_index_errors_[i])
        o.element_errors.emplace_back(i, std::move(by_index_errors_[i]));
      else
        o.values.push_back(std::move(*by_index_values_[i]));
    }
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

  bool spread_ = false;
  std::vector<R> values_;
  IndexedErrors errors_;
  std::vector<std::optional<R>> by_index_values_;
  std::vector<std::exception_ptr> by_index_errors_;
};

// The operations on values of R that the books need, as plain functions (piece_ops<R>, one table
// per R): the books call them with their lock held.
struct PieceOps {
  // A new Outcomes<R> without outcomes.
  OutcomesBase* (*make)();
  // Moves the values of `from` (a Piece<R>) to `to` (an Outcomes<R>).
  void (*move_values)(PieceBase& from, OutcomesBase& to) noexcept;
  // A new ChunkOutcomes<R> of `size` elements.
  ChunkGather* (*gather)(std::uint64_t size);
  // ChunkOutcomes<R>::add, add_error and take (into a new Outcomes<R>).
  void (*add)(ChunkGather& g, const Spans& covered, PieceBase& p);
  void (*add_error)(ChunkGather& g, const Spans& covered, const std::exception_ptr& error);
  OutcomesBase* (*take)(ChunkGather& g);
};

template <class R>
struct PieceOpsOf {
  static OutcomesBase* make() { return new Outcomes<R>; }
  static void move_values(PieceBase& from, OutcomesBase& to) noexcept {
    static_cast<Outcomes<R>&>(to).values = std::move(static_cast<Piece<R>&>(from).values);
  }
  static ChunkGather* gather(std::uint64_t size) { return new ChunkOutcomes<R>(size); }
  static void add(ChunkGather& g, const Spans& covered, PieceBase& p) {
    static_cast<ChunkOutcomes<R>&>(g).add(covered, std::move(static_cast<Piece<R>&>(p)));
  }
  static void add_error(ChunkGather& g, const Spans& covered, const std::exception_ptr& error) {
    static_cast<ChunkOutcomes<R>&>(g).add_error(covered, error);
  }
  static OutcomesBase* take(ChunkGather& g) {
    Box<Outcomes<R>> o(new Outcomes<R>);
    static_cast<ChunkOutcomes<R>&>(g).take(*o);
    return o.release();
  }
};
template <class R>
inline constexpr PieceOps piece_ops{&PieceOpsOf<R>::make,      &PieceOpsOf<R>::move_values,
                                    &PieceOpsOf<R>::gather,    &PieceOpsOf<R>::add,
                                    &PieceOpsOf<R>::add_error, &PieceOpsOf<R>::take};

// The progress of one map/imap (MapOptions::progress and progress_bar; src/progress.cpp, declared
// in detail/progress.hpp, which no public header includes).
class ProgressTracker;
using ProgressFn = std::function<void(std::size_t done, std::optional<std::size_t> total)>;
// Empty when there is nothing to report to (no callback, and no bar or stderr is no terminal).
MPROC_API Ref<ProgressTracker> make_progress(const ProgressFn& cb, bool bar,
                                             std::optional<std::size_t> total);
// The bar's last line (once); nothing for nullptr.
MPROC_API void finish_progress(ProgressTracker* progress) noexcept;

// A mutex, a condition variable, and the one wait that every timeout form of AsyncResult and
// IMapResult comes down to (src/pool_result.cpp): the forms of the public headers convert their
// Timeout or Deadline to an Expiry and call it.
//
// The std::mutex and std::condition_variable live in this object's own storage (constructed and
// used in src/pool_result.cpp only, which checks with static_assert that they fit): so an
// AsyncResult's state is still one allocation, and this header needs neither <mutex> nor
// <condition_variable>. 48 bytes each hold glibc's pthread_mutex_t (40 bytes on x86-64, 48 on
// aarch64) and pthread_cond_t (48 on both). Not named Waitable: inside mproc::detail that name
// would hide mproc::Waitable (pipe.hpp) from the code of mproc::wait in a file that includes
// pool.hpp first.
class MPROC_API Monitor {
 public:
  Monitor() noexcept;
  ~Monitor();
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  void lock() const noexcept;
  void unlock() const noexcept;
  // With the lock held: waits until `ready(arg)` is true or `expiry` passes (nullopt, or the
  // largest time point: never), re-waiting after spurious wake-ups; returns `ready(arg)`.
  bool wait_locked(const Expiry& expiry, bool (*ready)(const void* arg), const void* arg) const;
  void notify_all() const noexcept;

  static constexpr std::size_t kMutexBytes = 48;
  static constexpr std::size_t kCondBytes = 48;

 private:
  alignas(8) mutable unsigned char mu_[kMutexBytes];
  alignas(8) mutable unsigned char cv_[kCondBytes];
};

// PoolLink: the tie between results and the pool that runs their tasks (src/pool/cancel.cpp):
// lets an AsyncResult cancel its tasks or ask whether they run, as long as the pool's dispatcher
// exists (afterwards every task is done: calls answer "done").
// Cancels tasks [first, first + count) of the linked pool: those not started are withdrawn (they
// never run); with `kill_running`, the workers running the others are killed and replaced. True
// when at least one task was withdrawn or killed. Their results fail with CancelledError (the
// caller sets it). Never blocks on a task.
MPROC_API bool cancel_tasks(PoolLink& link, std::uint64_t first, std::uint64_t count,
                            bool kill_running);
// True when one of the tasks [first, first + count) is running in a worker now.
MPROC_API bool tasks_running(PoolLink& link, std::uint64_t first, std::uint64_t count);

// The readiness of an AsyncResult: set once, waited for by any number of threads; and what waits
// on it without blocking a thread (done callbacks, as_completed, mproc::wait: "hooks").
class MPROC_API ResultWait {
 public:
  ResultWait() = default;
  ResultWait(const ResultWait&) = delete;
  ResultWait& operator=(const ResultWait&) = delete;

  // Blocks until the result is ready or `expiry` passes; true when it is ready.
  bool wait(const Expiry& expiry) const;
  // Blocks until the result is ready, never interrupted (mproc/interrupt.hpp): for a wait that is
  // known to be short (cancel() waiting for the thread that claimed the result to finish it).
  void wait_uninterrupted() const noexcept;
  // True once the result is ready (its callback has run). Never blocks.
  [[nodiscard]] bool ready() const;
  // Once ready: true when the result is an error.
  [[nodiscard]] bool failed() const noexcept { return failed_; }

  // Runs `hook` once the result is ready (on the thread that makes it ready, after the result's
  // own callbacks), unless it is ready already: then returns 0 and does not run it. Otherwise
  // returns a token for remove_hook. Throws std::bad_alloc.
  std::uint64_t add_hook(std::function<void()> hook);
  // Forgets the hook `token` unless it ran or is running.
  void remove_hook(std::uint64_t token) noexcept;

  // The tasks this result stands for (set by the Pool when it submits them).
  void bind(Ref<PoolLink> link, std::uint64_t first, std::uint64_t count) noexcept;
  [[nodiscard]] PoolLink* link() const noexcept { return link_.get(); }
  [[nodiscard]] std::uint64_t first_task() const noexcept { return first_; }
  [[nodiscard]] std::uint64_t task_count() const noexcept { return count_; }

 protected:
  ~ResultWait();
  // True for the first caller only, who then sets the value or the error, runs the callback and
  // calls finish(); later callers do nothing (a result is set once).
  bool claim() noexcept;
  // The claimer sets an error (before finish()).
  void set_failed() noexcept { failed_ = true; }
  // Makes the result ready and wakes every waiter, then runs the hooks. What the claimer wrote
  // before is visible to every thread that then sees the result ready (the lock orders them).
  void finish() noexcept;

 private:
  struct Hook {
    std::uint64_t token;
    std::function<void()> fn;
  };
  Monitor w_;
  bool set_ = false;
  bool done_ = false;
  bool failed_ = false;
  std::vector<Hook> hooks_;
  std::uint64_t next_token_ = 1;
  Ref<PoolLink> link_;
  std::uint64_t first_ = 0;
  std::uint64_t count_ = 0;
};

// True when `e` holds a CancelledError.
MPROC_API bool is_cancelled_error(const std::exception_ptr& e) noexcept;
// The CancelledError of a result whose tasks were cancelled.
MPROC_API std::exception_ptr cancelled_error() noexcept;

// The shared state behind an AsyncResult. V is the stored value type (NoValue for void).
template <class V>
class ResultState final : public ResultWait {
 public:
  std::function<void(const V&)> callback;
  std::function<void(const std::exception_ptr&)> error_callback;

  void set_value(V&& v) {
    if (!claim()) return;
    value_.emplace(std::move(v));
    if (callback) run_callback([&] { callback(*value_); });
    finish();
  }
  void set_error(std::exception_ptr e) noexcept {
    if (!claim()) return;
    error_ = std::move(e);
    set_failed();
    if (error_callback) run_callback([&] { error_callback(error_); });
    finish();
  }
  // Only once ready.
  const std::exception_ptr& error() const noexcept { return error_; }
  // Only once ready: the result is a CancelledError.
  [[nodiscard]] bool cancelled() const noexcept { return is_cancelled_error(error_); }
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
  explicit ApplySink(Ref<ResultState<V>> st) : st_(std::move(st)) {}
  void on_ok(std::uint64_t, Reader& r) override { st_->set_value(mproc::decode<V>(r)); }
  void on_error(std::uint64_t, std::exception_ptr e) noexcept override {
    st_->set_error(std::move(e));
  }

 private:
  Ref<ResultState<V>> st_;
};

// The bookkeeping of a map (src/pool_sinks.cpp): which chunks are pending in several pieces, how
// many are left, whether the map failed, and its progress. Thread-safe (one lock, held only while a
// piece is recorded).
class MPROC_API MapBook {
 public:
  // Stores the values of a complete chunk `part` in the owner: from `piece` (a Piece<R>, the chunk
  // in one piece) or from `taken` (an Outcomes<R>, gathered); exactly one is non-null. Called with
  // the lock held, at most once per chunk, never after the map completed or failed.
  using StoreFn = void (*)(void* owner, std::uint64_t part, PieceBase* piece, OutcomesBase* taken);

  // `sizes[part]`: the elements of each chunk.
  MapBook(std::vector<std::size_t> sizes, Ref<ProgressTracker> progress, const PieceOps& ops,
          StoreFn store, void* owner);
  ~MapBook();
  MapBook(const MapBook&) = delete;
  MapBook& operator=(const MapBook&) = delete;

  [[nodiscard]] std::size_t chunks() const noexcept;
  // The piece `covered` of chunk `part`, without errors. True when it completed the map: every
  // chunk is stored, none comes after, and the caller alone now reads what was stored.
  bool add(std::uint64_t part, const Spans& covered, PieceBase& piece);
  // The elements `covered` failed. True for the first failure (the map fails with its error; no
  // chunk is stored any more), false after one or after the map completed.
  bool fail(const Spans& covered) noexcept;

 private:
  struct State;
  Box<State> st_;
};

// Gathers the chunks of a map into one vector; the first element that fails fails the whole map
// (and makes it ready at once, as in Python) with its error, which names the element's position.
template <class R>
class MapSink final : public TaskSink {
 public:
  // `sizes[part]`: the elements of each chunk.
  MapSink(Ref<ResultState<std::vector<R>>> st, std::vector<std::size_t> sizes,
          Ref<ProgressTracker> progress)
      : st_(std::move(st)),
        book_(std::move(sizes), std::move(progress), piece_ops<R>, &store, this),
        parts_(book_.chunks()) {}
  void on_elements(std::uint64_t part, std::uint64_t first, const Spans& covered, std::int32_t pid,
                   std::uint64_t, Reader& r) override {
    auto p = decode_piece<R>(r, first, covered, pid);
    if (!p.errors.empty()) {  // the element's error fails the map, as in Python
      fail(covered, std::move(p.errors.front().second));
      return;
    }
    if (!book_.add(part, covered, p)) return;
    std::vector<R> all;
    std::size_t n = 0;
    for (auto& chunk : parts_) n += chunk.size();
    all.reserve(n);
    for (auto& chunk : parts_)
      for (auto& x : chunk) all.push_back(std::move(x));
    parts_.clear();
    st_->set_value(std::move(all));
  }
  void on_elements_error(std::uint64_t, std::uint64_t, const Spans& covered,
                         std::exception_ptr e) noexcept override {
    fail(covered, std::move(e));
  }

 private:
  void fail(const Spans& covered, std::exception_ptr e) noexcept {
    if (!book_.fail(covered)) return;
    parts_.clear();  // no chunk is stored after the failure
    st_->set_error(std::move(e));
  }
  static void store(void* owner, std::uint64_t part, PieceBase* piece, OutcomesBase* taken) {
    auto& to = static_cast<MapSink*>(owner)->parts_[static_cast<std::size_t>(part)];
    if (piece != nullptr)
      to = std::move(static_cast<Piece<R>*>(piece)->values);
    else
      to = std::move(static_cast<Outcomes<R>*>(taken)->values);
  }

  Ref<ResultState<std::vector<R>>> st_;
  MapBook book_;
  std::vector<std::vector<R>> parts_;  // the results of each chunk, once complete
};

// The bookkeeping of an imap (src/pool_sinks.cpp): the parts pending, complete (imap) or ready
// (imap_unordered), the outcomes still to come, how long elements took in the workers (for
// adaptive chunking), the progress, and the wait of the consumer. Ordered (imap): a chunk is taken
// whole, once each of its elements has its outcome. Unordered (imap_unordered): pieces are taken as
// they come. Thread-safe; one consumer takes.
class MPROC_API ImapBook {
 public:
  ImapBook(bool ordered, Ref<ProgressTracker> progress, const PieceOps& ops);
  ~ImapBook();
  ImapBook(const ImapBook&) = delete;
  ImapBook& operator=(const ImapBook&) = delete;

  // Called before the chunk `part` of `items` elements is submitted (parts are numbered 0, 1, 2,
  // ... in submission order).
  void expect(std::uint64_t part, std::size_t items);
  // The piece `covered` (a Piece<R>) of chunk `part`, run in `ns` nanoseconds in a worker (0:
  // unknown).
  void add(std::uint64_t part, const Spans& covered, std::uint64_t ns, PieceBase& piece);
  // The elements `covered` of chunk `part` fail with `e`.
  void add_error(std::uint64_t part, const Spans& covered, const std::exception_ptr& e) noexcept;
  // The chunk `part` could not be submitted: it ends the sequence with `e`.
  void fail(std::uint64_t part, std::exception_ptr e) noexcept;
  // Takes the chunk `part` (ordered) or the oldest piece (part empty, unordered), an Outcomes<R>;
  // nullptr when `expiry` passed first.
  Box<OutcomesBase> take(std::optional<std::uint64_t> part, const Expiry& expiry);
  // Mean time of one element in a worker so far, in nanoseconds; empty before any chunk succeeded.
  [[nodiscard]] std::optional<double> ns_per_item() const;
  void finish_progress() noexcept;

 private:
  struct State;
  Box<State> st_;
};

// Collects the outcomes of an imap as they come (the bookkeeping is ImapBook's).
template <class R>
class IMapSink final : public TaskSink, public ImapBook {
 public:
  IMapSink(bool ordered, Ref<ProgressTracker> progress)
      : ImapBook(ordered, std::move(progress), piece_ops<R>) {}

  void on_elements(std::uint64_t part, std::uint64_t first, const Spans& covered, std::int32_t pid,
                   std::uint64_t ns, Reader& r) override {
    auto p = decode_piece<R>(r, first, covered, pid);
    add(part, covered, ns, p);
  }
  void on_elements_error(std::uint64_t part, std::uint64_t, const Spans& covered,
                         std::exception_ptr e) noexcept override {
    add_error(part, covered, e);
  }
  void on_error(std::uint64_t part, std::exception_ptr e) noexcept override {
    fail(part, std::move(e));
  }
};

}  // namespace detail
}  // namespace mproc
