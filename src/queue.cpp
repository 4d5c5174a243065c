// The shared-memory message queue under Queue<T> (see <mproc/queue.hpp> for the contract).
//
// Layout: a QueueShared header, then a byte ring of `capacity` bytes (a power of two), in one
// anonymous memfd region. Positions are 64-bit byte counters that only grow; a position's place in
// the ring is `pos & mask`.
//
// Records: every message is one or more records, each starting at an 8-byte-aligned position with
// an 8-byte header {u32 len, u32 kind} followed by `len` payload bytes padded to 8. A record never
// wraps: when one does not fit before the end of the ring, a kPad record fills the rest. A message
// whose record would exceed `max_record` is streamed as kFirst (payload begins with the message's
// total size as u64), kMiddle..., kLast chunks; kAbort ends a stream whose producer gave up or
// died.
//
// Concurrency: producers serialise on `put_lock`, consumers on `get_lock` (robust mutexes: a dead
// holder is recovered by the next acquirer). A producer publishes with a release store of `tail`
// only after the whole record is written (commit-last): a producer that dies mid-record leaves
// nothing visible. A consumer advances `head` only after it has decoded the record: a consumer that
// dies mid-record leaves it for the next one. Each side caches the other's index and reads the
// shared one only when the cached one says "empty"/"full".
//
// Sleeping: only a lock holder ever sleeps for data (consumer) or space (producer), on the futex
// words `data_seq`/`space_seq`, after announcing itself in `consumer_sleeping`/`producer_sleeping`.
// The other side publishes its index, issues a sequentially consistent fence, and wakes only when
// the flag is set: no system call when nobody sleeps. The fence pairs with the sleeper's
// sequentially consistent RMW on its flag before it re-reads the index, so a wake-up is never lost.
#include <errno.h>

#include <atomic>
#include <bit>
#include <cstring>
#include <mproc/detail/queue_core.hpp>
#include <mproc/errors.hpp>
#include <new>
#include <optional>

#include "posix/error.hpp"
#include "posix/futex.hpp"
#include "posix/region.hpp"
#include "sync_state.hpp"

namespace mproc::detail {

enum RecordKind : std::uint32_t {
  kFull = 1,
  kFirst = 2,
  kMiddle = 3,
  kLast = 4,
  kPad = 5,
  kAbort = 6,
};

struct RecordHeader {
  std::uint32_t len;
  std::uint32_t kind;
};
static_assert(sizeof(RecordHeader) == 8);

constexpr std::uint64_t kHeader = sizeof(RecordHeader);
constexpr std::uint64_t round8(std::uint64_t n) { return (n + 7) & ~std::uint64_t{7}; }
constexpr std::uint64_t record_size(std::uint64_t len) { return kHeader + round8(len); }

struct QueueShared {
  // Constant after construction.
  std::uint64_t capacity;
  std::uint64_t mask;
  std::uint64_t maxsize;     // 0: no item limit
  std::uint64_t max_record;  // larger messages are streamed
  std::uint64_t chunk;       // payload bytes per streamed chunk
  std::uint32_t spin;
  std::uint32_t joinable;
  std::uint64_t ring_offset;  // from the start of this struct

  // Producer side.
  MutexState put_lock{false};
  alignas(kCacheLine) std::atomic<std::uint64_t> tail{0};  // published end of data
  std::uint64_t put_cached_head = 0;                       // the lock holder's view of head
  std::uint32_t put_stream_open = 0;  // a streamed message is unfinished (ABORT it first)
  std::atomic<std::uint64_t> items_put{0};

  // Consumer side.
  MutexState get_lock{false};
  alignas(kCacheLine) std::atomic<std::uint64_t> head{0};  // end of data consumed
  std::uint64_t get_cached_tail = 0;
  std::atomic<std::uint64_t> items_got{0};

  // Sleeping consumer (only the get_lock holder sleeps).
  alignas(kCacheLine) std::atomic<std::uint32_t> data_seq{0};
  std::atomic<std::uint32_t> consumer_sleeping{0};
  // Sleeping producer (only the put_lock holder sleeps).
  alignas(kCacheLine) std::atomic<std::uint32_t> space_seq{0};
  std::atomic<std::uint32_t> producer_sleeping{0};
  // JoinableQueue.
  alignas(kCacheLine) std::atomic<std::uint64_t> unfinished{0};
  std::atomic<std::uint32_t> join_seq{0};
  std::atomic<std::uint32_t> joiners{0};
};

namespace {

// Thrown inside a Writer/Reader refill to unwind out of an encode/decode.
struct PutTimedOut {};
struct StreamAborted {};

constexpr auto kProbe = std::chrono::milliseconds(50);

std::uint64_t round_capacity(std::size_t requested) {
  std::uint64_t c = requested < 4096 ? 4096 : requested;
  return std::bit_ceil(c);
}

RecordHeader* header_at(std::byte* ring, const QueueShared* s, std::uint64_t pos) {
  return reinterpret_cast<RecordHeader*>(ring + (pos & s->mask));
}

// Takes one of the queue's robust locks, spinning briefly first.
// Returns 0 (acquired), EOWNERDEAD (acquired; the previous holder died) or ETIMEDOUT.
int take(MutexState* m, const Deadline& deadline, int spin) {
  int r = mutex_try_acquire(m);
  // Test and test-and-set: watch the lock word with plain loads, try only when it looks free.
  for (int i = 0; r == EBUSY && i < spin; ++i) {
    cpu_relax();
    if ((__atomic_load_n(&m->mutex.__data.__lock, __ATOMIC_RELAXED) & 0x3fffffff) == 0)
      r = mutex_try_acquire(m);  // no owner (free, or its owner died)
  }
  if (r == EBUSY) r = mutex_acquire(m, deadline);
  if (r == 0 || r == EOWNERDEAD || r == ETIMEDOUT) return r;
  throw_errno(r, "mproc::Queue: lock failed");
}

// Waits until ready(): spins for `spin` pause instructions, then sleeps on the futex word `seq`
// after announcing itself in `sleeping` (the waker checks that flag after a sequentially consistent
// fence, see the file comment). Returns false once `deadline` has passed. With `slice`, sleeps at
// most that long at a time and calls on_idle() after each slice that ended without progress.
// Pauses between two looks at the other side's index while spinning. Looking after every pause
// gives the lowest latency but pulls the index's cache line away from the other side each time,
// which a producer and consumer running flat out pay on every message; looking every few pauses
// lets messages accumulate between looks.
constexpr std::uint32_t kSpinStride = 8;

template <class Ready, class OnIdle>
bool park(std::uint32_t spin, std::atomic<std::uint32_t>& seq, std::atomic<std::uint32_t>& sleeping,
          const Deadline& deadline, Ready ready, std::optional<Clock::duration> slice,
          OnIdle on_idle) {
  for (std::uint32_t i = 0; i < spin; i += kSpinStride) {
    if (ready()) return true;
    for (std::uint32_t k = 0; k < kSpinStride; ++k) cpu_relax();
  }
  for (;;) {
    std::uint32_t value = seq.load(std::memory_order_relaxed);
    sleeping.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (ready()) {
      sleeping.store(0, std::memory_order_relaxed);
      return true;
    }
    Deadline until = deadline;
    if (slice) {
      auto next = Clock::now() + *slice;
      if (!until || next < *until) until = next;
    }
    int r = futex_wait(&seq, value, until);
    sleeping.store(0, std::memory_order_relaxed);
    if (ready()) return true;
    if (expired(deadline)) return false;
    if (r == ETIMEDOUT && slice) on_idle();
  }
}

constexpr auto kNoIdle = [] {};

class Unlock {
 public:
  explicit Unlock(MutexState* m) : m_(m) {}
  ~Unlock() { (void)mutex_release(m_); }
  Unlock(const Unlock&) = delete;
  Unlock& operator=(const Unlock&) = delete;

 private:
  MutexState* m_;
};

// ---------------------------------------------------------------------------------------------
// Producer side. All of it runs with put_lock held.

class Producer {
 public:
  Producer(QueueShared* s, std::byte* ring, const Deadline& deadline)
      : s_(s),
        ring_(ring),
        deadline_(deadline),
        t_(s->tail.load(std::memory_order_relaxed)),
        items_(s->items_put.load(std::memory_order_relaxed)) {}

  // Publishes what was written so far.
  void publish() {
    if (t_ == published_t()) return;
    s_->items_put.store(items_, std::memory_order_relaxed);
    s_->tail.store(t_, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (s_->consumer_sleeping.load(std::memory_order_relaxed) != 0) {
      s_->data_seq.fetch_add(1, std::memory_order_relaxed);
      futex_wake(&s_->data_seq, 1);
    }
  }

  // Makes room for a record of `rec` bytes (plus padding) and for one more item if `item`;
  // returns its position, or false when the deadline passed.
  bool reserve(std::uint64_t rec, bool item, std::uint64_t& pos) {
    const std::uint64_t cap = s_->capacity;
    for (;;) {
      std::uint64_t to_end = cap - (t_ & s_->mask);
      std::uint64_t need = rec > to_end ? to_end + rec : rec;
      bool room = cap - (t_ - s_->put_cached_head) >= need;
      if (!room) {
        s_->put_cached_head = s_->head.load(std::memory_order_acquire);
        room = cap - (t_ - s_->put_cached_head) >= need;
      }
      bool slot = !item || s_->maxsize == 0 ||
                  items_ - s_->items_got.load(std::memory_order_acquire) < s_->maxsize;
      if (room && slot) {
        if (rec > to_end) {
          auto* pad = header_at(ring_, s_, t_);
          pad->len = static_cast<std::uint32_t>(to_end - kHeader);
          pad->kind = kPad;
          t_ += to_end;
        }
        pos = t_;
        return true;
      }
      publish();  // let consumers drain what is written before waiting for them
      if (!wait_for_space(need, item)) return false;
    }
  }

  bool wait_for_space(std::uint64_t need, bool item) {
    auto ready = [&] {
      std::uint64_t h = s_->head.load(std::memory_order_acquire);
      bool room = s_->capacity - (t_ - h) >= need;
      bool slot = !item || s_->maxsize == 0 ||
                  items_ - s_->items_got.load(std::memory_order_acquire) < s_->maxsize;
      return room && slot;
    };
    return park(s_->spin, s_->space_seq, s_->producer_sleeping, deadline_, ready, std::nullopt,
                kNoIdle);
  }

  // Writes an ABORT record ending an unfinished stream; false on timeout.
  bool abort_stream() {
    std::uint64_t pos;
    if (!reserve(kHeader, false, pos)) return false;
    auto* h = header_at(ring_, s_, pos);
    h->len = 0;
    h->kind = kAbort;
    t_ = pos + kHeader;
    s_->put_stream_open = 0;
    return true;
  }

  // Writes one message; false when the deadline passed (nothing of it is published then).
  bool write(const EncodeJob& job) {
    const std::uint64_t len = job.size;
    if (record_size(len) <= s_->max_record) return write_single(job);
    return write_stream(job);
  }

  QueueShared* shared() const { return s_; }
  void rollback_to_published() {
    t_ = published_t();
    items_ = s_->items_put.load(std::memory_order_relaxed);
  }

 private:
  std::uint64_t published_t() const { return s_->tail.load(std::memory_order_relaxed); }

  bool write_single(const EncodeJob& job) {
    const std::uint64_t rec = record_size(job.size);
    std::uint64_t pos;
    if (!reserve(rec, true, pos)) return false;
    auto* h = header_at(ring_, s_, pos);
    std::byte* payload = reinterpret_cast<std::byte*>(h + 1);
    Writer w(payload, payload + job.size);
    job.encode(w, job.obj);
    if (w.cur() != payload + job.size)
      throw Error("mproc::Queue: the codec wrote fewer bytes than its size() promised");
    h->len = static_cast<std::uint32_t>(job.size);
    h->kind = kFull;
    t_ = pos + rec;
    ++items_;
    return true;
  }

  // The chunk being written: [pos, pos + record) with `len` payload bytes.
  struct Chunk {
    std::uint64_t pos = 0;
    std::uint64_t len = 0;
  };

  bool open_chunk(std::uint64_t len, std::uint32_t kind, bool item) {
    std::uint64_t pos;
    if (!reserve(record_size(len), item, pos)) return false;
    auto* h = header_at(ring_, s_, pos);
    h->len = static_cast<std::uint32_t>(len);
    h->kind = kind;
    chunk_ = Chunk{pos, len};
    return true;
  }

  static void refill(Writer& w, void* ctx) {
    auto* self = static_cast<Producer*>(ctx);
    if (self->stream_left_ == 0)
      throw Error("mproc::Queue: the codec wrote more bytes than its size() promised");
    // Close the current chunk and publish it, then open the next one.
    self->t_ = self->chunk_.pos + record_size(self->chunk_.len);
    self->publish();
    std::uint64_t left = self->stream_left_;
    std::uint64_t len = left < self->s_->chunk ? left : self->s_->chunk;
    std::uint32_t kind = len == left ? kLast : kMiddle;
    if (!self->open_chunk(len, kind, false)) throw PutTimedOut{};
    self->stream_left_ -= len;
    std::byte* payload =
        reinterpret_cast<std::byte*>(header_at(self->ring_, self->s_, self->chunk_.pos) + 1);
    w.set_window(payload, payload + len);
  }

  bool write_stream(const EncodeJob& job) {
    const std::uint64_t total = job.size;
    const std::uint64_t first_len = s_->chunk;  // > 8 + ... since total > max_record > chunk
    // The item slot (maxsize) is reserved with the first chunk.
    if (!open_chunk(first_len, kFirst, true)) return false;
    s_->put_stream_open = 1;
    stream_left_ = total + sizeof(std::uint64_t) - first_len;
    std::byte* payload = reinterpret_cast<std::byte*>(header_at(ring_, s_, chunk_.pos) + 1);
    std::memcpy(payload, &total, sizeof total);
    Writer w(payload + sizeof total, payload + first_len, &Producer::refill, this);
    try {
      job.encode(w, job.obj);
    } catch (const PutTimedOut&) {
      return false;  // put_stream_open stays set: the next producer writes ABORT
    }
    if (stream_left_ != 0 || w.cur() != w.end())
      throw Error("mproc::Queue: the codec wrote fewer bytes than its size() promised");
    t_ = chunk_.pos + record_size(chunk_.len);
    ++items_;
    s_->put_stream_open = 0;
    return true;
  }

  QueueShared* s_;
  std::byte* ring_;
  const Deadline& deadline_;
  std::uint64_t t_;      // local tail: written but maybe not yet published
  std::uint64_t items_;  // local items_put
  Chunk chunk_;
  std::uint64_t stream_left_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Consumer side. All of it runs with get_lock held.

class Consumer {
 public:
  Consumer(QueueShared* s, std::byte* ring, const Deadline& deadline)
      : s_(s),
        ring_(ring),
        deadline_(deadline),
        h_(s->head.load(std::memory_order_relaxed)),
        items_(s->items_got.load(std::memory_order_relaxed)) {}

  void publish() {
    if (h_ == s_->head.load(std::memory_order_relaxed)) return;
    s_->items_got.store(items_, std::memory_order_relaxed);
    s_->head.store(h_, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (s_->producer_sleeping.load(std::memory_order_relaxed) != 0) {
      s_->space_seq.fetch_add(1, std::memory_order_relaxed);
      futex_wake(&s_->space_seq, 1);
    }
  }

  // True when a record is available at h_ (waiting until `deadline` if `wait`).
  bool available(bool wait, const Deadline& deadline) {
    if (h_ != s_->get_cached_tail) return true;
    s_->get_cached_tail = s_->tail.load(std::memory_order_acquire);
    if (h_ != s_->get_cached_tail) return true;
    if (!wait) return false;
    publish();
    return wait_for_data(deadline, false);
  }

  // Takes one message (after skipping padding and orphaned chunks), decoding it with fn.
  // Returns false if none is available (by `deadline` when `wait`), and, when not `wait` (a later
  // message of a batch), if the next message is a stream or does not decode.
  bool take(DecodeFn fn, void* out, bool wait) {
    for (;;) {
      if (!available(wait, deadline_)) return false;
      auto* h = header_at(ring_, s_, h_);
      switch (h->kind) {
        case kPad:
        case kMiddle:
        case kLast:
        case kAbort:  // padding, or chunks of a stream whose start nobody holds any more
          h_ += record_size(h->len);
          continue;
        case kFull: {
          const std::byte* payload = reinterpret_cast<const std::byte*>(h + 1);
          Reader r(payload, payload + h->len, h->len);
          const std::uint64_t rec = record_size(h->len);
          try {
            fn(r, out);
          } catch (...) {
            // Within a batch, leave it for the next call, so the items before it are not lost
            // with the exception; as the first of a call, consume it (never retried forever).
            if (!wait) return false;
            h_ += rec;
            ++items_;
            throw;
          }
          h_ += rec;
          ++items_;
          return true;
        }
        case kFirst:
          if (!wait) return false;  // a stream starts a batch of its own (see get_many)
          if (take_stream(fn, out)) return true;
          continue;  // the stream was abandoned: look for the next message
        default:
          throw Error("mproc::Queue: corrupt ring (unknown record kind)");
      }
    }
  }

 private:
  // Waits for tail to move past h_. With `probe`, wakes every kProbe to check that the producer of
  // the stream being received is still alive; throws StreamAborted if it is not.
  bool wait_for_data(const Deadline& deadline, bool probe) {
    auto ready = [&] {
      s_->get_cached_tail = s_->tail.load(std::memory_order_acquire);
      return h_ != s_->get_cached_tail;
    };
    if (!probe)
      return park(s_->spin, s_->data_seq, s_->consumer_sleeping, deadline, ready, std::nullopt,
                  kNoIdle);
    return park(s_->spin, s_->data_seq, s_->consumer_sleeping, deadline, ready,
                std::optional<Clock::duration>(kProbe), [this] { check_stream_producer(); });
  }

  // The stream's producer holds put_lock until the stream ends. If we can take it while the
  // stream is open and nothing new is published, the producer died or gave up.
  void check_stream_producer() {
    int r = mutex_try_acquire(&s_->put_lock);
    if (r != 0 && r != EOWNERDEAD) return;  // held: the producer is alive
    bool dead = s_->put_stream_open != 0 && s_->tail.load(std::memory_order_acquire) == h_;
    if (r == EOWNERDEAD) s_->producer_sleeping.store(0, std::memory_order_relaxed);
    if (dead) s_->put_stream_open = 0;  // we received all there is of it; nobody needs an ABORT
    (void)mutex_release(&s_->put_lock);
    if (dead) throw StreamAborted{};
  }

  static void refill(Reader& r, void* ctx) {
    auto* self = static_cast<Consumer*>(ctx);
    // Release the chunk just read, then wait (past our deadline while the producer lives) for
    // the next one.
    self->h_ += record_size(self->chunk_len_);
    self->publish();
    for (;;) {
      if (self->h_ == self->s_->get_cached_tail) {
        self->s_->get_cached_tail = self->s_->tail.load(std::memory_order_acquire);
        if (self->h_ == self->s_->get_cached_tail) (void)self->wait_for_data(Deadline(), true);
      }
      auto* h = header_at(self->ring_, self->s_, self->h_);
      if (h->kind == kPad) {
        self->h_ += record_size(h->len);
        continue;
      }
      if (h->kind != kMiddle && h->kind != kLast) throw StreamAborted{};
      self->chunk_len_ = h->len;
      self->chunk_kind_ = h->kind;
      const std::byte* payload = reinterpret_cast<const std::byte*>(h + 1);
      r.set_window(payload, payload + h->len);
      return;
    }
  }

  bool take_stream(DecodeFn fn, void* out) {
    auto* h = header_at(ring_, s_, h_);
    const std::byte* payload = reinterpret_cast<const std::byte*>(h + 1);
    std::uint64_t total;
    std::memcpy(&total, payload, sizeof total);
    chunk_len_ = h->len;
    chunk_kind_ = kFirst;
    Reader r(payload + sizeof total, payload + h->len, total, &Consumer::refill, this);
    try {
      fn(r, out);
    } catch (const StreamAborted&) {
      // h_ is at the record that ended the stream (ABORT, or a new message): take it up there.
      return false;
    } catch (...) {
      // Does not decode: drop this chunk; the rest of the stream is skipped as orphans.
      h_ += record_size(chunk_len_);
      if (chunk_kind_ == kLast) ++items_;
      throw;
    }
    if (r.remaining() != 0 || chunk_kind_ != kLast)
      throw DecodeError("mproc::Queue: a streamed message decoded short of its length");
    h_ += record_size(chunk_len_);
    ++items_;
    return true;
  }

  QueueShared* s_;
  std::byte* ring_;
  const Deadline& deadline_;
  std::uint64_t h_;
  std::uint64_t items_;
  std::uint64_t chunk_len_ = 0;
  std::uint32_t chunk_kind_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

QueueCore::QueueCore(std::size_t maxsize, const QueueOptions& options, bool joinable) {
  const std::uint64_t cap = round_capacity(options.capacity);
  const std::uint64_t header = (sizeof(QueueShared) + 4095) & ~std::uint64_t{4095};
  std::error_code ec;
  auto region = Region::create(header + cap, "mproc-queue", ec);
  if (!region) throw_region_error(ec);
  auto* s = ::new (region->data()) QueueShared();
  s->capacity = cap;
  s->mask = cap - 1;
  s->maxsize = maxsize;
  s->max_record = cap / 4;
  s->chunk = cap / 8 - kHeader;
  s->spin = options.spin < 0 ? 0u : static_cast<std::uint32_t>(options.spin);
  s->joinable = joinable ? 1 : 0;
  s->ring_offset = header;
  ring_ = static_cast<std::byte*>(region->data()) + header;
  shared_ = std::shared_ptr<QueueShared>(std::move(region), s);
}

void QueueCore::check_open() const {
  if (closed_) throw Closed("mproc::Queue: the queue handle is closed");
}

void QueueCore::close() noexcept { closed_ = true; }

std::size_t QueueCore::put_batch(const EncodeJob* jobs, std::size_t n, const Deadline& deadline) {
  check_open();
  QueueShared* s = shared_.get();
  int r = take(&s->put_lock, deadline, static_cast<int>(s->spin));
  if (r == ETIMEDOUT) return 0;
  Unlock unlock(&s->put_lock);
  if (r == EOWNERDEAD) s->producer_sleeping.store(0, std::memory_order_relaxed);
  if (s->joinable) s->unfinished.fetch_add(n, std::memory_order_relaxed);
  Producer p(s, ring_, deadline);
  std::size_t done = 0;
  try {
    if (s->put_stream_open && !p.abort_stream()) {
      p.publish();
      if (s->joinable) s->unfinished.fetch_sub(n, std::memory_order_relaxed);
      return 0;
    }
    for (; done < n; ++done) {
      if (!p.write(jobs[done])) break;
    }
  } catch (...) {
    if (s->joinable) s->unfinished.fetch_sub(n - done, std::memory_order_relaxed);
    // Keep the messages fully written before the failing one; drop the failing one.
    p.publish();
    throw;
  }
  p.publish();
  if (s->joinable && done < n) s->unfinished.fetch_sub(n - done, std::memory_order_relaxed);
  return done;
}

bool QueueCore::put(const EncodeJob& job, const Deadline& deadline) {
  return put_batch(&job, 1, deadline) == 1;
}

std::size_t QueueCore::get_batch(DecodeFn fn, void* out, std::size_t max,
                                 const Deadline& deadline) {
  check_open();
  QueueShared* s = shared_.get();
  int r = take(&s->get_lock, deadline, static_cast<int>(s->spin));
  if (r == ETIMEDOUT) return 0;
  Unlock unlock(&s->get_lock);
  if (r == EOWNERDEAD) s->consumer_sleeping.store(0, std::memory_order_relaxed);
  Consumer c(s, ring_, deadline);
  std::size_t got = 0;
  try {
    while (got < max && c.take(fn, out, got == 0)) ++got;
  } catch (...) {
    c.publish();
    throw;
  }
  c.publish();
  return got;
}

bool QueueCore::get(DecodeFn fn, void* out, const Deadline& deadline) {
  return get_batch(fn, out, 1, deadline) == 1;
}

std::size_t QueueCore::qsize() const noexcept {
  const QueueShared* s = shared_.get();
  std::uint64_t got = s->items_got.load(std::memory_order_acquire);
  std::uint64_t put = s->items_put.load(std::memory_order_acquire);
  return put > got ? static_cast<std::size_t>(put - got) : 0;
}

std::size_t QueueCore::maxsize() const noexcept { return shared_->maxsize; }
std::size_t QueueCore::capacity() const noexcept { return shared_->capacity; }
bool QueueCore::empty() const noexcept { return qsize() == 0; }
bool QueueCore::full() const noexcept {
  return shared_->maxsize != 0 && qsize() >= shared_->maxsize;
}

void QueueCore::task_done() {
  check_open();
  QueueShared* s = shared_.get();
  std::uint64_t v = s->unfinished.load(std::memory_order_relaxed);
  do {
    if (v == 0) throw ValueError("mproc::JoinableQueue: task_done() called too many times");
  } while (!s->unfinished.compare_exchange_weak(v, v - 1, std::memory_order_seq_cst,
                                                std::memory_order_relaxed));
  if (v == 1 && s->joiners.load(std::memory_order_seq_cst) != 0) {
    s->join_seq.fetch_add(1, std::memory_order_seq_cst);
    futex_wake_all(&s->join_seq);
  }
}

bool QueueCore::join(const Deadline& deadline) {
  check_open();
  QueueShared* s = shared_.get();
  for (;;) {
    if (s->unfinished.load(std::memory_order_acquire) == 0) return true;
    std::uint32_t seq = s->join_seq.load(std::memory_order_seq_cst);
    s->joiners.fetch_add(1, std::memory_order_seq_cst);
    if (s->unfinished.load(std::memory_order_seq_cst) == 0) {
      s->joiners.fetch_sub(1, std::memory_order_relaxed);
      return true;
    }
    int r = futex_wait(&s->join_seq, seq, deadline);
    s->joiners.fetch_sub(1, std::memory_order_relaxed);
    if (r == ETIMEDOUT) return s->unfinished.load(std::memory_order_acquire) == 0;
  }
}

}  // namespace mproc::detail
