// mproc/queue.hpp — process-shared FIFO queues: `Queue<T>`, `SimpleQueue<T>`, `JoinableQueue<T>`.
//
// Mirrors multiprocessing.Queue, SimpleQueue and JoinableQueue.
//
//   mproc::Queue<std::string> q;                 // 1 MiB ring in anonymous shared memory
//   mproc::Process p([&] { q.put("hello"); });
//   p.start();
//   std::string s = q.get();                     // "hello"
//
// Transport: a byte ring in anonymous shared memory (memfd; nothing in /dev/shm), multi-producer
// and multi-consumer. Values are encoded with `mproc::codec<T>` (codec.hpp) straight into the ring
// and decoded straight out of it. Producers take turns through one robust lock, consumers through
// another, so a producer and a consumer never contend with each other; each side caches the
// other's index and sleeps on a futex only after spinning briefly (QueueOptions::spin), and
// neither side makes a system call when nobody sleeps. A message larger than a quarter of the ring
// streams through it in chunks while the consumer drains them: memory stays bounded by the ring
// plus the value being decoded.
//
// Ordering: FIFO per producer (messages of one producer arrive in the order it put them); messages
// of different producers interleave in the order they took the producer lock. Items put before a
// child starts are there for it to get.
//
// Timeouts: every blocking call comes in the forms of mproc/timeout.hpp, which states their
// semantics once: `x()` waits as long as it takes, `x(Timeout)` at most a duration,
// `x_until(Deadline)` at most until a time point of any clock, and `try_x()` / `x_nowait()` do
// not wait. When the time passes first, put throws Full and get throws Empty (Python's queue.Full
// and queue.Empty), put_many returns how many it put, get_many an empty vector, and
// JoinableQueue::join false. A zero timeout or a past deadline still succeeds if the call can
// without waiting. A `get` that has begun receiving a message streamed in chunks finishes
// receiving it (while its producer lives) even past its deadline: a message is never half taken.
//
// Failure model (a process SIGKILLed at any instant):
//   * A producer killed while writing a message: the message is dropped; it was never visible, or
//     (streamed) its chunks are discarded by the consumer. The next producer takes over the lock.
//   * A consumer killed while reading a message it had not yet taken: the message is redelivered
//     to the next consumer. A consumer killed while receiving a streamed message (after its first
//     chunk) loses that message. A message is never delivered torn or twice to live consumers.
//   * Nobody blocks for good on a dead process: the locks are robust, a consumer receiving a
//     stream checks that its producer is alive while it waits, and a producer waiting for room
//     passes the chunks of a stream whose consumer died.
//   * `qsize()`, `empty()`, `full()` and the `maxsize` limit count complete messages not yet
//     taken, and stay exact after any kill without waiting for another put or get: a lost message
//     is counted as taken (or, unfinished, never counted), and a count a dead process left
//     half-published is repaired by the next caller (see docs/design.md, "Queues").
//
// Messages that do not decode: a value whose decoding throws, or that ends before the message
// does (a codec that reads fewer bytes than it wrote: DecodeError "a message decoded short of its
// length"), is consumed by the call that throws, small or streamed alike; a streamed one is
// received whole and dropped, so its producer is never left blocked, and the next call gets the
// next message. A streamed one whose producer dies before its last chunk never was a message: the
// call drops it without throwing and goes on to the next message (a JoinableQueue has no task to
// mark done for it).
//
// Sizes: a ring of up to 2^63 bytes (ValueError above; std::system_error when the machine cannot
// hold it); messages of up to 2^62 bytes (ValueError above, before anything is written). Every
// accepted size arrives intact: records stay below 4 GiB and larger messages stream.
//
// Shared memory written by another process: the handle keeps its own copy of the queue's
// constants, and checks every index, count and record header it reads from the shared region.
// Bytes written there by a buggy or hostile process can make calls throw mproc::Error
// ("mproc::Queue: corrupt ring: ...") or deliver wrong values, but never make a call read or write
// outside the queue's memory or wait past its deadline (except a get receiving a stream while the
// producer lock looks held, as for a live producer). The queue allocates nothing for a length it
// reads; what a codec allocates for lengths inside a value is the codec's to bound (codec.hpp).
//
// Differences from Python (see docs/from-python.md):
//   * Memory is bounded: with `maxsize == 0` (no item limit) `put` still blocks while the ring is
//     full (Python's put never blocks then, buffering in the sender's memory with a feeder thread).
//   * There is no feeder thread: when `put` returns, the item is in the queue (Python's put returns
//     before the item is sent, so an item put just before a crash can be lost).
//   * `close()` closes this handle only; its other copies go on working (Python's close concerns
//     the calling process). Calls on a closed handle throw `mproc::Closed`.
//   * `qsize()` is exact when nothing is in flight (also after a kill), and a snapshot otherwise
//     (Python's is a semaphore's value, also approximate). A streamed message counts once it is
//     complete, until a consumer has received all of it.
//
// Waiting for a queue *or* a process: `mproc::wait` (pipe.hpp) takes queues beside processes,
// connections and descriptors, and returns when one is ready — a queue when it holds a complete
// message (a `try_get` would likely succeed; a competing consumer may take it first), a process
// when it has ended. A pipeline stage blocked on its input thus notices that the stage feeding it
// died, without polling and without waiting for a sentinel that will never come:
//
//   mproc::Queue<Item> in;
//   mproc::Process upstream(produce, in);   // start it first: the stage inherits its sentinel
//   ...                                     // in the stage:
//   for (;;) {
//     auto ready = mproc::wait({in, upstream});
//     if (auto item = in.try_get()) { handle(*item); continue; }
//     if (!ready.empty() && ready.back() == 1) break;   // upstream ended and nothing is left
//   }
//
// (examples/supervised_pipeline.cpp). Waiting costs put/get nothing while nobody waits that way: a
// waiter registers in the word a producer already reads after publishing (to see whether a
// consumer sleeps), and a producer makes a system call only when a waiter has registered
// (docs/design.md, "Queues").
//
// Travel (spawn, forkserver): a Queue, SimpleQueue or JoinableQueue passed as an argument of a
// Process or of a Pool task reaches a fresh program image with its memfd beside the bytes
// (<mproc/detail/travel.hpp>), and the receiver's handle shares the queue with the sender's: what
// one puts the other gets, task_done() and join() count across, and close() stays per handle. The
// sender's handle is unchanged (its descriptor is duplicated). Wire form, 40 bytes in host order:
// u32 descriptor index, u8 kind (1 Queue, 2 SimpleQueue, 3 JoinableQueue), u8 counts tasks,
// u16 0, u32 spin, u32 0, u64 capacity, u64 maxsize, u64 element tag (a hash of the element
// type's mangled name, `typeid(T).name()`, or of `__PRETTY_FUNCTION__` without RTTI). The
// receiver names the type it expects: another kind or element type, a descriptor that is not
// shared memory (a regular file on tmpfs: a memfd) at least as large as the region (so no page of
// the mapping lies past the file's end: no SIGBUS), or a region whose header (written once
// by the creator: a magic word, the constants, the element tag) disagrees with the bytes is a
// DecodeError naming the handle's type, checked before anything is trusted or touched past the
// header. Outside a Process's or Pool task's arguments (e.g. a Queue put on another Queue, or
// sent on a Connection) encoding throws ValueError before anything is written (Python: "Queue
// objects should only be shared between processes through inheritance"); a closed handle throws
// Closed. `encoded_size` works anywhere.
//
// Thread safety: safe. Process safety: safe across fork (copy the handle; copies share the queue).
#pragma once

#include <cstddef>
#include <mproc/codec.hpp>
#include <mproc/detail/expiry.hpp>
#include <mproc/detail/queue_core.hpp>
#include <mproc/detail/std_light.hpp>
#include <mproc/errors.hpp>
#include <mproc/export.hpp>
#include <mproc/timeout.hpp>
#include <optional>
#include <typeinfo>  // typeid(T).name(): the element tag (<stdexcept> includes it anyway)
#include <utility>
#include <vector>

namespace mproc {

class Waitable;
template <class T>
class JoinableQueue;
template <class T>
class SimpleQueue;

// How a queue is built (the optional second argument of Queue, JoinableQueue and SimpleQueue).
// Mirrors nothing in Python (whose queues grow without bound in the sender's memory); here memory
// is bounded by `capacity`.
//
//   mproc::Queue<Frame> frames(0, {.capacity = 64 << 20, .spin = 0});
struct QueueOptions {
  // Bytes of the shared ring (rounded up to a power of two, at least 4 KiB, at most 2^63; a
  // larger value is a ValueError, and a ring the machine cannot hold a std::system_error when the
  // queue is created). A message larger than a quarter of the ring (or than 2 GiB) streams
  // through it in chunks; any size up to 2^62 bytes goes through.
  std::size_t capacity = std::size_t{1} << 20;
  // How long a blocked put/get spins before it sleeps on a futex: iterations of one pause
  // instruction (some tens of nanoseconds on current x86) and one check for progress. 0: sleep
  // at once (the lowest CPU use; the round trip then costs two futex wake-ups).
  int spin = 1000;
};

namespace detail {

// Full("mproc::Queue: the queue is full") / Empty("mproc::Queue: the queue is empty"): defined
// once in src/queue.cpp rather than in every Queue<T>.
[[noreturn]] MPROC_API void throw_queue_full();
[[noreturn]] MPROC_API void throw_queue_empty();

// A 64-bit hash (FNV-1a, never 0) of a type's name, for the element tag (src/queue.cpp).
MPROC_API std::uint64_t hash_type_name(const char* name) noexcept;

// The tag of a queue's element type, written into its region and carried when a handle travels
// (see "Travel" above): the hash of the mangled name (the same from GCC and Clang), or, in a
// translation unit built without RTTI, of the compiler's spelling of the type.
template <class T>
std::uint64_t element_tag() noexcept {
#if defined(__GXX_RTTI) || defined(__cpp_rtti)
  return hash_type_name(typeid(T).name());
#else
  return hash_type_name(__PRETTY_FUNCTION__);
#endif
}

template <class T>
void encode_erased(Writer& w, const void* obj) {
  mproc::encode(w, *static_cast<const T*>(obj));
}

// A message must decode to exactly its bytes: a value that ends early throws UnreadBytes before
// it is stored (the queue turns that into a DecodeError and consumes the message).
template <class T>
void decode_into_optional(Reader& r, void* out) {
  T v = mproc::decode<T>(r);
  if (r.remaining() != 0) [[unlikely]]
    throw UnreadBytes{};
  static_cast<std::optional<T>*>(out)->emplace(std::move(v));
}

template <class T>
void decode_append(Reader& r, void* out) {
  T v = mproc::decode<T>(r);
  if (r.remaining() != 0) [[unlikely]]
    throw UnreadBytes{};
  static_cast<std::vector<T>*>(out)->push_back(std::move(v));
}

}  // namespace detail

template <class T>
class Queue {
  static_assert(detail::check_encodable<std::remove_cv_t<T>>(),
                "mproc::Queue<T>: T must be encodable by mproc::codec<T> (see codec.hpp)");

 public:
  using value_type = T;

  // A queue holding at most `maxsize` items (0: no item limit; the ring's capacity still bounds
  // it). Throws std::system_error if the shared memory cannot be created. Mirrors Queue(maxsize).
  explicit Queue(std::size_t maxsize = 0, const QueueOptions& options = {})
      : core_(maxsize, options, false, detail::element_tag<T>()) {}

  // Puts `v`, blocking while the queue is full. Mirrors Queue.put(obj). Every put form throws
  // ValueError for an encoded size above 2^62 bytes, Closed after close(), and what the codec
  // throws (the message is then not put).
  void put(const T& v) { (void)put_at(v, detail::Expiry()); }
  // Puts `v`, blocking at most a duration / until a time point (timeout.hpp); throws Full if the
  // queue stayed full. Mirrors Queue.put(obj, timeout=...).
  void put(const T& v, Timeout timeout) {
    if (!put_at(v, timeout.when())) detail::throw_queue_full();
  }
  void put_until(const T& v, Deadline deadline) {
    if (!put_at(v, deadline.when())) detail::throw_queue_full();
  }
  // Puts `v` if there is room now; throws Full otherwise. Mirrors Queue.put_nowait(obj).
  void put_nowait(const T& v) {
    if (!try_put(v)) detail::throw_queue_full();
  }
  // Non-throwing put_nowait: true when put.
  [[nodiscard]] bool try_put(const T& v) { return put_at(v, detail::Clock::now()); }

  // Puts every element of `range` in order, blocking while the queue is full; the producer side is
  // taken once per batch of elements, which is far cheaper than one put each. Returns the count.
  // The timed forms give up when the time passes (timeout.hpp) and return how many were put (a
  // prefix of the range). Throws as put.
  template <std::ranges::input_range Range>
  std::size_t put_many(Range&& range) {
    return put_many_at(std::forward<Range>(range), detail::Expiry());
  }
  template <std::ranges::input_range Range>
  std::size_t put_many(Range&& range, Timeout timeout) {
    return put_many_at(std::forward<Range>(range), timeout.when());
  }
  template <std::ranges::input_range Range>
  std::size_t put_many_until(Range&& range, Deadline deadline) {
    return put_many_at(std::forward<Range>(range), deadline.when());
  }

  // Removes and returns the oldest item, blocking while the queue is empty. Mirrors Queue.get().
  // Every get form throws DecodeError (or what the codec throws) for a message that does not
  // decode, consuming it (see the header comment), Closed after close(), and mproc::Error
  // "corrupt ring" when the shared region holds what no queue writes.
  T get() { return *get_at(detail::Expiry()); }
  // Blocks at most a duration / until a time point (timeout.hpp); throws Empty if nothing came.
  // Mirrors Queue.get(timeout=...).
  T get(Timeout timeout) { return value_or_empty(get_at(timeout.when())); }
  T get_until(Deadline deadline) { return value_or_empty(get_at(deadline.when())); }
  // Takes an item if one is there now; throws Empty otherwise. Mirrors Queue.get_nowait().
  T get_nowait() { return value_or_empty(try_get()); }
  // Non-throwing get_nowait.
  [[nodiscard]] std::optional<T> try_get() { return get_at(detail::Clock::now()); }

  // Takes up to `max` items, waiting only for the first (without limit, or at most a duration /
  // until a time point: timeout.hpp); returns them in order (empty if nothing came in time). The
  // consumer side is taken once for the whole batch. A message that does not decode ends a batch
  // without loss: the items before it are returned, and the next call throws its error (the
  // message is then consumed, as by get()). A message streamed in chunks (larger than a quarter
  // of the ring) starts a batch of its own. Throws as get.
  //
  // Sentinels: a batch is whatever is queued, up to `max`; get_many knows no sentinel values, so
  // one call can take several sentinels, and items queued after one. Python's pattern of one
  // sentinel per consumer, each consumer stopping at the first it sees, relies on get() taking
  // one item: with get_many one consumer can take the sentinels of others, which then wait
  // forever. Put a single sentinel after the last item (once every producer has finished), and
  // have each consumer handle its batch up to the sentinel and put the sentinel back for the
  // next consumer before it stops:
  //
  //   for (;;) {
  //     std::vector<int> batch = q.get_many(64);
  //     auto stop = std::ranges::find(batch, kStop);
  //     for (auto it = batch.begin(); it != stop; ++it) work(*it);
  //     if (stop != batch.end()) {
  //       q.put(kStop);  // the next consumer's; one sentinel stays in the queue at the end
  //       break;
  //     }
  //   }
  std::vector<T> get_many(std::size_t max) { return get_many_at(max, detail::Expiry()); }
  std::vector<T> get_many(std::size_t max, Timeout timeout) {
    return get_many_at(max, timeout.when());
  }
  std::vector<T> get_many_until(std::size_t max, Deadline deadline) {
    return get_many_at(max, deadline.when());
  }

  // The number of items in the queue (a snapshot). Mirrors Queue.qsize().
  [[nodiscard]] std::size_t qsize() const noexcept { return core_.qsize(); }
  // Mirrors Queue.empty() and Queue.full() (snapshots).
  [[nodiscard]] bool empty() const noexcept { return core_.empty(); }
  [[nodiscard]] bool full() const noexcept { return core_.full(); }
  [[nodiscard]] std::size_t maxsize() const noexcept { return core_.maxsize(); }
  // The ring's size in bytes.
  [[nodiscard]] std::size_t capacity() const noexcept { return core_.capacity(); }

  // Closes this handle: later calls on it throw Closed. Other copies are unaffected.
  // Mirrors Queue.close() (see the header comment for the difference).
  void close() noexcept { core_.close(); }

 private:
  friend class Waitable;                      // mproc::wait waits on core_
  friend class JoinableQueue<T>;              // counts tasks in core_
  friend struct detail::QueueCoreTestAccess;  // tests/helpers/queue_access.hpp
  friend struct codec<Queue<T>>;              // travel (below)
  friend struct codec<JoinableQueue<T>>;
  friend struct codec<SimpleQueue<T>>;
  template <class>
  friend class SimpleQueue;
  Queue(std::size_t maxsize, const QueueOptions& options, bool joinable)
      : core_(maxsize, options, joinable, detail::element_tag<T>()) {}
  explicit Queue(detail::QueueCore&& core) noexcept : core_(std::move(core)) {}
  static T value_or_empty(std::optional<T>&& v) {
    if (!v) detail::throw_queue_empty();
    return std::move(*v);
  }

  // The one implementation of each call, behind its forms (nullopt: no limit).
  bool put_at(const T& v, const detail::Expiry& deadline) {
    detail::EncodeJob job{encoded_size(v), &detail::encode_erased<T>, &v};
    return core_.put(job, deadline);
  }
  std::optional<T> get_at(const detail::Expiry& deadline) {
    std::optional<T> out;
    core_.get(&detail::decode_into_optional<T>, &out, deadline);
    return out;
  }
  template <class Range>
  std::size_t put_many_at(Range&& range, const detail::Expiry& deadline) {
    constexpr std::size_t kBatch = 64;
    detail::EncodeJob jobs[kBatch];
    std::size_t total = 0, n = 0;
    auto flush = [&]() -> bool {
      std::size_t done = core_.put_batch(jobs, n, deadline);
      total += done;
      bool all = done == n;
      n = 0;
      return all;
    };
    for (auto&& v : range) {
      const auto& ref = v;  // keep the element alive until its batch is flushed
      if constexpr (std::is_lvalue_reference_v<decltype(v)>) {
        jobs[n++] = detail::EncodeJob{encoded_size(ref), &detail::encode_erased<T>, &ref};
        if (n == kBatch && !flush()) return total;
      } else {
        // A range of temporaries: put one at a time (the temporary dies with the iteration).
        if (n && !flush()) return total;
        detail::EncodeJob one{encoded_size(ref), &detail::encode_erased<T>, &ref};
        if (core_.put_batch(&one, 1, deadline) != 1) return total;
        ++total;
      }
    }
    if (n) flush();
    return total;
  }
  std::vector<T> get_many_at(std::size_t max, const detail::Expiry& deadline) {
    std::vector<T> out;
    if (max == 0) return out;
    out.reserve(max < 1024 ? max : 1024);
    core_.get_batch(&detail::decode_append<T>, &out, max, deadline);
    return out;
  }

  detail::QueueCore core_;
};

// A queue without an item limit and with only put/get/empty/close. Mirrors
// multiprocessing.SimpleQueue. The timed forms of put and get (timeout.hpp; Full / Empty when the
// time passes first) are an addition: every blocking call of mproc has them, Python's
// SimpleQueue has none.
template <class T>
class SimpleQueue {
 public:
  explicit SimpleQueue(const QueueOptions& options = {}) : q_(0, options) {}
  void put(const T& v) { q_.put(v); }
  void put(const T& v, Timeout timeout) { q_.put(v, timeout); }
  void put_until(const T& v, Deadline deadline) { q_.put_until(v, deadline); }
  T get() { return q_.get(); }
  T get(Timeout timeout) { return q_.get(timeout); }
  T get_until(Deadline deadline) { return q_.get_until(deadline); }
  [[nodiscard]] bool empty() const noexcept { return q_.empty(); }
  void close() noexcept { q_.close(); }

 private:
  friend class Waitable;  // mproc::wait waits on q_
  friend struct codec<SimpleQueue<T>>;
  explicit SimpleQueue(detail::QueueCore&& core) noexcept : q_(std::move(core)) {}
  Queue<T> q_;
};

// A Queue that counts unfinished tasks: every message that enters the queue adds one, every
// task_done() removes one, and join() blocks until the count is zero. Mirrors
// multiprocessing.JoinableQueue. The count is derived from the messages published (complete
// messages put minus task_done() calls), so a put that never completed — its producer killed
// while it waited on a full queue or mid-stream — is never waited for.
// A consumer killed between get() and task_done(), or while receiving a streamed message, leaves
// its task unfinished for good (as in Python): join() then blocks until its timeout.
template <class T>
class JoinableQueue : public Queue<T> {
 public:
  explicit JoinableQueue(std::size_t maxsize = 0, const QueueOptions& options = {})
      : Queue<T>(maxsize, options, true) {}

  // Marks one task done. Throws ValueError if called more times than items were put.
  // Mirrors JoinableQueue.task_done().
  void task_done() { this->core_.task_done(); }
  // Blocks until every item put has been marked done. Mirrors JoinableQueue.join().
  void join() { (void)this->core_.join(detail::Expiry()); }
  // As join(), at most a duration / until a time point (timeout.hpp); true when every task was
  // done, false when the time passed first. Mirrors JoinableQueue.join() (Python's has no
  // timeout).
  [[nodiscard]] bool join(Timeout timeout) { return this->core_.join(timeout.when()); }
  [[nodiscard]] bool join_until(Deadline deadline) { return this->core_.join(deadline.when()); }

 private:
  friend struct codec<JoinableQueue<T>>;
  explicit JoinableQueue(detail::QueueCore&& core) noexcept : Queue<T>(std::move(core)) {}
};

// The codecs of the handles, used only when a queue travels to another process as an argument of
// a Process or of a Pool task (see "Travel" in the header comment).
template <class T>
struct codec<Queue<T>> {
  static constexpr std::size_t min_size = detail::QueueCore::kTravelSize;
  static std::size_t size(const Queue<T>&) noexcept { return detail::QueueCore::kTravelSize; }
  static void encode(Writer& w, const Queue<T>& q) {
    q.core_.encode_travel(w, detail::QueueKind::kQueue);
  }
  static Queue<T> decode(Reader& r) {
    return Queue<T>(
        detail::QueueCore::decode_travel(r, detail::QueueKind::kQueue, detail::element_tag<T>()));
  }
};

template <class T>
struct codec<SimpleQueue<T>> {
  static constexpr std::size_t min_size = detail::QueueCore::kTravelSize;
  static std::size_t size(const SimpleQueue<T>&) noexcept { return detail::QueueCore::kTravelSize; }
  static void encode(Writer& w, const SimpleQueue<T>& q) {
    q.q_.core_.encode_travel(w, detail::QueueKind::kSimpleQueue);
  }
  static SimpleQueue<T> decode(Reader& r) {
    return SimpleQueue<T>(detail::QueueCore::decode_travel(r, detail::QueueKind::kSimpleQueue,
                                                           detail::element_tag<T>()));
  }
};

template <class T>
struct codec<JoinableQueue<T>> {
  static constexpr std::size_t min_size = detail::QueueCore::kTravelSize;
  static std::size_t size(const JoinableQueue<T>&) noexcept {
    return detail::QueueCore::kTravelSize;
  }
  static void encode(Writer& w, const JoinableQueue<T>& q) {
    q.core_.encode_travel(w, detail::QueueKind::kJoinableQueue);
  }
  static JoinableQueue<T> decode(Reader& r) {
    return JoinableQueue<T>(detail::QueueCore::decode_travel(r, detail::QueueKind::kJoinableQueue,
                                                             detail::element_tag<T>()));
  }
};

}  // namespace mproc
