// queue_shared.hpp — a Queue's shared region as it lies in memory, and the limits of its records.
//
// Private to the library (src/queue.cpp; tests that scribble into a queue's region include it).
// The protocol that works on this layout is described at the top of src/queue.cpp.
//
// Trust: every word below can be overwritten by any process that maps the region (a buggy or
// hostile one). The constants at the start are written once at creation; each handle works from
// its own copy (`QueueConfig`), and the library reads them back only to check a handle that
// arrived from another process (its encoded constants must match them, see src/queue.cpp,
// "Travel"). Indices, counts and record headers are read, validated against those constants, and a
// value that cannot be right is an `mproc::Error("mproc::Queue: corrupt ring: ...")`, never an
// access outside the ring.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "sync_state.hpp"

namespace mproc::detail {

enum RecordKind : std::uint32_t {
  kFull = 1,    // a whole message
  kFirst = 2,   // a streamed message's first chunk: u64 total size, then the first bytes
  kMiddle = 3,  // a chunk of `chunk` payload bytes
  kLast = 4,    // the last chunk (the message is complete once it is published)
  kPad = 5,     // filler from here to the end of the ring (its len is not used)
  kAbort = 6,   // ends a stream whose producer died or gave up (len 0)
};

// Each record starts at an 8-byte-aligned position; `len` payload bytes follow, padded to 8.
struct RecordHeader {
  std::uint32_t len;
  std::uint32_t kind;
};
static_assert(sizeof(RecordHeader) == 8);

inline constexpr std::uint64_t kHeader = sizeof(RecordHeader);
inline constexpr std::uint64_t kMinCapacity = 4096;
// The largest ring: 2^63 bytes (a power of two that fits in a 64-bit size).
inline constexpr std::uint64_t kMaxCapacity = std::uint64_t{1} << 63;
// The largest record (header + payload): below 2^32 so that `len` (32 bits) always holds it.
inline constexpr std::uint64_t kMaxRecord = std::uint64_t{1} << 31;
// The largest message: sizes above this (4 EiB) are refused before anything is written, which
// keeps every sum of a size and a header far from wrapping.
inline constexpr std::uint64_t kMaxMessage = std::uint64_t{1} << 62;

constexpr std::uint64_t round8(std::uint64_t n) { return (n + 7) & ~std::uint64_t{7}; }
// Bytes a record of `len` payload bytes occupies; `len` < 2^32 (a header's), so it never wraps.
constexpr std::uint64_t record_size(std::uint64_t len) { return kHeader + round8(len); }

// The sizes that follow from a ring's capacity (a power of two, kMinCapacity..kMaxCapacity).
struct RingGeometry {
  std::uint64_t capacity;
  std::uint64_t max_record;  // a message whose record would be larger is streamed
  std::uint64_t chunk;       // payload bytes of each streamed chunk
};

constexpr RingGeometry ring_geometry(std::uint64_t capacity) {
  // A quarter of the ring (so a producer can fill the ring while a consumer drains it), capped so
  // that a record's length fits its 32-bit field.
  const std::uint64_t quarter = capacity / 4;
  const std::uint64_t max_record = quarter < kMaxRecord ? quarter : kMaxRecord;
  return RingGeometry{capacity, max_record, max_record / 2 - kHeader};
}

static_assert(ring_geometry(kMinCapacity).max_record == 1024);
static_assert(ring_geometry(kMinCapacity).chunk == 504);
static_assert(ring_geometry(kMaxCapacity).max_record == kMaxRecord);
static_assert(record_size(ring_geometry(kMaxCapacity).max_record) < (std::uint64_t{1} << 32));

// One side's published state (an index and an item count) changes as a pair; a process killed
// between the two stores would leave them disagreeing for good. So each publish first writes this
// journal, then the count, then the index; whoever next takes the side's lock after its holder
// died (EOWNERDEAD) replays it: if the index is `new_index`, the count becomes `new_count`; if it
// is still `old_index`, `old_count`. The entry is valid only once `old_index` (written last) is
// the index the publish started from, and an index only grows, so a half-written entry matches
// neither and is ignored.
struct PublishJournal {
  std::atomic<std::uint64_t> new_index{0};
  std::atomic<std::uint64_t> old_count{0};
  std::atomic<std::uint64_t> new_count{0};
  std::atomic<std::uint64_t> old_index{0};
};

struct QueueShared {
  // Written once at creation, for whoever inspects the region; read by the library only to
  // check a handle that arrives from another process against them (see the file comment).
  std::uint64_t capacity;
  std::uint64_t mask;
  std::uint64_t maxsize;  // 0: no item limit
  std::uint64_t max_record;
  std::uint64_t chunk;
  std::uint32_t spin;
  std::uint32_t joinable;
  // Checked (with the constants above) by a handle that arrives in another process
  // (QueueCore::decode_travel, src/queue.cpp, "Travel") before it trusts the region: kQueueMagic,
  // and the tag of the element type the queue was created for (0 for an untyped QueueCore).
  std::uint64_t magic;
  std::uint64_t element_tag;

  // Producer side (written by the put_lock holder).
  MutexState put_lock{false};
  alignas(kCacheLine) std::atomic<std::uint64_t> tail{0};  // published end of data
  std::atomic<std::uint64_t> items_put{0};                 // complete messages published
  std::uint64_t put_cached_head = 0;                       // the lock holder's view of head
  std::uint32_t put_stream_open = 0;  // a streamed message is unfinished (ABORT it first)
  PublishJournal put_journal;

  // Consumer side (written by the get_lock holder).
  MutexState get_lock{false};
  alignas(kCacheLine) std::atomic<std::uint64_t> head{0};  // end of data consumed
  std::atomic<std::uint64_t> items_got{0};                 // complete messages passed
  std::uint64_t get_cached_tail = 0;
  PublishJournal get_journal;

  // Who waits for data. Bit 0 (kConsumerSleeps): the get_lock holder sleeps on `data_seq` (only
  // it sleeps). Bits 1-31 (kWatchMask): a mproc::wait registration (QueueCore::wait_readable), a
  // token made of the `watch_seq` value its waiter sleeps on. One word, so that a publish reads
  // both with the one load it made before waiters existed; see src/queue.cpp, "Watching".
  alignas(kCacheLine) std::atomic<std::uint32_t> data_seq{0};
  std::atomic<std::uint32_t> data_waiters{0};
  std::atomic<std::uint32_t> watch_seq{0};
  // Sleeping producer (only the put_lock holder sleeps).
  alignas(kCacheLine) std::atomic<std::uint32_t> space_seq{0};
  std::atomic<std::uint32_t> producer_sleeping{0};
  // JoinableQueue: unfinished tasks = items_put - tasks_done.
  alignas(kCacheLine) std::atomic<std::uint64_t> tasks_done{0};
  std::atomic<std::uint32_t> join_seq{0};
  std::atomic<std::uint32_t> joiners{0};
};

static_assert(std::is_standard_layout_v<QueueShared>);
static_assert(offsetof(QueueShared, capacity) == 0 && offsetof(QueueShared, mask) == 8);
// The ring starts this many bytes into the region (the header rounded up to 4 KiB).
inline constexpr std::uint64_t kRegionHeader = (sizeof(QueueShared) + 4095) & ~std::uint64_t{4095};
// "mprocQ" and a layout version (1): the first word a travelling handle checks.
inline constexpr std::uint64_t kQueueMagic = 0x0001'51'636f72706dULL;
inline constexpr std::uint32_t kConsumerSleeps = 1;  // QueueShared::data_waiters
inline constexpr std::uint32_t kWatchMask = ~kConsumerSleeps;

}  // namespace mproc::detail
