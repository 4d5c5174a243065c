// soak/sync_roles.cpp — lockers (Lock, RLock) and sync parties (Event, Barrier, Condition).
#include <chrono>
#include <mproc/errors.hpp>

#include "soak/roles.hpp"

namespace soak {

namespace {

using namespace std::chrono_literals;

constexpr auto kLockTimeout = 500ms;
constexpr auto kGateTimeout = 500ms;
constexpr auto kBarrierTimeout = 2s;
constexpr auto kTurnTimeout = 500ms;

// Bumps a pair the way a careful holder does: a, some work, b. A kill in between leaves a != b.
void bump(std::int64_t& a, std::int64_t& b) {
  a = a + 1;
  for (int i = 0; i < 64; ++i) asm volatile("" ::: "memory");
  b = b + 1;
}

}  // namespace

void check_pair(World& w, const char* what, std::int64_t& a, std::int64_t& b, bool owner_died) {
  if (a == b) return;
  if (owner_died) {
    w.board->counters.recovered_sections++;
  } else if (w.board->counters.torn_sections++ < 8) {
    w.board->log.add("torn critical section: %s pair %lld/%lld without owner_died()", what,
                     static_cast<long long>(a), static_cast<long long>(b));
  }
  b = a;  // repair
}

int locker_main(World& w, Slot& me) {
  while (!stopping(w)) {
    set_doing(me, Doing::kLock);
    if (w.lock.acquire(kLockTimeout)) {
      check_pair(w, "Lock", w.lock_a.get_obj(), w.lock_b.get_obj(), w.lock.owner_died());
      bump(w.lock_a.get_obj(), w.lock_b.get_obj());
      w.lock.release();
      beat(me);
    }
    set_doing(me, Doing::kRLock);
    if (w.rlock.acquire(kLockTimeout)) {
      w.rlock.acquire();  // the holder takes it again at once
      if (w.rlock.depth() != 2)
        report_error(*w.board, "RLock depth %u, expected 2", w.rlock.depth());
      check_pair(w, "RLock", w.rlock_a.get_obj(), w.rlock_b.get_obj(), w.rlock.owner_died());
      bump(w.rlock_a.get_obj(), w.rlock_b.get_obj());
      w.rlock.release();
      w.rlock.release();
      beat(me);
    }
  }
  return 0;
}

namespace {

// One step of the token ring: waits (bounded) for this party's turn and takes it.
void ring_step(World& w, Slot& me, int party) {
  set_doing(me, Doing::kCondition);
  if (!w.cond.acquire(kTurnTimeout)) return;
  std::int64_t& turn = w.turn.get_obj();
  std::int64_t& steps = w.steps.get_obj();
  check_pair(w, "Condition", turn, steps, w.cond_lock.owner_died());
  const bool mine =
      w.cond.wait_for([&] { return turn % kSyncParties == party || stopping(w); }, kTurnTimeout);
  // The lock was taken again inside wait_for, maybe from a holder that died.
  check_pair(w, "Condition", turn, steps, w.cond_lock.owner_died());
  if (mine && !stopping(w)) {
    bump(turn, steps);
    w.cond.notify_all();
    beat(me);
  }
  w.cond.release();
}

// Waits at the barrier; a broken barrier (a party was killed or stopped too long, or the driver
// aborted it at the end) is reset by whoever finds it still broken.
void barrier_step(World& w, Slot& me) {
  set_doing(me, Doing::kBarrier);
  try {
    const int index = w.barrier.wait(kBarrierTimeout);
    if (index < 0 || index >= kSyncParties)
      report_error(*w.board, "Barrier::wait returned arrival index %d of %d", index, kSyncParties);
    beat(me);
  } catch (const mproc::BrokenBarrierError&) {
    w.board->counters.barrier_broken++;
    if (!stopping(w) && w.barrier.broken()) w.barrier.reset();
  }
}

}  // namespace

int sync_party_main(World& w, Slot& me, int party) {
  while (!stopping(w)) {
    set_doing(me, Doing::kGate);
    if (!w.gate.wait(kGateTimeout)) continue;
    barrier_step(w, me);
    ring_step(w, me, party);
  }
  return 0;
}

}  // namespace soak
