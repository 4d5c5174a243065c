// The shared-memory message queue under Queue<T> (see <mproc/queue.hpp> for the contract).
//
// Layout (queue_shared.hpp): a QueueShared header, then a byte ring of `capacity` bytes (a power
// of two), in one anonymous memfd region. Positions are 64-bit byte counters that only grow; a
// position's place in the ring is `pos & mask`.
//
// Records: every message is one or more records, each starting at an 8-byte-aligned position with
// an 8-byte header {u32 len, u32 kind} followed by `len` payload bytes padded to 8. A record never
// wraps: when one does not fit before the end of the ring, a kPad record fills the rest. A message
// whose record would exceed `max_record` (a quarter of the ring, at most 2 GiB, so that `len`
// always holds it) is streamed as kFirst (payload begins with the message's total size as u64),
// kMiddle..., kLast chunks; kAbort ends a stream whose producer gave up or died.
//
// Concurrency: producers serialise on `put_lock`, consumers on `get_lock` (robust mutexes: a dead
// holder is recovered by the next acquirer). A producer publishes with a release store of `tail`
// only after the whole record is written (commit-last): a producer that dies mid-record leaves
// nothing visible. A consumer advances `head` only after it has decoded the record: a consumer that
// dies mid-record leaves it for the next one. Each side caches the other's index and reads the
// shared one only when the cached one says "empty"/"full".
//
// Counts: `items_put` counts complete messages (a kFull record, or a stream's kLast) and is
// published with `tail`; `items_got` counts the complete messages consumers have passed (a kFull
// taken or dropped, a kLast received, drained or skipped) and is published with `head`. So
// qsize = items_put - items_got is the number of complete messages not yet taken, whatever was
// lost: a stream whose producer died never counted; one whose consumer died is counted as taken
// when its last chunk is passed — by the next consumer, by a producer waiting for room, or by
// qsize() itself, which take the consumer lock for that only when it is free or its owner died.
// An index and its count are two stores: each publish writes a journal first (PublishJournal in
// queue_shared.hpp), replayed by whoever takes the side's lock from a dead owner, so a kill
// between the stores never leaves them disagreeing.
//
// Trust: the handle's QueueConfig, not the shared header, holds the constants. Every index, count
// and record header read from shared memory is checked against them before use ("corrupt ring").
//
// Sleeping: only a lock holder ever sleeps for data (consumer) or space (producer), on the futex
// words `data_seq`/`space_seq`, after announcing itself in bit 0 of `data_waiters` (whose other
// bits are mproc::wait's, see "Watching") or in `producer_sleeping`. The other side publishes its
// index, issues a sequentially consistent fence, and wakes only when the flag is set: no system
// call when nobody sleeps. The fence pairs with the sleeper's sequentially consistent RMW on its
// flag before it re-reads the index, so a wake-up is never lost.
//
// Watching (mproc::wait on a queue, QueueCore::wait_readable): a thread that waits for the queue
// to hold a complete message, without taking the consumer lock, reads `watch_seq`, registers by
// writing a token made of it into the watch bits of `data_waiters` (a sequentially consistent
// compare-and-swap that keeps the sleeping consumer's bit, then a fence) and only then looks at the
// counts; if nothing is there it sleeps on `watch_seq`. The registration shares its word with the
// sleeping consumer's flag, so a publish reads both with the one relaxed load it made before (no
// extra load, no extra branch while nobody waits). When the watch bits are set and the publish
// completed a message, the producer moves `watch_seq`, wakes every sleeper, and clears the watch
// bits by compare-and-swap if they still hold the token it read. Either the waiter sees the message
// or the producer sees the registration (the two fences); a waiter that misses the message read
// `watch_seq` before the producer moved it (had it read the moved value, it would see the message),
// so the move wakes it. The swap clears only what the producer read: a registration made after the
// move carries the new sequence, a different token, and stays for the next message. So a
// registration is never lost, even to a producer killed half-way (the next message wakes), and
// each is paid once: a waiter killed while registered costs the next message one futex wake, not
// every message after. A producer killed between its publish and its wake leaves watchers asleep
// until the next message, exactly as it leaves a consumer sleeping in get() (a supervised stage
// also waits for the producer's process, whose death wakes it). The sleeping consumer's bit is set
// and cleared with fetch_or/fetch_and, so that it never overwrites a registration.
#include <errno.h>

#include <atomic>
#include <bit>
#include <cstring>
#include <mproc/detail/queue_core.hpp>
#include <mproc/detail/travel.hpp>
#include <mproc/errors.hpp>
#include <mproc/interrupt.hpp>
#include <mproc/queue.hpp>  // QueueOptions
#include <new>
#include <optional>
#include <string>
#include <utility>

#include "posix/error.hpp"
#include "posix/fd_io.hpp"
#include "posix/futex.hpp"
#include "posix/region.hpp"
#include "posix/robust_mutex.hpp"
#include "queue_shared.hpp"
#include "sync_state.hpp"

namespace mproc::detail {

static_assert(std::endian::native == std::endian::little,
              "a record header is read as one 64-bit word: len in the low half");

namespace {

// Thrown inside a Writer/Reader refill to unwind out of an encode/decode.
struct PutTimedOut {};
struct StreamAborted {};

constexpr auto kProbe = std::chrono::milliseconds(50);

[[noreturn]] void throw_corrupt(const char* what) {
  throw Error(std::string("mproc::Queue: corrupt ring: ") + what);
}

[[noreturn]] void throw_unread(std::uint64_t unread, std::uint64_t length) {
  throw DecodeError("mproc::Queue: a message decoded short of its length (" +
                    std::to_string(unread) + " of " + std::to_string(length) + " bytes unread)");
}

std::uint64_t round_capacity(std::size_t requested) {
  if (requested > kMaxCapacity)
    throw ValueError("mproc::Queue: a capacity of " + std::to_string(requested) +
                     " bytes is larger than the largest ring (2^63 bytes)");
  const std::uint64_t c = requested < kMinCapacity ? kMinCapacity : requested;
  return std::bit_ceil(c);
}

// One relaxed 64-bit read of shared memory another process may be writing.
std::uint64_t load_word(const std::byte* p) {
  return __atomic_load_n(reinterpret_cast<const std::uint64_t*>(p), __ATOMIC_RELAXED);
}

// Publishes a side's new index and count through its journal (see PublishJournal).
void publish_pair(PublishJournal& j, std::atomic<std::uint64_t>& index,
                  std::atomic<std::uint64_t>& count, std::uint64_t old_index,
                  std::uint64_t new_index, std::uint64_t old_count, std::uint64_t new_count) {
  j.new_index.store(new_index, std::memory_order_relaxed);
  j.old_count.store(old_count, std::memory_order_relaxed);
  j.new_count.store(new_count, std::memory_order_relaxed);
  j.old_index.store(old_index, std::memory_order_release);
  count.store(new_count, std::memory_order_release);
  index.store(new_index, std::memory_order_release);
}

// Run by whoever took a side's lock from a dead owner: the count agrees with the index again.
void replay_journal(const PublishJournal& j, const std::atomic<std::uint64_t>& index,
                    std::atomic<std::uint64_t>& count) {
  const std::uint64_t i = index.load(std::memory_order_relaxed);
  if (i == j.new_index.load(std::memory_order_relaxed))
    count.store(j.new_count.load(std::memory_order_relaxed), std::memory_order_release);
  else if (i == j.old_index.load(std::memory_order_relaxed))
    count.store(j.old_count.load(std::memory_order_relaxed), std::memory_order_release);
}

void recover_producer_side(QueueShared* s) {
  replay_journal(s->put_journal, s->tail, s->items_put);
  s->producer_sleeping.fetch_and(~1u, std::memory_order_relaxed);
}

void recover_consumer_side(QueueShared* s) {
  replay_journal(s->get_journal, s->head, s->items_got);
  s->data_waiters.fetch_and(kWatchMask, std::memory_order_relaxed);
}

// Takes one of the queue's robust locks, spinning briefly first.
// Returns 0 (acquired), EOWNERDEAD (acquired; the previous holder died) or ETIMEDOUT; throws
// Interrupted naming `operation` when an interruption request ends the wait (nothing is held then).
int lock_side(MutexState* m, const Expiry& deadline, std::uint32_t spin, const char* operation) {
  int r = mutex_try_acquire(m);
  // Test and test-and-set: watch the lock word with plain loads, try only when it looks free.
  for (std::uint32_t i = 0; r == EBUSY && i < spin; ++i) {
    cpu_relax();
    if (robust_mutex_word(m->mutex).owner == 0) r = mutex_try_acquire(m);  // free, or owner died
  }
  if (r == EBUSY) r = mutex_acquire(m, deadline);
  if (r == 0 || r == EOWNERDEAD || r == ETIMEDOUT) return r;
  if (r == kInterrupted) throw_interrupted(operation);
  throw_errno(r, "mproc::Queue: cannot take the queue's lock: pthread_mutex_lock");
}

// Waits until ready(): spins for `spin` pause instructions, then sleeps on the futex word `seq`
// after announcing itself in bit 0 of `sleeping` (set and cleared by RMW: the word's other bits
// may be mproc::wait registrations; the waker checks the bit after a sequentially consistent
// fence, see the file comment). Returns false once `deadline` has passed. With `slice`, sleeps at
// most that long at a time and calls on_idle() after each slice that ended without progress. With
// `interrupted`, an interruption request (<mproc/interrupt.hpp>) ends the wait too: it returns
// false with *interrupted set (only when not ready: a ready side wins). Without, the wait is
// exactly as before (a wait in the middle of a stream must not be cut).
// Pauses between two looks at the other side's index while spinning. Looking after every pause
// gives the lowest latency but pulls the index's cache line away from the other side each time,
// which a producer and consumer running flat out pay on every message; looking every few pauses
// lets messages accumulate between looks.
constexpr std::uint32_t kSpinStride = 8;

template <class Ready, class OnIdle>
bool park(std::uint32_t spin, std::atomic<std::uint32_t>& seq, std::atomic<std::uint32_t>& sleeping,
          const Expiry& deadline, Ready ready, std::optional<Clock::duration> slice, OnIdle on_idle,
          bool* interrupted = nullptr) {
  for (std::uint32_t i = 0; i < spin; i += kSpinStride) {
    if (ready()) return true;
    for (std::uint32_t k = 0; k < kSpinStride; ++k) cpu_relax();
  }
  // The end of the current slice, kept across wake-ups until it passes: an interruptible wait
  // returns every kInterruptSlice, and a slice restarted each time would never end.
  std::optional<Clock::time_point> slice_end;
  for (;;) {
    std::uint32_t value = seq.load(std::memory_order_relaxed);
    sleeping.fetch_or(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (ready()) {
      sleeping.fetch_and(~1u, std::memory_order_relaxed);
      return true;
    }
    Expiry until = deadline;
    if (slice) {
      if (!slice_end) slice_end = Clock::now() + *slice;
      if (!until || *slice_end < *until) until = *slice_end;
    }
    const int r = interrupted != nullptr ? futex_wait_interruptible(&seq, value, until)
                                         : futex_wait(&seq, value, until);
    sleeping.fetch_and(~1u, std::memory_order_relaxed);
    if (ready()) return true;
    if (r == kInterrupted) {
      *interrupted = true;
      return false;
    }
    if (expired(deadline)) return false;
    if (r == ETIMEDOUT && slice) {
      slice_end.reset();
      on_idle();
    }
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

void settle_consumer(QueueShared* s, std::byte* ring, const QueueConfig& c) noexcept;

// A waiter's registration in the watch bits of `data_waiters` for the sequence value `seq`: bit 1
// always set (never 0), bits 2-31 the low bits of `seq` (the same token again only after 2^30
// moves).
constexpr std::uint32_t watch_token(std::uint32_t seq) { return (seq << 2) | 2u; }

// Run by a producer that published a complete message and found a registration in `waiters` (the
// value of `data_waiters` it read after its fence; see "Watching").
[[gnu::noinline, gnu::cold]] void wake_watchers(QueueShared* s, std::uint32_t waiters) noexcept {
  s->watch_seq.fetch_add(1, std::memory_order_seq_cst);
  futex_wake_all(&s->watch_seq);
  std::uint32_t cur = s->data_waiters.load(std::memory_order_relaxed);
  while ((cur & kWatchMask) == (waiters & kWatchMask) &&
         !s->data_waiters.compare_exchange_weak(
             cur, cur & kConsumerSleeps, std::memory_order_seq_cst, std::memory_order_relaxed)) {
  }
}

// ---------------------------------------------------------------------------------------------
// Producer side. All of it runs with put_lock held.

class Producer {
 public:
  Producer(QueueShared* s, std::byte* ring, const QueueConfig& c, const Expiry& deadline)
      : s_(s),
        ring_(ring),
        c_(c),
        deadline_(deadline),
        t_(s->tail.load(std::memory_order_relaxed)),
        items_(s->items_put.load(std::memory_order_relaxed)),
        published_t_(t_),
        published_items_(items_),
        cached_head_(s->put_cached_head) {
    // Every record is written at t_ & mask and never past the ring's end: that needs an aligned
    // t_ and a view of head no more than a ring behind it.
    if ((t_ & 7) != 0 || t_ - cached_head_ > c_.capacity)
      throw_corrupt("the producers' position (tail) is out of bounds");
  }

  // Publishes what was written so far.
  void publish() {
    if (t_ == published_t_) return;
    const bool message = items_ != published_items_;  // a complete message: watchers care
    publish_pair(s_->put_journal, s_->tail, s_->items_put, published_t_, t_, published_items_,
                 items_);
    published_t_ = t_;
    published_items_ = items_;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const std::uint32_t waiters = s_->data_waiters.load(std::memory_order_relaxed);
    if (waiters != 0) [[unlikely]] {
      if ((waiters & kConsumerSleeps) != 0) {
        s_->data_seq.fetch_add(1, std::memory_order_relaxed);
        futex_wake(&s_->data_seq, 1);
      }
      if ((waiters & kWatchMask) != 0 && message) wake_watchers(s_, waiters);
    }
  }

  // Makes room for a record of `rec` bytes (plus padding) and for one more item if `item`;
  // returns its position, or false when the deadline passed.
  bool reserve(std::uint64_t rec, bool item, std::uint64_t& pos) {
    const std::uint64_t cap = c_.capacity;
    for (;;) {
      const std::uint64_t to_end = cap - (t_ & c_.mask);
      // rec <= cap / 4, so padding is needed only when to_end < cap / 4: need <= cap.
      const std::uint64_t need = rec > to_end ? to_end + rec : rec;
      bool room = cap - (t_ - cached_head_) >= need;
      if (!room) {
        refresh_head();
        room = cap - (t_ - cached_head_) >= need;
      }
      if (room && (!item || has_slot())) {
        if (rec > to_end) {
          auto* pad = header_at(t_);
          pad->len = 0;
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

  // Whether the last wait for space ended because of an interruption request (a false from
  // reserve, abort_stream or write then means that, not a timeout).
  bool interrupted() const noexcept { return interrupted_; }

  // Writes an ABORT record ending an unfinished stream and publishes it before clearing the
  // stream's flag (a kill in between leaves the flag, and a second, harmless, ABORT); false on
  // timeout.
  bool abort_stream() {
    std::uint64_t pos;
    if (!reserve(kHeader, false, pos)) return false;
    auto* h = header_at(pos);
    h->len = 0;
    h->kind = kAbort;
    t_ = pos + kHeader;
    publish();
    s_->put_stream_open = 0;
    return true;
  }

  // Writes one message; false when the deadline passed (nothing of it is published then).
  bool write(const EncodeJob& job) {
    if (job.size <= c_.max_record - kHeader) return write_single(job);
    if (job.size > kMaxMessage)
      throw ValueError("mproc::Queue: a message of " + std::to_string(job.size) +
                       " bytes is larger than the largest message a queue carries (2^62 bytes)");
    return write_stream(job);
  }

 private:
  RecordHeader* header_at(std::uint64_t pos) const {
    return reinterpret_cast<RecordHeader*>(ring_ + (pos & c_.mask));
  }

  bool has_slot() const {
    return c_.maxsize == 0 || items_ - s_->items_got.load(std::memory_order_acquire) < c_.maxsize;
  }

  void refresh_head() {
    const std::uint64_t h = s_->head.load(std::memory_order_acquire);
    if ((h & 7) != 0 || t_ - h > c_.capacity)
      throw_corrupt("the consumers' position (head) is out of bounds");
    cached_head_ = h;
    s_->put_cached_head = h;
  }

  // Sleeps in slices: between two, a consumer side left by a dead consumer (a count to repair,
  // chunks of a stream nobody receives) is settled, so the room or item slot it holds comes back.
  bool wait_for_space(std::uint64_t need, bool item) {
    auto ready = [&] {
      const std::uint64_t h = s_->head.load(std::memory_order_acquire);
      return c_.capacity - (t_ - h) >= need && (!item || has_slot());
    };
    return park(
        c_.spin, s_->space_seq, s_->producer_sleeping, deadline_, ready,
        std::optional<Clock::duration>(kProbe), [this] { settle_consumer(s_, ring_, c_); },
        &interrupted_);
  }

  bool write_single(const EncodeJob& job) {
    const std::uint64_t rec = record_size(job.size);
    std::uint64_t pos;
    if (!reserve(rec, true, pos)) return false;
    auto* h = header_at(pos);
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
    auto* h = header_at(pos);
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
    const std::uint64_t left = self->stream_left_;
    const std::uint64_t len = left < self->c_.chunk ? left : self->c_.chunk;
    const std::uint32_t kind = len == left ? kLast : kMiddle;
    if (!self->open_chunk(len, kind, false)) {
      self->timed_out_ = true;
      throw PutTimedOut{};
    }
    self->stream_left_ -= len;
    std::byte* payload = reinterpret_cast<std::byte*>(self->header_at(self->chunk_.pos) + 1);
    w.set_window(payload, payload + len);
  }

  bool write_stream(const EncodeJob& job) {
    const std::uint64_t total = job.size;  // > max_record - 8 > 2 * chunk; <= kMaxMessage
    const std::uint64_t first_len = c_.chunk;
    // The item slot (maxsize) is reserved with the first chunk.
    if (!open_chunk(first_len, kFirst, true)) return false;
    s_->put_stream_open = 1;  // before the first chunk can be published
    stream_left_ = total + sizeof(std::uint64_t) - first_len;
    timed_out_ = false;
    std::byte* payload = reinterpret_cast<std::byte*>(header_at(chunk_.pos) + 1);
    std::memcpy(payload, &total, sizeof total);
    Writer w(payload + sizeof total, payload + first_len, &Producer::refill, this);
    try {
      job.encode(w, job.obj);
    } catch (const PutTimedOut&) {
      return false;  // put_stream_open stays set: the next producer writes ABORT
    }
    if (timed_out_) return false;  // the encoder swallowed the PutTimedOut
    if (stream_left_ != 0 || w.cur() != w.end())
      throw Error("mproc::Queue: the codec wrote fewer bytes than its size() promised");
    t_ = chunk_.pos + record_size(chunk_.len);
    ++items_;
    publish();                // the message is complete and counted ...
    s_->put_stream_open = 0;  // ... before the stream is marked closed
    return true;
  }

  QueueShared* s_;
  std::byte* ring_;
  const QueueConfig& c_;
  const Expiry& deadline_;
  std::uint64_t t_;                // local tail: written but maybe not yet published
  std::uint64_t items_;            // local items_put
  std::uint64_t published_t_;      // what tail and items_put hold
  std::uint64_t published_items_;  //
  std::uint64_t cached_head_;      // a head no later than the real one
  Chunk chunk_;
  std::uint64_t stream_left_ = 0;
  bool timed_out_ = false;
  bool interrupted_ = false;  // see interrupted()
};

// ---------------------------------------------------------------------------------------------
// Consumer side. All of it runs with get_lock held.

class Consumer {
 public:
  Consumer(QueueShared* s, std::byte* ring, const QueueConfig& c, const Expiry& deadline)
      : s_(s),
        ring_(ring),
        c_(c),
        deadline_(deadline),
        h_(s->head.load(std::memory_order_relaxed)),
        items_(s->items_got.load(std::memory_order_relaxed)),
        published_h_(h_),
        published_items_(items_),
        cached_t_(s->get_cached_tail) {
    if ((h_ & 7) != 0 || (cached_t_ & 7) != 0 || cached_t_ - h_ > c_.capacity)
      throw_corrupt("the consumers' position (head) is out of bounds");
  }

  void publish() {
    if (h_ == published_h_) return;
    publish_pair(s_->get_journal, s_->head, s_->items_got, published_h_, h_, published_items_,
                 items_);
    published_h_ = h_;
    published_items_ = items_;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (s_->producer_sleeping.load(std::memory_order_relaxed) != 0) {
      s_->space_seq.fetch_add(1, std::memory_order_relaxed);
      futex_wake(&s_->space_seq, 1);
    }
  }

  // Takes one message (after skipping padding and chunks nobody receives), decoding it with fn.
  // Returns false if none is available (by `deadline` when `wait`), and, when not `wait` (a later
  // message of a batch), if the next message is a stream or does not decode.
  bool take(DecodeFn fn, void* out, bool wait) {
    for (;;) {
      if (!available(wait)) return false;
      const Record rec = record_at_head();
      switch (rec.kind) {
        case kFull:
          return take_full(fn, out, wait, rec);
        case kFirst:
          if (!wait) return false;  // a stream starts a batch of its own (see get_many)
          if (take_stream(fn, out, rec)) return true;
          continue;  // the stream was abandoned: look for the next message
        case kLast:  // the end of a complete stream whose consumer died: that message was taken
          ++items_;
          h_ += rec.size;
          continue;
        default:  // padding, or chunks or the ABORT of a stream nobody receives any more
          h_ += rec.size;
          continue;
      }
    }
  }

  // Passes what no consumer will take (padding, chunks of a stream whose consumer died, ABORTs)
  // up to the next message or the published end; never waits.
  void skip_orphans() {
    while (h_ != cached_t_ || refresh_tail()) {
      const Record rec = record_at_head();
      if (rec.kind == kFull || rec.kind == kFirst) return;
      if (rec.kind == kLast) ++items_;
      h_ += rec.size;
    }
  }

 private:
  // A record header as read once from the ring (a writer of the shared memory cannot change it
  // between the checks and the use), with the bytes the record occupies.
  struct Record {
    std::uint64_t len;
    std::uint32_t kind;
    std::uint64_t size;
  };

  [[noreturn]] void fail(const char* what) {
    corrupt_ = what;  // for a decoder that catches the Error and returns
    throw_corrupt(what);
  }

  const std::byte* payload_at_head() const { return ring_ + (h_ & c_.mask) + kHeader; }

  // Validates the record at h_ (which is before cached_t_) against the ring and the data published.
  Record record_at_head() {
    const std::uint64_t off = h_ & c_.mask;
    const std::uint64_t word = load_word(ring_ + off);
    Record r{word & 0xffffffffu, static_cast<std::uint32_t>(word >> 32), 0};
    const std::uint64_t to_end = c_.capacity - off;
    switch (r.kind) {
      case kFull:
        if (r.len > c_.max_record - kHeader) fail("a record is longer than the largest record");
        r.size = record_size(r.len);
        break;
      case kFirst:
      case kMiddle:
      case kLast:
        if (r.len > c_.chunk) fail("a chunk is longer than the chunk size");
        r.size = record_size(r.len);
        break;
      case kPad:
        r.size = to_end;
        break;
      case kAbort:
        r.size = kHeader;
        break;
      default:
        fail("a record has an unknown kind");
    }
    if (r.size > to_end || r.size > cached_t_ - h_)
      fail("a record runs past the end of the ring or of the published data");
    return r;
  }

  bool refresh_tail() {
    const std::uint64_t t = s_->tail.load(std::memory_order_acquire);
    if ((t & 7) != 0 || t - h_ > c_.capacity)
      fail("the producers' position (tail) is out of bounds");
    cached_t_ = t;
    s_->get_cached_tail = t;
    return t != h_;
  }

  // True when a record is available at h_ (waiting until the deadline if `wait`).
  bool available(bool wait) {
    if (h_ != cached_t_) return true;
    if (refresh_tail()) return true;
    if (!wait) return false;
    publish();
    for (;;) {
      bool interrupted = false;
      if (!wait_for_data(deadline_, false, &interrupted)) {
        if (interrupted) throw_interrupted("mproc::Queue::get");
        return false;
      }
      if (refresh_tail()) return true;
      if (expired(deadline_)) return false;
    }
  }

  void release(const Record& rec) {
    h_ += rec.size;
    ++items_;
  }

  bool take_full(DecodeFn fn, void* out, bool wait, const Record& rec) {
    const std::byte* payload = payload_at_head();
    Reader r(payload, payload + rec.len, rec.len);
    try {
      fn(r, out);
    } catch (const UnreadBytes&) {
      // Within a batch, leave it for the next call, so the items before it are not lost with the
      // exception; as the first of a call, consume it (never retried forever).
      if (!wait) return false;
      release(rec);
      throw_unread(r.remaining(), rec.len);
    } catch (...) {
      if (!wait) return false;
      release(rec);
      throw;
    }
    release(rec);
    if (r.remaining() != 0) [[unlikely]]
      throw_unread(r.remaining(), rec.len);
    return true;
  }

  // Waits for tail to move past h_. With `probe`, wakes every kProbe to check that the producer of
  // the stream being received is still there; ends the stream for it if not.
  // With `interrupted`, an interruption request ends the wait (see park).
  bool wait_for_data(const Expiry& deadline, bool probe, bool* interrupted = nullptr) {
    auto ready = [&] { return s_->tail.load(std::memory_order_acquire) != h_; };
    if (!probe)
      return park(c_.spin, s_->data_seq, s_->data_waiters, deadline, ready, std::nullopt, kNoIdle,
                  interrupted);
    return park(c_.spin, s_->data_seq, s_->data_waiters, deadline, ready,
                std::optional<Clock::duration>(kProbe), [this] { check_stream_producer(); });
  }

  // The stream's producer holds put_lock until the stream ends. If we can take it while the
  // stream is open and nothing new is published, the producer died or gave up: we write the
  // ABORT the next producer would have written, so that the stream ends here and now.
  void check_stream_producer() {
    const int r = mutex_try_acquire(&s_->put_lock);
    if (r != 0 && r != EOWNERDEAD) return;  // held: the producer is alive
    Unlock unlock(&s_->put_lock);
    if (r == EOWNERDEAD) recover_producer_side(s_);
    if (refresh_tail()) return;  // it published more before it let go
    if (s_->put_stream_open == 0) fail("a streamed message stopped before its last chunk");
    const Expiry now = Clock::now();
    try {
      Producer p(s_, ring_, c_, now);
      (void)p.abort_stream();  // no room now (cannot happen: we consumed all): next probe
    } catch (const Error&) {
      fail("the producers' position (tail) is out of bounds");
    }
  }

  static void refill(Reader& r, void* ctx) { static_cast<Consumer*>(ctx)->next_chunk(r); }

  // Releases the chunk just read, then waits (past our deadline while the producer lives) for
  // the next one, checked against what the stream still holds.
  void next_chunk(Reader& r) {
    if (ended_) throw StreamAborted{};
    if (corrupt_) throw_corrupt(corrupt_);
    if (chunk_kind_ == kLast) fail("a streamed message is longer than its chunks");
    h_ += record_size(chunk_len_);
    publish();
    for (;;) {
      if (h_ == cached_t_ && !refresh_tail()) {
        (void)wait_for_data(Expiry(), true);
        continue;
      }
      const Record rec = record_at_head();
      switch (rec.kind) {
        case kPad:
          h_ += rec.size;
          continue;
        case kMiddle:
        case kLast: {
          const std::uint64_t left = r.remaining();
          const std::uint64_t expect = left < c_.chunk ? left : c_.chunk;
          if (rec.len != expect || (rec.kind == kLast) != (expect == left))
            fail("a chunk does not match what its stream still holds");
          chunk_len_ = rec.len;
          chunk_kind_ = rec.kind;
          const std::byte* payload = payload_at_head();
          r.set_window(payload, payload + rec.len);
          return;
        }
        case kAbort:  // left at h_ for take() to pass
          ended_ = true;
          throw StreamAborted{};
        default:
          fail("a streamed message is interrupted by another message");
      }
    }
  }

  // Receives the rest of the stream being read and drops it, so that the call that could not
  // decode it consumes it whole: up to its last chunk (the message counts as taken), or up to
  // the ABORT that ends it (it never counted).
  void drain(Reader& r) {
    try {
      r.skip(r.remaining());
    } catch (const StreamAborted&) {
      return;
    }
    h_ += record_size(chunk_len_);
    ++items_;
  }

  bool take_stream(DecodeFn fn, void* out, const Record& first) {
    if (first.len != c_.chunk) fail("a stream's first chunk has the wrong length");
    const std::byte* payload = payload_at_head();
    const std::uint64_t total = load_word(payload);
    if (total <= c_.max_record - kHeader || total > kMaxMessage)
      fail("a streamed message announces an impossible length");
    chunk_len_ = first.len;
    chunk_kind_ = kFirst;
    ended_ = false;
    Reader r(payload + sizeof total, payload + first.len, total, &Consumer::refill, this);
    bool unread = false;
    try {
      fn(r, out);
      unread = r.remaining() != 0;
    } catch (const UnreadBytes&) {
      unread = true;
    } catch (...) {
      // StreamAborted (the producer gave up or died: h_ is at the ABORT), or the decoder failed.
      if (corrupt_) throw_corrupt(corrupt_);
      if (ended_) return false;
      drain(r);
      // A stream that ended with an ABORT while we drained it never was a message (it never
      // counted, and a JoinableQueue never waits for it): the decoder's error goes with it, and
      // the caller looks for the next message.
      if (ended_) return false;
      throw;
    }
    if (corrupt_) throw_corrupt(corrupt_);
    if (ended_) return false;  // the decoder swallowed the StreamAborted
    if (unread) {
      const std::uint64_t left = r.remaining();
      drain(r);
      if (ended_) return false;  // as above: an aborted stream is no message to refuse
      throw_unread(left, total);
    }
    // All `total` bytes were read; chunk lengths are checked against them, so this is the end of
    // the last chunk.
    if (chunk_kind_ != kLast) fail("a streamed message is shorter than its chunks");
    h_ += record_size(chunk_len_);
    ++items_;
    return true;
  }

  QueueShared* s_;
  std::byte* ring_;
  const QueueConfig& c_;
  const Expiry& deadline_;
  std::uint64_t h_;
  std::uint64_t items_;
  std::uint64_t published_h_;
  std::uint64_t published_items_;
  std::uint64_t cached_t_;  // a tail no later than the real one
  std::uint64_t chunk_len_ = 0;
  std::uint32_t chunk_kind_ = 0;
  bool ended_ = false;             // the stream being read ended with an ABORT
  const char* corrupt_ = nullptr;  // what was found corrupt
};

// True when the record at head is a chunk of a stream nobody receives, or the consumer lock's
// owner died: the consumer side's count may then be behind until someone passes on.
bool consumer_side_unsettled(const QueueShared* s, const std::byte* ring, const QueueConfig& c) {
  const RobustMutexWord word = robust_mutex_word(s->get_lock.mutex);
  if (word.owner_died) return true;
  if (word.owner != 0) return false;  // a live consumer holds it and will pass on
  const std::uint64_t h = s->head.load(std::memory_order_acquire);
  const std::uint64_t t = s->tail.load(std::memory_order_acquire);
  if (h == t || (h & 7) != 0 || t - h > c.capacity) return false;
  const auto kind = static_cast<std::uint32_t>(load_word(ring + (h & c.mask)) >> 32);
  return kind == kMiddle || kind == kLast;
}

// Makes the consumer side's published state exact when no live consumer is there to do it:
// replays its journal after its holder died, and passes chunks of a stream whose consumer died
// (counting the message when its last chunk is there). Takes get_lock only if it is free or its
// owner died; never waits. Corrupt state is left for get() to report.
void settle_consumer(QueueShared* s, std::byte* ring, const QueueConfig& c) noexcept {
  if (!consumer_side_unsettled(s, ring, c)) return;
  const int r = mutex_try_acquire(&s->get_lock);
  if (r != 0 && r != EOWNERDEAD) return;
  Unlock unlock(&s->get_lock);
  if (r == EOWNERDEAD) recover_consumer_side(s);
  try {
    const Expiry none;
    Consumer consumer(s, ring, c, none);
    consumer.skip_orphans();
    consumer.publish();
  } catch (...) {
  }
}

// Replays the producer side's journal if its lock's owner died (and nobody took it since).
void settle_producer(QueueShared* s) noexcept {
  if (!robust_mutex_word(s->put_lock.mutex).owner_died) return;
  const int r = mutex_try_acquire(&s->put_lock);
  if (r != 0 && r != EOWNERDEAD) return;
  Unlock unlock(&s->put_lock);
  if (r == EOWNERDEAD) recover_producer_side(s);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

QueueCore::QueueCore(std::size_t maxsize, const QueueOptions& options, bool joinable,
                     std::uint64_t element_tag) {
  const std::uint64_t cap = round_capacity(options.capacity);
  const RingGeometry g = ring_geometry(cap);
  const std::uint64_t header = kRegionHeader;
  std::error_code ec;
  const char* failed_call = "";
  auto region = Region::create(header + cap, "mproc-queue", ec, failed_call);  // cap <= 2^63
  if (!region) throw_region_error(ec, failed_call, "mproc-queue", header + cap);
  config_.capacity = cap;
  config_.mask = cap - 1;
  config_.maxsize = maxsize;
  config_.max_record = g.max_record;
  config_.chunk = g.chunk;
  config_.spin = options.spin < 0 ? 0u : static_cast<std::uint32_t>(options.spin);
  config_.element_tag = element_tag;
  config_.joinable = joinable;
  auto* s = ::new (region->data()) QueueShared();
  s->capacity = cap;
  s->mask = cap - 1;
  s->maxsize = maxsize;
  s->max_record = g.max_record;
  s->chunk = g.chunk;
  s->spin = config_.spin;
  s->joinable = joinable ? 1 : 0;
  s->magic = kQueueMagic;
  s->element_tag = element_tag;
  fd_ = region->fd();
  ring_ = static_cast<std::byte*>(region->data()) + header;
  // The Ref owns the mapping (one allocation when the queue is made) and points at its header.
  shared_ = Ref<QueueShared>(make_ref<decltype(region)>(std::move(region)), s);
}

void throw_queue_full() { throw Full("mproc::Queue: the queue is full"); }
void throw_queue_empty() { throw Empty("mproc::Queue: the queue is empty"); }

void QueueCore::check_open() const {
  if (closed_) throw Closed("mproc::Queue: the queue handle is closed");
}

void QueueCore::close() noexcept { closed_ = true; }

std::size_t QueueCore::put_batch(const EncodeJob* jobs, std::size_t n, const Expiry& deadline) {
  check_open();
  QueueShared* s = shared_.get();
  const int r = lock_side(&s->put_lock, deadline, config_.spin, "mproc::Queue::put");
  if (r == ETIMEDOUT) return 0;
  Unlock unlock(&s->put_lock);
  if (r == EOWNERDEAD) recover_producer_side(s);
  Producer p(s, ring_, config_, deadline);
  std::size_t done = 0;
  try {
    if (s->put_stream_open != 0 && !p.abort_stream()) {
      if (p.interrupted()) throw_interrupted("mproc::Queue::put");
      return 0;
    }
    for (; done < n; ++done) {
      if (!p.write(jobs[done])) break;
    }
  } catch (...) {
    // Keep the messages fully written before the failing one; drop the failing one.
    p.publish();
    throw;
  }
  p.publish();
  // Interrupted while waiting for room for message `done`: those before it stay put (as when a
  // codec throws), and the call throws rather than report a timeout.
  if (p.interrupted()) throw_interrupted("mproc::Queue::put");
  return done;
}

bool QueueCore::put(const EncodeJob& job, const Expiry& deadline) {
  return put_batch(&job, 1, deadline) == 1;
}

std::size_t QueueCore::get_batch(DecodeFn fn, void* out, std::size_t max, const Expiry& deadline) {
  check_open();
  QueueShared* s = shared_.get();
  const int r = lock_side(&s->get_lock, deadline, config_.spin, "mproc::Queue::get");
  if (r == ETIMEDOUT) return 0;
  Unlock unlock(&s->get_lock);
  if (r == EOWNERDEAD) recover_consumer_side(s);
  Consumer c(s, ring_, config_, deadline);
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

bool QueueCore::get(DecodeFn fn, void* out, const Expiry& deadline) {
  return get_batch(fn, out, 1, deadline) == 1;
}

std::size_t QueueCore::qsize() const noexcept {
  QueueShared* s = shared_.get();
  settle_producer(s);
  settle_consumer(s, ring_, config_);
  const std::uint64_t got = s->items_got.load(std::memory_order_acquire);
  const std::uint64_t put = s->items_put.load(std::memory_order_acquire);
  return put > got ? static_cast<std::size_t>(put - got) : 0;
}

std::size_t QueueCore::maxsize() const noexcept { return config_.maxsize; }
std::size_t QueueCore::capacity() const noexcept { return config_.capacity; }
bool QueueCore::empty() const noexcept { return qsize() == 0; }
bool QueueCore::full() const noexcept { return config_.maxsize != 0 && qsize() >= config_.maxsize; }

bool QueueCore::readable() const noexcept { return qsize() != 0; }

bool QueueCore::wait_readable(const Expiry& deadline,
                              const Atomic<std::uint32_t>* cancel) const noexcept {
  QueueShared* s = shared_.get();
  for (;;) {
    // The order matters (see "Watching"): the sequence first, then the cancel flag (whoever
    // cancels sets it before moving the sequence), then the registration, then the look.
    const std::uint32_t seq = s->watch_seq.load(std::memory_order_seq_cst);
    if (cancel != nullptr && cancel->load(order::seq_cst) != 0) return false;
    std::uint32_t cur = s->data_waiters.load(std::memory_order_relaxed);
    while (!s->data_waiters.compare_exchange_weak(cur, (cur & kConsumerSleeps) | watch_token(seq),
                                                  std::memory_order_seq_cst,
                                                  std::memory_order_relaxed)) {
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (readable()) return true;
    if (expired(deadline)) return false;
    // An interruption request ends the wait as a cancel does (the caller, mproc::wait, throws).
    if (futex_wait_interruptible(&s->watch_seq, seq, deadline) == kInterrupted) return false;
  }
}

void QueueCore::wake_readable_waiters() const noexcept {
  QueueShared* s = shared_.get();
  s->watch_seq.fetch_add(1, std::memory_order_seq_cst);
  futex_wake_all(&s->watch_seq);
}

void QueueCore::task_done() {
  check_open();
  QueueShared* s = shared_.get();
  settle_producer(s);
  std::uint64_t done = s->tasks_done.load(std::memory_order_relaxed);
  do {
    if (done >= s->items_put.load(std::memory_order_acquire))
      throw ValueError("mproc::JoinableQueue: task_done() called too many times");
  } while (!s->tasks_done.compare_exchange_weak(done, done + 1, std::memory_order_seq_cst,
                                                std::memory_order_relaxed));
  if (done + 1 >= s->items_put.load(std::memory_order_seq_cst) &&
      s->joiners.load(std::memory_order_seq_cst) != 0) {
    s->join_seq.fetch_add(1, std::memory_order_seq_cst);
    futex_wake_all(&s->join_seq);
  }
}

bool QueueCore::join(const Expiry& deadline) {
  check_open();
  QueueShared* s = shared_.get();
  auto finished = [s] {
    return s->tasks_done.load(std::memory_order_seq_cst) >=
           s->items_put.load(std::memory_order_seq_cst);
  };
  for (;;) {
    settle_producer(s);
    if (finished()) return true;
    const std::uint32_t seq = s->join_seq.load(std::memory_order_seq_cst);
    s->joiners.fetch_add(1, std::memory_order_seq_cst);
    if (finished()) {
      s->joiners.fetch_sub(1, std::memory_order_relaxed);
      return true;
    }
    // In slices: a producer killed between publishing its count and its index leaves a count
    // that settle_producer() repairs, and nobody would wake us for it.
    Expiry until = Clock::now() + 2 * kProbe;
    if (deadline && *deadline < *until) until = deadline;
    const int r = futex_wait_interruptible(&s->join_seq, seq, until);
    s->joiners.fetch_sub(1, std::memory_order_relaxed);
    if (r == kInterrupted && !finished()) throw_interrupted("mproc::JoinableQueue::join");
    if (expired(deadline)) return finished();
  }
}

// ---------------------------------------------------------------------------------------------
// Travel: a handle sent to another process (a Process argument, a Pool task argument under spawn
// or forkserver). The wire form and the checks are in queue.hpp's header comment ("Travel").

namespace {

const char* kind_name(QueueKind kind) noexcept {
  switch (kind) {
    case QueueKind::kSimpleQueue:
      return "mproc::SimpleQueue";
    case QueueKind::kJoinableQueue:
      return "mproc::JoinableQueue";
    case QueueKind::kQueue:
      break;
  }
  return "mproc::Queue";
}

[[noreturn]] void throw_travel_decode(QueueKind kind, const std::string& what) {
  throw DecodeError(std::string(kind_name(kind)) + ": the handle that travelled " + what);
}

}  // namespace

std::uint64_t hash_type_name(const char* name) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a, 64 bits
  for (const char* p = name; *p != '\0'; ++p) {
    h ^= static_cast<unsigned char>(*p);
    h *= 0x100000001b3ULL;
  }
  return h == 0 ? 1 : h;  // 0 means "untyped"
}

void QueueCore::encode_travel(Writer& w, QueueKind kind) const {
  Descriptors* out = travel_out();
  if (out == nullptr) {
    throw ValueError(std::string(kind_name(kind)) +
                     " can travel to another process only as an argument of a Process or of a "
                     "Pool task (Python: Queue objects should only be shared between processes "
                     "through inheritance)");
  }
  if (closed_)
    throw Closed(std::string(kind_name(kind)) + ": cannot send a closed handle to a process");
  const std::uint32_t index = out->add_dup(fd_);
  w.write_value(index);
  w.write_value(static_cast<std::uint8_t>(kind));
  w.write_value(static_cast<std::uint8_t>(config_.joinable ? 1 : 0));
  w.write_value(std::uint16_t{0});
  w.write_value(config_.spin);
  w.write_value(std::uint32_t{0});
  w.write_value(config_.capacity);
  w.write_value(config_.maxsize);
  w.write_value(config_.element_tag);
}

QueueCore QueueCore::decode_travel(Reader& r, QueueKind kind, std::uint64_t element_tag) {
  const auto index = r.read_value<std::uint32_t>();
  const auto sent_kind = r.read_value<std::uint8_t>();
  const auto joinable = r.read_value<std::uint8_t>();
  const auto zero16 = r.read_value<std::uint16_t>();
  const auto spin = r.read_value<std::uint32_t>();
  const auto zero32 = r.read_value<std::uint32_t>();
  const auto capacity = r.read_value<std::uint64_t>();
  const auto maxsize = r.read_value<std::uint64_t>();
  const auto tag = r.read_value<std::uint64_t>();

  // The bytes alone.
  if (sent_kind != static_cast<std::uint8_t>(kind)) {
    const bool known = sent_kind >= 1 && sent_kind <= 3;
    throw_travel_decode(
        kind, known ? std::string("is a ") + kind_name(static_cast<QueueKind>(sent_kind)) +
                          ", not a " + kind_name(kind)
                    : "is no queue handle (kind " + std::to_string(sent_kind) + ")");
  }
  if (zero16 != 0 || zero32 != 0 || joinable > 1)
    throw_travel_decode(kind, "has a corrupt header (a flag or a reserved byte out of range)");
  if ((kind == QueueKind::kJoinableQueue && joinable != 1) ||
      (kind == QueueKind::kSimpleQueue && joinable != 0))
    throw_travel_decode(kind, "disagrees with its kind about counting tasks");
  if (tag != element_tag)
    throw_travel_decode(kind, "holds elements of another type than the receiver's T");
  if (capacity < kMinCapacity || capacity > kMaxCapacity || !std::has_single_bit(capacity))
    throw_travel_decode(kind, "announces an impossible capacity (" + std::to_string(capacity) +
                                  " bytes; a power of two from 4096 to 2^63)");
  if (spin > 0x7fffffffu) throw_travel_decode(kind, "announces an impossible spin count");

  // The descriptor: one that travelled, shared memory (a regular file on tmpfs: a memfd) holding
  // the whole region, so that no page of the mapping lies past the file's end (no SIGBUS).
  const Descriptors* in = travel_in();
  if (in == nullptr)
    throw_travel_decode(kind, "came without its descriptors (decoded outside a TravelIn scope)");
  if (index >= in->size())
    throw_travel_decode(kind, "names descriptor " + std::to_string(index) + " of the " +
                                  std::to_string(in->size()) + " that came with it");
  const int fd = in->at(index);
  const std::uint64_t need = kRegionHeader + capacity;  // capacity <= 2^63: no wrap
  char why[160];
  if (const char* what = check_shared_file(fd, static_cast<std::size_t>(need), why, sizeof why))
    throw_travel_decode(kind, std::string("came with ") + what);
  int copy = -1;
  if (std::error_code ec = dup_cloexec(fd, copy))
    throw_system_error(ec, std::string(kind_name(kind)) + ": fcntl(F_DUPFD_CLOEXEC)");
  std::error_code ec;
  auto region = Region::map_fd(copy, static_cast<std::size_t>(need), ec);  // closes copy on error
  if (!region) throw_system_error(ec, std::string(kind_name(kind)) + ": mmap of its queue");

  // The region's header: written once by the queue's creator, and it must say what the bytes say.
  const auto* base = static_cast<const std::byte*>(region->data());
  auto word = [base](std::size_t offset) { return load_word(base + offset); };
  const RingGeometry g = ring_geometry(capacity);
  const std::uint64_t spin_joinable = word(offsetof(QueueShared, spin));
  if (word(offsetof(QueueShared, magic)) != kQueueMagic)
    throw_travel_decode(kind, "came with shared memory that holds no queue");
  if (word(offsetof(QueueShared, capacity)) != capacity ||
      word(offsetof(QueueShared, mask)) != capacity - 1 ||
      word(offsetof(QueueShared, maxsize)) != maxsize ||
      word(offsetof(QueueShared, max_record)) != g.max_record ||
      word(offsetof(QueueShared, chunk)) != g.chunk ||
      spin_joinable != (spin | (std::uint64_t{joinable} << 32)))
    throw_travel_decode(kind,
                        "disagrees with its queue's shared header (capacity, item limit, "
                        "spin or kind)");
  if (word(offsetof(QueueShared, element_tag)) != element_tag)
    throw_travel_decode(kind, "came with a queue created for another element type");

  QueueCore q;
  q.config_.capacity = capacity;
  q.config_.mask = capacity - 1;
  q.config_.maxsize = maxsize;
  q.config_.max_record = g.max_record;
  q.config_.chunk = g.chunk;
  q.config_.element_tag = element_tag;
  q.config_.spin = spin;
  q.config_.joinable = joinable != 0;
  q.fd_ = region->fd();
  q.ring_ = static_cast<std::byte*>(region->data()) + kRegionHeader;
  auto* s = static_cast<QueueShared*>(region->data());
  q.shared_ = Ref<QueueShared>(make_ref<decltype(region)>(std::move(region)), s);
  return q;
}

}  // namespace mproc::detail
