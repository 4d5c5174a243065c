// mproc/detail/queue_core.hpp — the untyped shared-memory message queue under Queue<T>.
//
// No stability promise. `QueueCore` moves messages of bytes; `Queue<T>` (queue.hpp) adds the
// codec. Messages are encoded straight into the ring by a callback and decoded straight out of
// it, so each byte is copied once on each side.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mproc/byte_stream.hpp>
#include <mproc/detail/deadline.hpp>
#include <mproc/export.hpp>

namespace mproc {

// How a queue is built. Mirrors nothing in Python (whose queues grow without bound in the
// sender's memory); here memory is bounded by `capacity`.
struct QueueOptions {
  // Bytes of the shared ring (rounded up to a power of two, at least 4 KiB). A message larger
  // than a quarter of the ring streams through it in chunks; any size goes through.
  std::size_t capacity = std::size_t{1} << 20;
  // How long a blocked put/get spins before it sleeps on a futex: iterations of one pause
  // instruction (some tens of nanoseconds on current x86) and one check for progress. 0: sleep
  // at once (the lowest CPU use; the round trip then costs two futex wake-ups).
  int spin = 1000;
};

namespace detail {

struct QueueShared;

// One message to put: its exact encoded size and how to encode it.
struct EncodeJob {
  std::size_t size;
  void (*encode)(Writer& w, const void* obj);
  const void* obj;
};

// Decodes one message from `r` into the object at `out` (the caller's typed slot).
using DecodeFn = void (*)(Reader& r, void* out);

class MPROC_API QueueCore {
 public:
  QueueCore(std::size_t maxsize, const QueueOptions& options, bool joinable);

  // Puts one message; false when the deadline passed first (the queue stayed full). A message is
  // either wholly delivered or not at all. Throws Closed after close(); exceptions from the
  // encoder propagate (the message is rolled back).
  bool put(const EncodeJob& job, const Deadline& deadline);
  // Puts `n` messages in order, taking the producer side once; returns how many were put before
  // the deadline (all of them unless it passed).
  std::size_t put_batch(const EncodeJob* jobs, std::size_t n, const Deadline& deadline);

  // Takes one message and decodes it with `fn` into `out`; false when the deadline passed first.
  bool get(DecodeFn fn, void* out, const Deadline& deadline);
  // Takes up to `max` messages (at least one unless the deadline passes), decoding each with `fn`
  // into `out` (which appends). Returns how many.
  std::size_t get_batch(DecodeFn fn, void* out, std::size_t max, const Deadline& deadline);

  std::size_t qsize() const noexcept;
  std::size_t maxsize() const noexcept;
  std::size_t capacity() const noexcept;
  bool empty() const noexcept;
  bool full() const noexcept;
  void close() noexcept;
  bool closed() const noexcept { return closed_; }

  // JoinableQueue support.
  void task_done();
  bool join(const Deadline& deadline);

 private:
  void check_open() const;
  std::shared_ptr<QueueShared> shared_;
  std::byte* ring_ = nullptr;
  bool closed_ = false;
};

}  // namespace detail
}  // namespace mproc
