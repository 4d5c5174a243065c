// mproc/detail/queue_core.hpp — the untyped shared-memory message queue under Queue<T>.
//
// No stability promise. `QueueCore` moves messages of bytes; `Queue<T>` (queue.hpp) adds the
// codec. Messages are encoded straight into the ring by a callback and decoded straight out of
// it, so each byte is copied once on each side.
//
// Trust: the handle keeps its own copy of the ring's constants (`QueueConfig`), taken when the
// queue is created and inherited across fork; nothing another process writes into the shared
// region can change them. Indices, counts and record headers read from the region are checked
// against them before use: what cannot be right throws mproc::Error("mproc::Queue: corrupt ring:
// ...") instead of reading or writing outside the ring.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mproc/byte_stream.hpp>
#include <mproc/detail/atomic.hpp>
#include <mproc/detail/expiry.hpp>
#include <mproc/detail/ref.hpp>
#include <mproc/export.hpp>

namespace mproc {

struct QueueOptions;  // queue.hpp

namespace detail {

struct QueueShared;
struct QueueCoreTestAccess;  // tests/helpers/queue_access.hpp

// One message to put: its exact encoded size and how to encode it.
struct EncodeJob {
  std::size_t size;
  void (*encode)(Writer& w, const void* obj);
  const void* obj;
};

// Decodes one message from `r` into the object at `out` (the caller's typed slot). It must read
// the whole message: a DecodeFn that finds bytes left after its value throws `UnreadBytes`
// before storing anything (the queue then throws DecodeError, see get_batch); one that returns
// with bytes unread makes the call throw DecodeError too, with what it stored left in `out`.
using DecodeFn = void (*)(Reader& r, void* out);

// Thrown by a DecodeFn whose value ended before the message did (see DecodeFn).
struct UnreadBytes {};

// The constants of one queue, as this handle knows them (see "Trust" above).
struct QueueConfig {
  std::uint64_t capacity = 0;     // bytes of the ring, a power of two
  std::uint64_t mask = 0;         // capacity - 1
  std::uint64_t maxsize = 0;      // 0: no item limit
  std::uint64_t max_record = 0;   // larger messages are streamed
  std::uint64_t chunk = 0;        // payload bytes per streamed chunk
  std::uint64_t element_tag = 0;  // the element type's (element_tag<T>(), queue.hpp); 0: untyped
  std::uint32_t spin = 0;
  bool joinable = false;
};

// What a queue handle is, as it travels (QueueCore::encode_travel): the receiver names the kind it
// expects, and a handle of another kind is a DecodeError.
enum class QueueKind : std::uint8_t { kQueue = 1, kSimpleQueue = 2, kJoinableQueue = 3 };

class MPROC_API QueueCore {
 public:
  // `element_tag` identifies the element type (Queue<T> passes element_tag<T>()); it is written
  // into the region and checked when a handle travels to another process.
  QueueCore(std::size_t maxsize, const QueueOptions& options, bool joinable,
            std::uint64_t element_tag = 0);

  // Puts one message; false when the deadline passed first (the queue stayed full). A message is
  // either wholly delivered or not at all. Throws Closed after close(); ValueError, before
  // anything is written, for a size above 2^62 bytes; exceptions from the encoder propagate (the
  // message is rolled back).
  bool put(const EncodeJob& job, const Expiry& deadline);
  // Puts `n` messages in order, taking the producer side once; returns how many were put before
  // the deadline (all of them unless it passed).
  std::size_t put_batch(const EncodeJob* jobs, std::size_t n, const Expiry& deadline);

  // Takes one message and decodes it with `fn` into `out`; false when the deadline passed first.
  // A message that does not decode (fn throws, or leaves bytes unread: DecodeError "a message
  // decoded short of its length") is consumed by the call that throws, a streamed one whole:
  // the call receives and drops the rest of it (waiting for its producer as a get does), so its
  // producer is never left blocked and later calls get the messages after it.
  bool get(DecodeFn fn, void* out, const Expiry& deadline);
  // Takes up to `max` messages (at least one unless the deadline passes), decoding each with `fn`
  // into `out` (which appends). Returns how many. A message after the first that does not
  // decode ends the batch and stays for the next call (which throws its error and consumes it).
  std::size_t get_batch(DecodeFn fn, void* out, std::size_t max, const Expiry& deadline);

  // Complete messages in the queue, exact whenever nothing is in flight, also after any process
  // was killed: a count left half-published by a dead process is repaired here (under the lock of
  // its side, taken only if free or dead, never waited for).
  std::size_t qsize() const noexcept;
  std::size_t maxsize() const noexcept;
  std::size_t capacity() const noexcept;
  bool empty() const noexcept;
  bool full() const noexcept;
  void close() noexcept;
  bool closed() const noexcept { return closed_; }

  // mproc::wait support (pipe.hpp). True when a complete message is in the queue: a get_nowait
  // would likely succeed (a competing consumer may take it first). Repairs what a dead process
  // left half-published first, as qsize() does; never blocks.
  bool readable() const noexcept;
  // Blocks until readable() (true), `deadline` passes (false; nullopt: no limit) or `*cancel`
  // becomes non-zero (false; checked whenever the wait wakes, see wake_readable_waiters), or an
  // interruption request (mproc/interrupt.hpp) ends the wait while armed (false). Sleeps
  // on the queue's `watch_seq` futex, woken by the producer that publishes the next complete
  // message; costs nothing on put/get while nobody waits this way (docs/design.md, "Queues").
  bool wait_readable(const Expiry& deadline, const Atomic<std::uint32_t>* cancel) const noexcept;
  // Wakes every wait_readable on this queue, in every process: each looks at its `cancel` and,
  // if still waiting, at the queue again, and goes back to sleep.
  void wake_readable_waiters() const noexcept;

  // Travel to another process (src/queue.cpp, "Travel"; the wire form and its checks are in
  // queue.hpp's header comment, "Travel"). encode_travel writes kTravelSize bytes and adds a
  // duplicate of the region's memfd to the calling thread's TravelOut list; it throws ValueError
  // outside a TravelOut scope (before writing anything), Closed on a closed handle.
  // decode_travel maps the descriptor named by the bytes from the TravelIn list, after checking
  // the bytes, the descriptor (shared memory at least as large as the queue) and the region's
  // header; anything that does not fit is a DecodeError naming `kind`'s type.
  static constexpr std::size_t kTravelSize = 40;
  void encode_travel(Writer& w, QueueKind kind) const;
  static QueueCore decode_travel(Reader& r, QueueKind kind, std::uint64_t element_tag);

  // JoinableQueue support. Unfinished tasks are the messages that entered the queue (complete
  // and published) minus task_done() calls, so a put that never completed is never waited for.
  void task_done();
  bool join(const Expiry& deadline);

 private:
  friend struct QueueCoreTestAccess;  // tests that scribble into the shared region
  QueueCore() = default;              // decode_travel's, filled in there
  void check_open() const;
  // The shared region's header; the Ref also keeps the mapping (which holds the ring) alive for
  // as long as a copy of this handle exists (src/queue.cpp).
  Ref<QueueShared> shared_;
  std::byte* ring_ = nullptr;
  QueueConfig config_;
  int fd_ = -1;  // the region's memfd (owned by the region, which the Ref keeps), for travel
  bool closed_ = false;
};

}  // namespace detail
}  // namespace mproc
