// bench/protocols.hpp — the protocols each group measures, written once for every implementation.
//
// mproc's workloads and the raw-syscall floors instantiate the same templates with different lock
// and event types, so the two rows of a group differ only in the primitive. bench/python/ follows
// the same steps line for line.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>

namespace mproc_bench {

// lock.uncontended: one process takes and releases a free lock `n` times.
template <class Lockable>
void lock_uncontended(Lockable& lock, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    lock.lock();
    lock.unlock();
  }
}

// lock.handoff: strict alternation between two processes through a lock.
//
// `turns` counts the hand-offs done so far and says whose turn it is: side 0 may advance it when it
// is even, side 1 when it is odd. Each side loops { lock; read turns; if it is its turn, advance
// it; unlock } until `turns` reaches `limit`, so every hand-off makes the lock (and the cache line
// it protects) move to the other process, and the side that waits keeps taking the lock to look.
// One op = one hand-off (`limit` of them per repetition, split between the two sides).
struct Turns {
  alignas(64) std::atomic<std::uint64_t> turns{0};  // read and written only under the lock
};

template <class Lockable>
void lock_handoff_side(Lockable& lock, Turns& t, unsigned side, std::uint64_t limit) {
  for (;;) {
    lock.lock();
    const std::uint64_t c = t.turns.load(std::memory_order_relaxed);
    if (c >= limit) {
      lock.unlock();
      return;
    }
    const bool mine = c % 2 == side;
    if (mine) t.turns.store(c + 1, std::memory_order_relaxed);
    lock.unlock();
    if (!mine) sched_yield();
  }
}

// event.pingpong: two events, one round trip per op.
//   A: set e1; wait e2; clear e2          B: wait e1; clear e1; set e2
// B clears e1 before it sets e2, and A clears e2 before it sets e1 again, so no round is lost.
template <class Event>
void event_pingpong_a(Event& e1, Event& e2, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    e1.set();
    e2.wait();
    e2.clear();
  }
}

template <class Event>
void event_pingpong_b(Event& e1, Event& e2, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    e1.wait();
    e1.clear();
    e2.set();
  }
}

// Throws when a protocol ended in a state it cannot end in (a broken primitive, not slowness).
inline void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(what);
}

}  // namespace mproc_bench
