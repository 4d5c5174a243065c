// soak/roles.hpp — the participants' loops. Each runs in its own process until the board says
// stop, then returns 0; an unexpected error is reported on the board and makes it return 2.
//
// Rules every loop follows:
//   * every blocking call has a timeout (at most a few seconds), so a participant itself never
//     blocks for good; whether the *system* still makes progress is the driver's watchdog's call,
//     through `Slot::ops`, which a loop bumps for each completed operation;
//   * before each blocking call it stores what it is doing in `Slot::doing`, for hang reports;
//   * what the library documents as the outcome of a kill (owner_died(), BrokenBarrierError,
//     WorkerLost, BrokenPool after the zygote died) is counted, not reported as an error.
#pragma once

#include <mproc/errors.hpp>

#include "soak/board.hpp"
#include "soak/world.hpp"

namespace soak {

// Participants run this much nicer than the driver.
inline constexpr int kParticipantNice = 10;

// Runs the participant of cast slot `slot`; returns its exit code.
int run_participant(World& w, int slot);

int producer_main(World& w, Slot& me, int producer);
int consumer_main(World& w, Slot& me);
int joinable_consumer_main(World& w, Slot& me);
int locker_main(World& w, Slot& me);
int sync_party_main(World& w, Slot& me, int party);
int pool_client_main(World& w, Slot& me);

// Helpers shared by the loops.
inline bool stopping(const World& w) { return w.board->stop.load(std::memory_order_relaxed) != 0; }
inline void set_doing(Slot& me, Doing d) {
  me.doing.store(static_cast<std::uint32_t>(d), std::memory_order_relaxed);
}
inline void beat(Slot& me, std::uint64_t n = 1) { me.ops.fetch_add(n, std::memory_order_relaxed); }

// Checks a received message (torn: counted) and records it in the ledger (duplicates and
// late deliveries: counted).
void accept(World& w, const Msg& m);
// A get() threw DecodeError: if `receipts` (the window's) say the message was one made not to
// decode, records it as received (counted as undecodable); otherwise counts a torn message.
// False when the same message had failed before (the queue did not consume it): no progress.
bool accept_decode_error(World& w, const Receipts& receipts, const mproc::DecodeError& e);

// Checks a counter pair that its lock's holders bump together (a then b). A difference means a
// holder died between the two: fine when owner_died() says so (then it is repaired), a torn
// critical section otherwise.
void check_pair(World& w, const char* what, std::int64_t& a, std::int64_t& b, bool owner_died);

}  // namespace soak
