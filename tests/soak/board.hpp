// soak/board.hpp — what the chaos driver shares with its participants: the cast (who plays which
// role), each participant's heartbeat and accounting words, the shared counters and an error log.
//
// The Board lives in one MAP_SHARED|MAP_ANONYMOUS mapping made before the first fork, so every
// participant sees it at the same address. It is plain memory with atomics, independent of the
// primitives under test. Everything in it is written so that a participant SIGKILLed between any
// two instructions leaves values the driver can still interpret (see each field).
#pragma once

#include <atomic>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "soak/ledger.hpp"
#include "soak/message.hpp"

namespace soak {

// What a participant does; its role decides its loop and how its death is accounted for.
enum class Role : std::uint32_t {
  kProducer,          // puts self-describing messages on the Queue
  kConsumer,          // gets them and records each in the ledger
  kJoinableProducer,  // the same on a small JoinableQueue (so it often blocks in put)
  kJoinableConsumer,  // gets, records, task_done(); stopped but never killed (see chaos.cpp)
  kLocker,            // updates counter pairs under a Lock and an RLock
  kSyncParty,         // Event gate, Barrier, Condition token ring
  kPoolClient,        // owns a Pool and submits uneven tasks to it
};
const char* role_name(Role role);

// Where a participant is, for the report of a hang.
enum class Doing : std::uint32_t {
  kIdle,
  kPut,
  kGet,
  kTaskDone,
  kThrottled,
  kLock,
  kRLock,
  kGate,
  kBarrier,
  kCondition,
  kPoolStart,
  kPoolSubmit,
  kPoolWait,
  kPoolJoin,
};
const char* doing_name(Doing doing);

// One participant of the cast: its role and its number within the role (the producer number
// for producers, the party number for sync parties).
struct Part {
  Role role;
  int index;
};

// The cast: 12 participants, plus the Pool's zygote and 2 workers started by the pool client,
// make 15 processes besides the driver.
inline constexpr Part kCast[] = {
    {Role::kProducer, 0},  {Role::kProducer, 1},         {Role::kConsumer, 0},
    {Role::kConsumer, 1},  {Role::kJoinableProducer, 2}, {Role::kJoinableConsumer, 0},
    {Role::kLocker, 0},    {Role::kLocker, 1},           {Role::kSyncParty, 0},
    {Role::kSyncParty, 1}, {Role::kSyncParty, 2},        {Role::kPoolClient, 0},
};
inline constexpr int kSlots = static_cast<int>(sizeof(kCast) / sizeof(kCast[0]));
inline constexpr int kSyncParties = 3;
inline constexpr int kPoolWorkers = 2;
// Ledger producers 0 and 1 put on the Queue, producer 2 on the JoinableQueue.
inline constexpr int kJoinableProducer = 2;
static_assert(kJoinableProducer < kLedgerProducers);

// A participant's words. The driver resets them before it starts an incarnation.
struct Slot {
  std::atomic<std::uint64_t> ops{0};    // completed operations: the heartbeat the watchdog reads
  std::atomic<std::uint32_t> doing{0};  // a Doing: what it is in now
  std::atomic<std::uint64_t> seed{0};   // this incarnation's random seed (set by the driver)
  // Producers. Seqs below put_upto returned from put(); seqs in [put_upto, putting) were handed
  // to put() and may or may not be in the queue (a producer killed there leaves them "maybe").
  std::atomic<std::uint64_t> put_upto{0};
  std::atomic<std::uint64_t> putting{0};
  // Consumers: in_window is 1 from just before get() until what it returned is recorded; floor[p]
  // is the ledger's max_recorded(p) read after in_window was set (see Ledger); receipts holds
  // what get() began to decode in this window (see Msg::serialize).
  std::atomic<std::uint32_t> in_window{0};
  std::atomic<std::uint64_t> floor[kLedgerProducers]{};
  Receipts receipts;
  // JoinableQueue consumer: 1 from get() until task_done() returned.
  std::atomic<std::uint32_t> holding{0};
};

// Shared counters; participants add, the driver reads.
struct Counters {
  std::atomic<std::uint64_t> torn_messages{0};        // checksum/length mismatch or DecodeError
  std::atomic<std::uint64_t> duplicated{0};           // a (producer, seq) recorded twice
  std::atomic<std::uint64_t> late{0};                 // recorded after later seqs were judged
  std::atomic<std::uint64_t> undecodable{0};          // kShortDecode messages refused, as due
  std::atomic<std::uint64_t> undecodable_again{0};    // ... and refused again: not consumed
  std::atomic<std::uint64_t> torn_sections{0};        // half-updated pair without owner_died()
  std::atomic<std::uint64_t> recovered_sections{0};   // half-updated pair with owner_died()
  std::atomic<std::uint64_t> barrier_broken{0};       // BrokenBarrierError seen (expected on kills)
  std::atomic<std::uint64_t> barrier_generations{0};  // barrier actions run
  std::atomic<std::uint64_t> pool_ok{0};
  std::atomic<std::uint64_t> pool_wrong{0};    // a result that is not the task's
  std::atomic<std::uint64_t> pool_lost{0};     // WorkerLost (expected on worker kills)
  std::atomic<std::uint64_t> pools_broken{0};  // pools that broke (expected on zygote kills)
  std::atomic<std::uint64_t> pool_drift{0};    // unfinished() != 0 after join()
  std::atomic<std::uint64_t> errors{0};        // anything unexpected (logged)
};

// A bounded log of unexpected events, printed by the driver at the end. A line being written
// when its writer is killed is cut short, never unterminated (the reader bounds it).
struct ErrorLog {
  static constexpr int kLines = 48;
  static constexpr int kWidth = 240;
  std::atomic<std::uint32_t> next{0};
  char lines[kLines][kWidth];
  void add(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  void print(std::FILE* out) const;
};

struct Board {
  std::atomic<int> stop{0};  // 1: participants finish their current operation and return 0
  Slot slots[kSlots];
  Counters counters;
  ErrorLog log;
  Ledger ledger;
  // Keys (never 0) of events reported already, for events that repeat until the end once they
  // happen (a queue wedged on one message): true the first time a key is seen (or when the table
  // is full, false).
  std::atomic<std::uint64_t> seen[16]{};
  bool first_time(std::uint64_t key) {
    for (auto& k : seen) {
      std::uint64_t cur = k.load();
      if (cur == key) return false;
      if (cur == 0 && (k.compare_exchange_strong(cur, key) || cur == key)) return cur == 0;
    }
    return false;
  }
};

// Maps a zero-filled Board shared by every process forked afterwards. Never unmapped.
Board* make_board();

// Records an unexpected event: counts it and logs the message.
void report_error(Board& board, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace soak
