// soak/accounts.hpp — the driver's checks of what the participants did: the ledger sweep (lost
// messages), the drains at the end (count drift) and the state the locks protect.
#pragma once

#include <cstdint>

#include "soak/cast.hpp"
#include "soak/ledger.hpp"
#include "soak/world.hpp"

namespace soak {

class Accounts {
 public:
  Accounts(World& w, Cast& cast) : w_(w), cast_(cast) {}

  // Judges every seq no consumer can still record (see ledger.hpp). Called often during the run,
  // so that producers stay inside the ledger's window.
  void sweep();
  // After every participant has stopped and the queues were drained: judges every seq handed
  // to put().
  void final_sweep();

  // Drains the Queue (the driver records what it gets) and returns the count drift: how far
  // qsize() was from the number of items really there, plus one for each of empty()/full() that
  // was wrong, before and after draining.
  std::uint64_t drain_queue();
  // The same for the JoinableQueue, marking each drained item done; then join() must succeed:
  // every task_done() it still accepts beyond the items accounted for is drift too.
  std::uint64_t drain_joinable();
  // Takes each lock once more and checks the pair it protects (counted on the board).
  // Returns the locks that could not be taken although every participant has stopped.
  std::uint64_t check_locks();

  // Messages fully put and never received that no death excuses.
  std::uint64_t lost() const;
  std::uint64_t delivered() const;
  // Missing messages a death excuses: a producer's in put(), a consumer's in get().
  std::uint64_t maybe_put() const;
  std::uint64_t maybe_taken() const;
  void print_missing(std::FILE* out) const;

 private:
  void sweep_producer(int producer, std::uint64_t safe);

  World& w_;
  Cast& cast_;
  Ledger::Tally tally_[kLedgerProducers];
};

}  // namespace soak
