// soak/world.hpp — the mproc objects the participants share, made by the driver before any fork.
#pragma once

#include <cstdint>
#include <mproc/queue.hpp>
#include <mproc/shared_memory.hpp>
#include <mproc/sync.hpp>

#include "soak/board.hpp"
#include "soak/message.hpp"

namespace soak {

// A 64 KiB ring: messages above 16 KiB stream through it in chunks.
inline constexpr std::size_t kRing = 64 * 1024;
// The Queue's item limit: low enough that a count that drifts up soon blocks its producers.
inline constexpr std::size_t kQueueMax = 256;
// The JoinableQueue is small, so its producer is often blocked in put() when it is killed.
inline constexpr std::size_t kJoinableMax = 8;

struct World {
  explicit World(Board* b)
      : board(b), barrier(kSyncParties, [b] { b->counters.barrier_generations++; }) {}

  Board* board;
  mproc::Queue<Msg> queue{kQueueMax, mproc::QueueOptions{.capacity = kRing}};
  mproc::JoinableQueue<Msg> joinable{kJoinableMax, mproc::QueueOptions{.capacity = kRing}};
  // Counter pairs that must be equal whenever their lock is free (each holder bumps both).
  mproc::Lock lock;
  mproc::Value<std::int64_t> lock_a{0, mproc::no_lock}, lock_b{0, mproc::no_lock};
  mproc::RLock rlock;
  mproc::Value<std::int64_t> rlock_a{0, mproc::no_lock}, rlock_b{0, mproc::no_lock};
  // The sync parties' token ring: turn and steps advance together under cond_lock.
  mproc::Lock cond_lock;
  mproc::Condition cond{cond_lock};
  mproc::Value<std::int64_t> turn{0, mproc::no_lock}, steps{0, mproc::no_lock};
  mproc::Event gate;  // the driver clears it now and then; sync parties wait for it
  mproc::Barrier barrier;
};

}  // namespace soak
