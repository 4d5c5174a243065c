// soak/ledger.hpp — which messages were delivered, in bounded memory, for the lost/duplicated
// count.
//
// Every message carries (producer, seq). A producer's seqs are consecutive across its incarnations
// (a restarted producer goes on after the last seq its predecessor handed to put()), and a queue
// is FIFO per producer, so consumers *take* each producer's messages in increasing seq order; they
// only *record* them in a racy order (a consumer can be slow, stopped or killed between get() and
// the record).
//
// The ledger keeps, per producer, a window of kWindow bits indexed by seq: a consumer sets the bit
// of each message it receives (a bit already set is a duplicate). The driver judges seqs from the
// bottom of the window up ("finalizes" them), clearing their bits for reuse: a seq is final when no
// consumer can still record it. That is every seq below
//
//   safe = min(max_recorded(p), floor[p] of every consumer currently in its get/record window)
//
// because (a) a seq below max_recorded was taken before the message recorded last (FIFO), so only
// a consumer already inside its window can still record it, and (b) such a consumer read
// max_recorded (its floor) after entering its window and before taking its message, so what it
// takes is at or above that floor. The driver reads max_recorded first and the windows second (all
// sequentially consistent), which makes the argument hold against consumers entering concurrently.
// A consumer killed inside its window may have taken a message it never recorded: the driver
// counts such deaths, and each excuses one missing message.
//
// Producers stay inside the window (may_put), so a bit is never reused before its seq is final.
#pragma once

#include <atomic>
#include <cstdint>
#include <set>
#include <vector>

namespace soak {

inline constexpr int kLedgerProducers = 3;

class Ledger {
 public:
  // Seqs a producer may run ahead of the finalized bottom (128 KiB of bits per producer: some
  // seconds of traffic, far more than the ring and the consumers hold).
  static constexpr std::uint64_t kWindow = std::uint64_t{1} << 20;

  enum class Verdict { kNew, kDuplicate, kLate, kOutOfWindow };

  // Consumer side: records that (producer, seq) was received.
  //   kDuplicate: it was received before (while still in the window).
  //   kLate: it was already judged, i.e. later seqs of its producer were recorded and no consumer
  //     inside its window could still hold it: a second delivery, or FIFO broken.
  //   kOutOfWindow: beyond what its producer may have put (a forged seq).
  Verdict record(int producer, std::uint64_t seq);

  // Consumer side: the highest seq of `producer` recorded so far, plus one (0: none).
  std::uint64_t max_recorded(int producer) const { return max_recorded_[producer].load(); }

  // Producer side: whether `seq` may be put now (it lies inside the window).
  bool may_put(int producer, std::uint64_t seq) const {
    return seq < finalized_[producer].load() + kWindow - kSlack;
  }

  // Seqs whose absence is explained by a death (the driver fills them in as it reaps).
  struct Excuses {
    std::set<std::uint64_t> put;    // handed to put() by a producer that died before it returned
    std::set<std::uint64_t> taken;  // noted by a consumer that died before recording them
    void trim_below(std::uint64_t seq);
  };

  // What judging a range of seqs found.
  struct Tally {
    std::uint64_t delivered = 0;
    std::uint64_t missing = 0;                 // lost: fully put and never received, with no excuse
    std::uint64_t maybe_put = 0;               // missing, excused: its producer died in put()
    std::uint64_t maybe_taken = 0;             // missing, excused: a consumer died holding it
    std::vector<std::uint64_t> first_missing;  // up to 8 of them, for the report
  };

  // Driver side: judges every seq of `producer` in [finalized, safe), where `safe` is computed
  // as in the header comment and may not exceed the window. The judged seqs leave `excuses`.
  void finalize_below(int producer, std::uint64_t safe, Excuses& excuses, Tally& tally);
  std::uint64_t finalized(int producer) const { return finalized_[producer].load(); }

 private:
  // Headroom between a producer's may_put and the window's top, for messages in flight.
  static constexpr std::uint64_t kSlack = 1024;

  std::atomic<std::uint64_t> max_recorded_[kLedgerProducers]{};
  std::atomic<std::uint64_t> finalized_[kLedgerProducers]{};
  std::atomic<std::uint64_t> bits_[kLedgerProducers][kWindow / 64]{};
};

}  // namespace soak
